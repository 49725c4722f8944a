"""What the worker hands the widgets: bounded tapes, steady rates, alerts that do not flood.

Pure functions of the controller's output, checked on events built here;
the same paths run against the kernel in test_app_pilot.py.
"""

from __future__ import annotations

import pytest

from hft_tui.app.model import (
    TAPE_ORDERS_PER_TICK,
    TAPE_REJECT_LINES_PER_TICK,
    AlertDigest,
    RateMeter,
    sample_tape,
)
from hft_tui.events import Alert, EngineEvent

pytestmark = pytest.mark.pure  # no root, no kernel


def event(kind: str, i: int, symbol: str = "AAPL", reason: str = "", side: str = "") -> EngineEvent:
    return EngineEvent(
        kind=kind,
        ts_ns=i,
        sender_ts=0,
        seq=i,
        symbol=symbol,
        side=side,
        price=1902500,
        qty=100,
        order_id=i,
        reason=reason,
        bid=1902400,
        bid_qty=100,
        ask=1902500,
        ask_qty=200,
        position=0,
        pnl=0,
    )


def test_the_tape_of_one_tick_stays_short_however_many_events_arrive():
    events = [event("update", i, symbol=f"S{i % 4}") for i in range(100_000)]
    events += [event("order", 100_000 + i, side="B") for i in range(5_000)]
    events += [
        event("reject", 200_000 + i, reason=("throttle", "collar", "stale", "notional")[i % 4]) for i in range(50_000)
    ]
    lines = sample_tape(events)
    assert len(lines) <= TAPE_ORDERS_PER_TICK + TAPE_REJECT_LINES_PER_TICK + 4 + 1
    orders = [e for e in lines if e.kind == "order"]
    assert [e.order_id for e in orders] == list(range(105_000 - TAPE_ORDERS_PER_TICK, 105_000))  # the newest
    summary = lines[-1]
    assert summary.kind == "summary" and f"{5_000 - TAPE_ORDERS_PER_TICK:,} orders" in summary.text
    assert sum(e.count for e in lines if e.kind == "reject") + 12_500 == 50_000  # one reason left out, counted
    assert "12,500 rejects" in summary.text
    assert summary.count == 5_000 - TAPE_ORDERS_PER_TICK + 12_500  # what a narrow tape says: how many


def test_the_tape_shows_every_order_of_a_quiet_tick_in_time_order():
    events = [event("order", 3, side="S"), event("update", 1), event("order", 2, side="B")]
    lines = sample_tape(events)
    assert [(e.kind, e.ts_ns) for e in lines] == [("update", 1), ("order", 2), ("order", 3)]


def test_rates_are_counts_per_second_over_the_window():
    meter = RateMeter(window_s=1.0)
    assert meter.add(0, 0) == 0.0
    assert meter.add(500_000_000, 50_000) == 100_000.0
    assert meter.add(1_000_000_000, 100_000) == 100_000.0
    assert meter.add(2_000_000_000, 100_000) == 0.0  # quiet for a whole window


def test_a_reject_reason_shows_at_once_then_as_a_sum_every_few_seconds():
    digest = AlertDigest(every_s=3.0)
    throttle = Alert("reject", "throttle", 10, "AAPL")
    assert digest.add([throttle], now=0.0) == ["reject throttle AAPL: 10"]
    assert digest.add([throttle], now=1.0) == []
    assert digest.add([throttle, Alert("reject", "collar", 1, "MSFT")], now=2.0) == ["reject collar MSFT: 1"]
    assert digest.add([], now=3.0) == ["reject throttle AAPL: 20 more in 3 s"]
    kill = Alert("kill", "operator", 1, message="KILL SWITCH: operator")
    assert digest.add([kill], now=3.1) == ["KILL SWITCH: operator"]
    assert digest.add([kill], now=3.2) == ["KILL SWITCH: operator"]  # never held back
