"""A capture played into the lab from the exchange side, and the orders that come back.

:func:`load_frames` reads the capture (capture_reader) into memory: the
IPv4/UDP frames, the ones the backtest runs too, as they were captured (a
multicast destination kept); a unicast frame for another host gets the
engine interface's MAC as its destination, so it reaches the engine as it
reached the host it was captured on.  Other frames (ARP, IPv6, TCP...) are
counted and not sent.

:class:`Player` sends them through a packet socket on the lab's exchange
veth (packet_io.PacketSocket: whole frames, no qdisc), paced by their
capture times divided by ``speed``, or as fast as it can (``speed`` None),
``loops`` times; the same socket collects every frame arriving there (the
engine's order frames to the lab's gateway, or reflected, VLAN-tagged or
not) with its receive time, to be checked afterwards (check.py): nothing but
sending and reading happens while the capture plays.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..capture_reader import CaptureError, CaptureReader
from ..lab import MTU
from ..packet_io import PacketSocket, Received
from ..wire import ETH_HLEN, ETH_P_IP, IPPROTO_UDP, IPV4_HLEN, UDP_HLEN, VLAN_HLEN, VLAN_TPIDS, mac_bytes

DRAIN_EVERY = 64  # frames sent between two reads of the orders at full speed
GRACE_S = 0.3  # how long the last order may take to come back
SPIN_S = 0.0005  # closer than this to a frame's time: wait by spinning, not sleeping


def link_header_len(frame: bytes) -> int:
    """Ethernet's header with at most one VLAN tag: where the frame's packet starts."""
    return ETH_HLEN + (VLAN_HLEN if int.from_bytes(frame[12:14], "big") in VLAN_TPIDS else 0)


def ipv4_udp(frame: bytes) -> bool:
    """IPv4/UDP behind at most one VLAN tag: what the backtest runs (testrun_loop.c's rule)."""
    if len(frame) < ETH_HLEN:
        return False
    off = link_header_len(frame)
    if len(frame) < off:
        return False
    proto = int.from_bytes(frame[off - 2 : off], "big")
    if proto != ETH_P_IP or len(frame) < off + IPV4_HLEN:
        return False
    ihl = (frame[off] & 0x0F) * 4
    return (
        frame[off] >> 4 == 4
        and ihl >= IPV4_HLEN
        and len(frame) >= off + ihl + UDP_HLEN
        and (frame[off + 9] == IPPROTO_UDP)
    )


@dataclass
class ReplayFrames:
    path: str
    frames: list[bytes] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)  # capture times, ns
    numbers: list[int] = field(default_factory=list)  # each frame's number in the capture (from 1)
    total: int = 0  # frames in the capture
    skipped: int = 0  # not IPv4/UDP: not sent
    readdressed: int = 0  # unicast frames for another host, given the engine's MAC

    @property
    def span_ns(self) -> int:
        return self.stamps[-1] - self.stamps[0] if self.stamps else 0


def load_frames(path: str, engine_mac: str) -> ReplayFrames:
    """The capture's IPv4/UDP frames, ready to send (module doc).  A frame the lab's
    interfaces cannot carry (its IP packet past lab.MTU) refuses the whole capture, in
    one line naming it, before anything is sent: a replay never stops partway."""
    out = ReplayFrames(path)
    engine = mac_bytes(engine_mac)
    with CaptureReader(path) as reader:
        for batch in reader.batches():
            for i in range(len(batch)):
                frame = batch.frame(i)
                if not ipv4_udp(frame):
                    out.skipped += 1
                    continue
                l2 = link_header_len(frame)
                if len(frame) - l2 > MTU:
                    raise CaptureError(
                        f"{path}: frame {batch.first + i}: an IP packet of {len(frame) - l2:,} bytes, more than "
                        f"the lab's interfaces carry (MTU {MTU}); nothing sent"
                    )
                if not frame[0] & 1 and frame[:6] != engine:  # unicast, for another host
                    frame = engine + frame[6:]
                    out.readdressed += 1
                out.frames.append(frame)
                out.stamps.append(batch.stamps[i])
                out.numbers.append(batch.first + i)
        out.total = reader.frames
    return out


@dataclass
class PlayStats:
    frames_sent: int = 0
    loops_done: int = 0
    elapsed_s: float = 0.0
    received: list[Received] = field(default_factory=list)  # every frame that arrived, in order

    @property
    def frames_per_s(self) -> float:
        return self.frames_sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Player:
    """Plays ``frames`` through ``psock`` (the lab's exchange interface) and collects what arrives."""

    def __init__(self, psock: PacketSocket, frames: ReplayFrames, wake: int | None = None) -> None:
        self.psock = psock
        self.frames = frames
        self.stats = PlayStats()
        # A file descriptor that becomes readable on a stop (stopflag.StopFlag): a long
        # wait for the next frame's time ends at once.
        self.waits: list[Any] = [psock] if wake is None else [psock, wake]

    def _drain(self) -> None:
        self.stats.received.extend(self.psock.receive())

    def _send(self, frame: bytes) -> None:
        self.psock.send(frame)
        self.stats.frames_sent += 1

    def play(
        self,
        speed: float | None,
        loops: int = 1,
        *,
        before_loop: Callable[[int], None] | None = None,
        stop: Callable[[], bool] | None = None,
        progress: Callable[[int, int, int], None] | None = None,
        grace_s: float = GRACE_S,
    ) -> PlayStats:
        """``loops`` times (0: until ``stop()``); ``before_loop(k)`` runs before
        loop k > 0; ``progress(loop, index, capture_ts)`` after each frame sent
        when paced (and every DRAIN_EVERY frames at full speed)."""
        frames = self.frames.frames
        st = self.stats
        t0 = time.monotonic()
        loop = 0
        while (loops == 0 or loop < loops) and frames:
            if stop is not None and stop():
                break
            if loop and before_loop is not None:
                self._drain()
                before_loop(loop)
            if speed is None:
                self._play_max(loop, progress, stop)
            else:
                self._play_paced(loop, speed, progress, stop)
            loop += 1
            st.loops_done = loop
        st.elapsed_s = time.monotonic() - t0
        deadline = time.monotonic() + grace_s
        while (left := deadline - time.monotonic()) > 0:
            if select.select([self.psock], [], [], left)[0]:
                self._drain()
        self._drain()
        return st

    def _play_max(
        self, loop: int, progress: Callable[[int, int, int], None] | None, stop: Callable[[], bool] | None
    ) -> None:
        frames, stamps = self.frames.frames, self.frames.stamps
        send, drain = self.psock.send, self._drain
        for i, frame in enumerate(frames):
            send(frame)
            if i % DRAIN_EVERY == DRAIN_EVERY - 1:
                drain()
                if progress is not None:
                    progress(loop, i, stamps[i])
                if stop is not None and stop():
                    self.stats.frames_sent += i + 1
                    return
        self.stats.frames_sent += len(frames)

    def _play_paced(
        self, loop: int, speed: float, progress: Callable[[int, int, int], None] | None, stop: Callable[[], bool] | None
    ) -> None:
        frames, stamps = self.frames.frames, self.frames.stamps
        first, start = stamps[0], time.monotonic()
        for i, frame in enumerate(frames):
            due = start + (stamps[i] - first) / 1e9 / speed
            while (left := due - time.monotonic()) > 0:
                if left > SPIN_S and self.psock in select.select(self.waits, [], [], left - SPIN_S)[0]:
                    self._drain()
                if stop is not None and stop():
                    return
            self._send(frame)
            if progress is not None:
                progress(loop, i, stamps[i])
        self._drain()
