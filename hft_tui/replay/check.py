"""The live engine's orders of a replay, checked with the lab's own checkers.

After the capture has played (player.py), every frame that arrived at the
exchange interface is judged in arrival order:

1. as a frame, by order_frames.OrderFrameChecker (the simulator's frame
   checks: IPv4/UDP, both checksums, the engine's source MAC, the route to
   the engine's gateway as its maps hold it, or the feed frame's turned
   around, the VLAN tag, whole orders, the batch cap, ids without gaps from
   the engine's last id);
2. order by order, with the simulator's checker (simulator.checker:
   OrderChecker against a FeedLog, the strategy model of the config), the
   way the lab's frame path checks its own feed: the capture's packets are
   taken in order, each message logged with what the model says of it, and
   the orders of a packet checked once its messages are in, as the engine
   decided them; an order frame must answer messages of one packet, in order,
   and a message is answered at most once.  This needs the config (--check,
   else the engine's own, read from its maps) and a capture of one channel;
   otherwise only 1. is done, and the summary says so.

A packet the engine must have dropped whole (a copy of one seen already, the
B line) is not logged again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..backtest.orders import BacktestOrder
from ..config import Config
from ..order_frames import ExpectedRoute, OrderFrameChecker, OrderIds
from ..packet_io import Received
from ..protocol import Order
from ..simulator.checker import FeedLog, LoggedMessage, OrderChecker
from ..simulator.engine_start import EngineStart
from ..wire import Route, parse_udp_frame
from .messages import PacketMeaning, packet_meaning
from .player import ReplayFrames

MAX_EXAMPLES = 10


@dataclass
class LiveOrders:
    """What the checks found (module doc)."""

    orders: list[BacktestOrder] = field(default_factory=list)  # arrival order (ids ascending when all is well)
    order_frames: int = 0
    other_frames: int = 0
    invalid: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    model_checked: bool = False
    model_note: str = ""

    def flag(self, reason: str, detail: str) -> None:
        self.invalid += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{reason}: {detail}")


def _feed_routes(frames: ReplayFrames) -> dict[tuple[str, str, int], tuple[Route, int | None]]:
    """(source MAC, source IP, source port) of the feed's senders -> their
    frames' route and VLAN: what a reflected order frame is the reverse of."""
    out: dict[tuple[str, str, int], tuple[Route, int | None]] = {}
    seen: set[bytes] = set()
    for frame in frames.frames:
        head = frame[:48]  # MACs, tag, addresses, ports: frames of one sender share them
        if head in seen:
            continue
        seen.add(head)
        f = parse_udp_frame(frame)
        if f is not None:
            out.setdefault((f.route.src_mac, f.route.src_ip, f.route.src_port), (f.route, f.vlan))
    return out


def _meanings(frames: ReplayFrames, feed: str, loops: int) -> Iterator[PacketMeaning | None]:
    for _ in range(loops):
        for frame in frames.frames:
            f = parse_udp_frame(frame)
            yield packet_meaning(feed, f.payload) if f is not None else None


