"""The benchmark's updates and the strategy every variant runs on them.

One definition serves the engine (its Config), the bots (their command
lines) and the client (the order it expects for each update), so all
variants see the same updates and are held to the same answers.

Every update trades: buy_target is above every ask, max_position and the
collar never bind, selling is off.  Prices, quantities and the qty formula
vary across updates so the whole buy rule is exercised, not one constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, SymbolParams, parse_config
from ..constants import DEFAULT_FEED_PORT, TYPE_BUY
from ..protocol import U32_MAX, Order, Update, parse_price
from ..symbol import Symbol

SYMBOLS = tuple(Symbol(name) for name in ("BNCHA", "BNCHB", "BNCHC", "BNCHD"))
THROUGHPUT_SYMBOL = Symbol("BLAST")
TEST_RUN_SYMBOL = Symbol("TESTRUN")

# TOML-unit values, validated by hft_tui.config like any user's config.
SYMBOL_VALUES = {
    "buy_target": "200.00",
    "sell_target": "0",
    "tick_size": "0.01",
    "base_qty": 100,
    "scale_qty": 10,
    "max_order_qty": 1000,
    "max_position": U32_MAX,
    "collar_bps": 10000,
}
ASK_LOW = parse_price("190.00")  # asks run from here up to just below buy_target
ASK_STEPS = 997  # distinct ask levels (prime, so the cycle is long)
QTY_STEPS = 19  # distinct ask quantities


def config(feed_port: int = DEFAULT_FEED_PORT) -> Config:
    symbols = {name: dict(SYMBOL_VALUES) for name in (*SYMBOLS, THROUGHPUT_SYMBOL, TEST_RUN_SYMBOL)}
    return parse_config({"engine": {"feed_port": feed_port}, "symbols": symbols})


def params(cfg: Config) -> SymbolParams:
    return cfg.symbols[SYMBOLS[0]]


def bot_argv(p: SymbolParams) -> list[str]:
    """The strategy as command-line flags, the same for the Python and the C bot."""
    return [
        "--buy-target",
        str(p.buy_target),
        "--sell-target",
        str(p.sell_target),
        "--tick-size",
        str(p.tick_size),
        "--base-qty",
        str(p.base_qty),
        "--scale-qty",
        str(p.scale_qty),
        "--max-order-qty",
        str(p.max_order_qty),
        "--max-position",
        str(p.max_position),
    ]


def update(i: int, seq: int, p: SymbolParams) -> Update:
    """The i-th update of a run (i is the same for every variant), with its seq."""
    tick = p.tick_size
    ask = ASK_LOW + (i * 7919 % ASK_STEPS) * tick
    ask = min(ask, p.buy_target)
    ask_qty = 50 * (1 + i * 31 % QTY_STEPS)
    return Update(SYMBOLS[i % len(SYMBOLS)], seq, ask - tick, ask_qty, ask, ask_qty, 0)


def buy_qty(u: Update, p: SymbolParams, position: int = 0) -> int:
    """The buy rule of the issue, written out once more as the client's model."""
    if not (u.ask and u.ask_qty and u.ask <= p.buy_target):
        return 0
    ticks = (p.buy_target - u.ask) // max(p.tick_size, 1)
    return max(0, min(u.ask_qty, p.max_order_qty, p.base_qty + p.scale_qty * ticks, p.max_position - position))


@dataclass(frozen=True)
class Expected:
    side: str
    price: int
    qty: int


def expected_order(u: Update, p: SymbolParams) -> Expected:
    qty = buy_qty(u, p)
    if not qty:
        raise ValueError("the benchmark's updates must all trade")
    return Expected(chr(TYPE_BUY), u.ask, qty)


def check_order(o: Order, u: Update, sent_ts: int, p: SymbolParams) -> str | None:
    """None when ``o`` is the right answer to ``u``; else what is wrong."""
    e = expected_order(u, p)
    if o.side != e.side:
        return f"side {o.side!r}, expected {e.side!r}"
    if o.symbol != u.symbol:
        return f"symbol {o.symbol!r}, expected {u.symbol!r}"
    if o.seq != u.seq:
        return f"seq {o.seq}, expected {u.seq}"
    if o.price != e.price:
        return f"price {o.price}, expected {e.price}"
    if o.qty != e.qty:
        return f"qty {o.qty}, expected {e.qty}"
    if o.timestamp != sent_ts:
        return f"timestamp {o.timestamp} is not the update's {sent_ts}"
    return None
