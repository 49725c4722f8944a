"""The lab's feed pieces without the kernel: frames and their checksums, the
capture writer, the feed rules of the strategy model, the order-frame checks
and the order checker's feed rules (a table of bad orders, each flagged for
its reason), the seeded message mix.

Frames are cross-checked with scapy (an independent implementation of
Ethernet/802.1Q/IPv4/UDP); captures are read back with dpkt.  The checker is
fed frames built the way the engine writes them (wire.udp_frame around
protocol.encode_order payloads), each broken in one way.
"""

from __future__ import annotations

import os
import random
import stat
import struct
from dataclasses import replace

import dpkt
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import checksum as scapy_checksum

from hft_tui.capture import CaptureWriter, check_target
from hft_tui.config import load_config
from hft_tui.errors import PathError, SimulatorError
from hft_tui.feeds import iex, itch
from hft_tui.order_frames import ExpectedRoute, OrderFrameChecker, OrderIds
from hft_tui.packet_io import Received
from hft_tui.paths import DEMO_CONFIG
from hft_tui.protocol import Order, encode_order, parse_price
from hft_tui.simulator.checker import FeedLog, LoggedMessage, OrderChecker, SentLog
from hft_tui.simulator.collector import FrameCollector
from hft_tui.simulator.hft1 import FrameFormat
from hft_tui.simulator.mix import MAX_PAYLOAD, FeedSource
from hft_tui.simulator.options import FeedOptions, feed_format
from hft_tui.simulator.stats import RttRecorder
from hft_tui.simulator.walk import MarketWalk
from hft_tui.strategy_model import (
    HALTED,
    IN_TRANSITION,
    NO_TRADE,
    PRICE_RANGE,
    STATUS,
    UNKNOWN_SYMBOL,
    EngineModel,
    FeedMessage,
    feed_rule,
)
from hft_tui.wire import (
    Route,
    checksum,
    multicast_mac,
    parse_udp_frame,
    udp_frame,
)

pytestmark = pytest.mark.pure

DEMO = load_config(DEMO_CONFIG)
ENGINE_MAC, EXCHANGE_MAC = "02:00:00:00:78:01", "02:00:00:00:78:02"
UPDATE_ROUTE = Route(EXCHANGE_MAC, ENGINE_MAC, "198.18.120.2", "198.18.120.1", 40000, 9000)
GATEWAY = ExpectedRoute.gateway(ENGINE_MAC, "198.18.120.1", 9000, EXCHANGE_MAC, "198.18.120.3", 9100, None)


# -- frames --------------------------------------------------------------------


@pytest.mark.parametrize("vlan", [None, 7])
@pytest.mark.parametrize("size", [0, 1, 44, 1001])
def test_a_frame_is_what_scapy_reads_with_both_checksums_right(vlan, size):
    payload = bytes(random.Random(size).randrange(256) for _ in range(size))
    raw = udp_frame(UPDATE_ROUTE, payload, vlan=vlan, ip_id=77)
    pkt = Ether(raw)
    assert (pkt.src, pkt.dst) == (EXCHANGE_MAC, ENGINE_MAC)
    assert (pkt[Dot1Q].vlan if vlan else None) == vlan
    assert (pkt[IP].src, pkt[IP].dst, pkt[IP].ttl, pkt[IP].id) == ("198.18.120.2", "198.18.120.1", 64, 77)
    assert (pkt[UDP].sport, pkt[UDP].dport, bytes(pkt[UDP].payload)) == (40000, 9000, payload)
    again = Ether(raw)
    del again[IP].chksum, again[UDP].chksum  # scapy computes them afresh
    assert bytes(again) == raw


