"""Where the orders go, through the real program (BPF_PROG_TEST_RUN).

With a gateway: from the interface's MAC and src_ip:src_port to the
gateway's MAC, ip and port, TTL 64, checksums computed whole, the feed's
VLAN tag kept.  Without one: turned around, as today (hft1 exactly today's
frame).  A packet that cannot be turned around (to a multicast or broadcast
address, or from a non-unicast one) is never answered: no_route, and the
decision changes nothing.  feed_addr: only packets to that address are the
feed.  Every order frame is checked whole (feed_frames.check_order_frame).
"""

from __future__ import annotations

import pytest
from feed_frames import GATEWAY, GROUP, GROUP_MAC, check_order_frame, feed_harness, iex_frame, itch_frame, offer
from frames import ENGINE_MAC, EXCHANGE_MAC, LAB, P, XdpAction, check_order, update_frame
from scapy.layers.l2 import Dot1Q, Ether

from hft_tui import feeds
from hft_tui.feeds import itch
from hft_tui.maps import FeedSources, Gateway
from hft_tui.protocol import Update

BASE = {"buy_target": "100.00", "sell_target": "101.00", "base_qty": 10}


def iex_packet(seq: int, **kw) -> bytes:
    return iex_frame([offer("AAPL", P("99.00")), offer("AAPL", P("98.00"))], seq, **kw)


def itch_packet(seq: int, **kw) -> bytes:
    adds = [itch.AddOrder("S", "AAPL", P("99.00"), 100), itch.AddOrder("S", "AAPL", P("98.00"), 100)]
    return itch_frame(adds, seq, **kw)


def hft1_packet(seq: int, **kw) -> bytes:
    """One hft1 update (two orders cannot come of it); kw: udp_frame's names."""
    vlan = kw.pop("vlan", None)
    ip_fields = {k: kw.pop(k) for k in ("src", "dst") if k in kw}
    macs = {"smac": kw.pop("smac", EXCHANGE_MAC), "dmac": kw.pop("dmac", ENGINE_MAC)}
    frame = Ether(update_frame(Update("AAPL", seq, 0, 0, P("99.00"), 100), **kw))
    frame.src, frame.dst = macs["smac"], macs["dmac"]
    if ip_fields:
        frame["IP"].src = ip_fields.get("src", frame["IP"].src)
        frame["IP"].dst = ip_fields.get("dst", frame["IP"].dst)
        del frame["IP"].chksum, frame["UDP"].chksum
    if vlan is not None:
        frame = Ether(src=frame.src, dst=frame.dst) / Dot1Q(vlan=vlan, prio=3) / frame.payload
    return bytes(frame)


PACKETS = {"iex": iex_packet, "itch": itch_packet, "hft1": hft1_packet}
ORDERS = {"iex": 2, "itch": 2, "hft1": 1}


@pytest.fixture(scope="module")
def harnesses():
    with feed_harness("iex") as i, feed_harness("itch") as t, feed_harness("hft1") as h:
        yield {"iex": i, "itch": t, "hft1": h}


@pytest.mark.parametrize("vlan", [None, 42], ids=["untagged", "VLAN 42"])
@pytest.mark.parametrize("feed", list(PACKETS))
def test_with_a_gateway_the_orders_go_to_it_from_the_interface(harnesses, feed, vlan):
    h = harnesses[feed]
    h.reset({"AAPL": BASE}, gateway=GATEWAY)
    frame = PACKETS[feed](7, vlan=vlan)
    r = h.run(frame)
    orders = r.orders  # the route, TTL, lengths and checksums checked here
    assert [o.price for o in orders] == [P("99.00"), P("98.00")][: ORDERS[feed]]
    out = Ether(r.frame_out)
    if vlan is None:
        assert Dot1Q not in out
    else:
        assert (out[Dot1Q].vlan, out[Dot1Q].prio) == (vlan, 3)
    assert len(r.frame_out) == 14 + (4 if vlan else 0) + 20 + 8 + 44 * ORDERS[feed]


@pytest.mark.parametrize("vlan", [None, 42], ids=["untagged", "VLAN 42"])
@pytest.mark.parametrize("feed", ["iex", "itch"])
def test_without_a_gateway_the_orders_are_turned_around(harnesses, feed, vlan):
    h = harnesses[feed]
    h.reset({"AAPL": BASE}, gateway=None)
    frame = PACKETS[feed](7, vlan=vlan)
    r = h.run(frame)
    assert len(check_order_frame(frame, r.frame_out, None)) == 2
    out = Ether(r.frame_out)
    assert (out.src, out.dst, out["IP"].src, out["IP"].dst) == (
        ENGINE_MAC,
        EXCHANGE_MAC,
        LAB.engine_ip,
        LAB.exchange_ip,
    )


