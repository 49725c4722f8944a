"""A pure-Python reference model of the strategy, written from the spec.

The exchange simulator checks every order the engine sends against this
model, and the lab tests build their expected orders with it, so it is kept
independent of ebpf/strategy.c: it follows the rules as written (README /
brief), not the C code.

What the model knows exactly, given a symbol's parameters, the update and the
position before it:

* the strategy's decision (:func:`decide`): the side, the price and the
  quantity by the formula, or the reason it refuses (disabled, crossed,
  position_limit, zero_qty) or that it has nothing to do (``no_trade``);
* the price collar (:func:`collar_allows`) when the reference is known: the
  configured ``reference_price``, or the session's own when the model saw the
  session from its start: hft1's first non-crossed update
  (:func:`session_reference`), an exchange feed's first view of the last bid
  and the last ask within the collar of their mid (:func:`book_reference`);
* stale sequence numbers.

For the exchange feeds (IEX TOPS and DEEP, ITCH) a message first meets the
feed's own rules (:meth:`EngineModel.feed_verdict`): a symbol halted by its
last trading status, a TOPS quote flagged halted, a DEEP level while the
book is in transition, a level of size 0, a price the engine's 32-bit prices
cannot hold.  A trading status counts by sequence: one older than the status
the symbol holds changes nothing.  A message that passes is an update like
hft1's: an offer (a sell-side level, a sell add) has only an ask, so only the
buy rule can take it; a bid has only a bid, so only the sell rule can.

What it cannot know, because it depends on the kernel's clock, on an
operator or on state the model never saw, and what can therefore only make
the engine send *fewer* orders, never other ones: the kill switch (operator
or loss limit), the dead-man switch and the token-bucket throttles.

The notional caps are the one risk limit that *changes* an order: the engine
cuts the quantity so that the open cost stays within the cap.  The engine
keeps the open cost at average cost; the model keeps an upper bound of it
(:func:`cost_bound_after_sale`) that holds whatever the rounding of a sale,
and says the quantity is exact only when even that bound leaves room for the
whole order (``Decision.qty_exact``).  Otherwise the order's quantity is only
bounded: ``1 <= qty <= Decision.max_qty``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Config, SymbolParams
from .constants import TYPE_BUY, TYPE_SELL
from .protocol import Update

BUY = chr(TYPE_BUY)
SELL = chr(TYPE_SELL)
BPS = 10_000  # collar_bps is in basis points of the reference
NO_TRADE = "no_trade"  # a valid update that simply is not a trade (not a reject)
# Why a feed message cannot trade, before the strategy sees it.
HALTED = "halted"
IN_TRANSITION = "in_transition"
PRICE_RANGE = "price_range"
UNKNOWN_SYMBOL = "unknown_symbol"
STATUS = "status"  # a trading status message: state, never a trade
TRADING = "T"  # the status letter (IEX and ITCH alike) that lets a symbol trade
PRICE_MAX = 2**32 - 1  # the engine's prices are u32 (protocol.U32_MAX)
CHANNEL_FEEDS = ("iex", "itch")  # feeds of one-sided messages: the reference needs both sides
RECORDED = ("", HALTED, PRICE_RANGE)  # verdicts of messages whose market data the engine records


@dataclass(frozen=True)
class Decision:
    """What the engine must (or may) do with one update.

    ``side`` is ``"B"``, ``"S"`` or None.  With a side, ``qty`` is the
    strategy's quantity; ``max_qty`` is the most the engine may send after the
    notional caps (``== qty`` when ``qty_exact``).  Without a side, ``reason``
    names why: a reject reason of constants.REJECT_REASONS, or ``no_trade``.
    """

    side: str | None = None
    price: int = 0
    qty: int = 0
    reason: str = NO_TRADE
    qty_exact: bool = True
    max_qty: int = 0

    @property
    def trades(self) -> bool:
        return self.side is not None


def _order(side: str, price: int, qty: int) -> Decision:
    return Decision(side=side, price=price, qty=qty, reason="", qty_exact=True, max_qty=qty)


def _reject(reason: str) -> Decision:
    return Decision(reason=reason)


def is_crossed(u: Update) -> bool:
    return bool(u.bid and u.ask and u.bid > u.ask)


def buy_formula_qty(p: SymbolParams, ask: int) -> int:
    """base_qty + scale_qty for every whole tick the ask is below buy_target."""
    ticks = (p.buy_target - ask) // max(p.tick_size, 1)
    return p.base_qty + p.scale_qty * ticks


def wants_buy(p: SymbolParams, u: Update) -> bool:
    return u.ask > 0 and u.ask_qty > 0 and u.ask <= p.buy_target


def wants_sell(p: SymbolParams, u: Update, position: int) -> bool:
    return p.sell_target > 0 and position > 0 and u.bid > 0 and u.bid_qty > 0 and u.bid >= p.sell_target


def decide(p: SymbolParams, u: Update, position: int) -> Decision:
    """The strategy for one fresh update (not stale; kill and dead-man off).

    The buy rule comes first: when the ask is at or below buy_target the
    update can only buy (or be refused), never sell.
    """
    if not p.enabled:
        return _reject("disabled")
    if is_crossed(u):
        return _reject("crossed")
    if wants_buy(p, u):
        headroom = p.max_position - position
        if headroom <= 0:
            return _reject("position_limit")
        qty = min(u.ask_qty, p.max_order_qty, buy_formula_qty(p, u.ask), headroom)
        if qty == 0:
            return _reject("zero_qty")
        return _order(BUY, u.ask, qty)
    if wants_sell(p, u, position):
        qty = min(u.bid_qty, p.max_order_qty, position)
        if qty == 0:
            return _reject("zero_qty")
        return _order(SELL, u.bid, qty)
    return _reject(NO_TRADE)


def session_reference(u: Update) -> int:
    """The collar reference a session takes from its first non-crossed update:
    the mid, or the one non-zero side; 0 while there is none."""
    if is_crossed(u):
        return 0
    if u.bid and u.ask:
        return (u.bid + u.ask) // 2
    return u.bid or u.ask


def book_reference(p: SymbolParams, bid: int, ask: int) -> int:
    """The collar reference an exchange feed's session takes from its last bid and last
    ask (whichever messages brought them): their mid once both are known, not crossed
    and within the collar of it (a resting order deep in the book is no reference);
    0 while there is none."""
    if not bid or not ask or bid > ask:
        return 0
    if p.collar_bps and (ask - bid) * BPS > (ask + bid) * p.collar_bps:
        return 0
    return (bid + ask) // 2


def collar_allows(p: SymbolParams, side: str, price: int, reference: int) -> bool:
    """The collar is a band of collar_bps around the reference: a buy may not
    pay more than ref * (1 + bps/1e4), a sell may not take less than
    ref * (1 - bps/1e4).  Exact integer arithmetic; no reference, no collar."""
    if not reference or not p.collar_bps:
        return True
    if side == BUY:
        return price * BPS <= reference * (BPS + p.collar_bps)
    return p.collar_bps >= BPS or price * BPS >= reference * (BPS - p.collar_bps)


def cost_bound_after_buy(bound: int, qty: int, price: int) -> int:
    return bound + qty * price


def cost_bound_after_sale(bound: int, held: int, qty: int) -> int:
    """Upper bound of the open cost after selling ``qty`` of ``held`` shares.

    At average cost a sale removes open_cost * qty / held, rounded by less
    than one unit, so what stays is below bound * (held - qty) / held + 1.
    Selling everything leaves nothing.
    """
    if held <= 0 or qty >= held:
        return 0
    return -(-bound * (held - qty) // held) + 1


def cap_allows(cap: int, cost_bound: int, qty: int, price: int) -> bool:
    """A notional cap (0 = none) cannot cut an order that fits even the bound."""
    return cap == 0 or cost_bound + qty * price <= cap


def cap_max_qty(cap: int, price: int, qty: int) -> int:
    """The most a cap can leave of an order (the open cost is never negative)."""
    return qty if cap == 0 or price == 0 else min(qty, cap // price)


@dataclass(frozen=True)
class FeedMessage:
    """One message of an exchange feed as its rules see it, whatever the wire.

    Prices are the feed's raw integers (4 decimals; IEX's are i64, so they
    may be negative or too large).  ``status`` is set on a trading status
    message (its letter); ``halted_flag`` is a TOPS quote's halted flag;
    ``in_transition`` a DEEP level sent while the book is in transition.
    """

    symbol: str
    seq: int
    timestamp: int = 0
    bid: int = 0
    bid_qty: int = 0
    ask: int = 0
    ask_qty: int = 0
    halted_flag: bool = False
    in_transition: bool = False
    status: str | None = None

    def update(self) -> Update:
        """The message as the strategy's update (call it for a message that passed the feed rules)."""
        return Update(self.symbol, self.seq, self.bid, self.bid_qty, self.ask, self.ask_qty, self.timestamp)

    def recorded(self) -> Update:
        """The message's market data as the engine records it: a price it cannot hold is 0."""
        bid, ask = (p if 0 <= p <= PRICE_MAX else 0 for p in (self.bid, self.ask))
        return Update(self.symbol, self.seq, bid, self.bid_qty, ask, self.ask_qty, self.timestamp)