class ReplayChecker:
    """Judges the frames a replay collected (module doc)."""

    def __init__(
        self, frames: ReplayFrames, feed: str, config: Config | None, start: EngineStart | None, engine_mac: str
    ) -> None:
        self.frames = frames
        self.feed = feed
        self.config = config
        self.start = start
        self.engine_mac = engine_mac
        self.out = LiveOrders()
        gw = start.route if start else None
        max_orders = config.engine.max_orders_per_packet if config else 32
        ids = OrderIds(start.last_order_id + 1 if start else None)
        self.gateway = (
            ExpectedRoute.gateway(gw.src_mac, gw.src_ip, gw.src_port, gw.mac, gw.ip, gw.port, None) if gw else None
        )
        self.reflections = {} if gw else _feed_routes(frames)
        self.frame_checker = OrderFrameChecker(
            self.gateway or ExpectedRoute(Route(engine_mac, "", "", "", 0, 0)), max_orders, ids
        )

    def _expected(self, raw: bytes) -> ExpectedRoute | None:
        f = parse_udp_frame(raw)
        if f is None:
            return None
        if self.gateway is not None:
            return ExpectedRoute(self.gateway.route, self.gateway.ttl, f.vlan)  # the feed's tag, kept
        hit = self.reflections.get((f.route.dst_mac, f.route.dst_ip, f.route.dst_port))
        if hit is None:
            return None
        route, vlan = hit
        return ExpectedRoute.reflection(route, self.engine_mac, vlan)

    def frames_checked(self, received: list[Received]) -> list[list[Order]]:
        """Step 1 for every frame; the orders of each order frame."""
        out = self.out
        batches: list[list[Order]] = []
        for rx in received:
            expected = self._expected(rx.frame)
            if expected is None:
                out.other_frames += 1
                continue
            self.frame_checker.route = expected
            v = self.frame_checker.check(rx.frame)
            if v is None:
                out.other_frames += 1
                continue
            out.order_frames += 1
            for reason, detail in v.problems:
                out.flag(reason, detail)
            batches.append(v.orders)
        return batches

    def check(self, received: list[Received], loops: int = 1) -> LiveOrders:
        batches = self.frames_checked(received)
        out = self.out
        meanings = None
        if self.config is None:
            out.model_note = "no config: the orders were checked as frames only"
        elif loops != 1:
            out.model_note = "a replay of several loops: the orders were checked as frames only"
        else:
            meanings = list(_meanings(self.frames, self.feed, 1))
            channels = {m.channel for m in meanings if m is not None}
            if len(channels) > 1:
                out.model_note = f"{len(channels)} channels in the capture: the orders were checked as frames only"
                meanings = None
        if meanings is None:
            for orders in batches:
                for o in orders:
                    out.orders.append(_order(o))
            return out
        self._model(batches, meanings)
        out.model_checked = True
        return out

    def _model(self, batches: list[list[Order]], meanings: list[PacketMeaning | None]) -> None:
        """Step 2: the capture's packets in order, each packet's orders checked after its messages."""
        assert self.config is not None
        out = self.out
        log = FeedLog()
        checker = OrderChecker(self.config, log, self.start)  # type: ignore[arg-type]
        model = checker.model
        seen_next = -1  # the channel's next sequence: a packet below it is a copy the engine drops
        last_packet_of = {  # a sequence -> the last packet that carries it
            m.first_seq + i: packet
            for packet, m in enumerate(meanings)
            if m is not None
            for i in range(len(m.messages))
        }
        pending = iter(batches)
        batch = next(pending, None)
        for packet, m in enumerate(meanings):
            if m is None or not m.messages:
                continue
            last = m.first_seq + len(m.messages) - 1
            if self.feed != "hft1" and last < seen_next:
                continue
            for i, msg in enumerate(m.messages):
                seq = m.first_seq + i
                if self.feed != "hft1" and seq < seen_next:
                    continue  # an overlap: the engine reads only the new messages
                if msg is None:
                    log.add(seq, LoggedMessage(None, "skipped type", packet))
                    continue
                verdict = model.feed_verdict(msg)
                if not verdict and model.wants_market_data(msg.symbol):
                    model.observe(msg.update())
                log.add(msg.seq, LoggedMessage(msg, verdict, packet))
            if self.feed != "hft1":
                seen_next = max(seen_next, last + 1)
            while batch is not None:
                if batch and m.first_seq <= batch[0].seq <= last:
                    self._check_batch(batch, log, checker, packet)
                elif not batch or last_packet_of.get(batch[0].seq, -1) <= packet:
                    # It answers no packet still to come: judged now, not left to hold up the rest.
                    self._check_batch(batch, log, checker, -1)
                else:
                    break
                batch = next(pending, None)
        while batch is not None:  # orders answering nothing the capture sent
            self._check_batch(batch, log, checker, -1)
            batch = next(pending, None)
        out.reasons.update({k: out.reasons.get(k, 0) + v for k, v in checker.reasons.items()})
        out.invalid += checker.invalid
        out.examples.extend(checker.examples[: max(0, MAX_EXAMPLES - len(out.examples))])

    def _check_batch(self, orders: list[Order], log: FeedLog, checker: OrderChecker, packet: int) -> None:
        last_seq = None
        for o in orders:
            logged = log.get(o.seq)
            if logged is not None and (logged.packet != packet or (last_seq is not None and o.seq <= last_seq)):
                self.out.flag("batch", f"order {o.order_id} (seq {o.seq}) is not of its frame's packet")
            last_seq = o.seq
            if logged is not None and not log.answer(o.seq):
                self.out.flag("duplicate order", f"order {o.order_id} answers seq {o.seq}, answered already")
            checker.check_feed_order(o, logged)
            self.out.orders.append(_order(o))


def _order(o: Order) -> BacktestOrder:
    return BacktestOrder(o.order_id, o.side, o.symbol, o.price, o.qty, o.seq, o.timestamp, 0, 0)
