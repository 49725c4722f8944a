"""The engine's order frames, checked as frames: whoever judges the orders.

An order frame is one UDP datagram whose payload is the orders of one feed
packet, ORDER_LEN bytes each (today's order format).  What is checked here,
frame by frame, before any order is judged against a strategy:

    ip checksum, udp checksum, udp checksum missing, ip length, udp length,
    ip fragment     the frame as IPv4/UDP (wire.parse_udp_frame)
    source mac      not from the engine interface's MAC (issue 14: whoever
                    can send on the segment must not pass for the engine)
    route           destination MAC, IP or port, or source IP or port, not
                    the expected route (the gateway's, or the reflection of
                    the update), or a TTL other than the gateway's 64
    vlan            another VLAN than the feed's (or a tag where it had none)
    format          a payload that is not whole orders, or an order that does
                    not decode
    batch cap       more orders in one frame than max_orders_per_packet
    gap, out of order   order ids that skip, or go back (:class:`OrderIds`)

The simulator adds the strategy's rules on top; the replay and the backtest
use this as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .constants import MSG_LEN
from .errors import ProtocolError
from .protocol import Order, decode_order
from .wire import IP_TTL, Route, UdpFrame, parse_udp_frame

ORDER_LEN = MSG_LEN  # every order is today's 44-byte order payload


@dataclass(frozen=True)
class ExpectedRoute:
    """Where an order frame must go: ``route``, and with a gateway TTL 64."""

    route: Route
    ttl: int | None = None  # None: not checked (reflection keeps the update's)
    vlan: int | None = None  # the feed's VLAN id, None: untagged

    @classmethod
    def gateway(
        cls, engine_mac: str, src_ip: str, src_port: int, gw_mac: str, gw_ip: str, gw_port: int, vlan: int | None
    ) -> ExpectedRoute:
        return cls(Route(engine_mac, gw_mac, src_ip, gw_ip, src_port, gw_port), IP_TTL, vlan)

    @classmethod
    def reflection(cls, update: Route, engine_mac: str, vlan: int | None) -> ExpectedRoute:
        """The update's route turned around; the source MAC is the engine's."""
        return cls(
            Route(engine_mac, update.src_mac, update.dst_ip, update.src_ip, update.dst_port, update.src_port),
            None,
            vlan,
        )

    def is_candidate(self, route: Route) -> bool:
        """A frame that claims to be an order: from the engine's port, or to the
        order's destination (anything else on the wire is not ours to judge)."""
        r = self.route
        return route.src_port == r.src_port or (route.dst_ip == r.dst_ip and route.dst_port == r.dst_port)


class OrderIds:
    """Order ids without gaps: the first id is ``expected`` when the engine's
    last id is known, and each next id is one more."""

    def __init__(self, expected: int | None = None) -> None:
        self.expected = expected
        self.first = 0
        self.last = 0

    def check(self, order_id: int) -> tuple[str, str] | None:
        """(reason, detail) when ``order_id`` is not the next one; None when it is."""
        if not self.first:
            self.first = order_id
        problem = None
        if self.expected is not None:
            if order_id > self.expected:
                problem = ("gap", f"order id {order_id} after {self.expected - 1}")
            elif order_id < self.expected:
                return ("out of order", f"order id {order_id} after {self.expected - 1}")
        self.expected = order_id + 1
        self.last = order_id
        return problem


@dataclass
class FrameVerdict:
    """One frame: its parsed form, its orders in order, what is wrong with it."""

    frame: UdpFrame | None
    orders: list[Order] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


class OrderFrameChecker:
    """Checks order frames against an expected route and the batch cap (module doc);
    the route's source MAC is the engine interface's."""

    def __init__(self, route: ExpectedRoute, max_orders: int, ids: OrderIds | None = None) -> None:
        self.route = route
        self.max_orders = max_orders
        self.ids = ids or OrderIds()
        self.frames = 0

    def check(self, raw: bytes) -> FrameVerdict | None:
        """None when ``raw`` is not an order frame at all (not IPv4/UDP, or not
        from the engine's port nor to the order's destination)."""
        frame = parse_udp_frame(raw)
        if frame is None or not self.route.is_candidate(frame.route):
            return None
        self.frames += 1
        v = FrameVerdict(frame)
        for problem in frame.problems:
            v.problems.append((problem, f"frame {self.frames}: {problem}"))
        self._check_route(frame, v)
        self._decode(frame.payload, v)
        return v

    def _check_route(self, frame: UdpFrame, v: FrameVerdict) -> None:
        want, got = self.route.route, frame.route
        if got.src_mac != want.src_mac:
            v.problems.append(("source mac", f"frame {self.frames} from {got.src_mac}, the engine is {want.src_mac}"))
        wrong = [
            f"{name} {a} (want {b})"
            for name, a, b in (
                ("to mac", got.dst_mac, want.dst_mac),
                ("to ip", got.dst_ip, want.dst_ip),
                ("to port", got.dst_port, want.dst_port),
                ("from ip", got.src_ip, want.src_ip),
                ("from port", got.src_port, want.src_port),
            )
            if a != b
        ]
        if self.route.ttl is not None and frame.ttl != self.route.ttl:
            wrong.append(f"ttl {frame.ttl} (want {self.route.ttl})")
        if wrong:
            v.problems.append(("route", f"frame {self.frames}: " + ", ".join(wrong)))
        if frame.vlan != self.route.vlan:
            v.problems.append(("vlan", f"frame {self.frames} on vlan {frame.vlan}, the feed's is {self.route.vlan}"))

    def _decode(self, payload: bytes, v: FrameVerdict) -> None:
        n, rest = divmod(len(payload), ORDER_LEN)
        if rest or n == 0:
            v.problems.append(("format", f"frame {self.frames}: a payload of {len(payload)} bytes is not whole orders"))
        if n > self.max_orders:
            v.problems.append(("batch cap", f"frame {self.frames}: {n} orders, the cap is {self.max_orders}"))
        for i in range(n):
            try:
                o = decode_order(payload[i * ORDER_LEN : (i + 1) * ORDER_LEN])
            except ProtocolError as exc:
                v.problems.append(("format", f"frame {self.frames} order {i + 1}: {exc}"))
                continue
            problem = self.ids.check(o.order_id)
            if problem is not None:
                v.problems.append(problem)
            v.orders.append(o)
