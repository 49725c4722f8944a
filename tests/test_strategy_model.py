"""The reference model of the strategy, rule by rule (no kernel needed).

Prices in the tables are written as the trader types them and converted with
protocol.parse_price, so every row reads like the rule it checks.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hft_tui.config import parse_config, symbol_params
from hft_tui.constants import REJECT_REASONS
from hft_tui.protocol import Update, parse_price
from hft_tui.strategy_model import (
    BUY,
    NO_TRADE,
    SELL,
    EngineModel,
    buy_formula_qty,
    collar_allows,
    cost_bound_after_sale,
    decide,
    session_reference,
)

pytestmark = pytest.mark.pure  # no root, no kernel

# buy 190.25, sell 190.75, 100 + 10 per cent below, at most 1000 an order and 5000 held
AAPL = {
    "buy_target": "190.25",
    "sell_target": "190.75",
    "base_qty": 100,
    "scale_qty": 10,
    "tick_size": "0.01",
    "max_order_qty": 1000,
    "max_position": 5000,
    "collar_bps": 10000,
}
P = symbol_params("AAPL", AAPL)


def update(bid="190.40", bid_qty=500, ask="190.50", ask_qty=500, seq=1, symbol="AAPL") -> Update:
    return Update(symbol, seq, parse_price(bid), bid_qty, parse_price(ask), ask_qty, 0)


def params(**changes):
    return symbol_params("AAPL", {**AAPL, **changes})


# (rule, params, update, position) -> (side, price, qty, reason)
DECISIONS = [
    ("buy at buy_target: base_qty", P, update(bid="190.20", ask="190.25"), 0, (BUY, "190.25", 100, "")),
    ("buy 5 ticks below: base + 5 * scale", P, update(bid="190.15", ask="190.20"), 0, (BUY, "190.20", 150, "")),
    ("only whole ticks count", P, update(bid="190.10", ask="190.2050"), 0, (BUY, "190.2050", 140, "")),
    ("ask_qty caps the buy", P, update(bid="190.10", ask="190.20", ask_qty=70), 0, (BUY, "190.20", 70, "")),
    ("max_order_qty caps the buy", P, update(bid="180.00", ask="180.25", ask_qty=9000), 0, (BUY, "180.25", 1000, "")),
    ("headroom caps the buy", P, update(bid="190.15", ask="190.20"), 4960, (BUY, "190.20", 40, "")),
    (
        "a full position refuses: position_limit",
        P,
        update(bid="190.15", ask="190.20"),
        5000,
        (None, None, 0, "position_limit"),
    ),
    (
        "over the limit (lowered) refuses too",
        params(max_position=100),
        update(bid="190.15", ask="190.20"),
        300,
        (None, None, 0, "position_limit"),
    ),
    (
        "a formula of 0 shares: zero_qty",
        params(base_qty=0),
        update(bid="190.20", ask="190.25"),
        0,
        (None, None, 0, "zero_qty"),
    ),
    (
        "position_limit is checked before zero_qty",
        params(base_qty=0),
        update(bid="190.20", ask="190.25"),
        5000,
        (None, None, 0, "position_limit"),
    ),
    ("between the targets nothing happens", P, update(), 300, (None, None, 0, NO_TRADE)),
    ("sell at sell_target", P, update(bid="190.75", ask="190.80", bid_qty=200), 300, (SELL, "190.75", 200, "")),
    ("the position caps the sell", P, update(bid="190.90", ask="190.95", bid_qty=900), 300, (SELL, "190.90", 300, "")),
    (
        "max_order_qty caps the sell",
        P,
        update(bid="191.00", ask="191.05", bid_qty=5000),
        4000,
        (SELL, "191.00", 1000, ""),
    ),
    ("nothing to sell when flat", P, update(bid="190.90", ask="190.95"), 0, (None, None, 0, NO_TRADE)),
    (
        "sell_target 0 never sells",
        params(sell_target="0"),
        update(bid="250.00", ask="250.05"),
        300,
        (None, None, 0, NO_TRADE),
    ),
    ("no ask: a high bid still sells", P, update(bid="190.80", ask="0", ask_qty=0), 10, (SELL, "190.80", 10, "")),
    ("an empty ask size does not buy", P, update(bid="190.10", ask="190.20", ask_qty=0), 0, (None, None, 0, NO_TRADE)),
    (
        "an empty bid size does not sell",
        P,
        update(bid="190.80", bid_qty=0, ask="190.85"),
        10,
        (None, None, 0, NO_TRADE),
    ),
    (
        "a crossed book is refused before anything",
        P,
        update(bid="190.80", ask="190.20"),
        10,
        (None, None, 0, "crossed"),
    ),
    (
        "a disabled symbol is refused first",
        params(enabled=False),
        update(bid="190.80", ask="190.20"),
        0,
        (None, None, 0, "disabled"),
    ),
]


@pytest.mark.parametrize("rule,p,u,position,expected", DECISIONS, ids=[d[0] for d in DECISIONS])
def test_decision_follows_the_rule(rule, p, u, position, expected):
    side, price, qty, reason = expected
    d = decide(p, u, position)
    assert (d.side, d.qty, d.reason) == (side, qty, reason)
    assert d.price == (parse_price(price) if price else 0)
    assert d.trades == (side is not None)


def test_every_reason_the_model_gives_is_an_engine_reject_reason_or_no_trade():
    reasons = {decide(p, u, pos).reason for _, p, u, pos, _ in DECISIONS} - {""}
    assert reasons <= set(REJECT_REASONS.values()) | {NO_TRADE}


@pytest.mark.parametrize(
    "tick,ask,expected",
    [("0.01", "190.25", 100), ("0.01", "190.24", 110), ("0.05", "190.16", 110), ("0.0001", "190.2490", 200)],
)
def test_buy_formula_counts_whole_ticks_below_the_target(tick, ask, expected):
    assert buy_formula_qty(params(tick_size=tick), parse_price(ask)) == expected


# (rule, bps, side, price, reference, allowed)
COLLARS = [
    ("a buy at ref + bps is inside", 100, BUY, "101.00", "100.00", True),
    ("a buy one unit above is outside", 100, BUY, "101.0001", "100.00", False),
    ("a sell at ref - bps is inside", 100, SELL, "99.00", "100.00", True),
    ("a sell one unit below is outside", 100, SELL, "98.9999", "100.00", False),
    ("a cheap buy is always inside", 100, BUY, "1.00", "100.00", True),
    ("an expensive sell is always inside", 100, SELL, "500.00", "100.00", True),
    ("10000 bps lets every sell through", 10000, SELL, "0.0001", "100.00", True),
    ("no reference, no collar", 1, BUY, "500.00", "0", True),
]


@pytest.mark.parametrize("rule,bps,side,price,ref,allowed", COLLARS, ids=[c[0] for c in COLLARS])
def test_collar_is_a_band_around_the_reference(rule, bps, side, price, ref, allowed):
    assert collar_allows(params(collar_bps=bps), side, parse_price(price), parse_price(ref)) is allowed


@pytest.mark.parametrize(
    "rule,u,expected",
    [
        ("the mid of a two-sided quote", update(bid="100.00", ask="100.03"), "100.0150"),
        ("the bid when there is no ask", update(bid="100.00", ask="0", ask_qty=0), "100.00"),
        ("the ask when there is no bid", update(bid="0", bid_qty=0, ask="100.05"), "100.05"),
        ("none from a crossed quote", update(bid="100.05", ask="100.00"), "0"),
    ],
)
def test_session_reference_is_the_first_non_crossed_mid(rule, u, expected):
    assert session_reference(u) == parse_price(expected)


def model(symbols: dict, engine: dict | None = None) -> EngineModel:
    return EngineModel(parse_config({"engine": engine or {}, "symbols": symbols}))


def test_model_refuses_a_stale_sequence_number():
    m = model({"AAPL": AAPL})
    assert m.expect(update(bid="190.15", ask="190.20", seq=5)).side == BUY
    assert m.expect(update(bid="190.15", ask="190.20", seq=5)).reason == "stale"
    assert m.expect(update(bid="190.15", ask="190.20", seq=4)).reason == "stale"
    assert m.expect(update(bid="190.15", ask="190.20", seq=6)).side == BUY


def test_model_refuses_a_repeated_first_sequence_number_even_when_it_is_0():
    m = model({"AAPL": AAPL})
    assert m.expect(update(bid="190.15", ask="190.20", seq=0)).side == BUY
    assert m.expect(update(bid="190.15", ask="190.20", seq=0)).reason == "stale"


def test_model_refuses_an_unknown_symbol():
    assert model({"AAPL": AAPL}).expect(update(symbol="ZZZ")).reason == "unknown_symbol"


def test_model_takes_the_collar_reference_from_the_first_non_crossed_update():
    m = model({"AAPL": {**AAPL, "collar_bps": 100, "buy_target": "200.00", "sell_target": "300.00"}})
    assert m.expect(update(bid="101.00", ask="100.00", seq=1)).reason == "crossed"
    assert m.expect(update(bid="99.99", ask="100.01", seq=2)).trades  # ref 100.00
    assert m.expect(update(bid="100.90", ask="101.00", seq=3)).side == BUY  # at +1%
    assert m.expect(update(bid="100.90", ask="101.01", seq=4)).reason == "collar"


def test_model_uses_a_configured_reference_price_over_the_session():
    # The session would take 192.05 (buying up to 193.97); the configured 180.00 allows 181.80.
    m = model({"AAPL": {**AAPL, "collar_bps": 100, "reference_price": "180.00"}})
    assert m.expect(update(bid="192.00", ask="192.10", seq=1)).reason == NO_TRADE
    assert m.expect(update(bid="190.15", ask="190.20", seq=2)).reason == "collar"
    assert m.expect(update(bid="181.70", ask="181.80", seq=3)).side == BUY


def test_model_does_not_collar_when_the_session_began_before_it():
    m = model({"AAPL": {**AAPL, "collar_bps": 1}})
    m.start("AAPL", last_seq=10)  # the engine took a reference the model never saw
    assert m.expect(update(bid="10.00", ask="10.01", seq=11)).side == BUY


def test_fills_move_the_position_the_next_decision_uses():
    m = model({"AAPL": {**AAPL, "max_position": 250}})
    sizes = []
    for seq in range(1, 5):
        d = m.expect(update(bid="190.20", ask="190.25", seq=seq))
        sizes.append(d.qty if d.trades else d.reason)
        if d.trades:
            m.fill("AAPL", d.side, d.qty, d.price)
    assert sizes == [100, 100, 50, "position_limit"]
    d = m.expect(update(bid="190.80", ask="190.85", seq=5))
    assert (d.side, d.qty) == (SELL, 250)


def test_quantity_is_exact_while_the_notional_cap_cannot_bind():
    # 100 shares at 190.25 = 19025 $; the cap is 20000 $.
    m = model({"AAPL": {**AAPL, "max_notional": "20000"}})
    d = m.expect(update(bid="190.20", ask="190.25", seq=1))
    assert (d.qty, d.qty_exact, d.max_qty) == (100, True, 100)
    m.fill("AAPL", BUY, 100, d.price)
    # The next 100 would bring the open cost to 38050 $: only bounded now.
    d = m.expect(update(bid="190.20", ask="190.25", seq=2))
    assert (d.side, d.qty, d.qty_exact, d.max_qty) == (BUY, 100, False, 100)


@pytest.mark.parametrize(
    "rule,symbol_cap,engine_cap,max_qty,reason",
    [
        ("the symbol cap bounds an order to what could fit", "10000", "0", 52, ""),
        ("the engine cap bounds it the same way", "0", "5000", 26, ""),
        ("the smaller cap wins", "10000", "5000", 26, ""),
        ("a cap below one share's price refuses: notional", "100", "0", 0, "notional"),
    ],
)
def test_notional_caps_bound_the_quantity(rule, symbol_cap, engine_cap, max_qty, reason):
    m = model({"AAPL": {**AAPL, "max_notional": symbol_cap}}, {"max_notional": engine_cap})
    d = m.expect(update(bid="190.20", ask="190.25", seq=1))
    assert (d.max_qty, d.reason) == (max_qty, reason)
    assert d.trades == (reason == "")


def test_engine_cap_counts_the_open_cost_of_symbols_the_model_does_not_follow():
    m = model({"AAPL": AAPL}, {"max_notional": "20000"})
    assert m.expect(update(bid="190.20", ask="190.25", seq=1)).qty_exact
    m.other_cost = parse_price("5000")
    assert not m.expect(update(bid="190.20", ask="190.25", seq=2)).qty_exact


def avg_cost_open_costs(trades, rounding):
    """Open cost at average cost, as a book would keep it, with a given rounding."""
    cost, held, out = 0, 0, []
    for side, qty, price in trades:
        if side == BUY:
            cost += qty * price
            held += qty
        else:
            qty = min(qty, held)
            if qty == 0:
                continue
            cost = 0 if qty == held else cost - rounding(cost * qty, held)
            held -= qty
        out.append((side, qty, price, cost, held))
    return out


ROUNDINGS = {
    "floor": lambda a, b: a // b,
    "ceil": lambda a, b: -(-a // b),
    "nearest": lambda a, b: (2 * a + b) // (2 * b),
}

TRADES = st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 5000), st.integers(1, 5_000_000)), max_size=60)


@given(TRADES, st.sampled_from(sorted(ROUNDINGS)))
def test_cost_bound_is_never_below_the_average_cost(trades, rounding):
    bound, held_before = 0, 0
    for side, qty, price, cost, held in avg_cost_open_costs(trades, ROUNDINGS[rounding]):
        bound = bound + qty * price if side == BUY else cost_bound_after_sale(bound, held_before, qty)
        held_before = held
        assert cost <= bound


@pytest.mark.parametrize(
    "bound,held,qty,expected",
    [(1000, 10, 10, 0), (1000, 10, 20, 0), (1000, 10, 5, 501), (1001, 10, 5, 502), (0, 0, 5, 0)],
)
def test_cost_bound_after_sale_table(bound, held, qty, expected):
    assert cost_bound_after_sale(bound, held, qty) == expected
