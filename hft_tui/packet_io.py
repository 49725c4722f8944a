"""Whole frames on an interface: a packet socket that sends them and reads them.

The lab sends a feed as Ethernet frames when the frame itself matters (a
multicast group's MAC, a VLAN tag, the exact bytes a capture records) and
collects the engine's orders at its gateway the same way, so that a
VLAN-tagged order counts too.  A packet socket bound to one interface:

* reads only what arrives (PACKET_IGNORE_OUTGOING: the frames it sends
  itself are not read back), with the kernel's receive time
  (SO_TIMESTAMPNS) and the packet type (PACKET_HOST, PACKET_OTHERHOST...);
* gives a received frame back as it was on the wire: the kernel moves a
  VLAN tag into metadata before packet sockets see the frame, and
  PACKET_AUXDATA hands it over, so :meth:`PacketSocket.receive` puts it back;
* sends a frame as it is (no qdisc: PACKET_QDISC_BYPASS).

The socket is made by the caller, in the namespace of the interface
(lab.packet_socket); binding it by name resolves the name in the socket's
own namespace.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .wire import ETH_P_8021Q, insert_vlan_tag, uapi_defines

_PACKET = uapi_defines("if_packet.h")
PACKET_AUXDATA = _PACKET["PACKET_AUXDATA"]
PACKET_IGNORE_OUTGOING = _PACKET["PACKET_IGNORE_OUTGOING"]
PACKET_QDISC_BYPASS = _PACKET["PACKET_QDISC_BYPASS"]
TP_STATUS_VLAN_VALID = _PACKET["TP_STATUS_VLAN_VALID"]
TP_STATUS_VLAN_TPID_VALID = _PACKET["TP_STATUS_VLAN_TPID_VALID"]
SOL_PACKET = 263  # linux/socket.h; Python 3.11's socket module does not export it
# asm-generic/socket.h, as in simulator/sender.py
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
SOCKET_BUFFER = 16 << 20
MAX_FRAME = 65535

# struct tpacket_auxdata: tp_status, tp_len, tp_snaplen, tp_mac, tp_net,
# tp_vlan_tci, tp_vlan_tpid
_AUXDATA = struct.Struct("=IIIHHHH")
_TIMESPEC = struct.Struct("=qq")


_BPF = uapi_defines("bpf_common.h")
_FILTER = uapi_defines("filter.h")
SO_ATTACH_FILTER = 26  # asm-generic/socket.h
_SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return _SOCK_FILTER.pack(code, jt, jf, k & 0xFFFFFFFF)


def mark_foreign_macs(sock: socket.socket, mac: bytes, keep: int) -> None:
    """A classic BPF filter on a UDP socket: a datagram whose Ethernet source
    MAC is not ``mac`` is cut to ``keep`` bytes from its UDP header (8: an
    empty datagram), so the reader sees that it came from someone else.

    A UDP socket never sees the link layer; its filter can (SKF_LL_OFF), and
    the kernel runs it after checking the UDP checksum.
    """
    ld, jeq, ret = _BPF["BPF_LD"] | _BPF["BPF_ABS"], _BPF["BPF_JMP"] | _BPF["BPF_JEQ"] | _BPF["BPF_K"], _BPF["BPF_RET"]
    ll = _FILTER["SKF_LL_OFF"]
    hi, lo = struct.unpack("!IH", mac)
    prog = b"".join(
        (
            _insn(ld | _BPF["BPF_W"], ll + 6),  # source MAC, bytes 0..3
            _insn(jeq, hi, 0, 2),
            _insn(ld | _BPF["BPF_H"], ll + 10),  # bytes 4..5
            _insn(jeq, lo, 1, 0),
            _insn(ret | _BPF["BPF_K"], keep),
            _insn(ret | _BPF["BPF_K"], 0xFFFFFFFF),  # the whole datagram
        )
    )
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("@HP", len(prog) // _SOCK_FILTER.size, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies the program


@dataclass(frozen=True)
class Received:
    frame: bytes  # as it was on the wire (a VLAN tag put back)
    rx_ns: int  # the kernel's receive time, CLOCK_REALTIME ns (0 if none)
    pkttype: int  # socket.PACKET_HOST, PACKET_OTHERHOST, ...


class PacketSocket:
    """A packet socket bound to ``iface`` (see the module doc); ``sock`` is a
    fresh ``socket(AF_PACKET, SOCK_RAW, 0)`` made in the interface's namespace."""

    def __init__(self, sock: socket.socket, iface: str, proto: int) -> None:
        self.sock = sock
        self.iface = iface
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # Bound with the protocol last: nothing queues before the options hold.
        sock.bind((iface, proto))
        sock.setblocking(False)
        self._cmsg = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size)

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def mac(self) -> str:
        """The interface's own MAC."""
        return ":".join(f"{b:02x}" for b in self.sock.getsockname()[4])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, frame: bytes) -> None:
        """Sends one whole frame; waits while the device queue is full."""
        while True:
            try:
                self.sock.send(frame)
                return
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == 105:  # ENOBUFS: the queue is full, go again
                    continue
                raise

    def receive(self) -> Iterator[Received]:
        """Every frame waiting now, without blocking."""
        recv, cmsg = self.sock.recvmsg, self._cmsg
        while True:
            try:
                data, anc, _flags, addr = recv(MAX_FRAME, cmsg)
            except BlockingIOError:
                return
            rx_ns = 0
            for level, kind, value in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(value)
                    if status & TP_STATUS_VLAN_VALID:
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = ETH_P_8021Q
                        data = insert_vlan_tag(data, tpid, tci)
                elif level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    rx_ns = sec * 1_000_000_000 + nsec
            yield Received(data, rx_ns, addr[2])
