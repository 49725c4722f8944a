"""The frame path of a run: whole Ethernet frames out, order frames collected.

Used for every exchange feed (iex-tops, iex-deep, itch) and for hft1 when a
frame must be exactly ours: a multicast group (its MAC), a VLAN tag, a
capture of what was sent, or a gateway (the orders do not come back to the
exchange's socket).  hft1 without any of these keeps the fast path
(runner.Simulator._loop: sendmmsg of UDP datagrams).

A packet of the feed (mix.FeedSource) becomes one frame from the exchange's
MAC, address and port to the engine (or to the group and its MAC), sent
with the lab's packet socket; with ``ab`` the same frame goes out twice
(the A and B lines: the engine must drop the copy); with ``gap_rate`` a
packet is not sent at all, its sequence numbers skipped (never the first,
whose channel the engine may not know yet).  The run ends with a packet
that makes the last gap visible to the engine and leaves nothing halted:
the resumes of symbols still halted, else a heartbeat.

Every message of a packet that was sent goes through the strategy model in
order (its feed rules: trading status, halted, in transition, size 0,
price range) and into the sent log, so that an order is checked against
what the engine saw when it read that message.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import lab as lab_mod
from ..capture import CaptureWriter
from ..order_frames import ExpectedRoute, OrderFrameChecker
from ..packet_io import PacketSocket
from ..wire import Route, multicast_mac, udp_frame
from .checker import FeedLog, LoggedMessage, OrderChecker
from .collector import FrameCollector
from .mix import FeedFormat, FeedSource, Packet
from .stats import RttRecorder

DRAIN_EVERY = 8  # packets between two looks at the collected orders at full speed
DAY_NS = 86_400 * 1_000_000_000


@dataclass
class FeedCounts:
    """What the frame path sent (the summary's feed counters)."""

    packets: int = 0  # packets of the feed sent (A line)
    messages: int = 0  # messages in them
    dup_packets: int = 0  # packets sent a second time (the B line)
    gaps: int = 0  # runs of packets not sent that a later packet shows the engine
    gap_messages: int = 0  # messages in them
    frames_out: int = 0  # frames put on the wire (A and B)


@dataclass(frozen=True)
class FramePlan:
    """How the frames of one run look (see the module doc)."""

    fmt: FeedFormat
    batch: int
    port: int  # the engine's feed port
    group: str | None = None
    vlan: int | None = None
    ab: bool = False
    gap_rate: float = 0.0
    pcap_out: str | None = None
    ts_modulo: int | None = None  # ITCH: timestamps are ns since midnight


class FrameRun:
    """One run of the frame path (module doc)."""

    def __init__(
        self,
        lab: lab_mod.Lab,
        plan: FramePlan,
        expected: ExpectedRoute,
        max_orders: int,
        psock: PacketSocket,
        engine_mac: str,
        exchange_sock: socket.socket,
        sink: socket.socket | None,
        checker: OrderChecker,
        log: FeedLog,
        rtts: RttRecorder,
        seed: int,
    ) -> None:
        self.lab = lab
        self.plan = plan
        self.checker = checker
        self.log = log
        self.counts = FeedCounts()
        self.gap_rng = random.Random(seed * 104729 + 3)
        dst_ip = plan.group or lab.engine_ip
        dst_mac = multicast_mac(plan.group) if plan.group else engine_mac
        self.route = Route(psock.mac, dst_mac, lab.exchange_ip, dst_ip, exchange_sock.getsockname()[1], plan.port)
        self.psock = psock
        self._own_sink = sink if sink is not None and sink is not exchange_sock else None  # the gateway's
        self.collector = FrameCollector(
            self.psock,
            OrderFrameChecker(expected, max_orders, checker.ids),
            checker,
            log,
            rtts,
            sink,
            plan.ts_modulo,
        )
        self.ip_id = 0
        self._skipped = 0  # packets not sent since the last one sent
        self._skipped_messages = 0

    def close(self) -> None:
        self.psock.close()
        if self._own_sink is not None:
            self._own_sink.close()

    def _send(self, packet: Packet, capture: CaptureWriter | None, twice: bool) -> None:
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        frame = udp_frame(self.route, packet.payload, vlan=self.plan.vlan, ip_id=self.ip_id)
        model, log, c = self.checker.model, self.log, self.counts
        for i, m in enumerate(packet.messages):
            if m is None:
                log.add(packet.first_seq + i, LoggedMessage(None, "skipped type", c.packets))
                continue
            verdict = model.feed(m)
            log.add(m.seq, LoggedMessage(m, verdict, c.packets))
        for _ in range(2 if twice else 1):
            # The timestamp of the capture is the moment the frame goes out.
            if capture is not None:
                capture.write(frame, time.time_ns())
            self.psock.send(frame)
            c.frames_out += 1
        c.packets += 1
        c.messages += len(packet.messages)
        if twice:
            c.dup_packets += 1
        if self._skipped:
            c.gaps += 1
            c.gap_messages += self._skipped_messages
            self._skipped = self._skipped_messages = 0

    def run(
        self,
        source: FeedSource,
        count: int,
        rate: float,
        duration: float | None,
        stop: Callable[[], bool] | None,
        grace_s: float,
    ) -> tuple[int, float]:
        """Sends ``count`` messages (0: until stopped) at ``rate`` messages/s
        (0: at full speed); returns (messages made, seconds)."""
        plan, collector = self.plan, self.collector
        capture = CaptureWriter(plan.pcap_out) if plan.pcap_out else None
        made = 0
        try:
            t0 = time.monotonic()
            end = t0 + duration if duration else None
            since_drain = 0
            while count == 0 or made < count:
                if stop is not None and stop():
                    break
                now = time.monotonic()
                if end is not None and now >= end:
                    break
                if rate and made >= (now - t0) * rate:
                    wait = made / rate - (now - t0)
                    if end is not None:
                        wait = min(wait, end - now)
                    if select.select([collector], [], [], max(wait, 0))[0]:
                        collector.drain()
                    continue
                packet = source.next_packet(time.time_ns(), count - made if count else None)
                made += len(packet.messages)
                if self.counts.packets and self.gap_rng.random() < plan.gap_rate:
                    self._skipped += 1
                    self._skipped_messages += len(packet.messages)
                else:
                    self._send(packet, capture, plan.ab)
                since_drain += 1
                if since_drain >= DRAIN_EVERY or rate:
                    collector.drain()
                    since_drain = 0
            last = source.close(time.time_ns())
            if last is not None or self._skipped:
                last = last or source.heartbeat(time.time_ns())
                made += len(last.messages)
                self._send(last, capture, plan.ab and bool(last.messages))
            elapsed = time.monotonic() - t0
            deadline = time.monotonic() + grace_s
            while (left := deadline - time.monotonic()) > 0:
                if select.select([collector], [], [], left)[0]:
                    collector.drain()
            collector.drain()
        except BaseException:
            if capture is not None:
                capture.abort()
            raise
        if capture is not None:
            capture.close()
        return made, elapsed


def sink_socket(lab: lab_mod.Lab, ip: str, port: int) -> socket.socket | None:
    """A UDP socket in the lab bound to the orders' destination, or None when
    that address is not the lab's (the orders then go elsewhere)."""
    sock = lab_mod.lab_socket(lab)
    try:
        sock.bind((ip, port))
    except OSError:
        sock.close()
        return None
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setblocking(False)
    return sock
