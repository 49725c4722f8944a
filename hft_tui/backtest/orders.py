"""The backtest's orders: the program's XDP_TX frames, checked, decoded and booked.

Each frame the program sent is checked as the lab checks the engine's
order frames (order_frames.OrderFrameChecker: the frame as IPv4/UDP with
both checksums, the route, the VLAN tag of the feed frame it answers, whole
orders, the batch cap, order ids from 1 without gaps), and each of its
orders against the feed packet it answers (the message with the order's
sequence number carries its symbol and its timestamp; a frame's orders in
message order).  The route expected is the config's gateway as the backtest
wrote it, or without one the feed frame turned around.

:class:`Ledger` books the orders per symbol (position, shares, money: all
from the frames) and :func:`cross_check` holds the book against what the
program's own maps say; any difference, like any failed check, is a fault
of the program or of the backtest, never a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..constants import MSG_LEN
from ..errors import ProtocolError
from ..feeds import iex, itch
from ..maps import Gateway, Snapshot
from ..order_frames import ExpectedRoute, OrderFrameChecker, OrderIds
from ..protocol import Order, decode_update, price_to_str
from ..wire import UdpFrame, parse_udp_frame
from .loop import SentFrame

MAX_PROBLEMS = 10  # problems kept word for word (all are counted)


@dataclass(frozen=True)
class BacktestOrder:
    """One order as the program sent it, with the capture frame it answered."""

    id: int
    side: str  # "B" or "S"
    symbol: str
    price: int  # 1e-4 units
    qty: int
    seq: int
    ts: int  # the triggering message's timestamp (hft1: the update's, echoed)
    frame: int  # the capture frame it answered (numbered from 1)
    capture_ts: int  # that frame's capture time, ns since the epoch

    def as_dict(self) -> dict[str, object]:
        """The order as ``backtest --json`` and ``replay --json`` list it."""
        return {
            "id": self.id,
            "side": self.side,
            "symbol": self.symbol,
            "price": price_to_str(self.price),
            "qty": self.qty,
            "seq": self.seq,
            "ts": self.ts,
        }

    @property
    def key(self) -> tuple[int, str, str, int, int, int, int]:
        """What must agree between two runs of one capture (live and backtest)."""
        return (self.id, self.side, self.symbol, self.price, self.qty, self.seq, self.ts)


class PacketMessages:
    """The messages of one feed packet, found by sequence number and decoded
    only when asked for (an order frame answers a few of a packet's many)."""

    def __init__(self, feed: str, payload: bytes) -> None:
        self.feed = feed
        self.first = 0
        self.raw: tuple[bytes, ...] = ()
        self.ok = True
        try:
            if feed == "iex":
                seg = iex.decode_segment(payload)
                self.first, self.raw = seg.first_seq, seg.messages
            elif feed == "itch":
                pkt = itch.decode_packet(payload)
                self.first, self.raw = pkt.seq, pkt.messages
            else:
                self.update = decode_update(payload[:MSG_LEN])
        except ProtocolError:
            self.ok = False  # the program acts on the messages before a bad block: not listed here

    def get(self, seq: int) -> tuple[str, int] | None:
        """(symbol, timestamp) of message ``seq``; None when there is no such message of a symbol."""
        if self.feed not in ("iex", "itch"):
            u = self.update
            return (u.symbol, u.timestamp) if u.seq == seq else None
        i = seq - self.first
        if not 0 <= i < len(self.raw):
            return None
        try:
            m = (iex.decode_message if self.feed == "iex" else itch.decode_message)(self.raw[i])
        except ProtocolError:
            return None
        symbol, ts = getattr(m, "symbol", None), getattr(m, "timestamp", None)
        return (symbol, ts) if isinstance(symbol, str) and isinstance(ts, int) else None


class OrderFrames:
    """Checks and decodes the program's order frames, in the order it sent them."""

    def __init__(self, feed: str, route: Gateway | None, max_orders: int) -> None:
        self.feed = feed
        self.route = route
        self.checker: OrderFrameChecker | None = None
        self.max_orders = max_orders
        self.ids = OrderIds(1)  # fresh maps: the first order is id 1
        self.orders: list[BacktestOrder] = []
        self.frames = 0
        self.problems = 0
        self.examples: list[str] = []

    def _flag(self, detail: str) -> None:
        self.problems += 1
        if len(self.examples) < MAX_PROBLEMS:
            self.examples.append(detail)

    def _expected(self, fin: UdpFrame) -> ExpectedRoute:
        g = self.route
        if g is None:
            return ExpectedRoute.reflection(fin.route, fin.route.dst_mac, fin.vlan)
        return ExpectedRoute.gateway(g.src_mac, g.src_ip, g.src_port, g.mac, g.ip, g.port, fin.vlan)

    def add(self, sent: SentFrame) -> None:
        self.frames += 1
        where = f"capture frame {sent.number}"
        fin = parse_udp_frame(sent.frame_in)
        if fin is None:
            self._flag(f"{where}: sent with XDP_TX, but the program was given no IPv4/UDP frame")
            return
        expected = self._expected(fin)
        if self.checker is None:
            self.checker = OrderFrameChecker(expected, self.max_orders, self.ids)
        self.checker.route = expected
        verdict = self.checker.check(sent.frame_out)
        if verdict is None:
            self._flag(f"{where}: the program sent a frame that is not an order frame")
            return
        for reason, detail in verdict.problems:
            self._flag(f"{where}: {reason}: {detail}")
        answered = PacketMessages(self.feed, fin.payload)
        last_seq = -1
        for o in verdict.orders:
            self._check_answers(o, answered, last_seq, where)
            last_seq = o.seq
            self.orders.append(
                BacktestOrder(o.order_id, o.side, o.symbol, o.price, o.qty, o.seq, o.timestamp, sent.number, sent.ts_ns)
            )

    def _check_answers(self, o: Order, answered: PacketMessages, last_seq: int, where: str) -> None:
        if not answered.ok:
            return
        m = answered.get(o.seq)
        what = f"{where}: order {o.order_id} ({o.side} {o.symbol} seq {o.seq})"
        if m is None or m[0] != o.symbol:
            self._flag(f"{what} answers no message of that packet")
        elif m[1] != o.timestamp:
            self._flag(f"{what} carries timestamp {o.timestamp}, its message {m[1]}")
        if o.seq <= last_seq:
            self._flag(f"{what} is not in message order")


@dataclass
class Book:
    """One symbol's fills, from the orders (money in 1e-4 units)."""

    buys: int = 0
    sells: int = 0
    bought: int = 0
    sold: int = 0
    capital_spent: int = 0
    proceeds: int = 0
    max_position: int = 0

    @property
    def position(self) -> int:
        return self.bought - self.sold


@dataclass
class Ledger:
    books: dict[str, Book] = field(default_factory=dict)

    def book(self, o: BacktestOrder) -> None:
        b = self.books.get(o.symbol)
        if b is None:
            b = self.books[o.symbol] = Book()
        if o.side == "B":
            b.buys += 1
            b.bought += o.qty
            b.capital_spent += o.qty * o.price
        else:
            b.sells += 1
            b.sold += o.qty
            b.proceeds += o.qty * o.price
        b.max_position = max(b.max_position, b.position)


def cross_check(ledger: Ledger, snap: Snapshot, orders: int) -> list[str]:
    """Where the orders' book and the program's maps disagree (none: they agree)."""
    out = []
    if snap.totals.order_seq != orders:
        out.append(f"the program numbered {snap.totals.order_seq} orders, its frames carried {orders}")
    states = {str(name): st for name, (_cfg, st) in snap.symbols.items()}
    for name, b in ledger.books.items():
        st = states.get(name)
        if st is None:
            out.append(f"{name}: orders for a symbol the program does not hold")
            continue
        for what, mine, theirs in (
            ("bought", b.bought, st.bought),
            ("sold", b.sold, st.sold),
            ("capital_spent", b.capital_spent, st.capital_spent),
            ("proceeds", b.proceeds, st.proceeds),
            ("position", b.position, st.position),
        ):
            if mine != theirs:
                out.append(f"{name}: {what} {mine} from the orders, {theirs} in the program's maps")
    return out
