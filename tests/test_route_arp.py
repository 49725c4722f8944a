"""The ARP frames of the gateway's resolution, read and written by scapy as the
wire sees them, and the choice of the source address.  Pure: no socket opened.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest
from scapy.layers.l2 import ARP, Ether

from hft_tui.errors import EngineError
from hft_tui.route import arp_reply_sender, arp_request_frame, choose_source_ip

pytestmark = pytest.mark.pure

ENGINE_MAC = "0a:00:00:00:00:01"
GATEWAY_MAC = "02:00:00:00:00:03"
ENGINE_IP = IPv4Address("198.18.0.1")
GATEWAY_IP = IPv4Address("198.18.0.3")


def test_the_request_asks_everyone_on_the_link_who_has_the_gateway():
    frame = Ether(arp_request_frame(ENGINE_MAC, ENGINE_IP, GATEWAY_IP))
    assert (frame.dst, frame.src, frame.type) == ("ff:ff:ff:ff:ff:ff", ENGINE_MAC, 0x0806)
    arp = frame[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 1)  # who-has
    assert (arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
        ENGINE_MAC,
        str(ENGINE_IP),
        "00:00:00:00:00:00",
        str(GATEWAY_IP),
    )


def reply(op: int = 2, psrc: str = str(GATEWAY_IP), hwsrc: str = GATEWAY_MAC) -> bytes:
    return bytes(
        Ether(dst=ENGINE_MAC, src=hwsrc) / ARP(op=op, hwsrc=hwsrc, psrc=psrc, hwdst=ENGINE_MAC, pdst=str(ENGINE_IP))
    )


def test_the_gateways_reply_gives_its_mac():
    assert arp_reply_sender(reply(), GATEWAY_IP) == GATEWAY_MAC


@pytest.mark.parametrize(
    "frame,why",
    [
        (reply(op=1), "a request, not a reply"),
        (reply(psrc="198.18.0.9"), "another host's reply"),
        (reply()[:30], "cut short"),
        (bytes(Ether(dst=ENGINE_MAC, src=GATEWAY_MAC, type=0x0800)) + bytes(28), "not ARP"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_nothing_else_is_taken_for_the_gateways_answer(frame, why):
    assert arp_reply_sender(frame, GATEWAY_IP) is None, why


def test_the_source_is_the_interfaces_address_on_the_next_hops_network_first():
    addresses = [IPv4Interface("10.1.0.5/24"), IPv4Interface("198.18.0.1/24")]
    assert choose_source_ip("hft0", addresses, GATEWAY_IP) == ENGINE_IP
    assert choose_source_ip("hft0", addresses, IPv4Address("172.16.0.1")) == IPv4Address("10.1.0.5")  # else the primary


def test_an_interface_without_an_ipv4_address_needs_src_ip():
    with pytest.raises(
        EngineError, match=r"^hft0 has no IPv4 address to send orders from: set \[engine.gateway\] src_ip$"
    ):
        choose_source_ip("hft0", [], GATEWAY_IP)
