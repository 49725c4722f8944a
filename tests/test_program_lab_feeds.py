"""Each feed's program attached to a real veth pair, native and generic, orders to a gateway.

The exchange side of the lab sends whole frames with a packet socket (the
feed's own formats, to a multicast group, with and without a VLAN tag, each
packet twice as an A line and a B line) and collects the order frames on its
interface with a packet socket: the gateway is the exchange's MAC with an
address of its own, so every order frame arrives there whatever its IP.  A
VLAN tag the receiving kernel moved into metadata is put back
(lab.packet_socket) before the frame is checked.  Each order frame is checked whole
(feed_frames.check_order_frame: route, TTL, lengths, checksums) and the
orders against what was sent: ids gap-free, one set of orders for the two
lines, the duplicates counted by the channel.

The program is loaded and attached here with its maps written first (the
route and the sources before the first packet), as engine.attach does; the
control plane's attach for a feed is tested by its own track.

Labs 100..105 are this module's (one per feed and mode).
"""

from __future__ import annotations

import pytest
from feed_frames import GROUP, GROUP_MAC, ExchangePort, check_order_frame, iex_frame, itch_frame, offer, udp_frame
from frames import P
from pyroute2 import IPRoute
from scapy.layers.l2 import Dot1Q, Ether

from hft_tui import lab, netlink
from hft_tui.config import engine_params, symbol_params
from hft_tui.feeds import itch
from hft_tui.maps import EngineMaps, FeedSources, Gateway
from hft_tui.program import bcc_map_fds, load_strategy
from hft_tui.protocol import Update, encode_update

FEEDS = ("hft1", "iex", "itch")
MODES = ("native", "generic")
LAB_NUMBER = {(feed, mode): 100 + 2 * i + j for i, feed in enumerate(FEEDS) for j, mode in enumerate(MODES)}
PORT, GATEWAY_PORT = 9000, 9100
VLAN = 77
BASE = {"buy_target": "100.00", "sell_target": "101.00", "base_qty": 10, "max_position": 100_000}


def mac_of(ipr, ifname: str) -> str:
    return ipr.link("get", index=netlink.ifindex(ipr, ifname))[0].get_attr("IFLA_ADDRESS")


@pytest.fixture
def attached(make_lab, request):
    """(feed, lab, maps, gateway, exchange MAC, engine MAC, ExchangePort): the program for the feed
    attached in the mode, its maps written before attach."""
    feed, mode = request.param
    L = make_lab(LAB_NUMBER[(feed, mode)])
    with IPRoute() as ipr:
        engine_mac = mac_of(ipr, L.engine_iface)
    exchange_mac = lab.in_namespace(lambda: _mac_in_ns(L.exchange_iface), L)
    b, fd = load_strategy(feed)
    maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
    gateway = Gateway(
        ip=L.exchange_ip.rsplit(".", 1)[0] + ".3",
        port=GATEWAY_PORT,
        mac=exchange_mac,
        src_ip=L.engine_ip,
        src_port=PORT,
        src_mac=engine_mac,
    )
    maps.write_global(engine_params({"feed_port": PORT, "update_sample": 0}), deadman_ms=0, version=1)
    maps.write_route(gateway)
    maps.write_feed_sources(FeedSources(sources=(f"{L.exchange_ip}/32",), macs=(exchange_mac,)))
    maps.write_symbol("AAPL", symbol_params("AAPL", BASE))
    ex = ExchangePort(L, GATEWAY_PORT)
    with IPRoute() as ipr:
        netlink.attach_xdp(ipr, L.engine_iface, fd, mode)
    try:
        yield feed, L, maps, gateway, exchange_mac, engine_mac, ex
    finally:
        ex.close()
        with IPRoute() as ipr:
            netlink.detach_xdp(ipr, L.engine_iface, mode)
        b.cleanup()


def _mac_in_ns(ifname: str) -> str:
    with IPRoute() as ipr:
        return mac_of(ipr, ifname)


def packets(feed: str, L: lab.Lab, exchange_mac: str, engine_mac: str, vlan: int | None) -> list[tuple[bytes, int]]:
    """(frame, orders it makes) of each packet the test sends, seqs counting up."""
    addr = {"src": L.exchange_ip, "smac": exchange_mac, "dport": PORT, "vlan": vlan}
    group = {**addr, "dst": GROUP, "dmac": GROUP_MAC}
    first = 1 if vlan is None else 101
    if feed == "hft1":
        unicast = {**addr, "dst": L.engine_ip, "dmac": engine_mac}
        return [
            (udp_frame(encode_update(Update("AAPL", first + i, 0, 0, P("99.00"), 100)), **unicast), 1) for i in range(3)
        ]
    out = []
    for i in range(3):
        seq = first + 10 * i
        if feed == "iex":
            msgs = [offer("AAPL", P("99.00")), offer("ZZZZ", P("1.00")), offer("AAPL", P("98.50"))]
            out.append((iex_frame(msgs, seq, **group), 2))
        else:
            adds = [itch.AddOrder("S", "AAPL", P("99.00"), 100), itch.AddOrder("S", "AAPL", P("98.50"), 100)]
            out.append((itch_frame([*adds, b"E" + bytes(30)], seq, **group), 2))
    return out


CASES = [(feed, mode) for feed in FEEDS for mode in MODES]


@pytest.mark.parametrize("attached", CASES, ids=[f"{f}-{m}" for f, m in CASES], indirect=True)
def test_a_feed_on_the_wire_gives_checked_order_frames_at_the_gateway(attached):
    feed, L, maps, gateway, exchange_mac, engine_mac, ex = attached
    expected_ids = 1
    for vlan in (None, VLAN):
        sent = packets(feed, L, exchange_mac, engine_mac, vlan)
        for frame, _ in sent:
            ex.send(frame)
            if feed != "hft1":
                ex.send(frame)  # the B line: a duplicate, dropped whole
        frames = ex.orders(want=len(sent))
        assert len(frames) == len(sent), f"{len(frames)} order frames of {len(sent)} ({feed}, vlan {vlan})"
        for (frame_in, n), frame_out in zip(sent, frames):
            orders = check_order_frame(frame_in, frame_out, gateway)
            assert len(orders) == n
            assert [o.order_id for o in orders] == list(range(expected_ids, expected_ids + n))
            expected_ids += n
            out = Ether(frame_out)
            assert (out[Dot1Q].vlan if vlan else None) == vlan and (Dot1Q in out) == (vlan is not None)
        assert ex.orders(want=1, timeout=0.3) == [], "an order frame more than the packets make"
    assert maps.totals().order_seq == expected_ids - 1
    feed_counts = maps.feed_counts()
    if feed == "hft1":
        assert maps.channels(feed) == []
    else:
        assert feed_counts.dup_packets == 6
        (ch,) = maps.channels(feed)
        assert (ch.packets, ch.dup_packets) == (12, 6)
    assert feed_counts.foreign_source == 0
