"""The exchange side of the benchmark: sends updates, times the orders.

The socket is made inside the lab namespace (hft_tui.lab.lab_socket) and
bound to the exchange address; the calling thread stays in the root
namespace, pinned to the simulator's CPU by the runner.

Send time: time.time_ns() (CLOCK_REALTIME) written into the update's
timestamp field just before send(); the order echoes it.  Receive time:
the kernel's SO_TIMESTAMPNS stamp of the order (CLOCK_REALTIME, taken when
the frame enters the stack, before any wake-up of this process).  Round
trip = receive stamp - echoed timestamp.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from .. import lab as lab_mod
from ..constants import MSG_LEN, OFFSETS

# asm-generic/socket.h: SO_TIMESTAMPNS (== SCM_TIMESTAMPNS); Python's socket
# module does not export it.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_U64 = struct.Struct("!Q")
OFF_SEQ = OFFSETS["seq"]
OFF_TIMESTAMP = OFFSETS["timestamp"]


class NoAnswer(RuntimeError):
    pass


@dataclass
class Trip:
    seq: int
    sent_ns: int
    rx_ns: int  # 0: no answer within the timeout
    payload: bytes

    @property
    def rtt_ns(self) -> int:
        return self.rx_ns - self.sent_ns


@dataclass
class BlockResult:
    trips: list[Trip] = field(default_factory=list)
    late: int = 0  # answers that came after their timeout (discarded)
    unstamped: int = 0  # answers without a kernel timestamp


class Client:
    def __init__(self, lab: lab_mod.Lab) -> None:
        self.lab = lab
        self.sock = lab_mod.lab_socket(lab)
        self.sock.bind((lab.exchange_ip, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._cmsg = socket.CMSG_SPACE(_TIMESPEC.size)
        self.port: int | None = None  # where sends go, once target() said

    def close(self) -> None:
        self.sock.close()

    def target(self, port: int) -> None:
        """Sends go to the engine address at ``port`` (a connected UDP socket)."""
        if port != self.port:
            self.sock.connect((self.lab.engine_ip, port))
            self.port = port
        self.drain()

    def drain(self) -> int:
        """Discards whatever is queued (late answers of an earlier block)."""
        n = 0
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(2048)
                n += 1
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return n

    def run(
        self, payloads: list[tuple[bytearray, int]], *, pace_ns: int = 0, timeout_s: float = 1.0, give_up_after: int = 5
    ) -> BlockResult:
        """One round trip per payload: send, then wait for the order that answers it.

        ``pace_ns`` = 0 is ping-pong (the next update leaves when the order
        arrives); otherwise updates leave on a fixed schedule, one every
        ``pace_ns``, with the system idle in between.  Raises NoAnswer after
        ``give_up_after`` updates in a row got no answer.
        """
        out = BlockResult()
        sock = self.sock
        send, recvmsg = sock.send, sock.recvmsg
        time_ns, monotonic_ns, sleep = time.time_ns, time.monotonic_ns, time.sleep
        pack_ts, unpack_u64, unpack_ts = _U64.pack_into, _U64.unpack_from, _TIMESPEC.unpack_from
        cmsg, level, kind = self._cmsg, socket.SOL_SOCKET, SO_TIMESTAMPNS
        sock.settimeout(timeout_s)
        next_t = monotonic_ns()
        silent = 0
        try:
            for buf, seq in payloads:
                if pace_ns:
                    next_t += pace_ns
                    wait = next_t - monotonic_ns()
                    if wait > 0:
                        sleep(wait / 1e9)
                ts = time_ns()
                pack_ts(buf, OFF_TIMESTAMP, ts)
                send(buf)
                while True:
                    try:
                        data, anc, _flags, _addr = recvmsg(2048, cmsg)
                    except TimeoutError:
                        out.trips.append(Trip(seq, ts, 0, b""))
                        silent += 1
                        if silent >= give_up_after:
                            raise NoAnswer(f"no answer to {silent} updates in a row ({timeout_s:g} s each)") from None
                        break
                    if len(data) < MSG_LEN or unpack_u64(data, OFF_SEQ)[0] != seq:
                        out.late += 1
                        continue
                    rx = 0
                    for c_level, c_type, c_data in anc:
                        if c_level == level and c_type == kind:
                            sec, nsec = unpack_ts(c_data)
                            rx = sec * 1_000_000_000 + nsec
                    if not rx:
                        out.unstamped += 1
                        continue
                    out.trips.append(Trip(seq, ts, rx, data))
                    silent = 0
                    break
        finally:
            sock.settimeout(None)
        return out
