"""The program's parser, through BPF_PROG_TEST_RUN on the real program.

Bad input passes untouched and moves exactly one counter (malformed,
passed, or updates + unknown_symbol); a valid update that trades comes back
as a valid order whatever its framing (VLAN tag, IP options, long or odd
payload, garbage incoming UDP checksum).
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from frames import (
    ENGINE_MAC,
    ETH_LEN,
    EXCHANGE_MAC,
    EXCHANGE_PORT,
    FEED_PORT,
    LAB,
    TAG_LEN,
    P,
    XdpAction,
    check_order,
    eth,
    ip,
    update_frame,
    update_payload,
)
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import checksum

from hft_tui import libbpf
from hft_tui.constants import MAX_UDP_LEN, MSG_LEN, OFFSETS, SYMBOL_LEN, VERSION
from hft_tui.protocol import Update

TRADING = {
    "buy_target": "190.25",
    "sell_target": "190.75",
    "base_qty": 1,
    "max_order_qty": 1,
    "max_position": 4294967295,
}
# Trades one share: ask below buy_target.
GOOD = Update("AAPL", 1, P("190.00"), 100, P("190.20"), 100, 1234567890)

MALFORMED = {"malformed": 1}
PASSED = {"passed": 1}
UNKNOWN = {"updates": 1, "unknown_symbol": 1}


@pytest.fixture(autouse=True)
def trading(h):
    h.reset(symbols={"AAPL": TRADING})


def payload_with(field: str, value: bytes, u: Update = GOOD, length: int = MSG_LEN) -> bytes:
    p = update_payload(u, length)
    at = OFFSETS[field]
    return p[:at] + value + p[at + len(value) :]


GOOD_PAYLOAD = update_payload(GOOD)
UDP_HDR = len(UDP())
IP_HDR = len(IP())


def good(**kw) -> bytes:
    return update_frame(GOOD, **kw)


# -- bad input: passed untouched, one counter -----------------------------------

BAD_INPUT = [
    # payload on the feed port
    ("bad magic", good(payload=payload_with("magic", b"HU")), MALFORMED),
    ("magic zero", good(payload=payload_with("magic", b"\0\0")), MALFORMED),
    ("version 0", good(payload=payload_with("version", b"\0")), MALFORMED),
    ("version + 1", good(payload=payload_with("version", bytes([VERSION + 1]))), MALFORMED),
    ("type B (an order sent to the feed)", good(payload=payload_with("type", b"B")), MALFORMED),
    ("type S", good(payload=payload_with("type", b"S")), MALFORMED),
    ("type X", good(payload=payload_with("type", b"X")), MALFORMED),
    ("type 0", good(payload=payload_with("type", b"\0")), MALFORMED),
    ("payload 43 bytes", good(payload=GOOD_PAYLOAD[: MSG_LEN - 1]), MALFORMED),
    ("payload 0 bytes", good(payload=b""), MALFORMED),
    ("UDP datagram above the max", good(length=MAX_UDP_LEN - UDP_HDR + 1), MALFORMED),
    ("UDP length 8+43 inside a longer IP payload", good(udp_fields={"len": UDP_HDR + MSG_LEN - 1}), MALFORMED),
    # UDP header
    ("UDP length 0xffff", good(udp_fields={"len": 0xFFFF}), MALFORMED),
    ("UDP length 0", good(udp_fields={"len": 0}), MALFORMED),
    ("UDP length 7", good(udp_fields={"len": UDP_HDR - 1}), MALFORMED),
    ("UDP length beyond the IP payload", good(udp_fields={"len": UDP_HDR + MSG_LEN + 1}), MALFORMED),
    # IPv4 header
    *[(f"IHL {n}", good(ip_fields={"ihl": n}), MALFORMED) for n in range(5)],
    ("IP version 6 under EtherType IPv4", good(ip_fields={"version": 6}), MALFORMED),
    ("IP version 0", good(ip_fields={"version": 0}), MALFORMED),
    ("IP version 15", good(ip_fields={"version": 15}), MALFORMED),
    ("IP total length beyond the frame by 1", good(ip_fields={"len": IP_HDR + UDP_HDR + MSG_LEN + 1}), MALFORMED),
    ("IP total length 0xffff", good(ip_fields={"len": 0xFFFF}), MALFORMED),
    ("IP total length below the header", good(ip_fields={"len": IP_HDR - 1}), MALFORMED),
    (
        "IHL beyond the frame",
        good(payload=b"", ip_fields={"ihl": 15, "len": IP_HDR}, udp_fields={"len": UDP_HDR})[
            : ETH_LEN + IP_HDR + UDP_HDR
        ],
        MALFORMED,
    ),
    ("IP total length covers only the IP header", good(ip_fields={"len": IP_HDR}), MALFORMED),
    # Ethernet / VLAN
    ("802.1Q tag cut short", bytes(Ether(src=EXCHANGE_MAC, dst=ENGINE_MAC, type=0x8100) / Raw(b"\0\1")), MALFORMED),
    ("802.1ad tag cut short", bytes(eth() / Dot1AD())[: ETH_LEN + TAG_LEN - 1], MALFORMED),
    ("IPv4 after a VLAN tag cut short", good(tags=(Dot1Q,))[: ETH_LEN + TAG_LEN + IP_HDR - 1], MALFORMED),
    # well-formed, not a feed update
    ("ARP", bytes(eth() / ARP(psrc=LAB.exchange_ip, pdst=LAB.engine_ip)), PASSED),
    ("ARP in an 802.1Q tag", bytes(eth((Dot1Q,)) / ARP(psrc=LAB.exchange_ip, pdst=LAB.engine_ip)), PASSED),
    (
        "IPv6 UDP to the feed port",
        bytes(eth() / IPv6() / UDP(sport=EXCHANGE_PORT, dport=FEED_PORT) / Raw(GOOD_PAYLOAD)),
        PASSED,
    ),
    (
        "TCP to the feed port",
        bytes(eth() / ip() / TCP(sport=EXCHANGE_PORT, dport=FEED_PORT) / Raw(GOOD_PAYLOAD)),
        PASSED,
    ),
    ("ICMP echo", bytes(eth() / ip() / ICMP() / Raw(GOOD_PAYLOAD)), PASSED),
    ("IP protocol 0", bytes(eth() / ip(proto=0) / Raw(GOOD_PAYLOAD)), PASSED),
    ("UDP to another port", good(dport=FEED_PORT + 1), PASSED),
    ("UDP to port 0", good(dport=0), PASSED),
    ("UDP from the feed port to another", good(sport=FEED_PORT, dport=EXCHANGE_PORT), PASSED),
    ("first fragment (MF)", good(ip_fields={"flags": "MF"}), PASSED),
    ("later fragment (offset 1)", good(ip_fields={"frag": 1}), PASSED),
    ("last fragment (offset, no MF)", good(ip_fields={"frag": 185}), PASSED),
    ("QinQ 802.1ad + 802.1Q", good(tags=(Dot1AD, Dot1Q)), PASSED),
    ("QinQ 802.1Q + 802.1Q", good(tags=(Dot1Q, Dot1Q)), PASSED),
    ("QinQ cut after the second tag", good(tags=(Dot1AD, Dot1Q))[: ETH_LEN + 2 * TAG_LEN], PASSED),
    ("unknown EtherType", bytes(Ether(src=EXCHANGE_MAC, dst=ENGINE_MAC, type=0x88CC) / Raw(GOOD_PAYLOAD)), PASSED),
    (
        "802.3 length field",
        bytes(Ether(src=EXCHANGE_MAC, dst=ENGINE_MAC, type=len(GOOD_PAYLOAD)) / Raw(GOOD_PAYLOAD)),
        PASSED,
    ),
    ("Ethernet header only", bytes(Ether(src=EXCHANGE_MAC, dst=ENGINE_MAC, type=0x88CC)), PASSED),
    # valid updates of a symbol that is not configured
    ("unknown symbol", good(payload=update_payload(Update("ZZZZ", 1, 1, 1, 1, 1))), UNKNOWN),
    ("symbols are case-sensitive", good(payload=update_payload(Update("aapl", 1, 1, 1, 1, 1))), UNKNOWN),
    (
        "symbol padded with NULs, not spaces",
        good(payload=payload_with("symbol", b"AAPL".ljust(SYMBOL_LEN, b"\0"))),
        UNKNOWN,
    ),
]


@pytest.mark.parametrize("name,frame,counts", BAD_INPUT, ids=[n for n, _, _ in BAD_INPUT])
def test_bad_input_passes_untouched_and_moves_one_counter(h, name, frame, counts):
    r = h.run(frame)
    assert XdpAction(r.action) == XdpAction.PASS
    assert r.untouched
    assert r.counts == counts
    assert r.events == []
    assert h.state("AAPL").updates == 0


GOOD_FRAME = good()


@pytest.mark.parametrize("length", range(ETH_LEN, len(GOOD_FRAME)))
def test_every_truncation_of_a_valid_update_is_malformed(h, length):
    r = h.run(GOOD_FRAME[:length])
    assert XdpAction(r.action) == XdpAction.PASS
    assert r.untouched
    assert r.counts == MALFORMED


@pytest.mark.parametrize("length", range(ETH_LEN, len(good(tags=(Dot1Q,)))))
def test_every_truncation_of_a_tagged_update_is_malformed(h, length):
    r = h.run(good(tags=(Dot1Q,))[:length])
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, MALFORMED)


@pytest.mark.parametrize("length", [0, 1, ETH_LEN - 1])
def test_frames_shorter_than_an_ethernet_header_never_reach_xdp(h, length):
    # The kernel refuses them before the program runs; the parser's
    # truncated-Ethernet branch is for the verifier's sake.
    with pytest.raises(OSError) as exc:
        libbpf.test_run(h.prog_fd, GOOD_FRAME[:length])
    assert exc.value.errno == errno.EINVAL


# -- good input: a valid order ------------------------------------------------------


def partial_checksum() -> int:
    """What a veth socket leaves in the field (CHECKSUM_PARTIAL): the folded
    pseudo-header sum, not complemented."""
    pseudo = (
        socket.inet_aton(LAB.exchange_ip)
        + socket.inet_aton(LAB.engine_ip)
        + struct.pack("!BBH", 0, socket.IPPROTO_UDP, UDP_HDR + MSG_LEN)
    )
    return 0xFFFF & ~checksum(pseudo)


ROUTER_ALERT = bytes(IPOption_Router_Alert())

GOOD_INPUT = [
    ("plain", {}),
    ("802.1Q tag", {"tags": (Dot1Q,)}),
    ("802.1ad tag", {"tags": (Dot1AD,)}),
    *[(f"IHL {5 + n} (NOP options)", {"ip_options": b"\x01" * (4 * n)}) for n in range(1, 11)],
    ("router alert option", {"ip_options": ROUTER_ALERT}),
    ("options and a tag", {"ip_options": b"\x01" * 40, "tags": (Dot1AD,)}),
    ("payload 45 bytes (odd)", {"length": MSG_LEN + 1}),
    ("payload 101 bytes (odd)", {"length": 101}),
    ("payload 100 bytes", {"length": 100}),
    ("payload 1000 bytes", {"length": 1000}),
    ("largest datagram", {"length": MAX_UDP_LEN - UDP_HDR}),
    ("largest odd datagram", {"length": MAX_UDP_LEN - UDP_HDR - 1}),
    ("odd payload, options and a tag", {"length": 77, "ip_options": b"\x01" * 8, "tags": (Dot1Q,)}),
    ("incoming UDP checksum 0 (none)", {"udp_fields": {"chksum": 0}}),
    ("incoming UDP checksum garbage", {"udp_fields": {"chksum": 0x1234}}),
    ("incoming UDP checksum 0xffff", {"udp_fields": {"chksum": 0xFFFF}}),
    ("incoming UDP checksum partial (veth socket)", {"udp_fields": {"chksum": partial_checksum()}}),
    ("incoming IP checksum garbage", {"ip_fields": {"chksum": 0xBEEF}}),
    (
        "UDP datagram shorter than the IP payload",
        {
            "ip_fields": {"len": IP_HDR + UDP_HDR + MSG_LEN + 6},
            "length": MSG_LEN + 6,
            "udp_fields": {"len": UDP_HDR + MSG_LEN},
        },
    ),
    ("the largest payload with options", {"length": MAX_UDP_LEN - UDP_HDR, "ip_options": b"\x01" * 40}),
]


@pytest.mark.parametrize("name,kw", GOOD_INPUT, ids=[n for n, _ in GOOD_INPUT])
def test_valid_update_comes_back_as_a_valid_order(h, name, kw):
    seq_before = h.maps.totals().order_seq
    frame = update_frame(GOOD, **kw)
    r = h.run(frame)
    assert XdpAction(r.action) == XdpAction.TX
    order = r.order  # addresses, ports, checksums, lengths, untouched bytes: see frames.check_order
    assert (order.side, order.symbol, order.seq, order.timestamp) == ("B", GOOD.symbol, GOOD.seq, GOOD.timestamp)
    assert (order.price, order.qty, order.order_id) == (GOOD.ask, 1, seq_before + 1)
    assert r.counts == {"updates": 1, "orders": 1}
    assert [(e.kind, e.order_id) for e in r.events] == [("order", order.order_id)]
    parsed = Ether(r.frame_out)
    assert (parsed[UDP].sport, parsed[UDP].dport) == (FEED_PORT, EXCHANGE_PORT)
    assert (parsed[IP].src, parsed[IP].dst) == (LAB.engine_ip, LAB.exchange_ip)
    assert (parsed.src, parsed.dst) == (ENGINE_MAC, EXCHANGE_MAC)


@pytest.mark.parametrize("name,kw", GOOD_INPUT, ids=[n for n, _ in GOOD_INPUT])
def test_valid_update_of_an_unknown_symbol_passes_untouched_whatever_its_framing(h, name, kw):
    kw = dict(kw)
    length = kw.pop("length", MSG_LEN)
    r = h.run(update_frame(Update("ZZZZ", 1, 1, 1, 1, 1), length=length, **kw))
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, UNKNOWN)


def test_the_order_check_catches_any_single_byte_change(h):
    """A guard on the guard: frames.check_order is not vacuous."""
    frame = update_frame(GOOD, length=MSG_LEN + 3, tags=(Dot1Q,), ip_options=b"\x01" * 4)
    r = h.run(frame)
    assert r.order  # the untouched order passes
    for i in range(len(r.frame_out)):
        bad = bytearray(r.frame_out)
        bad[i] ^= 0x01
        with pytest.raises(AssertionError):
            check_order(frame, bytes(bad))
