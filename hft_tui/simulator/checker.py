"""The orders of one run, checked one by one against what was sent.

What is checked, order by order (reasons in ``invalid_reasons``)
    format          not an order (decode_order fails) or not from engine:port
    length          the datagram's length differs from the update's
    gap             the order id skipped ids (the first id must be the
                    engine's last id + 1 when the engine's state is known)
    out of order    an id at or below one already seen (duplicate, reordered)
    unknown update  no update with this sequence number and symbol was sent
                    (or it is older than the last SENT_LOG_SLOTS updates)
    duplicate order a second order for one update (an update gives one
                    decision: one order at most)
    timestamp       the echoed timestamp is not the update's
    unexpected order  the model says this update must not trade (unknown or
                    disabled symbol, crossed, no target reached, position_limit,
                    zero_qty, a collar whose reference is known, a cap with no
                    room for one share)
    side            the model says the other side
    price           not the update's ask (buy) or bid (sell)
    qty             with qty_exact: not the formula's quantity; otherwise not
                    within 1..max_qty (a notional cap may cut the order)
    position        the position from the orders received leaves 0..max_position
    bad udp checksum  the lab's Udp InCsumErrors grew during the run (the
                    kernel drops such datagrams before any socket sees them;
                    counted by the runner, see stats.read_udp_snmp)
    source mac      a datagram not sent from the engine interface's MAC

On the frame path (the exchange feeds, a gateway) each frame is first
checked as a frame (order_frames: checksums, source mac, route, vlan,
format, batch cap, gap, out of order; collector.py: batch, duplicate order:
a message answered twice), then each of its
orders by :meth:`OrderChecker.check_feed_order` against the message it
answers (:class:`FeedLog`): unknown update, timestamp, and "unexpected order"
when the feed's rules said the message could not trade when the engine read
it (halted, in_transition, no_trade, price_range, unknown_symbol: the
example names which), then the rules above.

What is not invalid: an update that gets no order.  The kill switch, the
dead-man switch, the throttles and a collar whose reference the simulator
cannot know may all stop an order, and none of them can change one, so the
simulator checks what arrives and never asks for more.  The position used for
an order is the start position plus every order received before it (ids are
assigned in processing order; the sender thread is pinned to one CPU so the
engine sees the updates in order).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..constants import MSG_LEN
from ..errors import ProtocolError
from ..order_frames import OrderIds
from ..protocol import Order, Update, decode_order, decode_update, price_to_str
from ..strategy_model import BUY, EngineModel, FeedMessage
from .engine_start import EngineStart

SENT_LOG_SLOTS = 1 << 18  # updates remembered for matching orders
INVALID_EXAMPLES = 10


class SentLog:
    """The last ``slots`` updates' payloads, found again by sequence number."""

    def __init__(self, first_seq: int, slots: int = SENT_LOG_SLOTS) -> None:
        self.first_seq = first_seq
        self.slots = slots
        self.buf = bytearray(slots * MSG_LEN)
        self._answered = bytearray(slots)  # an update gives one decision: one order at most
        self.next_seq = first_seq

    def add(self, batch: memoryview, count: int) -> None:
        """``count`` consecutive updates (seq next_seq...) packed in ``batch``."""
        done = 0
        while done < count:
            slot = (self.next_seq + done - self.first_seq) % self.slots
            n = min(count - done, self.slots - slot)
            self.buf[slot * MSG_LEN : (slot + n) * MSG_LEN] = batch[done * MSG_LEN : (done + n) * MSG_LEN]
            self._answered[slot : slot + n] = bytes(n)
            done += n
        self.next_seq += count

    def get(self, seq: int) -> Update | None:
        if not (self.first_seq <= seq < self.next_seq) or seq < self.next_seq - self.slots:
            return None
        slot = (seq - self.first_seq) % self.slots
        return decode_update(bytes(self.buf[slot * MSG_LEN : (slot + 1) * MSG_LEN]))

    def answer(self, seq: int) -> bool:
        """Notes that an order answered update ``seq`` (one :meth:`get` found); False when one already had."""
        slot = (seq - self.first_seq) % self.slots
        first = not self._answered[slot]
        self._answered[slot] = 1
        return first


@dataclass(frozen=True)
class LoggedMessage:
    """A message of an exchange feed as it was sent: what it means (None: a
    type the engine skips), why it could not trade when the engine read it
    ("" when the strategy decides), and the packet that carried it."""

    message: FeedMessage | None
    verdict: str
    packet: int


class FeedLog:
    """The last ``slots`` messages sent, found again by sequence number (the
    exchange feeds' sent log; a message may be found only once it was sent)."""

    def __init__(self, slots: int = SENT_LOG_SLOTS) -> None:
        self.slots = slots
        self._seqs: list[int] = [-1] * slots
        self._msgs: list[LoggedMessage | None] = [None] * slots
        self._answered = bytearray(slots)  # a message gives one decision: one order at most

    def add(self, seq: int, logged: LoggedMessage) -> None:
        i = seq % self.slots
        self._seqs[i], self._msgs[i], self._answered[i] = seq, logged, 0

    def get(self, seq: int) -> LoggedMessage | None:
        i = seq % self.slots
        return self._msgs[i] if self._seqs[i] == seq else None

    def answer(self, seq: int) -> bool:
        """Notes that an order answered message ``seq``; False when one already had."""
        i = seq % self.slots
        if self._seqs[i] != seq:
            return True
        first = not self._answered[i]
        self._answered[i] = 1
        return first