@pytest.mark.parametrize("vlan", [None, 12])
def test_a_frame_scapy_built_parses_back_to_its_route_and_payload(vlan):
    layers = Ether(src=ENGINE_MAC, dst=EXCHANGE_MAC)
    if vlan:
        layers = layers / Dot1Q(vlan=vlan)
    raw = bytes(layers / IP(src="198.18.120.1", dst="198.18.120.3", ttl=9) / UDP(sport=9000, dport=9100) / b"xyz")
    f = parse_udp_frame(raw)
    assert f is not None and f.ok
    assert f.route == Route(ENGINE_MAC, EXCHANGE_MAC, "198.18.120.1", "198.18.120.3", 9000, 9100)
    assert (f.vlan, f.ttl, f.payload) == (vlan, 9, b"xyz")


def test_the_checksum_is_the_internet_checksum_of_any_bytes():
    rng = random.Random(5)
    for n in [0, 1, 2, 3, 20, 1471, 1472]:
        data = bytes(rng.randrange(256) for _ in range(n))
        assert checksum(data) == scapy_checksum(data)
    assert checksum(b"\xff\xff") == 0 and checksum(b"\0\0") == 0xFFFF


def test_what_is_not_ipv4_udp_is_not_parsed():
    arp = bytes(Ether(src=ENGINE_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\0" * 28))
    tcp = bytes(Ether() / IP(proto=6) / (b"\0" * 20))
    assert parse_udp_frame(arp) is None and parse_udp_frame(tcp) is None and parse_udp_frame(b"\0" * 10) is None


def test_a_multicast_group_has_its_rfc_1112_mac():
    assert multicast_mac("239.1.1.1") == "01:00:5e:01:01:01"
    assert multicast_mac("233.215.21.241") == "01:00:5e:57:15:f1"  # the high bit of the second byte is dropped
    with pytest.raises(ValueError):
        multicast_mac("198.18.0.1")


# -- the capture -----------------------------------------------------------------

FRAMES = [udp_frame(UPDATE_ROUTE, bytes([i]) * (i * 37), vlan=(5 if i % 2 else None)) for i in range(1, 6)]
TIMES = [1_764_800_000_123_456_789 + i * 1_001 for i in range(len(FRAMES))]


def write_capture(path) -> None:
    with CaptureWriter(path) as w:
        for frame, ts in zip(FRAMES, TIMES):
            w.write(frame, ts)


def test_a_capture_reads_back_with_dpkt_frame_for_frame(tmp_path):
    path = tmp_path / "feed.pcap"
    write_capture(path)
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        assert [bytes(buf) for _ts, buf in reader] == FRAMES


def test_a_capture_is_nanosecond_pcap_byte_for_byte(tmp_path):
    path = tmp_path / "feed.pcap"
    write_capture(path)
    raw = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from("=IHHiIII", raw)
    assert (magic, major, minor, snaplen, linktype) == (0xA1B23C4D, 2, 4, 65535, 1)
    pos, seen = 24, []
    while pos < len(raw):
        sec, nsec, caplen, length = struct.unpack_from("=IIII", raw, pos)
        seen.append((sec * 1_000_000_000 + nsec, raw[pos + 16 : pos + 16 + caplen]))
        assert caplen == length
        pos += 16 + caplen
    assert seen == list(zip(TIMES, FRAMES))


def test_a_capture_is_its_owners_alone_and_appears_only_when_complete(tmp_path):
    path = tmp_path / "feed.pcap"
    w = CaptureWriter(path)
    w.write(FRAMES[0], TIMES[0])
    assert not path.exists()
    w.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["feed.pcap"]


def test_a_failed_run_leaves_no_capture_and_the_old_file_as_it_was(tmp_path):
    path = tmp_path / "feed.pcap"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), CaptureWriter(path) as w:
        w.write(FRAMES[0], TIMES[0])
        raise RuntimeError("the run failed")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["feed.pcap"]


def test_a_symlink_planted_at_the_target_is_refused_and_never_followed(tmp_path):
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0\n")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "feed.pcap"
    link.symlink_to(victim)
    with pytest.raises(PathError, match="is a symlink: root replaces only a regular file"):
        write_capture(link)
    assert victim.read_text() == "root:x:0:0\n" and os.listdir(tmp_path / "out") == ["feed.pcap"]


def test_a_symlinked_directory_on_the_way_is_checked_where_it_leads(tmp_path):
    # ln -s /etc /tmp/d; --pcap-out /tmp/d/passwd: the directory it resolves to is judged
    # (here: one others may write), never the link alone.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (tmp_path / "d").symlink_to(shared)
    with pytest.raises(PathError, match="writable by other users"):
        CaptureWriter(tmp_path / "d" / "feed.pcap")
    assert os.listdir(shared) == []


@pytest.mark.kernel  # root, to give the link to another user
def test_a_users_symlink_to_a_root_directory_is_not_followed(tmp_path):
    # The attack: a user's ln -s /etc /tmp/d, then sudo hft-tui lab feed --pcap-out /tmp/d/passwd.
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0\n")
    (tmp_path / "d").symlink_to(etc)
    os.lchown(tmp_path / "d", 65534, 65534)
    with pytest.raises(PathError, match="is a symlink owned by uid 65534"):
        CaptureWriter(tmp_path / "d" / "passwd")
    assert (etc / "passwd").read_text() == "root:x:0:0\n" and os.listdir(etc) == ["passwd"]


def test_a_directory_others_can_write_is_refused_unless_sticky_and_the_target_is_new(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PathError, match="writable by other users"):
        CaptureWriter(shared / "feed.pcap")
    shared.chmod(0o1777)
    write_capture(shared / "feed.pcap")  # sticky and new: fine
    with pytest.raises(PathError, match="a directory other users can write"):
        CaptureWriter(shared / "feed.pcap")
    with pytest.raises(PathError, match="does not exist"):
        check_target(tmp_path / "nowhere" / "feed.pcap")
    assert sorted(os.listdir(shared)) == ["feed.pcap"]


# -- the feed rules of the model -------------------------------------------------

AAPL = DEMO.symbols["AAPL"]
ASK_BUYS = parse_price("190.20")  # at or below AAPL's buy target 190.25
BID_SELLS = parse_price("190.80")  # at or above its sell target 190.75


def offer(seq: int, **kw) -> FeedMessage:
    return FeedMessage("AAPL", seq, 1000 + seq, 0, 0, ASK_BUYS, 500, **kw)


def bid(seq: int, **kw) -> FeedMessage:
    return FeedMessage("AAPL", seq, 1000 + seq, BID_SELLS, 120, 0, 0, **kw)


@pytest.mark.parametrize(
    "message,halted,reason",
    [
        (offer(1), False, ""),
        (offer(1), True, HALTED),
        (offer(1, halted_flag=True), False, HALTED),
        (offer(1, in_transition=True), False, IN_TRANSITION),
        (replace(offer(1), ask_qty=0), False, NO_TRADE),
        (replace(offer(1), ask=-1), False, PRICE_RANGE),
        (replace(offer(1), ask=2**32), False, PRICE_RANGE),
        (replace(bid(1), bid=2**32 - 1), False, ""),
        (FeedMessage("AAPL", 1, status="H"), False, STATUS),
    ],
)
def test_a_feed_message_trades_only_past_every_feed_rule(message, halted, reason):
    assert feed_rule(message, halted) == reason


def test_a_symbols_trading_status_holds_until_the_next_one():
    m = EngineModel(DEMO)
    assert m.feed_verdict(offer(1)) == ""
    for letter in "HOPQ":
        assert m.feed_verdict(FeedMessage("AAPL", 2, status=letter)) == STATUS
        assert m.feed_verdict(offer(3)) == HALTED
    assert m.feed_verdict(FeedMessage("AAPL", 4, status="T")) == STATUS
    assert m.feed_verdict(offer(5)) == ""
    assert m.feed_verdict(FeedMessage("IBM", 6, status="H")) == UNKNOWN_SYMBOL


def test_a_status_older_than_the_one_the_symbol_holds_changes_nothing():
    # As the engine: two packets read in reverse order on two CPUs cannot undo a halt.
    m = EngineModel(DEMO)
    assert m.feed_verdict(FeedMessage("AAPL", 11, status="H")) == STATUS
    assert m.feed_verdict(FeedMessage("AAPL", 9, status="T")) == STATUS
    assert m.feed_verdict(offer(12)) == HALTED
    assert m.feed_verdict(FeedMessage("AAPL", 13, status="T")) == STATUS
    assert m.feed_verdict(offer(14)) == ""


IEX_DEMO = replace(DEMO, feed=replace(DEMO.feed, feed="iex"))
NEAR_BID = ASK_BUYS - parse_price("0.10")  # the demo's collar is 10%: a bid this close is a market


def test_an_exchange_feeds_reference_is_the_mid_of_its_last_bid_and_ask_within_the_collar():
    m = EngineModel(IEX_DEMO)
    far_bid = replace(bid(1), bid=parse_price("150.00"))  # a resting order deep in the book
    assert m.feed(far_bid) == "" and m.symbol("AAPL").session_ref == 0
    assert m.feed(offer(2)) == "" and m.symbol("AAPL").session_ref == 0  # 150.00 / 190.20: no market
    assert m.wants_market_data("AAPL")
    assert m.feed(replace(bid(3), bid=NEAR_BID)) == ""
    assert m.symbol("AAPL").session_ref == (NEAR_BID + ASK_BUYS) // 2
    assert not m.wants_market_data("AAPL")


def test_hft1s_reference_is_still_its_first_update():
    m = EngineModel(DEMO)
    m.observe(bid(1).update())
    assert m.symbol("AAPL").session_ref == BID_SELLS


def test_the_reference_is_recorded_from_a_halted_message_and_not_from_a_price_out_of_range():
    # The engine records the market data of a halted symbol's messages (and a price it cannot
    # hold as 0): the model keeps in step, or the reference it checks the collar with differs.
    m = EngineModel(IEX_DEMO)
    m.feed(FeedMessage("AAPL", 1, status="H"))
    assert m.feed(offer(2)) == HALTED
    assert m.feed(replace(bid(3), bid=2**40)) == PRICE_RANGE
    assert m.symbol("AAPL").session_ref == 0
    assert m.feed(replace(bid(4), bid=NEAR_BID)) == HALTED
    assert m.symbol("AAPL").session_ref == (NEAR_BID + ASK_BUYS) // 2


def test_an_offer_takes_only_the_buy_rule_and_a_bid_only_the_sell_rule():
    m = EngineModel(DEMO)
    d = m.decision(offer(1).update())
    assert (d.side, d.price) == ("B", ASK_BUYS)
    assert not m.decision(bid(2).update()).trades  # flat: nothing to sell
    m.fill("AAPL", "B", 150, ASK_BUYS)
    d = m.decision(bid(3).update())
    assert (d.side, d.price, d.qty) == ("S", BID_SELLS, 120)


# -- the order frames and the orders in them: a table of bad ones ----------------

SENT = [
    offer(1),
    bid(2),
    offer(3, halted_flag=True),
    offer(4, in_transition=True),
    replace(offer(5), ask_qty=0),
    replace(offer(6), ask=-1),
    None,  # seq 7: a type the engine skips
    offer(8),
    offer(9),
    FeedMessage("AAPL", 10, status="H"),
    offer(11),
    FeedMessage("AAPL", 12, status="T"),
    FeedMessage("IBM", 13, 1013, 0, 0, ASK_BUYS, 100),
    offer(14),  # packet 2
]
PACKETS = [(1, 13), (14, 14)]  # seq ranges of the two packets sent


def buy(seq: int, order_id: int, qty: int = 150) -> Order:
    return Order("B", "AAPL", seq, ASK_BUYS, qty, order_id, 1000 + seq)


def order_frame(orders, route=GATEWAY.route, vlan=None, ttl=64) -> bytes:
    return udp_frame(route, b"".join(encode_order(o) for o in orders), vlan=vlan, ttl=ttl, dont_fragment=False)


def corrupt(frame: bytes, offset: int) -> bytes:
    return frame[:offset] + bytes([frame[offset] ^ 0x01]) + frame[offset + 1 :]


class FakeSocket:
    """Frames handed to the collector as a packet socket would (a stand-in for
    the socket only: the rules checked are the checker's)."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def receive(self):
        for f in self.frames:
            yield Received(f, 0, 0)


def collect(frames: list[bytes], expected: ExpectedRoute = GATEWAY, max_orders: int = 8) -> OrderChecker:
    checker = OrderChecker(DEMO, SentLog(1, 8))
    log = FeedLog(64)
    for packet, (first, last) in enumerate(PACKETS):
        for m in SENT[first - 1 : last]:
            seq = m.seq if m else 7
            log.add(seq, LoggedMessage(m, checker.model.feed_verdict(m) if m else "skipped type", packet))
    frames_checker = OrderFrameChecker(expected, max_orders, checker.ids)
    FrameCollector(FakeSocket(frames), frames_checker, checker, log, RttRecorder()).drain()  # type: ignore[arg-type]
    return checker


GOOD = order_frame([buy(1, 1), buy(8, 2)])
OTHER_MAC = "02:00:00:00:99:99"
BAD_ORDERS = [
    ("two buys by the rules in one frame are valid", [GOOD], {}),
    ("a broken IP checksum", [corrupt(GOOD, 24)], {"ip checksum": 1}),
    ("a broken UDP checksum", [corrupt(GOOD, 40)], {"udp checksum": 1}),
    ("no UDP checksum", [GOOD[:40] + b"\0\0" + GOOD[42:]], {"udp checksum missing": 1}),
    ("from another MAC than the engine's", [order_frame([buy(1, 1)], replace(GATEWAY.route, src_mac=OTHER_MAC))],
     {"source mac": 1}),
    ("to another MAC than the gateway's", [order_frame([buy(1, 1)], replace(GATEWAY.route, dst_mac=OTHER_MAC))],
     {"route": 1}),
    ("to another port", [order_frame([buy(1, 1)], replace(GATEWAY.route, dst_port=9101))], {"route": 1}),
    ("from another address", [order_frame([buy(1, 1)], replace(GATEWAY.route, src_ip="198.18.120.9"))],
     {"route": 1}),
    ("a TTL other than 64", [order_frame([buy(1, 1)], ttl=3)], {"route": 1}),
    ("a VLAN tag the feed did not have", [order_frame([buy(1, 1)], vlan=5)], {"vlan": 1}),
    ("a payload that is not whole orders", [udp_frame(GATEWAY.route, encode_order(buy(1, 1))[:41])],
     {"format": 1}),
    ("a frame cut short", [order_frame([buy(1, 1)])[:-3]],
     {"ip length": 1, "udp length": 1, "udp checksum": 1, "format": 1}),
    ("more orders than the cap", [order_frame([buy(1, 1), buy(8, 2), buy(9, 3)])], {"batch cap": 1}),
    ("ids that skip", [order_frame([buy(1, 1), buy(8, 3)])], {"gap": 1}),
    ("an id seen already", [order_frame([buy(1, 1)]), order_frame([buy(8, 1)])], {"out of order": 1}),
    ("a message answered twice", [order_frame([buy(1, 1)]), order_frame([buy(1, 2, qty=10)])],
     {"duplicate order": 1, "qty": 1}),
    ("orders of two packets in one frame", [order_frame([buy(1, 1), buy(14, 2)])], {"batch": 1}),
    ("orders out of message order", [order_frame([buy(8, 1), buy(1, 2)])], {"batch": 1}),
    ("a sequence number never sent", [order_frame([buy(99, 1)])], {"unknown update": 1}),
    ("an order on a skipped type", [order_frame([replace(buy(7, 1), timestamp=1007)])], {"unknown update": 1}),
    ("another symbol on a sent seq", [order_frame([replace(buy(1, 1), symbol="MSFT")])], {"unknown update": 1}),
    ("a timestamp not the message's", [order_frame([replace(buy(1, 1), timestamp=5)])], {"timestamp": 1}),
    ("a quote flagged halted", [order_frame([buy(3, 1)])], {"unexpected order": 1}),
    ("a level in transition", [order_frame([buy(4, 1)])], {"unexpected order": 1}),
    ("a level of size 0", [order_frame([buy(5, 1)])], {"unexpected order": 1}),
    ("a price out of range", [order_frame([buy(6, 1)])], {"unexpected order": 1}),
    ("a symbol halted by its status", [order_frame([buy(11, 1)])], {"unexpected order": 1}),
    ("a symbol the engine does not hold", [order_frame([Order("B", "IBM", 13, ASK_BUYS, 100, 1, 1013)])],
     {"unexpected order": 1}),
    ("a buy on a bid (the sell rule's)", [order_frame([Order("B", "AAPL", 2, BID_SELLS, 120, 1, 1002)])],
     {"unexpected order": 1}),
    ("a sell on an offer when long", [order_frame([buy(1, 1), Order("S", "AAPL", 8, ASK_BUYS, 150, 2, 1008)])],
     {"side": 1}),
    ("a buy of other than the formula", [order_frame([buy(1, 1, qty=151)])], {"qty": 1}),
]  # fmt: skip
WHY = {  # what the model names for each unexpected order
    "a quote flagged halted": HALTED,
    "a level in transition": IN_TRANSITION,
    "a level of size 0": NO_TRADE,
    "a price out of range": PRICE_RANGE,
    "a symbol halted by its status": HALTED,
    "a symbol the engine does not hold": UNKNOWN_SYMBOL,
    "a buy on a bid (the sell rule's)": NO_TRADE,
}


@pytest.mark.parametrize("rule,frames,reasons", BAD_ORDERS, ids=[b[0] for b in BAD_ORDERS])
def test_each_bad_order_frame_is_flagged_for_its_reason(rule, frames, reasons):
    checker = collect(frames, max_orders=2)
    assert checker.reasons == reasons
    assert checker.invalid == sum(reasons.values())
    if rule in WHY:
        assert f"the model says {WHY[rule]}" in checker.examples[0]


def test_a_frame_that_is_not_an_order_is_not_judged():
    arp = bytes(Ether(src=ENGINE_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\0" * 28))
    stray = udp_frame(Route(ENGINE_MAC, EXCHANGE_MAC, "198.18.120.1", "198.18.120.2", 5353, 5353), b"mdns")
    assert collect([arp, stray]).reasons == {}


def test_reflection_expects_the_update_turned_around():
    back = ExpectedRoute.reflection(UPDATE_ROUTE, ENGINE_MAC, 7)
    assert back.route == Route(ENGINE_MAC, EXCHANGE_MAC, "198.18.120.1", "198.18.120.2", 9000, 40000)
    assert (back.ttl, back.vlan) == (None, 7)


def test_order_ids_follow_the_engines_last_id():
    ids = OrderIds(42)
    assert ids.check(42) is None and ids.check(44)[0] == "gap" and ids.check(44)[0] == "out of order"
    assert (ids.first, ids.last) == (42, 44)


# -- the mix and the options -------------------------------------------------------


def hft1_packets(seed: int, n: int):
    walk = MarketWalk(list(DEMO.symbols), DEMO, seed)
    source = FeedSource(FrameFormat(), walk, seed, 1)
    return [source.next_packet(1_000 + i) for i in range(n)]


def test_hft1_frames_carry_exactly_the_fast_paths_updates():
    walk = MarketWalk(list(DEMO.symbols), DEMO, 3)
    fast = bytearray(44 * 50)
    from hft_tui.simulator.hft1 import pack_batch

    pack_batch(fast, walk, 1, 50)
    packets = hft1_packets(3, 50)
    for i, p in enumerate(packets):
        assert p.first_seq == i + 1 and len(p.messages) == 1
        assert p.payload[:36] == bytes(fast[i * 44 : i * 44 + 36])  # all but the timestamp, stamped later there


@pytest.mark.parametrize(
    "options,message",
    [
        (FeedOptions("fix"), "unknown feed format"),
        (FeedOptions("hft1", batch=2), "hft1 carries 1..1 messages a packet"),
        (FeedOptions("itch", batch=129), "itch carries 1..128 messages a packet"),
        (FeedOptions("hft1", ab=True), "hft1 has no packet sequence"),
        (FeedOptions("hft1", gap_rate=0.1), "hft1 has no packet sequence"),
        (FeedOptions("itch", gap_rate=1.0), "--gap-rate is a share of packets"),
        (FeedOptions("itch", vlan=4095), "a VLAN id is 1..4094"),
        (FeedOptions("itch", group="198.18.0.1"), "is not an IPv4 multicast group"),
        (FeedOptions("itch", group="239.1.1"), "is not an IPv4 multicast group"),
    ],
)
def test_options_that_cannot_be_are_one_line_each(options, message):
    with pytest.raises(SimulatorError, match=message):
        options.validate()


def test_only_plain_hft1_takes_the_fast_path():
    assert FeedOptions().plain_hft1
    for o in (FeedOptions(vlan=3), FeedOptions(group="239.1.1.1"), FeedOptions(pcap_out="x"), FeedOptions("itch")):
        assert not o.plain_hft1


# -- the exchange formats: every message decodes to what was meant -------------------


def make_source(fmt: str, seed: int = 1, batch: int = 20, first_seq: int = 1) -> FeedSource:
    return FeedSource(feed_format(fmt), MarketWalk(list(DEMO.symbols), DEMO, seed), seed, first_seq, batch)


def packets(fmt: str, n: int, seed: int = 1, batch: int = 20) -> list:
    source = make_source(fmt, seed, batch)
    return [source.next_packet(1_764_800_000_000_000_000 + i * 1_000_003) for i in range(n)]


def iex_meaning(seq: int, m) -> FeedMessage | None:
    """What an IEX message means to the engine, read from the decoded message alone."""
    if isinstance(m, iex.QuoteUpdate):
        halted = bool(m.flags & iex.FLAG_HALTED)
        return FeedMessage(m.symbol, seq, m.timestamp, m.bid, m.bid_size, m.ask, m.ask_size, halted_flag=halted)
    if isinstance(m, iex.PriceLevel):
        moving = not m.flags & iex.FLAG_COMPLETE
        if m.side == "S":
            return FeedMessage(m.symbol, seq, m.timestamp, 0, 0, m.price, m.size, in_transition=moving)
        return FeedMessage(m.symbol, seq, m.timestamp, m.price, m.size, 0, 0, in_transition=moving)
    if isinstance(m, iex.TradingStatus):
        return FeedMessage(m.symbol, seq, m.timestamp, status=m.status)
    return None


def itch_meaning(seq: int, m) -> FeedMessage | None:
    if isinstance(m, itch.AddOrder):
        if m.side == "S":
            return FeedMessage(m.symbol, seq, m.timestamp, 0, 0, m.price, m.shares)
        return FeedMessage(m.symbol, seq, m.timestamp, m.price, m.shares, 0, 0)
    if isinstance(m, itch.TradingAction):
        return FeedMessage(m.symbol, seq, m.timestamp, status=m.state)
    return None


def decoded(fmt: str, payload: bytes) -> tuple[int, list]:
    """(first sequence, [(seq, meaning)]) of a payload, by hft_tui.feeds alone."""
    if fmt == "itch":
        p = itch.decode_packet(payload)
        assert p.session == "HFTLAB0001"
        return p.seq, [(seq, itch_meaning(seq, m)) for seq, m in itch.decode_messages(p)]
    seg = iex.decode_segment(payload)
    assert seg.protocol == (iex.PROTO_TOPS if fmt == "iex-tops" else iex.PROTO_DEEP)
    assert (seg.session, seg.channel) == (1, 1)
    return seg.first_seq, [(seq, iex_meaning(seq, m)) for seq, m in iex.decode_messages(seg)]


@pytest.mark.parametrize("fmt", ["iex-tops", "iex-deep", "itch"])
def test_every_message_made_decodes_with_the_feeds_codecs_to_what_was_meant(fmt):
    next_seq = 1
    for p in packets(fmt, 200):
        first, messages = decoded(fmt, p.payload)
        assert first == p.first_seq == next_seq
        assert [m for _seq, m in messages] == list(p.messages)
        assert 1 <= len(p.messages) <= 20 and len(p.payload) <= MAX_PAYLOAD
        next_seq += len(p.messages)


@pytest.mark.parametrize("fmt", ["iex-tops", "iex-deep", "itch"])
def test_the_mix_is_seeded_and_stable(fmt):
    assert [p.payload for p in packets(fmt, 50, seed=4)] == [p.payload for p in packets(fmt, 50, seed=4)]
    assert [p.payload for p in packets(fmt, 50, seed=4)] != [p.payload for p in packets(fmt, 50, seed=5)]


@pytest.mark.parametrize("fmt", ["iex-tops", "iex-deep", "itch"])
def test_a_feed_carries_other_types_unknown_symbols_and_halts_as_a_real_one_does(fmt):
    meant = [m for p in packets(fmt, 500) for m in p.messages]
    n = len(meant)
    skipped = sum(m is None for m in meant)
    unknown = sum(m is not None and m.symbol not in DEMO.symbols for m in meant)
    statuses = [m for m in meant if m is not None and m.status]
    quotes = [m for m in meant if m is not None and not m.status and m.symbol in DEMO.symbols]
    assert 0.25 < skipped / n < 0.5 and 0.08 < unknown / n < 0.25 and 0.4 < len(quotes) / n < 0.7
    assert {m.status for m in statuses} - {"T"} and "T" in {m.status for m in statuses}
    # Quotes on both sides: offers (the buy rule) and bids (the sell rule).
    assert any(m.ask and not m.bid for m in quotes) == (fmt != "iex-tops")
    assert any(m.bid and not m.ask for m in quotes) == (fmt != "iex-tops")
    if fmt == "iex-deep":
        assert any(m.in_transition for m in quotes) and any(m.ask_qty == m.bid_qty == 0 for m in quotes)
    if fmt == "iex-tops":
        assert any(m.halted_flag for m in quotes)
    if fmt.startswith("iex"):
        assert any(feed_rule(m, False) == PRICE_RANGE for m in quotes)


@pytest.mark.parametrize("fmt", ["iex-tops", "iex-deep", "itch"])
def test_a_halt_is_resumed_and_a_run_never_ends_halted(fmt):
    source = make_source(fmt)
    halted: set[str] = set()
    for i in range(400):
        for m in source.next_packet(i).messages:
            if m is not None and m.status and m.symbol in DEMO.symbols:
                (halted.discard if m.status == "T" else halted.add)(m.symbol)
    last = source.close(1)
    if last is not None:
        first, messages = decoded(fmt, last.payload)
        assert first == last.first_seq and {m.symbol for _s, m in messages} == halted
        assert all(m.status == "T" for _s, m in messages)
    else:
        assert not halted


@pytest.mark.parametrize("fmt", ["iex-tops", "iex-deep", "itch"])
def test_a_heartbeat_carries_the_next_sequence_number_and_no_message(fmt):
    source = make_source(fmt, batch=5)
    source.next_packet(1)
    beat = source.heartbeat(2)
    first, messages = decoded(fmt, beat.payload)
    assert (first, messages, beat.first_seq) == (6, [], 6)


def test_a_packet_stops_short_of_a_frame_and_of_the_count_left():
    source = make_source("iex-tops", batch=128)
    p = source.next_packet(1)
    assert len(p.payload) <= MAX_PAYLOAD and len(p.messages) < 128
    assert len(source.next_packet(2, limit=3).messages) == 3
