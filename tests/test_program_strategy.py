"""The strategy's decisions, through BPF_PROG_TEST_RUN on the real program.

Each test starts from a reset engine (frames.Harness.reset): fresh symbol
state, zero totals, kill off, dead-man unarmed, update sampling off.  Every
order is checked as a frame (frames.check_order) and as a ring-buffer event;
every reject of a known symbol must appear as a reject event.
"""

from __future__ import annotations

import time

import pytest
from frames import Harness, P, XdpAction, update_frame

from hft_tui.config import engine_params
from hft_tui.constants import KILL_LOSS_LIMIT, KILL_OFF, KILL_OPERATOR
from hft_tui.protocol import Update
from hft_tui.strategy_model import session_reference

INF_POSITION = 4294967295
DEADLINE_MS = 10_000

# A symbol that buys at or below 100.00 and sells at or above 101.00.
BASE = {
    "buy_target": "100.00",
    "sell_target": "101.00",
    "base_qty": 100,
    "scale_qty": 0,
    "tick_size": "0.01",
    "max_order_qty": 1000,
    "max_position": 5000,
}


def reset(h: Harness, engine: dict | None = None, deadman_ms: int = 0, **symbols: dict) -> None:
    h.reset(
        symbols={name: {**BASE, **values} for name, values in (symbols or {"AAPL": {}}).items()},
        engine=engine,
        deadman_ms=deadman_ms,
    )


def buy(h, qty_expected, ask, *, symbol="AAPL", ask_qty=100000, bid=0, **kw):
    """Runs an update that must buy qty_expected at ask; returns the order."""
    r = h.update(symbol, bid, 100, ask, ask_qty, **kw)
    order = r.order
    assert (order.side, order.price, order.qty) == ("B", ask, qty_expected)
    assert_order_event(r, order)
    return order


HIGH_ASK = P("200.00")  # an ask far above every buy target: the update can only sell


def sell(h, qty_expected, bid, *, symbol="AAPL", bid_qty=100000, ask=HIGH_ASK, **kw):
    r = h.update(symbol, bid, bid_qty, ask, 100, **kw)
    order = r.order
    assert (order.side, order.price, order.qty) == ("S", bid, qty_expected)
    assert_order_event(r, order)
    return order


def assert_order_event(r, order):
    orders = [e for e in r.events if e.kind == "order"]
    assert len(orders) == 1, r.events
    e = orders[0]
    assert (e.symbol, e.side, e.price, e.qty, e.order_id, e.seq) == (
        order.symbol,
        order.side,
        order.price,
        order.qty,
        order.order_id,
        order.seq,
    )
    assert r.counts.get("orders") == 1


def assert_rejected(r, reason: str, action=XdpAction.PASS):
    assert XdpAction(r.action) == action
    assert r.untouched
    assert r.counts == {"updates": 1, reason: 1}
    assert [(e.kind, e.reason) for e in r.events] == [("reject", reason)]


def assert_no_trade(r, action=XdpAction.PASS):
    """A valid update that neither trades nor is rejected."""
    assert XdpAction(r.action) == action
    assert r.untouched
    assert r.counts == {"updates": 1}
    assert r.events == []


# -- buying -----------------------------------------------------------------------

# (symbol config over BASE, ask, ask_qty, expected qty)
BUY_QTY = [
    ("at the target: base_qty", {}, "100.00", 100000, 100),
    ("below the target, no scale", {}, "90.00", 100000, 100),
    ("5 ticks of 0.01 below, scale 10", {"scale_qty": 10}, "99.95", 100000, 150),
    ("1 tick of 0.05 below, scale 10", {"scale_qty": 10, "tick_size": "0.05"}, "99.95", 100000, 110),
    ("partial ticks round down", {"scale_qty": 10, "tick_size": "0.05"}, "99.93", 100000, 110),
    ("just short of a tick", {"scale_qty": 10, "tick_size": "0.05"}, "99.9501", 100000, 100),
    ("10 ticks of 0.0001", {"scale_qty": 10, "tick_size": "0.0001"}, "99.9990", 100000, 200),
    ("5 ticks of 1.00, scale 3", {"scale_qty": 3, "tick_size": "1"}, "95.00", 100000, 115),
    ("base 0 with scale", {"base_qty": 0, "scale_qty": 10}, "99.99", 100000, 10),
    ("bounded by ask_qty", {"scale_qty": 10}, "99.90", 30, 30),
    ("bounded by max_order_qty", {"scale_qty": 10, "max_order_qty": 120}, "99.90", 100000, 120),
    ("bounded by max_position", {"max_position": 70}, "99.00", 100000, 70),
    ("all bounds: the smallest wins", {"scale_qty": 10, "max_order_qty": 60, "max_position": 50}, "99.00", 40, 40),
    (
        "a huge scale is capped",
        {"scale_qty": 4294967295, "tick_size": "0.0001", "max_order_qty": 4294967295, "max_position": INF_POSITION},
        "0.0001",
        4294967295,
        4294967295,
    ),
]