def feed_rule(m: FeedMessage, halted: bool) -> str:
    """Why message ``m`` of a symbol whose status is ``halted`` cannot trade
    ("" when the strategy decides).  A level gone (both sizes 0) is no_trade."""
    if m.status is not None:
        return STATUS
    if m.in_transition:
        return IN_TRANSITION
    if m.bid_qty == 0 and m.ask_qty == 0:
        return NO_TRADE
    if not (0 <= m.bid <= PRICE_MAX and 0 <= m.ask <= PRICE_MAX):
        return PRICE_RANGE
    if halted or m.halted_flag:
        return HALTED
    return ""


@dataclass
class SymbolModel:
    """One symbol's state as the model follows it: position, last sequence
    number, collar reference and the open-cost bound."""

    params: SymbolParams | None
    position: int = 0
    seen: bool = False  # an update arrived: from now on seq <= last_seq is stale
    last_seq: int = 0
    session_ref: int = 0  # 0: unknown or not taken yet
    ref_known: bool = True  # False: the session started before the model
    cost_bound: int = 0
    halted: bool = False  # the feed's last trading status was not T
    status_seq: int | None = None  # the sequence of the status ``halted`` holds
    book_bid: int = 0  # an exchange feed's last bid and ask, until the reference is taken
    book_ask: int = 0


