"""Feed frames for BPF_PROG_TEST_RUN (IEX-TP, MoldUDP64/ITCH) and the checks of an order frame.

Payloads come from hft_tui.feeds (the layouts of ebpf/feed_iex.h and
ebpf/feed_itch.h), frames from scapy.  An order frame carries every order of
one packet: check_order_frame checks its headers (the route: the gateway's,
or the packet's turned around; the VLAN tag kept; TTL 64), both checksums by
scapy, and decodes its orders.  FeedHarness is frames.Harness with the
feed's own maps: the route, the feed sources, the channels and the feed
counters, reset before every test.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dpkt
from frames import (
    ENGINE_MAC,
    ETH_LEN,
    EXCHANGE_MAC,
    EXCHANGE_PORT,
    FEED_PORT,
    LAB,
    TAG_LEN,
    Harness,
    Result,
    XdpAction,
    checksums_ok,
    split,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from hft_tui import lab, libbpf
from hft_tui.feeds import decode_orders, iex, itch
from hft_tui.layout import ChannelKey
from hft_tui.maps import EngineMaps, FeedSources, Gateway
from hft_tui.program import bcc_map_fds, load_strategy
from hft_tui.protocol import Order

GATEWAY = Gateway(
    ip="198.18.20.3", port=9100, mac="02:00:00:00:14:03", src_ip=LAB.engine_ip, src_port=FEED_PORT, src_mac=ENGINE_MAC
)
OPEN_FEED = FeedSources()  # any sender
IEX_SESSION, ITCH_SESSION = 1150681088, "TESTSESS01"
GROUP, GROUP_MAC = "239.1.1.1", "01:00:5e:01:01:01"


def udp_frame(
    payload: bytes,
    *,
    dport: int = FEED_PORT,
    sport: int = EXCHANGE_PORT,
    src: str = LAB.exchange_ip,
    dst: str = LAB.engine_ip,
    smac: str = EXCHANGE_MAC,
    dmac: str = ENGINE_MAC,
    vlan: int | None = None,
) -> bytes:
    pkt = Ether(src=smac, dst=dmac)
    if vlan is not None:
        pkt = pkt / Dot1Q(vlan=vlan, prio=3)
    return bytes(pkt / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))


def iex_frame(
    messages: list, first_seq: int, *, session: int = IEX_SESSION, channel: int = 1, tops: bool = False, **kw
) -> bytes:
    """A segment of these messages (iex.* dataclasses or raw bytes) in a frame."""
    raw = tuple(m if isinstance(m, bytes) else iex.encode_message(m) for m in messages)
    seg = iex.Segment(iex.PROTO_TOPS if tops else iex.PROTO_DEEP, channel, session, first_seq, raw)
    return udp_frame(iex.encode_segment(seg), **kw)


def itch_frame(messages: list, seq: int, *, session: str = ITCH_SESSION, **kw) -> bytes:
    raw = tuple(m if isinstance(m, bytes) else itch.encode_message(m) for m in messages)
    return udp_frame(itch.encode_packet(itch.MoldPacket(session, seq, raw)), **kw)


def offer(symbol: str, price: int, size: int = 100, **kw) -> iex.PriceLevel:
    """A DEEP sell-side level: an offer, the buy rule applies."""
    return iex.PriceLevel("S", symbol, price, size, **kw)


def bid(symbol: str, price: int, size: int = 100, **kw) -> iex.PriceLevel:
    """A DEEP buy-side level: a bid, the sell rule applies."""
    return iex.PriceLevel("B", symbol, price, size, **kw)


def skipped(length: int = 30, type_: bytes = b"T") -> bytes:
    """A message of a type the engine walks past (a trade report's type, zeros)."""
    return type_ + bytes(length - 1)


def check_order_frame(frame_in: bytes, frame_out: bytes, gateway: Gateway | None) -> list[Order]:
    """Asserts frame_out is an order frame answering frame_in; returns its orders.

    With a gateway: from the interface (its MAC, src_ip:src_port) to the
    gateway's MAC, ip and port.  Without: the packet's addresses and ports
    turned around.  Either way the VLAN tag (TPID, TCI) of the feed packet,
    IPv4 without options and TTL 64, lengths exact, both checksums right (UDP
    non-zero), the payload whole 44-byte orders and nothing after it.
    """
    a, b = split(frame_in), split(frame_out)
    ea, eb = Ether(a.eth_raw[:ETH_LEN]), Ether(b.eth_raw[:ETH_LEN])
    assert a.eth_raw[ETH_LEN - 2 :] == b.eth_raw[ETH_LEN - 2 :], "EtherType or VLAN tag not the feed's"
    if gateway:
        want = (gateway.src_mac, gateway.mac, gateway.src_ip, gateway.ip, gateway.src_port, gateway.port)
    else:
        want = (ea.dst, ea.src, a.ip.dst, a.ip.src, a.udp.dport, a.udp.sport)
    got = (eb.src, eb.dst, b.ip.src, b.ip.dst, b.udp.sport, b.udp.dport)
    assert got == want, f"route {got}, expected {want}"
    assert (b.ip.version, b.ip.ihl, b.ip.ttl, b.ip.proto, b.ip.flags, b.ip.frag) == (4, 5, 64, 17, 0, 0)
    assert b.ip.len == IP(b.ip_raw).len == len(b.ip_raw) + len(b.udp_raw) + len(b.payload)
    assert b.udp.len == 8 + len(b.payload) and b.tail == b"", "bytes after the orders"
    assert len(frame_out) == len(b.eth_raw) + b.ip.len
    ip_ok, udp_ok = checksums_ok(b)
    assert ip_ok, "IPv4 header checksum wrong"
    assert udp_ok and b.udp.chksum != 0, "UDP checksum wrong"
    return decode_orders(b.payload)


@dataclass
class FeedResult(Result):
    feed: dict[str, int] = field(default_factory=dict)  # feed counters that moved
    gateway: Gateway | None = None

    @property
    def orders(self) -> list[Order]:
        assert self.action == XdpAction.TX, f"no order: action {XdpAction(self.action).name}, counts {self.counts}"
        return check_order_frame(self.frame_in, self.frame_out, self.gateway)


class FeedHarness(Harness):
    """frames.Harness plus the route, the feed sources, the channels and the feed counters."""

    def __init__(self, prog_fd: int, maps: EngineMaps, feed: str) -> None:
        super().__init__(prog_fd, maps)
        self.feed = feed
        self.gateway: Gateway | None = None

    def reset(  # type: ignore[override]
        self,
        symbols: dict[str, dict] | None = None,
        engine: dict | None = None,
        deadman_ms: int = 0,
        *,
        gateway: Gateway | None = GATEWAY,
        sources: FeedSources = OPEN_FEED,
        iface_mac: str | None = ENGINE_MAC,
    ) -> None:
        """``iface_mac``: the interface's MAC for reflection (a gateway carries its own)."""
        super().reset(symbols, engine, deadman_ms)
        self.gateway = gateway
        self.maps.write_route(gateway, iface_mac=None if gateway else iface_mac)
        self.maps.write_feed_sources(sources)
        for key in libbpf.keys(self.maps.fds["channels"], ChannelKey):
            libbpf.delete(self.maps.fds["channels"], key)

    def feed_counts(self) -> dict[str, int]:
        return asdict(self.maps.feed_counts())

    def run(self, frame: bytes) -> FeedResult:
        before = self.feed_counts()
        r = super().run(frame)
        after = self.feed_counts()
        moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        return FeedResult(r.action, r.frame_in, r.frame_out, r.counts, r.events, feed=moved, gateway=self.gateway)

    def channel(self):
        """The one channel of the test (asserted to be the only one)."""
        (ch,) = self.maps.channels(self.feed)
        return ch


@contextlib.contextmanager
def feed_harness(feed: str, cflags: tuple[str, ...] = (), *, backtest: bool = False) -> Iterator[FeedHarness]:
    """The strategy built for ``feed``, loaded (unattached), with its harness."""
    b, fd = load_strategy(feed, cflags, backtest=backtest)
    h = FeedHarness(fd, EngineMaps(bcc_map_fds(b), owns_fds=False), feed)
    try:
        yield h
    finally:
        h.close()
        b.cleanup()


__all__ = [
    "CAPTURES",
    "GATEWAY",
    "GROUP",
    "GROUP_MAC",
    "TAG_LEN",
    "FeedHarness",
    "FeedResult",
    "bid",
    "capture",
    "check_order_frame",
    "feed_harness",
    "iex_frame",
    "itch_frame",
    "offer",
    "payload_of",
    "reframed",
    "skipped",
    "udp_frame",
]


# -- the real captures (/work/shared/data/feeds; its README names each) ------------

CAPTURES = Path(os.environ.get("HFT_FEED_CAPTURES", "/work/shared/data/feeds"))


def capture(name: str) -> list[bytes]:
    """The frames of a capture, as captured (dpkt's pcap reader, micro- or nanosecond)."""
    with (CAPTURES / name).open("rb") as f:
        return [bytes(frame) for _, frame in dpkt.pcap.Reader(f)]


def payload_of(frame: bytes) -> bytes:
    return split(frame).payload


def reframed(
    frame: bytes,
    *,
    dport: int | None = None,
    src: str | None = None,
    dst: str | None = None,
    mold_session: str | None = None,
    mold_seq: int | None = None,
) -> bytes:
    """The frame with framing fields rewritten (the README's rule: addresses, ports, the
    MoldUDP64 session and sequence), lengths and checksums made right; message bytes kept."""
    pkt = Ether(frame)
    payload = bytearray(bytes(pkt[UDP].payload))
    if mold_session is not None:
        payload[: itch.SESSION_LEN] = mold_session.encode("ascii")
    if mold_seq is not None:
        payload[itch.SESSION_LEN : itch.SESSION_LEN + 8] = mold_seq.to_bytes(8, "big")
    if src is not None:
        pkt[IP].src = src
    if dst is not None:
        pkt[IP].dst = dst
    if dport is not None:
        pkt[UDP].dport = dport
    pkt[UDP].remove_payload()
    pkt[UDP].add_payload(Raw(bytes(payload)))
    del pkt[IP].len, pkt[IP].chksum, pkt[UDP].len, pkt[UDP].chksum
    return bytes(pkt)


class ExchangePort:
    """The exchange's end of a lab: whole frames out, and the order frames sent to
    ``gateway_port`` in, as they were on the wire (lab.packet_socket: a VLAN tag the
    kernel moved into metadata put back; what it sends itself is not read back)."""

    def __init__(self, L, gateway_port: int) -> None:
        self.psock = lab.packet_socket(L)
        self.gateway_port = gateway_port

    def close(self) -> None:
        self.psock.close()

    def send(self, frame: bytes) -> None:
        self.psock.send(frame)

    def orders(self, want: int, timeout: float = 3.0) -> list[bytes]:
        """Order frames (UDP to the gateway's port) received, until ``want`` or the timeout."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            if not select.select([self.psock], [], [], 0.05)[0]:
                continue
            for r in self.psock.receive():
                frame = Ether(r.frame)
                if frame.haslayer(UDP) and frame[UDP].dport == self.gateway_port:
                    got.append(r.frame)
        return got