@pytest.mark.parametrize("name,config,ask,ask_qty,qty", BUY_QTY, ids=[r[0] for r in BUY_QTY])
def test_buy_quantity_follows_the_formula(h, name, config, ask, ask_qty, qty):
    reset(h, AAPL={**config, "collar_bps": 10000})
    buy(h, qty, P(ask), ask_qty=ask_qty)
    assert h.state("AAPL").position == qty


def test_buys_stop_at_max_position_then_reject_position_limit(h):
    reset(h, AAPL={"base_qty": 4950, "max_order_qty": 5000})
    buy(h, 4950, P("100.00"))
    buy(h, 50, P("100.00"))  # only the headroom
    assert_rejected(h.update("AAPL", 0, 0, P("100.00"), 1000), "position_limit")
    assert h.state("AAPL").position == 5000


NO_BUY = [
    ("ask above the target", P("100.01"), 100),
    ("ask 0", 0, 100),
    ("ask_qty 0", P("99.00"), 0),
]


@pytest.mark.parametrize("name,ask,ask_qty", NO_BUY, ids=[r[0] for r in NO_BUY])
def test_no_buy_without_a_tradable_ask(h, name, ask, ask_qty):
    reset(h)
    assert_no_trade(h.update("AAPL", 0, 0, ask, ask_qty))
    assert h.state("AAPL").position == 0


# -- selling ----------------------------------------------------------------------

SELL_QTY = [
    ("the whole position", {}, "101.00", 100000, 300),
    ("above the target", {}, "105.00", 100000, 300),
    ("bounded by bid_qty", {}, "101.00", 120, 120),
    ("bounded by max_order_qty", {"max_order_qty": 250}, "101.00", 100000, 250),
]


@pytest.mark.parametrize("name,config,bid,bid_qty,qty", SELL_QTY, ids=[r[0] for r in SELL_QTY])
def test_sell_at_or_above_the_sell_target_with_a_position(h, name, config, bid, bid_qty, qty):
    reset(h, AAPL={"base_qty": 300, **config})
    buy(h, min(300, config.get("max_order_qty", 300)), P("100.00"))
    held = h.state("AAPL").position
    sell(h, qty, P(bid), bid_qty=bid_qty)
    assert h.state("AAPL").position == held - qty


def test_no_sell_below_the_sell_target(h):
    reset(h)
    buy(h, 100, P("100.00"))
    assert_no_trade(h.update("AAPL", P("100.99"), 100, P("101.50"), 100))


def test_no_sell_without_a_position(h):
    reset(h)
    assert_no_trade(h.update("AAPL", P("102.00"), 100, P("102.50"), 100))


def test_no_sell_when_selling_is_off(h):
    reset(h, AAPL={"sell_target": "0"})
    buy(h, 100, P("100.00"))
    assert_no_trade(h.update("AAPL", P("150.00"), 100, P("150.50"), 100))


def test_no_sell_without_a_bid_qty(h):
    reset(h)
    buy(h, 100, P("100.00"))
    assert_no_trade(h.update("AAPL", P("102.00"), 0, P("102.50"), 100))


def test_sells_never_go_short(h):
    reset(h)
    buy(h, 100, P("100.00"))
    sell(h, 100, P("101.00"))
    assert_no_trade(h.update("AAPL", P("101.00"), 500, P("102.00"), 100))
    assert h.state("AAPL").position == 0


