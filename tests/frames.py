"""Frames for BPF_PROG_TEST_RUN, the checks of an order frame, and a harness.

Frames are built with scapy around payloads from hft_tui.protocol, so every
protocol offset and constant comes from ebpf/hft_protocol.h.  They are only
handed to the kernel's BPF_PROG_TEST_RUN on a loaded (unattached) program:
nothing here puts a frame on a wire.

The harness runs frames through the real program with hft_tui.libbpf.test_run
and reports what changed in the real maps (per-CPU counters summed, ring
buffer drained) so the tests can be tables of frame -> expected outcome.
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, UDP, in4_chksum
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import checksum

from hft_tui import libbpf
from hft_tui.config import engine_params, symbol_params
from hft_tui.constants import (
    BPF_F_LOCK,
    COUNTERS,
    CTR_REJECT_BASE,
    DEFAULT_FEED_PORT,
    KILL_OFF,
    MSG_LEN,
    REJECT_REASONS,
)
from hft_tui.events import EngineEvent
from hft_tui.lab import Lab
from hft_tui.layout import GlobalState, Totals
from hft_tui.protocol import Order, Update, decode_order, decode_update, encode_update, parse_price

# -- kernel ABI values, read from the uapi headers the program compiles against

UAPI = Path("/usr/include/linux")


def _header_defines(header: str, names: tuple[str, ...]) -> dict[str, int]:
    text = (UAPI / header).read_text()
    out = {}
    for name in names:
        m = re.search(rf"^#define[ \t]+{name}[ \t]+(0x[0-9A-Fa-f]+|\d+)", text, re.MULTILINE)
        assert m, f"{name} not found in {UAPI / header}"
        out[name] = int(m.group(1), 0)
    return out


ETHER = _header_defines("if_ether.h", ("ETH_HLEN", "ETH_P_IP", "ETH_P_8021Q", "ETH_P_8021AD"))
ETH_P_IP = ETHER["ETH_P_IP"]
VLAN_TYPES = (ETHER["ETH_P_8021Q"], ETHER["ETH_P_8021AD"])


class XdpAction(enum.IntEnum):
    """enum xdp_action of linux/bpf.h (test_layout.py checks these with gcc)."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


# -- addresses: lab 20's, though these frames never leave BPF_PROG_TEST_RUN

LAB = Lab.numbered(20)
ENGINE_MAC = "02:00:00:00:14:01"
EXCHANGE_MAC = "02:00:00:00:14:02"
EXCHANGE_PORT = 40000
FEED_PORT = DEFAULT_FEED_PORT

ETH_LEN, TAG_LEN, IP_LEN, UDP_LEN = ETHER["ETH_HLEN"], len(Dot1Q()), len(IP()), len(UDP())


def P(text: str) -> int:
    """A decimal price to integer units, for readable tables."""
    return parse_price(text)


def eth(tags=()) -> Ether:
    """Exchange -> engine Ethernet header with VLAN tag layers (Dot1Q/Dot1AD classes)."""
    pkt = Ether(src=EXCHANGE_MAC, dst=ENGINE_MAC)
    for i, tag in enumerate(tags):
        pkt = pkt / tag(vlan=100 + i)
    return pkt


def ip(**fields) -> IP:
    return IP(src=LAB.exchange_ip, dst=LAB.engine_ip, **fields)


def update_payload(u: Update, length: int = MSG_LEN) -> bytes:
    return encode_update(u, length)


def update_frame(
    u: Update,
    *,
    length: int = MSG_LEN,
    payload: bytes | None = None,
    tags=(),
    ip_options: bytes = b"",
    dport: int = FEED_PORT,
    sport: int = EXCHANGE_PORT,
    ip_fields: dict | None = None,
    udp_fields: dict | None = None,
) -> bytes:
    """An update as the exchange sends it: Ether [/tags] / IP / UDP / payload.

    ``ip_fields``/``udp_fields`` override header fields (ihl, len, flags,
    chksum, ...) for malformed frames; scapy fills the rest consistently.
    """
    body = update_payload(u, length) if payload is None else payload
    ip_kw = dict(ip_fields or {})
    if ip_options:
        ip_kw["options"] = ip_options
    pkt = eth(tags) / ip(**ip_kw) / UDP(sport=sport, dport=dport, **(udp_fields or {})) / Raw(body)
    return bytes(pkt)


