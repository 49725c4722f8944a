"""Orders back: every datagram on the exchange's socket checked, its round trip kept.

The round trip is the socket's receive timestamp (SO_TIMESTAMPNS) minus the
echoed sender timestamp; in a batch of many updates it includes the time the
kernel spent on the updates sent before it in the same call.  A datagram
from anywhere but the engine's address is counted as an order and flagged
``format``; one from another MAC than the engine interface's arrives empty
(the socket's filter, packet_io.mark_foreign_macs) and is flagged ``source mac``.
"""

from __future__ import annotations

import socket
import struct

from .checker import OrderChecker
from .sender import SCM_TIMESTAMPNS
from .stats import RttRecorder

_TIMESPEC = struct.Struct("=qq")


class OrderReceiver:
    """Reads what has arrived on ``sock`` without waiting (drain())."""

    def __init__(
        self, sock: socket.socket, engine_addr: tuple[str, int], checker: OrderChecker, rtts: RttRecorder
    ) -> None:
        self.sock = sock
        self.engine_addr = engine_addr
        self.checker = checker
        self.rtts = rtts
        self._cmsg_space = socket.CMSG_SPACE(16)

    def drain(self) -> None:
        """Checks every datagram waiting on the socket (called after each batch)."""
        recv, cmsg_space, engine_addr = self.sock.recvmsg, self._cmsg_space, self.engine_addr
        checker, rtts = self.checker, self.rtts
        while True:
            try:
                data, anc, _flags, addr = recv(2048, cmsg_space)
            except BlockingIOError:
                return
            if not data:  # the socket's filter empties a datagram from another MAC than the engine's
                checker.orders += 1
                checker.flag("source mac", f"a datagram from {addr[0]}:{addr[1]} not sent by the engine's interface")
                continue
            if addr != engine_addr:
                checker.orders += 1
                checker.flag("format", f"a datagram from {addr[0]}:{addr[1]}, not the engine")
                continue
            echoed = checker.check(data)
            if echoed is None:
                continue
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    rtts.add(sec * 1_000_000_000 + nsec - echoed)