def test_hft1_without_a_gateway_is_todays_frame_byte_for_byte_but_the_order(harnesses):
    h = harnesses["hft1"]
    h.reset({"AAPL": BASE}, gateway=None)
    frame = update_frame(Update("AAPL", 9, 0, 0, P("99.00"), 100, 123), length=60)  # 16 bytes after the update
    r = h.run(frame)
    order = check_order(frame, r.frame_out)  # frames.check_order: today's exact frame
    assert (order.side, order.qty, order.seq, order.timestamp) == ("B", 10, 9, 123)


NOT_REFLECTABLE = [
    ("to a multicast group", {"dst": GROUP, "dmac": GROUP_MAC}),
    ("to the broadcast address", {"dst": "255.255.255.255", "dmac": "ff:ff:ff:ff:ff:ff"}),
    ("to a broadcast MAC", {"dmac": "ff:ff:ff:ff:ff:ff"}),
    ("from a multicast source", {"src": "224.0.0.9"}),
    ("from 0.0.0.0", {"src": "0.0.0.0"}),
    ("from a multicast MAC", {"smac": "01:00:5e:00:00:09"}),
]


@pytest.mark.parametrize("addresses", [a for _, a in NOT_REFLECTABLE], ids=[n for n, _ in NOT_REFLECTABLE])
@pytest.mark.parametrize("feed", list(PACKETS))
def test_a_packet_that_cannot_be_turned_around_is_never_answered_without_a_gateway(harnesses, feed, addresses):
    h = harnesses[feed]
    h.reset({"AAPL": BASE}, gateway=None)
    r = h.run(PACKETS[feed](7, **addresses))
    assert (XdpAction(r.action), r.untouched) == (XdpAction.PASS, True)
    n = ORDERS[feed]
    assert r.counts == {"updates": n, "no_route": n}
    assert [(e.kind, e.reason) for e in r.events] == [("reject", "no_route")] * n
    st = h.state("AAPL")
    assert (st.position, st.pending_buy, h.maps.totals().order_seq) == (0, 0, 0)


@pytest.mark.parametrize("feed", list(PACKETS))
def test_the_same_packet_to_a_group_is_answered_through_a_gateway(harnesses, feed):
    h = harnesses[feed]
    h.reset({"AAPL": BASE}, gateway=GATEWAY)
    assert len(h.run(PACKETS[feed](7, dst=GROUP, dmac=GROUP_MAC)).orders) == ORDERS[feed]


def test_the_gateways_source_port_and_address_are_the_configs(harnesses):
    h = harnesses["iex"]
    gw = Gateway(
        ip="10.9.8.7", port=4321, mac="02:aa:bb:cc:dd:ee", src_ip="10.9.8.1", src_port=1234, src_mac=ENGINE_MAC
    )
    h.reset({"AAPL": BASE}, gateway=gw)
    r = h.run(iex_packet(1))
    assert len(check_order_frame(r.frame_in, r.frame_out, gw)) == 2
    assert h.maps.read_route() == gw


@pytest.mark.parametrize("feed", list(PACKETS))
def test_feed_addr_makes_only_packets_to_it_the_feed(harnesses, feed):
    h = harnesses[feed]
    h.reset({"AAPL": BASE}, sources=FeedSources(feed_addr=GROUP))
    other = h.run(PACKETS[feed](1, dst="239.1.1.2", dmac="01:00:5e:01:01:02"))
    assert (XdpAction(other.action), other.untouched, other.counts) == (XdpAction.PASS, True, {"passed": 1})
    unicast = h.run(PACKETS[feed](2))
    assert unicast.counts == {"passed": 1}
    assert len(h.run(PACKETS[feed](3, dst=GROUP, dmac=GROUP_MAC)).orders) == ORDERS[feed]


def test_an_order_frame_decodes_to_the_orders_the_events_report(harnesses):
    h = harnesses["iex"]
    h.reset({"AAPL": BASE})
    r = h.run(iex_packet(11))
    orders = feeds.decode_orders(r.frame_out[14 + 20 + 8 :])
    events = [e for e in r.events if e.kind == "order"]
    assert [(o.side, o.price, o.qty, o.order_id, o.seq) for o in orders] == [
        (e.side, e.price, e.qty, e.order_id, e.seq) for e in events
    ]