# -- order checks ---------------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """A frame cut at its headers (VLAN tags, IPv4, UDP), raw and dissected."""

    eth_raw: bytes  # Ethernet header and tags
    ip_raw: bytes  # IPv4 header with options
    udp_raw: bytes  # UDP header
    ip: IP  # ip_raw dissected
    udp: UDP  # udp_raw dissected
    payload: bytes  # the UDP payload, udp.len - 8 bytes
    tail: bytes  # bytes after the UDP datagram (IP payload rest, Ethernet padding)


def split(frame: bytes) -> Parts:
    """Cuts with scapy's header dissectors (header lengths from scapy too)."""
    l3 = ETH_LEN
    etype = Ether(frame[:ETH_LEN]).type
    while etype in VLAN_TYPES:
        etype = Dot1Q(frame[l3 : l3 + TAG_LEN]).type
        l3 += TAG_LEN
    assert etype == ETH_P_IP, f"not IPv4 (EtherType {etype:#06x})"
    l4 = l3 + IP(frame[l3 : l3 + IP_LEN]).ihl * 4
    ip_raw, udp_raw = frame[l3:l4], frame[l4 : l4 + UDP_LEN]
    udp = UDP(udp_raw)
    end = l4 + udp.len
    return Parts(frame[:l3], ip_raw, udp_raw, IP(ip_raw), udp, frame[l4 + UDP_LEN : end], frame[end:])