@dataclass
class SymbolCounts:
    buys: int = 0
    sells: int = 0
    bought: int = 0
    sold: int = 0
    position: int = 0


class OrderChecker:
    """Checks the orders of one run, in the order they arrive (see the module doc)."""

    def __init__(
        self, config: Config, log: SentLog, start: EngineStart | None = None, payload_len: int = MSG_LEN
    ) -> None:
        self.config = config
        self.log = log
        self.payload_len = payload_len
        self.model = EngineModel(config)
        self.counts: dict[str, SymbolCounts] = {}
        self.ids = OrderIds(start.last_order_id + 1 if start else None)
        self.orders = 0
        self.invalid = 0
        self.reasons: dict[str, int] = {}
        self.examples: list[str] = []
        if start:
            mine = 0
            for name, s in start.symbols.items():
                if name in config.symbols:
                    self.model.start(
                        name,
                        position=s.position,
                        updates=s.updates,
                        last_seq=s.last_seq,
                        session_ref=s.session_ref,
                        open_cost=s.open_cost,
                    )
                    self.count(name).position = s.position
                    mine += s.open_cost
            self.model.other_cost = max(start.open_cost - mine, 0)

    @property
    def first_id(self) -> int:
        return self.ids.first

    @property
    def last_id(self) -> int:
        return self.ids.last

    def count(self, name: str) -> SymbolCounts:
        c = self.counts.get(name)
        if c is None:
            c = self.counts[name] = SymbolCounts()
        return c

    def sent(self, u: Update) -> None:
        """Market data the model needs before any order (the collar reference)."""
        if self.model.wants_market_data(u.symbol):
            self.model.observe(u)

    def flag(self, reason: str, detail: str) -> None:
        self.invalid += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.examples) < INVALID_EXAMPLES:
            self.examples.append(f"{reason}: {detail}")

    def check(self, payload: bytes) -> int | None:
        """Checks one order; returns its echoed timestamp when it answers an update."""
        self.orders += 1
        try:
            o = decode_order(payload)
        except ProtocolError as exc:
            self.flag("format", str(exc))
            return None
        if len(payload) != self.payload_len:
            self.flag("length", f"order {o.order_id} is {len(payload)} bytes, the update was {self.payload_len}")
        self.check_id(o.order_id)
        u = self.log.get(o.seq)
        if u is None or u.symbol != o.symbol:
            self.flag("unknown update", f"order {o.order_id} answers {o.symbol} seq {o.seq}, never sent")
            return None
        if not self.log.answer(o.seq):
            self.flag("duplicate order", f"order {o.order_id} answers {o.symbol} seq {o.seq}, answered already")
            return None
        if o.timestamp != u.timestamp:
            self.flag("timestamp", f"order {o.order_id} echoes {o.timestamp}, the update had {u.timestamp}")
        self._check_rules(o, u)
        return u.timestamp

    def check_id(self, order_id: int) -> None:
        problem = self.ids.check(order_id)
        if problem is not None:
            self.flag(*problem)

    def check_feed_order(self, o: Order, logged: LoggedMessage | None) -> int | None:
        """Checks one order of an exchange feed (its frame and id checked
        already) against the message it answers; returns that message's
        timestamp when it answers one."""
        self.orders += 1
        m = logged.message if logged is not None else None
        if m is None or m.symbol != o.symbol:
            self.flag("unknown update", f"order {o.order_id} answers {o.symbol} seq {o.seq}, no such message sent")
            return None
        if o.timestamp != m.timestamp:
            self.flag("timestamp", f"order {o.order_id} has {o.timestamp}, the message had {m.timestamp}")
        if logged is not None and logged.verdict:
            what = f"order {o.order_id} {o.side} {o.qty}@{price_to_str(o.price)} on {m.symbol} seq {m.seq}"
            self.flag("unexpected order", f"{what}: the model says {logged.verdict}")
            self._follow(o, what)
        else:
            self._check_rules(o, m.update())
        return m.timestamp

    def _check_rules(self, o: Order, u: Update) -> None:
        d = self.model.decision(u)
        what = f"order {o.order_id} {o.side} {o.qty}@{price_to_str(o.price)} on {u.symbol} seq {u.seq}"
        if not d.trades:
            self.flag("unexpected order", f"{what}: the model says {d.reason}")
        elif o.side != d.side:
            self.flag("side", f"{what}: the model says {d.side}")
        elif o.price != d.price:
            self.flag("price", f"{what}: the price must be {price_to_str(d.price)}")
        elif (o.qty != d.qty) if d.qty_exact else not (1 <= o.qty <= d.max_qty):
            want = d.qty if d.qty_exact else f"1..{d.max_qty}"
            self.flag("qty", f"{what}: the quantity must be {want}")
        self._follow(o, what)

    def _follow(self, o: Order, what: str) -> None:
        """The engine's position moved whatever the verdict: follow it."""
        c = self.count(o.symbol)
        if o.side == BUY:
            c.buys += 1
            c.bought += o.qty
            c.position += o.qty
        else:
            c.sells += 1
            c.sold += o.qty
            c.position -= o.qty
        self.model.fill(o.symbol, o.side, o.qty, o.price)
        p = self.config.params(o.symbol)
        if c.position < 0 or (p is not None and c.position > p.max_position):
            self.flag("position", f"{what}: the position becomes {c.position}")
