"""Orders collected as frames at the lab's gateway (or at the exchange, reflected).

A packet socket on the exchange interface reads every frame that arrives
there (packet_io.PacketSocket: a VLAN-tagged order counts too, its tag put
back).  Each order frame is checked as a frame (order_frames: checksums,
source MAC, route, VLAN, format, the batch cap, ids without gaps), then
each of its orders against the message it answers (checker.OrderChecker):

    batch   the orders of one frame do not all answer messages of one
            packet, in message order
    duplicate order   a second order for one message (a message gives one
            decision: a copy of a packet on the B line traded again, say)

The round trip is the frame's receive time minus the message's timestamp
(for ITCH, whose timestamps are nanoseconds since midnight, modulo a day).
A UDP socket bound to the orders' destination takes the datagrams the lab's
own stack accepts (so nothing answers the engine with "port unreachable");
it counts them.
"""

from __future__ import annotations

import socket

from ..order_frames import OrderFrameChecker
from ..packet_io import PacketSocket
from .checker import FeedLog, OrderChecker
from .stats import RttRecorder


class FrameCollector:
    """Drains the packet socket (and the destination's UDP socket) without waiting."""

    def __init__(
        self,
        psock: PacketSocket,
        frames: OrderFrameChecker,
        checker: OrderChecker,
        log: FeedLog,
        rtts: RttRecorder,
        sink: socket.socket | None = None,
        ts_modulo: int | None = None,
    ) -> None:
        self.psock = psock
        self.frames = frames
        self.checker = checker
        self.log = log
        self.rtts = rtts
        self.sink = sink
        self.ts_modulo = ts_modulo
        self.order_frames = 0
        self.other_frames = 0
        self.sink_datagrams = 0

    def fileno(self) -> int:
        return self.psock.fileno()

    def drain(self) -> None:
        checker, log = self.checker, self.log
        for rx in self.psock.receive():
            v = self.frames.check(rx.frame)
            if v is None:
                self.other_frames += 1
                continue
            self.order_frames += 1
            for reason, detail in v.problems:
                checker.flag(reason, detail)
            packet = last_seq = None
            for o in v.orders:
                logged = log.get(o.seq)
                if logged is not None:
                    if packet is None:
                        packet = logged.packet
                    elif logged.packet != packet or (last_seq is not None and o.seq <= last_seq):
                        checker.flag("batch", f"order {o.order_id} (seq {o.seq}) is not of its frame's packet")
                last_seq = o.seq
                if logged is not None and not log.answer(o.seq):
                    checker.flag("duplicate order", f"order {o.order_id} answers seq {o.seq}, answered already")
                ts = checker.check_feed_order(o, logged)
                if ts is not None and rx.rx_ns:
                    rtt = rx.rx_ns - ts
                    self.rtts.add(rtt % self.ts_modulo if self.ts_modulo else rtt)
        if self.sink is not None:
            while True:
                try:
                    self.sink.recv(4096)
                except BlockingIOError:
                    break
                self.sink_datagrams += 1