def checksums_ok(parts: Parts) -> tuple[bool, bool]:
    """(IPv4 header checksum right, UDP checksum right), by scapy's checksum
    routines over the raw bytes: a right checksum sums to 0."""
    ip_ok = checksum(parts.ip_raw) == 0
    # The pseudo header: addresses, protocol and the UDP length (which may
    # be shorter than the IP payload); no options, so no source-route rewrite.
    pseudo = IP(src=parts.ip.src, dst=parts.ip.dst, ihl=IP_LEN // 4, len=IP_LEN + parts.udp.len)
    udp_ok = in4_chksum(socket.IPPROTO_UDP, pseudo, parts.udp_raw + parts.payload) == 0
    return ip_ok, udp_ok


def check_order(frame_in: bytes, frame_out: bytes) -> Order:
    """Asserts frame_out is the order the engine makes of the update frame_in.

    Addresses and ports swapped, every other header field and byte kept,
    IPv4 and UDP checksums right (UDP non-zero), payload a valid order for
    the same symbol, seq and timestamp.  Returns the decoded order.
    """
    assert len(frame_out) == len(frame_in), f"order is {len(frame_out)} bytes, update was {len(frame_in)}"
    a, b = split(frame_in), split(frame_out)
    ea, eb = Ether(a.eth_raw), Ether(b.eth_raw)
    assert (eb.src, eb.dst) == (ea.dst, ea.src), "MAC addresses not swapped"
    assert ea.type == eb.type and a.eth_raw[ETH_LEN:] == b.eth_raw[ETH_LEN:], "EtherType or VLAN tag changed"
    assert (b.ip.src, b.ip.dst) == (a.ip.src, a.ip.dst)[::-1], "IP addresses not swapped"
    for name in ("version", "ihl", "tos", "len", "id", "flags", "frag", "ttl", "proto"):
        assert b.ip.getfieldval(name) == a.ip.getfieldval(name), f"IP {name} changed"
    assert b.ip_raw[IP_LEN:] == a.ip_raw[IP_LEN:], "IP options changed"
    assert (b.udp.sport, b.udp.dport) == (a.udp.dport, a.udp.sport), "UDP ports not swapped"
    assert b.udp.len == a.udp.len, "UDP length changed"
    ip_ok, udp_ok = checksums_ok(b)
    assert ip_ok, "IPv4 header checksum wrong"
    assert udp_ok, "UDP checksum wrong"
    assert b.udp.chksum != 0, "UDP checksum is zero (means 'no checksum')"
    assert b.payload[MSG_LEN:] == a.payload[MSG_LEN:], "payload beyond the message changed"
    assert b.tail == a.tail, "bytes after the datagram changed"
    order = decode_order(b.payload)
    u = decode_update(a.payload)
    assert (order.symbol, order.seq, order.timestamp) == (u.symbol, u.seq, u.timestamp), "order not of this update"
    return order


# -- the harness ----------------------------------------------------------

REJECT_COUNTERS = {name: CTR_REJECT_BASE + idx for idx, name in REJECT_REASONS.items()}
PLAIN_COUNTERS = {name: idx for idx, name in COUNTERS.items()}
assert not set(REJECT_COUNTERS) & set(PLAIN_COUNTERS), "counter and reject names overlap"
ALL_COUNTERS = {**PLAIN_COUNTERS, **REJECT_COUNTERS}
# Orders and kills travel alone in `events` (the journal's lossless path);
# rejects and sampled updates in `tape_events` (ebpf/hft_structs.h).
RING_KINDS = {"events": ("order", "kill"), "tape_events": ("reject", "update")}


@dataclass
class Result:
    action: int
    frame_in: bytes
    frame_out: bytes
    counts: dict[str, int]  # counters that moved, by name
    events: list[EngineEvent] = field(default_factory=list)

    @property
    def order(self) -> Order:
        assert self.action == XdpAction.TX, f"no order: action {XdpAction(self.action).name}, counts {self.counts}"
        return check_order(self.frame_in, self.frame_out)

    @property
    def untouched(self) -> bool:
        return self.frame_out == self.frame_in


class Harness:
    """The loaded program, its maps and its ring buffer, driven by test_run."""

    def __init__(self, prog_fd: int, maps) -> None:
        self.prog_fd = prog_fd
        self.maps = maps
        # One consumer per ring, so each record's ring is known.
        self._records: dict[str, list[bytes]] = {ring: [] for ring in RING_KINDS}
        self._rings = {ring: libbpf.RingBuffer(maps.fds[ring], self._records[ring].append) for ring in RING_KINDS}
        self._seq = itertools.count(1)

    def close(self) -> None:
        for rb in self._rings.values():
            rb.close()

    # -- state --
    def reset(self, symbols: dict[str, dict] | None = None, engine: dict | None = None, deadman_ms: int = 0) -> None:
        """Engine config written, symbols re-added with fresh state, totals,
        kill switch, global throttle and heartbeat zeroed, events drained.
        Values go through the real validation (symbol_params, engine_params)."""
        for name in self.maps.symbol_names():
            self.maps.remove_symbol(name)
        self.maps.write_global(engine_params({"update_sample": 0, **(engine or {})}), deadman_ms=deadman_ms, version=1)
        self.maps.set_kill(KILL_OFF)
        zero = ctypes.c_uint32(0)
        libbpf.update(self.maps.fds["totals"], zero, Totals())
        self.refill_global_bucket()
        self.maps.beat(0)
        for name, values in (symbols or {}).items():
            self.set_symbol(name, values)
        self.drain()

    def refill_global_bucket(self) -> None:
        """The global throttle's state zeroed: the next order finds a full bucket."""
        libbpf.update(self.maps.fds["global_state"], ctypes.c_uint32(0), GlobalState(), BPF_F_LOCK)

    def set_symbol(self, name: str, values: dict) -> None:
        self.maps.write_symbol(name, symbol_params(name, values))

    def state(self, name: str):
        got = self.maps.read_symbol(name)
        assert got is not None, f"symbol {name} is not configured"
        return got[1]

    def next_seq(self) -> int:
        return next(self._seq)

    def counters(self) -> dict[str, int]:
        raw = self.maps.counters()
        return {name: raw[idx] for name, idx in ALL_COUNTERS.items()}

    def drain(self) -> list[EngineEvent]:
        """Every record in both rings now, orders ring first (consume: no
        epoll wakeup needed).  Asserts each kind travelled in its own ring."""
        out = []
        for ring, kinds in RING_KINDS.items():
            self._rings[ring].consume()
            events = [EngineEvent.from_record(r) for r in self._records[ring]]
            self._records[ring].clear()
            stray = [e.kind for e in events if e.kind not in kinds]
            assert not stray, f"{stray} events in the {ring} ring (it carries {kinds})"
            out += events
        return out

    # -- running frames --
    def run_raw(self, frame: bytes) -> tuple[int, bytes]:
        action, out, _ = libbpf.test_run(self.prog_fd, frame, 1)
        return action, out

    def run(self, frame: bytes) -> Result:
        before = self.counters()
        action, out = self.run_raw(frame)
        after = self.counters()
        moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        return Result(action, frame, out, moved, self.drain())

    def update(
        self,
        symbol: str,
        bid: int = 0,
        bid_qty: int = 0,
        ask: int = 0,
        ask_qty: int = 0,
        *,
        seq: int | None = None,
        timestamp: int = 0,
        **frame_kw,
    ) -> Result:
        """Runs one update frame; seq defaults to the next of an increasing counter."""
        u = Update(symbol, self.next_seq() if seq is None else seq, bid, bid_qty, ask, ask_qty, timestamp)
        return self.run(update_frame(u, **frame_kw))