# -- reject reasons -----------------------------------------------------------------


def test_crossed_book_is_rejected_but_recorded(h):
    reset(h)
    assert_rejected(h.update("AAPL", P("100.50"), 10, P("100.00"), 100), "crossed")
    st = h.state("AAPL")
    assert (st.last_bid, st.last_ask, st.position, st.session_ref) == (P("100.50"), P("100.00"), 0, 0)


@pytest.mark.parametrize("bid,ask", [(0, P("99.00")), (P("99.00"), P("99.00"))], ids=["no bid", "bid == ask"])
def test_a_book_that_is_not_crossed_trades(h, bid, ask):
    reset(h)
    buy(h, 100, ask, bid=bid)


def test_disabled_symbol_is_rejected(h):
    reset(h, AAPL={"enabled": False})
    assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100), "disabled")


def test_unknown_symbol_is_counted_without_an_event(h):
    reset(h)
    r = h.update("MSFT", 0, 0, P("99.00"), 100)
    assert (XdpAction(r.action), r.untouched, r.counts, r.events) == (
        XdpAction.PASS,
        True,
        {"updates": 1, "unknown_symbol": 1},
        [],
    )


def test_operator_kill_stops_and_resume_restarts(h):
    reset(h)
    buy(h, 100, P("99.00"))
    h.maps.set_kill(KILL_OPERATOR)
    assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100), "kill")
    assert_rejected(h.update("AAPL", P("102.00"), 100, P("103.00"), 100), "kill")  # no selling either
    h.maps.set_kill(KILL_OFF)
    buy(h, 100, P("99.00"))


def test_stale_and_duplicate_seqs_never_trade_nor_update_market_data(h):
    reset(h)
    buy(h, 100, P("99.00"), bid=P("98.00"), seq=10)
    for seq in (10, 9, 1):
        assert_rejected(h.update("AAPL", P("97.00"), 1, P("98.00"), 100, seq=seq), "stale")
        st = h.state("AAPL")
        assert (st.last_seq, st.last_bid, st.last_ask, st.mark) == (10, P("98.00"), P("99.00"), P("98.00"))
    buy(h, 100, P("98.00"), seq=11)


def test_a_repeated_first_seq_of_zero_is_stale(h):
    # "stale: seq <= last seq seen": seq 0 seen, seq 0 again is a duplicate.
    reset(h)
    buy(h, 100, P("99.00"), seq=0)
    assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100, seq=0), "stale")


@pytest.mark.parametrize("config", [{"base_qty": 0}, {"max_order_qty": 0}], ids=["base_qty 0", "max_order_qty 0"])
def test_zero_quantity_is_rejected(h, config):
    reset(h, AAPL=config)
    assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100), "zero_qty")


def test_position_limit_comes_before_zero_qty(h):
    reset(h, AAPL={"max_position": 0, "base_qty": 0})
    assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100), "position_limit")


# Reject reasons are checked in the order kill, deadman, disabled, stale, crossed.
PRECEDENCE = [
    ("kill", {"kill", "deadman", "disabled", "stale", "crossed"}),
    ("deadman", {"deadman", "disabled", "stale", "crossed"}),
    ("disabled", {"disabled", "stale", "crossed"}),
    ("stale", {"stale", "crossed"}),
    ("crossed", {"crossed"}),
]


@pytest.mark.parametrize("expected,conditions", PRECEDENCE, ids=[e for e, _ in PRECEDENCE])
def test_reject_reasons_are_checked_in_order(h, expected, conditions):
    reset(h)
    h.update("AAPL", 0, 0, P("150.00"), 100, seq=100)  # a seq to be stale against; no trade
    if "kill" in conditions:
        h.maps.set_kill(KILL_OPERATOR)
    if "deadman" in conditions:
        h.maps.set_deadman(DEADLINE_MS)  # armed; the heartbeat is 0: long dead
    if "disabled" in conditions:
        h.set_symbol("AAPL", {**BASE, "enabled": False})
    seq = 100 if "stale" in conditions else 101
    bid, ask = (P("99.50"), P("99.00")) if "crossed" in conditions else (0, P("99.00"))
    assert_rejected(h.update("AAPL", bid, 100, ask, 100, seq=seq), expected)


