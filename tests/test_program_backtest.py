"""The backtest build: the program's clock is a map (the capture's time), no dead-man switch.

The backtest runs the very program that trades live, through
BPF_PROG_TEST_RUN; its one clock (hft_now in ebpf/strategy.c) reads
backtest_clock, which the harness sets before each frame, so throttles and
events follow capture time.  The live build has no such map.
"""

from __future__ import annotations

import pytest
from feed_frames import feed_harness, iex_frame, offer
from frames import P, XdpAction

from hft_tui.errors import MapsError
from hft_tui.program import program_hash

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC  # a capture's time: nothing like this machine's monotonic clock
BASE = {"buy_target": "100.00", "base_qty": 10, "max_position": 100_000}


@pytest.fixture(scope="module")
def bt():
    with feed_harness("iex", backtest=True) as h:
        yield h


def test_events_carry_the_clock_the_harness_set(bt):
    bt.reset({"AAPL": BASE})
    bt.maps.set_clock(T0 + 123)
    r = bt.run(iex_frame([offer("AAPL", P("99.00"))], 1))
    assert len(r.orders) == 1
    assert [(e.kind, e.ts_ns) for e in r.events] == [("order", T0 + 123)]
    assert bt.state("AAPL").last_update_ns == T0 + 123


def test_a_throttle_follows_capture_time(bt):
    bt.reset({"AAPL": {**BASE, "rate_per_sec": 1, "burst": 1}})
    seq = iter(range(1, 100))
    outcomes = []
    for at in (0, SEC // 2, SEC - 1, SEC, SEC + SEC // 2, 2 * SEC):
        bt.maps.set_clock(T0 + at)
        r = bt.run(iex_frame([offer("AAPL", P("99.00"))], next(seq)))
        outcomes.append("order" if r.action == XdpAction.TX else next(e.reason for e in r.events))
    assert outcomes == ["order", "throttle", "throttle", "order", "throttle", "order"]


def test_the_dead_man_switch_is_off(bt):
    bt.reset({"AAPL": BASE}, deadman_ms=100)  # heartbeat 0, the clock far past it
    bt.maps.set_clock(T0)
    assert len(bt.run(iex_frame([offer("AAPL", P("99.00"))], 1)).orders) == 1


def test_the_live_build_has_no_backtest_clock():
    with feed_harness("iex") as live:
        with pytest.raises(MapsError, match="no backtest clock"):
            live.maps.set_clock(T0)
        live.reset({"AAPL": BASE}, deadman_ms=100)
        r = live.run(iex_frame([offer("AAPL", P("99.00"))], 1))
        assert r.counts == {"updates": 1, "deadman": 1}


def test_the_hash_tells_the_builds_apart():
    hashes = {program_hash(f, backtest=bt) for f in ("hft1", "iex", "itch") for bt in (False, True)}
    assert len(hashes) == 6
    assert program_hash() == program_hash("hft1")