@dataclass
class EngineModel:
    """The engine as the model follows it, fed with updates and with the
    orders that actually came back (:meth:`fill`).

    ``other_cost`` is the open cost of symbols this model does not follow
    (they count against the engine-wide cap).
    """

    config: Config
    symbols: dict[str, SymbolModel] = field(default_factory=dict)
    other_cost: int = 0

    def symbol(self, name: str) -> SymbolModel:
        m = self.symbols.get(name)
        if m is None:
            m = self.symbols[name] = SymbolModel(self.config.params(name))
        return m

    def start(
        self,
        name: str,
        *,
        position: int = 0,
        updates: int = 0,
        last_seq: int = 0,
        session_ref: int = 0,
        open_cost: int = 0,
    ) -> None:
        """Begin from a running engine's state instead of a fresh session.

        An engine that already saw updates may have taken its collar
        reference; 0 then means the model does not know it.
        """
        m = self.symbol(name)
        m.position, m.last_seq, m.cost_bound = position, last_seq, open_cost
        m.seen = updates > 0 or last_seq > 0
        m.session_ref = session_ref
        m.ref_known = session_ref != 0 or not m.seen

    def total_cost_bound(self) -> int:
        return self.other_cost + sum(m.cost_bound for m in self.symbols.values())

    def observe(self, u: Update) -> str:
        """The market-data side of an update, as the engine applies it before
        deciding: returns "stale" for a sequence number it saw already (and
        changes nothing), else "" after taking the seq and, for the session's
        first non-crossed update, the collar reference."""
        m = self.symbol(u.symbol)
        if m.params is None:
            return "unknown_symbol"
        if m.seen and u.seq <= m.last_seq:
            return "stale"
        m.seen, m.last_seq = True, u.seq
        if m.ref_known and not m.session_ref:
            if self.config.feed.feed in CHANNEL_FEEDS:
                m.book_bid, m.book_ask = u.bid or m.book_bid, u.ask or m.book_ask
                m.session_ref = book_reference(m.params, m.book_bid, m.book_ask)
            else:
                m.session_ref = session_reference(u)
        return ""

    def wants_market_data(self, name: str) -> bool:
        """True while the symbol's session reference is still to be taken
        (a caller that skips observe() for speed must not skip these)."""
        m = self.symbol(name)
        return m.params is not None and m.ref_known and not m.session_ref

    def decision(self, u: Update) -> Decision:
        """The decision for a fresh update ``u`` given the fills so far
        (observe() it first); changes nothing.

        Kill, dead-man and throttles are outside the model: they may only
        suppress the order this returns.
        """
        m = self.symbol(u.symbol)
        p = m.params
        if p is None:
            return _reject("unknown_symbol")
        d = decide(p, u, m.position)
        if d.side is None:  # not a trade: a reject, or nothing to do
            return d
        reference = p.reference_price or m.session_ref
        if (p.reference_price or m.ref_known) and not collar_allows(p, d.side, d.price, reference):
            return _reject("collar")
        if d.side == SELL:
            return d
        engine_cap = self.config.engine.max_notional
        exact = cap_allows(p.max_notional, m.cost_bound, d.qty, d.price) and cap_allows(
            engine_cap, self.total_cost_bound(), d.qty, d.price
        )
        if exact:
            return d
        most = cap_max_qty(engine_cap, d.price, cap_max_qty(p.max_notional, d.price, d.qty))
        if most == 0:
            return _reject("notional")
        return Decision(side=d.side, price=d.price, qty=d.qty, reason="", qty_exact=False, max_qty=most)

    def feed_verdict(self, m: FeedMessage) -> str:
        """A feed message in the order the engine reads it: a trading status
        changes the symbol's state (unless older than the one it holds); any
        other message gets the reason it cannot trade ("" when the strategy
        decides: then observe(m.update())).  The status of a symbol the engine
        does not hold changes nothing."""
        sym = self.symbol(m.symbol)
        if sym.params is None:
            return UNKNOWN_SYMBOL
        if m.status is not None:
            if sym.status_seq is None or m.seq > sym.status_seq:
                sym.halted, sym.status_seq = m.status != TRADING, m.seq
            return STATUS
        return feed_rule(m, sym.halted)

    def feed(self, m: FeedMessage) -> str:
        """feed_verdict(), and the market data the engine records from the message
        (a halted one's and one with a price out of range too) while the model still
        needs it (the collar's reference)."""
        verdict = self.feed_verdict(m)
        if verdict in RECORDED and self.wants_market_data(m.symbol):
            self.observe(m.recorded())
        return verdict

    def expect(self, u: Update) -> Decision:
        """observe() then decision(): the model fed one update at a time."""
        seen = self.observe(u)
        return _reject(seen) if seen else self.decision(u)

    def fill(self, name: str, side: str, qty: int, price: int) -> None:
        """An order the engine sent: the position and open cost move."""
        m = self.symbol(name)
        if side == BUY:
            m.cost_bound = cost_bound_after_buy(m.cost_bound, qty, price)
            m.position += qty
        else:
            m.cost_bound = cost_bound_after_sale(m.cost_bound, m.position, qty)
            m.position -= qty