# -- collar ---------------------------------------------------------------------------


def test_buy_collar_against_the_reference_price(h):
    reset(h, AAPL={"buy_target": "200", "sell_target": "0", "reference_price": "100", "collar_bps": 100})
    buy(h, 100, P("101.00"))  # exactly 1% above: allowed
    assert_rejected(h.update("AAPL", 0, 0, P("101.0001"), 100), "collar")


def test_sell_collar_against_the_reference_price(h):
    reset(h, AAPL={"buy_target": "98", "sell_target": "98.50", "reference_price": "100", "collar_bps": 100})
    buy(h, 100, P("98.00"))
    assert_rejected(h.update("AAPL", P("98.99"), 100, P("200"), 100), "collar")
    sell(h, 100, P("99.00"))  # exactly 1% below: allowed


# The session's first non-crossed update sets the collar reference: the mid, or
# the one side it has.  (first bid, first ask, reference)
SESSION_REFERENCE = [
    ("the mid of both sides", "99.00", "101.00", "100.00"),
    ("the mid rounds down", "99.00", "99.0001", "99.00"),
    ("a one-sided ask", "0", "150.00", "150.00"),
    ("a one-sided bid", "150.00", "0", "150.00"),
    ("the mid of prices whose sum needs 33 bits", "300000.00", "300000.02", "300000.01"),
]


@pytest.mark.parametrize("name,bid,ask,reference", SESSION_REFERENCE, ids=[r[0] for r in SESSION_REFERENCE])
def test_collar_reference_is_the_first_updates_mid_or_side(h, name, bid, ask, reference):
    reset(h, AAPL={"buy_target": "429496.7295", "sell_target": "0", "collar_bps": 100})
    first = Update("AAPL", h.next_seq(), P(bid), 100, P(ask), 0)  # ask_qty 0: nothing to buy
    assert session_reference(first) == P(reference)  # the spec's model agrees
    assert_no_trade(h.run(update_frame(first)))
    assert h.state("AAPL").session_ref == P(reference)
    limit = P(reference) * 10100 // 10000  # the highest ask within 1%
    buy(h, 100, limit)
    assert_rejected(h.update("AAPL", 0, 0, limit + 1, 100), "collar")


def test_a_crossed_first_update_sets_no_reference(h):
    reset(h, AAPL={"buy_target": "200", "sell_target": "0", "collar_bps": 100})
    assert_rejected(h.update("AAPL", P("120.00"), 1, P("110.00"), 100), "crossed")
    assert h.state("AAPL").session_ref == 0
    buy(h, 100, P("101.00"), bid=P("99.00"))
    assert h.state("AAPL").session_ref == P("100.00")


def test_collar_comes_after_zero_qty(h):
    reset(h, AAPL={"buy_target": "200", "sell_target": "0", "reference_price": "100", "collar_bps": 1, "base_qty": 0})
    assert_rejected(h.update("AAPL", 0, 0, P("150"), 100), "zero_qty")


# -- notional -----------------------------------------------------------------------


def test_symbol_notional_cuts_the_qty_then_rejects(h):
    reset(h, AAPL={"max_notional": "1000"})  # $1000 = 10 shares at 100.00
    buy(h, 10, P("100.00"))
    assert_rejected(h.update("AAPL", 0, 0, P("100.00"), 100), "notional")
    assert h.state("AAPL").open_cost == P("1000")


def test_symbol_notional_frees_up_after_a_sale(h):
    reset(h, AAPL={"max_notional": "1000"})
    buy(h, 10, P("100.00"))
    sell(h, 10, P("101.00"))
    assert h.state("AAPL").open_cost == 0
    buy(h, 10, P("100.00"))


def test_symbol_notional_comes_after_the_collar(h):
    reset(
        h,
        AAPL={
            "max_notional": "1",
            "buy_target": "200",
            "sell_target": "0",
            "reference_price": "100",
            "collar_bps": 100,
        },
    )
    assert_rejected(h.update("AAPL", 0, 0, P("150"), 100), "collar")


def test_global_notional_cuts_the_qty_across_symbols_then_rejects(h):
    reset(h, engine={"max_notional": "1500"}, AAPL={}, MSFT={})
    buy(h, 10, P("100.00"), symbol="AAPL", ask_qty=10)
    buy(h, 5, P("100.00"), symbol="MSFT")  # $500 left
    assert_rejected(h.update("AAPL", 0, 0, P("100.00"), 100), "notional")
    assert h.maps.totals().open_cost == P("1500")
    assert (h.state("AAPL").position, h.state("MSFT").position) == (10, 5)


# -- throttles ------------------------------------------------------------------------


def test_symbol_throttle_allows_the_burst_then_rejects(h):
    reset(h, AAPL={"rate_per_sec": 1, "burst": 3}, MSFT={})
    for _ in range(3):
        buy(h, 100, P("99.00"))
    assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100), "throttle")
    buy(h, 100, P("99.00"), symbol="MSFT")  # another symbol's bucket


def test_global_throttle_allows_the_burst_then_rejects_every_symbol(h):
    reset(h, engine={"rate_per_sec": 1, "burst": 2}, AAPL={}, MSFT={})
    buy(h, 100, P("99.00"), symbol="AAPL")
    buy(h, 100, P("99.00"), symbol="MSFT")
    for symbol in ("AAPL", "MSFT"):
        assert_rejected(h.update(symbol, 0, 0, P("99.00"), 100), "throttle")
    # The reservation is given back: no position from the rejected orders.
    assert (h.state("AAPL").position, h.state("MSFT").position) == (100, 100)


def test_a_global_throttle_reject_returns_the_symbol_token(h):
    reset(h, engine={"rate_per_sec": 1, "burst": 1}, AAPL={"rate_per_sec": 1, "burst": 2})
    buy(h, 100, P("99.00"))  # symbol 2 -> 1 token, global 1 -> 0
    assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100), "throttle")  # global; symbol token back
    h.refill_global_bucket()  # the symbol must still hold a token
    buy(h, 100, P("99.00"))


# Refill: exhaust a bucket, wait, then count the orders that pass.  The kernel
# refills rate_per_sec tokens a second (bpf_ktime_get_ns, CLOCK_MONOTONIC, as
# time.monotonic_ns) up to burst.  With the clock read around each call, the
# count is bounded whatever the machine's speed (no timing is asserted):
#   at least  min(burst, floor(rate * (first attempt - empty)))
#   at most   min(floor(rate * (last attempt - empty)) + 1, burst + floor(rate * attempts' span))
# (+1: the empty bucket holds under one token).  (rate, burst, wait in s)
REFILLS = [
    ("refill below the burst", 20, 10, 0.2),  # about 4 tokens
    ("refill capped by the burst", 100, 3, 0.1),  # 10 tokens' worth, 3 kept
]
BUCKETS = [
    ("symbol", lambda rate, burst: ({}, {"rate_per_sec": rate, "burst": burst})),
    ("engine-wide", lambda rate, burst: ({"rate_per_sec": rate, "burst": burst}, {})),
]


@pytest.mark.parametrize("bucket", [b for _, b in BUCKETS], ids=[n for n, _ in BUCKETS])
@pytest.mark.parametrize("rate,burst,wait_s", [r[1:] for r in REFILLS], ids=[r[0] for r in REFILLS])
def test_a_throttle_refills_at_its_rate_up_to_its_burst(h, bucket, rate, burst, wait_s):
    engine, symbol = bucket(rate, burst)
    reset(h, engine=engine, AAPL={"base_qty": 1, "max_position": INF_POSITION, **symbol})

    def attempt() -> bool:
        r = h.update("AAPL", 0, 0, P("99.00"), 100)
        if r.action == XdpAction.TX:
            assert_order_event(r, r.order)
            return True
        assert_rejected(r, "throttle")
        return False

    # Empty it: the burst passes (and whatever refilled meanwhile), then a reject.
    for passed in range(burst + 100):  # noqa: B007 - read after the loop: how many passed
        emptied_after = time.monotonic_ns()
        if not attempt():
            emptied_before = time.monotonic_ns()
            break
    else:
        pytest.fail("the bucket never ran dry")
    assert passed >= burst
    time.sleep(wait_s)
    first = time.monotonic_ns()
    passed = sum(attempt() for _ in range(burst + 3))
    last = time.monotonic_ns()
    ns = 10**9
    lowest = min(burst, (first - emptied_before) * rate // ns)
    highest = min((last - emptied_after) * rate // ns + 1, burst + (last - first) * rate // ns)
    assert lowest <= passed <= highest


# -- dead-man switch --------------------------------------------------------------------


# The heartbeat against the program's clock (CLOCK_MONOTONIC), deadline 10 s:
# fresh within the deadline either way.  A little ahead is legitimate (written
# between the program's clock read and its map read); further ahead than the
# deadline is not a heartbeat of this clock.  (heartbeat - now in s, or None:
# never beat; rejected)
HEARTBEATS = [
    ("never beat", None, True),
    ("a minute old", -60, True),
    ("just written", 0, False),
    ("a little ahead", 1, False),
    ("more than the deadline ahead", DEADLINE_MS // 1000 + 60, True),
    ("an hour ahead", 3600, True),
]


@pytest.mark.parametrize("name,ahead_s,rejected", HEARTBEATS, ids=[r[0] for r in HEARTBEATS])
def test_armed_deadman_trades_only_within_the_deadline_of_the_heartbeat(h, name, ahead_s, rejected):
    reset(h, deadman_ms=DEADLINE_MS)
    h.maps.beat(0 if ahead_s is None else time.monotonic_ns() + ahead_s * 10**9)
    if rejected:
        assert_rejected(h.update("AAPL", 0, 0, P("99.00"), 100), "deadman")
    else:
        buy(h, 100, P("99.00"))


def test_unarmed_deadman_ignores_the_heartbeat(h):
    reset(h, deadman_ms=0)  # heartbeat 0
    buy(h, 100, P("99.00"))


# -- loss limit ---------------------------------------------------------------------------


def test_loss_limit_latches_the_kill_switch_and_it_stays(h):
    reset(h, engine={"loss_limit": "10"})  # $10
    r = h.update("AAPL", P("99.00"), 100, P("100.00"), 100)  # marked at 99.00: -$100
    order = r.order
    assert r.counts == {"updates": 1, "orders": 1, "loss_trips": 1}
    assert [(e.kind, e.reason) for e in r.events] == [("kill", "loss_limit"), ("order", "")]
    assert r.events[0].pnl == -P("100")
    assert order.qty == 100
    assert h.maps.kill() == KILL_LOSS_LIMIT
    assert_rejected(h.update("AAPL", P("99.00"), 100, P("99.50"), 100), "kill")
    assert_rejected(h.update("AAPL", P("150.00"), 100, P("151.00"), 100), "kill")  # PnL back up: still latched
    assert h.maps.totals().pnl > 0
    assert h.maps.kill() == KILL_LOSS_LIMIT
    h.maps.set_kill(KILL_OFF)  # only the operator clears it
    sell(h, 100, P("150.00"))


def test_an_update_whose_mark_trips_the_loss_limit_sends_no_order(h):
    reset(h, engine={"loss_limit": "10"}, AAPL={"base_qty": 10})
    buy(h, 10, P("100.00"), bid=P("100.00"))  # flat PnL
    # Marked at 98.00 the 10 held lose $20: the kill latches before this buy commits.
    r = h.update("AAPL", P("98.00"), 100, P("99.00"), 100)
    assert (XdpAction(r.action), r.untouched) == (XdpAction.PASS, True)
    assert r.counts == {"updates": 1, "loss_trips": 1, "kill": 1}
    assert [(e.kind, e.reason) for e in r.events] == [("kill", "loss_limit"), ("reject", "kill")]
    st = h.state("AAPL")
    assert (st.position, st.bought, h.maps.totals().order_seq) == (10, 10, 1)  # the reservation is given back


def _resumed_below_the_limit(h):
    reset(h, engine={"loss_limit": "10"}, AAPL={"base_qty": 10})
    buy(h, 10, P("100.00"), bid=P("100.00"))  # flat PnL
    h.update("AAPL", P("98.00"), 100, P("200.00"), 100)  # -$20: latched
    assert h.maps.kill() == KILL_LOSS_LIMIT
    h.maps.set_kill(KILL_OFF)  # the operator resumes; still -$20


def _limit_set_below_the_pnl(h):
    reset(h, AAPL={"base_qty": 10})  # no loss limit yet
    buy(h, 10, P("100.00"), bid=P("100.00"))
    h.update("AAPL", P("98.00"), 100, P("200.00"), 100)  # -$20
    h.maps.write_global(engine_params({"update_sample": 0, "loss_limit": "10"}), deadman_ms=0, version=2)


# The kill switch off while the total PnL is already below -loss_limit; then an
# update that leaves the PnL where it is (mark unchanged at 98.00).  "Below the
# limit" is a level: the kernel latches the kill, it does not only refuse.
BELOW_THE_LIMIT = [
    ("resumed by the operator", _resumed_below_the_limit),
    ("limit set below the PnL", _limit_set_below_the_pnl),
]
# (update: bid, bid_qty, ask, ask_qty; counters moved; events)
UNMOVED_PNL_UPDATES = [
    (
        "a buy",
        (P("98.00"), 100, P("99.00"), 100),
        {"updates": 1, "loss_trips": 1, "kill": 1},
        [("kill", "loss_limit"), ("reject", "kill")],
    ),
    ("no trade", (P("98.00"), 100, P("200.00"), 100), {"updates": 1, "loss_trips": 1}, [("kill", "loss_limit")]),
]


@pytest.mark.parametrize("setup", [s for _, s in BELOW_THE_LIMIT], ids=[n for n, _ in BELOW_THE_LIMIT])
@pytest.mark.parametrize(
    "update,counts,events", [u[1:] for u in UNMOVED_PNL_UPDATES], ids=[u[0] for u in UNMOVED_PNL_UPDATES]
)
def test_pnl_below_the_loss_limit_latches_the_kill_even_when_the_update_does_not_move_it(
    h, setup, update, counts, events
):
    setup(h)
    pnl = h.maps.totals().pnl
    assert pnl == -P("20") and h.maps.kill() == KILL_OFF
    r = h.update("AAPL", *update)
    assert (XdpAction(r.action), r.untouched) == (XdpAction.PASS, True)
    assert r.counts == counts
    assert [(e.kind, e.reason) for e in r.events] == events
    assert r.events[0].pnl == pnl == h.maps.totals().pnl
    assert h.maps.kill() == KILL_LOSS_LIMIT
    assert (h.state("AAPL").position, h.maps.totals().order_seq) == (10, 1)


def test_loss_exactly_at_the_limit_does_not_kill(h):
    reset(h, engine={"loss_limit": "10"}, AAPL={"base_qty": 10})
    buy(h, 10, P("100.00"), bid=P("99.00"))  # -$10: at the limit, not below
    assert h.maps.kill() == KILL_OFF
    r = h.update("AAPL", P("98.99"), 100, P("100.50"), 100)  # -$10.10
    assert r.counts == {"updates": 1, "loss_trips": 1}
    assert [(e.kind, e.reason, e.pnl) for e in r.events] == [("kill", "loss_limit", -P("10.10"))]
    assert h.maps.kill() == KILL_LOSS_LIMIT


# -- on_no_trade ----------------------------------------------------------------------------


def test_on_no_trade_drop(h):
    reset(h, engine={"on_no_trade": "drop"})
    assert_no_trade(h.update("AAPL", 0, 0, P("100.50"), 100), action=XdpAction.DROP)
    assert_rejected(h.update("AAPL", P("100.50"), 1, P("100.00"), 100), "crossed", action=XdpAction.DROP)
    r = h.update("MSFT", 0, 0, P("99.00"), 100)
    assert (XdpAction(r.action), r.counts) == (XdpAction.DROP, {"updates": 1, "unknown_symbol": 1})
    buy(h, 100, P("99.00"))
    # Not valid updates: always passed.
    u = Update("AAPL", h.next_seq(), 0, 0, P("99.00"), 100)
    r = h.run(update_frame(u, dport=9999))
    assert (XdpAction(r.action), r.counts) == (XdpAction.PASS, {"passed": 1})
    r = h.run(update_frame(u, length=60)[:-1])
    assert (XdpAction(r.action), r.counts) == (XdpAction.PASS, {"malformed": 1})


# -- order ids, accounting, events --------------------------------------------------------------


def test_order_ids_are_engine_wide_and_gap_free(h):
    reset(h, AAPL={"base_qty": 1}, MSFT={"base_qty": 1})
    ids = []
    for i in range(30):
        symbol = ("AAPL", "MSFT")[i % 2]
        ids.append(buy(h, 1, P("99.00"), symbol=symbol).order_id)
        if i % 3 == 0:  # a reject in between takes no id
            assert_rejected(h.update(symbol, P("99.50"), 1, P("99.00"), 1), "crossed")
    assert ids == list(range(1, 31))
    assert h.maps.totals().order_seq == 30


def test_accounting_is_exact(h):
    reset(h, AAPL={"max_order_qty": 1000})
    buy(h, 100, P("100.00"), bid=P("99.50"))
    buy(h, 50, P("99.00"), bid=P("98.90"), ask_qty=50)
    r = h.update("AAPL", P("101.00"), 120, P("101.50"), 100)
    assert r.order.qty == 120
    st = h.state("AAPL")
    capital = 100 * P("100.00") + 50 * P("99.00")
    proceeds = 120 * P("101.00")
    assert (st.bought, st.sold, st.position) == (150, 120, 30)
    assert (st.buy_orders, st.sell_orders) == (2, 1)
    assert (st.capital_spent, st.proceeds) == (capital, proceeds)
    assert st.mark == P("101.00")
    assert st.pnl == proceeds - capital + 30 * P("101.00")
    assert st.open_cost == capital - capital * 120 // 150  # average cost of what is left
    tot = h.maps.totals()
    assert (tot.pnl, tot.open_cost) == (st.pnl, st.open_cost)
    assert r.events[-1].pnl == st.pnl and r.events[-1].position == 30


def test_every_order_and_reject_is_an_event(h):
    reset(h, AAPL={"max_position": 150})
    script = [
        # (bid, bid_qty, ask, ask_qty, seq, expected (kind, reason or side))
        (0, 0, P("99.00"), 100, 1, ("order", "B")),
        (0, 0, P("100.50"), 100, 2, None),  # no trade, no event
        (P("99.50"), 1, P("99.00"), 100, 3, ("reject", "crossed")),
        (0, 0, P("99.00"), 100, 3, ("reject", "stale")),
        (0, 0, P("99.00"), 100, 4, ("order", "B")),  # 50 of headroom
        (0, 0, P("99.00"), 100, 5, ("reject", "position_limit")),
        (P("101.00"), 70, P("102.00"), 100, 6, ("order", "S")),
    ]
    seen = []
    for bid, bid_qty, ask, ask_qty, seq, _ in script:
        seen += h.update("AAPL", bid, bid_qty, ask, ask_qty, seq=seq, timestamp=seq * 1000).events
    expected = [x for *_, x in script if x]
    assert [(e.kind, e.reason or e.side) for e in seen] == expected
    assert [e.seq for e in seen] == [s[4] for s in script if s[5]]
    assert all(e.sender_ts == e.seq * 1000 and e.symbol == "AAPL" for e in seen)
    assert [e.order_id for e in seen if e.kind == "order"] == [1, 2, 3]
    assert [e.qty for e in seen if e.kind == "order"] == [100, 50, 70]
    assert [e.position for e in seen] == [100, 100, 100, 150, 150, 80]


def test_update_sampling_emits_non_trading_updates(h):
    reset(h, engine={"update_sample": 1})
    r = h.update("AAPL", P("99.80"), 5, P("100.50"), 7, timestamp=42)
    assert [(e.kind, e.bid, e.bid_qty, e.ask, e.ask_qty, e.sender_ts) for e in r.events] == [
        ("update", P("99.80"), 5, P("100.50"), 7, 42)
    ]
