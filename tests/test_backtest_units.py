"""The backtest's and the replay's parts that need no kernel (pure): times,
sweep axes and variants, money, the checks of order frames (each catches what
it must), the capture messages as the strategy model reads them, the config
made from a capture, the status bar's note.
"""

from __future__ import annotations

import struct

import pytest
from capture_files import NS, ROUTE, T0, config, deep_packets, hft1_packets, itch_packets, write_capture

from hft_tui.backtest.loop import SentFrame
from hft_tui.backtest.orders import OrderFrames
from hft_tui.backtest.report import money, when
from hft_tui.backtest.sweep import parse_axis, variants
from hft_tui.backtest.window import INT64_MAX, INT64_MIN, parse_time, window_ns
from hft_tui.capture_reader import CaptureError
from hft_tui.errors import ConfigError, ProtocolError
from hft_tui.feeds import encode_orders, iex, itch
from hft_tui.lab import Lab
from hft_tui.maps import Gateway
from hft_tui.protocol import Order, parse_price
from hft_tui.replay.autoconfig import config_text, profile
from hft_tui.replay.check import ReplayChecker, _meanings
from hft_tui.replay.messages import packet_meaning
from hft_tui.replay.player import ReplayFrames, ipv4_udp, load_frames
from hft_tui.replay_status import ReplayStatus
from hft_tui.strategy_model import EngineModel
from hft_tui.wire import Route, parse_udp_frame, udp_frame

pytestmark = pytest.mark.pure


# -- --from / --to -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text,at",
    [
        ("2024-01-26T14:30:00Z", T0),
        ("2024-01-26T14:30:00.5", T0 + NS // 2),
        ("2024-01-26 15:30:00+01:00", T0),
        ("2024-01-26T14:30:00.000000001Z", T0 + 1),
        ("14:30", T0),
        ("14:31:00.25", T0 + 60 * NS + NS // 4),
        ("+90s", T0 + 90 * NS),
        ("+250ms", T0 + NS // 4),
        ("+1.5m", T0 + 90 * NS),
        ("+2h", T0 + 7200 * NS),
    ],
)
def test_times(text, at):
    first = T0 + 5 * NS  # the capture's first frame, a few seconds after 14:30
    b = parse_time(text, "--from")
    want = at + 5 * NS if text.startswith("+") else at
    assert b.at(first) == want


@pytest.mark.parametrize("text", ["yesterday", "25:00", "14:61", "+5", "+-3s", "2024-13-01T00:00:00", "1e9"])
def test_a_time_that_is_none_is_the_flags_one_line(text):
    with pytest.raises(ConfigError, match=r"--to: .* is not a time"):
        parse_time(text, "--to")


def test_open_ends():
    assert window_ns(None, None, T0) == (INT64_MIN, INT64_MAX)


@pytest.mark.parametrize(
    "start,end,window",
    [
        ("1600-01-01T00:00:00", None, (INT64_MIN, INT64_MAX)),  # before the int64 range: open
        (None, "2300-01-01T00:00:00", (INT64_MIN, INT64_MAX)),  # after it: open
        (None, "+9000000000s", (INT64_MIN, INT64_MAX)),
        ("14:30", "14:30", (T0, T0)),  # one instant: both ends inclusive
    ],
)
def test_a_bound_past_the_int64_range_is_an_open_end_never_a_wrapped_one(start, end, window):
    bounds = [parse_time(t, f) if t else None for t, f in ((start, "--from"), (end, "--to"))]
    assert window_ns(*bounds, T0 + 5 * NS) == window


def test_a_window_that_ends_before_it_starts_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^--from 15:09 is after --to 15:08: the window holds no frame$"):
        window_ns(parse_time("15:09", "--from"), parse_time("15:08", "--to"), T0)


# -- sweeps ------------------------------------------------------------------------------


def test_sweep_axes_and_every_combination():
    _t, cfg = config(symbols={"AAPL": ("100.00", "101.00"), "BRK.B": ("400.00", "401.00")})
    axes = [
        parse_axis("AAPL.buy_target=99.00,99.50", cfg),
        parse_axis("BRK.B.base_qty=5,10,20", cfg),  # a symbol with a dot: the key is after the last
        parse_axis("engine.rate_per_sec=0,100", cfg),
        parse_axis("max_notional=1000", cfg),
    ]
    assert [a.name for a in axes] == ["AAPL.buy_target", "BRK.B.base_qty", "rate_per_sec", "max_notional"]
    vs = variants(cfg, axes)
    assert len(vs) == 2 * 3 * 2
    v = vs[-1]
    assert v.label == "AAPL.buy_target=99.50 BRK.B.base_qty=20 rate_per_sec=100 max_notional=1000"
    assert v.config.symbols["AAPL"].buy_target == parse_price("99.50")
    assert v.config.symbols["BRK.B"].base_qty == 20
    assert v.config.engine.rate_per_sec == 100 and v.config.engine.burst == 100  # the config's own rule
    assert cfg.symbols["AAPL"].buy_target == parse_price("100.00"), "the base config is untouched"


def test_a_key_given_twice_is_refused():
    _t, cfg = config()
    with pytest.raises(ConfigError, match="given twice"):
        variants(cfg, [parse_axis("AAPL.base_qty=1", cfg), parse_axis("AAPL.base_qty=2", cfg)])


# -- money and times in the report -----------------------------------------------------


def test_money_is_exact():
    assert money(1_234_5678) == "1234.5678"
    assert money(-5) == "-0.0005"
    assert money(10**22 + 1) == "1000000000000000000.0001"
    assert when(T0 + 7) == "2024-01-26T14:30:00.000000007Z"


# -- the order frames' checks -----------------------------------------------------------

GW = Gateway(
    ip="198.18.176.3", port=9100, mac="02:00:00:00:b0:03", src_ip="0.0.0.0", src_port=10377, src_mac="00:00:00:00:00:00"
)
GW_ROUTE = Route(GW.src_mac, GW.mac, GW.src_ip, GW.ip, GW.src_port, GW.port)


def feed_frame(seq: int = 1) -> bytes:
    msgs = (
        iex.encode_message(iex.PriceLevel("S", "AAPL", 990_000, 100, timestamp=T0)),
        iex.encode_message(iex.PriceLevel("S", "MSFT", 1_990_000, 100, timestamp=T0)),
    )
    return udp_frame(ROUTE, iex.encode_segment(iex.Segment(iex.PROTO_DEEP, 1, 7, seq, msgs)))


def order(oid: int, symbol: str = "AAPL", seq: int = 1, ts: int = T0) -> Order:
    return Order("B", symbol, seq, 990_000, 10, oid, ts)


def frames(*outs: bytes, start: int = 1) -> OrderFrames:
    of = OrderFrames("iex", GW, 8)
    for i, out in enumerate(outs):
        of.add(SentFrame(start + i, T0, feed_frame(1 + 2 * i), out))
    return of


def test_good_order_frames_pass_and_are_decoded():
    of = frames(udp_frame(GW_ROUTE, encode_orders([order(1), order(2, "MSFT", 2)])))
    assert of.problems == 0, of.examples
    assert [(o.id, o.symbol, o.seq) for o in of.orders] == [(1, "AAPL", 1), (2, "MSFT", 2)]


@pytest.mark.parametrize(
    "out,words",
    [
        (udp_frame(GW_ROUTE, encode_orders([order(2)])), "gap"),
        (udp_frame(Route(GW.src_mac, GW.mac, GW.src_ip, "10.0.0.9", GW.src_port, GW.port), encode_orders([order(1)])),
         "to ip 10.0.0.9"),
        (udp_frame(GW_ROUTE, encode_orders([order(1)]), ttl=3), "ttl 3"),
        (udp_frame(GW_ROUTE, encode_orders([order(1)]), vlan=5), "vlan"),
        (udp_frame(GW_ROUTE, encode_orders([order(1)]) + b"x"), "not whole orders"),
        (udp_frame(GW_ROUTE, encode_orders([order(1, seq=9)])), "answers no message"),
        (udp_frame(GW_ROUTE, encode_orders([order(1, ts=T0 + 1)])), "carries timestamp"),
        (udp_frame(GW_ROUTE, encode_orders([order(1, "MSFT", 2), order(2, "AAPL", 1)])), "not in message order"),
        (udp_frame(GW_ROUTE, encode_orders([order(i + 1) for i in range(9)])), "the cap is 8"),
    ],
)  # fmt: skip
def test_each_check_catches_its_fault(out, words):
    of = frames(out)
    assert of.problems >= 1 and any(words in e for e in of.examples), of.examples


def test_a_bad_checksum_is_caught():
    good = bytearray(udp_frame(GW_ROUTE, encode_orders([order(1)])))
    good[-1] ^= 0xFF
    of = frames(bytes(good))
    assert any("udp checksum" in e for e in of.examples)


# -- capture messages as the model reads them -------------------------------------------


def test_deep_levels_hft1_and_itch_as_feed_messages():
    f = parse_udp_frame(deep_packets(1, per_packet=4)[0][1])
    m = packet_meaning("iex", f.payload)
    assert m is not None and m.channel == "1150681088/1" and m.first_seq == 1 and len(m.messages) == 4
    offer = m.messages[0]
    assert offer is not None and offer.ask_qty == 100 and offer.bid_qty == 0 and not offer.in_transition
    assert m.messages[3] is None  # a security event: walked past
    h = packet_meaning("hft1", parse_udp_frame(hft1_packets(1)[0][1]).payload)
    assert h is not None and h.messages[0].symbol == "AAPL" and h.channel == ""
    i = packet_meaning("itch", parse_udp_frame(itch_packets(1)[0][1]).payload)
    assert i is not None and i.channel == "TESTSESS01" and len(i.messages) == 10
    transition = iex.encode_message(iex.PriceLevel("B", "AAPL", 1, 1, flags=0, timestamp=1))
    seg = iex.encode_segment(iex.Segment(iex.PROTO_DEEP, 1, 2, 5, (transition,)))
    t = packet_meaning("iex", seg)
    assert t is not None and t.messages[0].in_transition and t.messages[0].bid == 1
    assert packet_meaning("iex", b"not a segment") is None


def _iex_packet(blocks: tuple[bytes, ...]) -> bytes:
    return iex.encode_segment(iex.Segment(iex.PROTO_DEEP, 1, 2, 5, blocks))


def _itch_packet(blocks: tuple[bytes, ...]) -> bytes:
    return itch.encode_packet(itch.MoldPacket("TESTSESS01", 5, blocks))


IEX_OFFER = iex.encode_message(iex.PriceLevel("S", "AAPL", 990000, 100, timestamp=1))
ITCH_OFFER = itch.encode_message(itch.AddOrder("S", "AAPL", 990000, 100))
REFUSED = [  # (feed, packet of blocks, the offer, a block the codec refuses)
    ("iex", _iex_packet, IEX_OFFER, IEX_OFFER[:-1]),
    ("iex", _iex_packet, IEX_OFFER, b""),
    ("itch", _itch_packet, ITCH_OFFER, ITCH_OFFER[:-1]),
    ("itch", _itch_packet, ITCH_OFFER, ITCH_OFFER[:19] + b"X" + ITCH_OFFER[20:]),
]


@pytest.mark.parametrize(
    "feed,packet,offer,bad", REFUSED, ids=["iex short level", "iex empty block", "itch short add", "itch side X"]
)
def test_a_message_the_codec_refuses_is_none_and_the_packet_goes_on(feed, packet, offer, bad):
    # As the engine reads it: that message counted malformed, the ones after it decided.
    m = packet_meaning(feed, packet((offer, bad, offer)))
    assert m is not None and [x is None for x in m.messages] == [False, True, False]
    assert [x.seq for x in m.messages if x is not None] == [5, 7]


@pytest.mark.parametrize("feed,packet,offer", [("iex", _iex_packet, IEX_OFFER), ("itch", _itch_packet, ITCH_OFFER)])
def test_a_block_running_past_the_packet_ends_it_the_messages_before_standing(feed, packet, offer):
    raw = bytearray(packet((offer, offer, offer)))
    fmt = "<H" if feed == "iex" else ">H"
    struct.pack_into(fmt, raw, len(raw) - len(offer) - 2, 200)  # the last block claims 200 bytes
    m = packet_meaning(feed, bytes(raw))
    assert m is not None and len(m.messages) == 2 and all(x is not None for x in m.messages)
    with pytest.raises(ProtocolError, match="runs past the end"):
        (iex.decode_segment if feed == "iex" else itch.decode_packet)(bytes(raw))


def test_ipv4_udp_as_the_backtest_decides():
    assert ipv4_udp(deep_packets(1, vlan=3)[0][1]) and ipv4_udp(hft1_packets(1)[0][1])
    arp = bytes.fromhex("ffffffffffff0200000000020806") + bytes(28)
    qinq = bytes(12) + bytes.fromhex("88a8 0001 8100 0002 0800".replace(" ", "")) + bytes(40)
    assert not ipv4_udp(arp) and not ipv4_udp(qinq) and not ipv4_udp(b"\x00" * 10)


# -- the demo's config from a capture -----------------------------------------------------


def test_a_config_from_a_captures_most_active_symbols():
    frames = ReplayFrames("x.pcap", frames=[f for _t, f in deep_packets(50)])
    prof = profile(frames)
    assert (prof.feed, prof.port) == ("iex", 10377)
    text, chosen = config_text(prof, Lab.numbered(176))
    assert chosen[:2] in (["AAPL", "MSFT"], ["MSFT", "AAPL"]) and "ZZZZ" in chosen
    import tomllib
    from decimal import Decimal

    from hft_tui.config import parse_config

    cfg = parse_config(tomllib.loads(text, parse_float=Decimal))  # a valid config
    assert cfg.feed.feed == "iex" and cfg.engine.feed_port == 10377 and cfg.gateway is not None
    a = cfg.symbols["AAPL"]
    assert a.buy_target < a.sell_target


def test_the_status_bar_note():
    st = ReplayStatus("day.pcap", T0 + 1_234_000_000, 49, 100, 2, True, 1)
    assert st.note() == "replay day.pcap 14:30:01.234 50% loop 2 · config from the capture"


def test_a_frame_the_lab_cannot_carry_refuses_the_capture_before_anything_is_sent(tmp_path):
    # The lab's veths carry IP packets of lab.MTU bytes (1,500): a frame of that, tagged or not, plays.
    fits = [udp_frame(ROUTE, b"x" * (1500 - 28)), udp_frame(ROUTE, b"x" * (1500 - 28), vlan=7)]
    assert (
        len(load_frames(str(write_capture(tmp_path / "fits.pcap", [(T0, f) for f in fits])), ROUTE.dst_mac).frames) == 2
    )
    over = [*fits, udp_frame(ROUTE, b"x" * (1501 - 28))]
    with pytest.raises(
        CaptureError,
        match=r"frame 3: an IP packet of 1,501 bytes, more than the lab's interfaces carry \(MTU 1500\); nothing sent$",
    ):
        load_frames(str(write_capture(tmp_path / "over.pcap", [(T0, f) for f in over])), ROUTE.dst_mac)


# -- the live replay's checker ------------------------------------------------------------


def model_orders(frames: ReplayFrames, cfg) -> list[Order]:
    """The orders the strategy model sends for an hft1 capture, as the engine numbers them."""
    model = EngineModel(cfg)
    out: list[Order] = []
    for m in _meanings(frames, "hft1", 1):
        assert m is not None
        for msg in m.messages:
            assert msg is not None
            if model.feed_verdict(msg):
                continue
            if model.wants_market_data(msg.symbol):
                model.observe(msg.update())
            d = model.decision(msg.update())
            if d.trades:
                out.append(Order(d.side, msg.symbol, msg.seq, d.price, d.qty, len(out) + 1, msg.timestamp))
                model.fill(msg.symbol, d.side, d.qty, d.price)
    return out


@pytest.mark.parametrize("stray_at", [0, 1, 5])
def test_an_order_frame_answering_no_packet_is_flagged_alone_and_the_frames_after_it_still_checked(stray_at):
    frames = ReplayFrames("x.pcap", frames=[f for _t, f in hft1_packets(40)])
    _text, cfg = config("hft1", gateway=None)
    orders = model_orders(frames, cfg)
    assert len(orders) >= 8
    stray = Order("B", "AAPL", 10_000, orders[0].price, orders[0].qty, 99, 0)  # no message has seq 10,000
    batches = [[o] for o in orders]
    batches.insert(stray_at, [stray])
    checker = ReplayChecker(frames, "hft1", cfg, None, ROUTE.dst_mac)
    checker._model(batches, list(_meanings(frames, "hft1", 1)))
    out = checker.out
    assert out.reasons == {"unknown update": 1}, out.examples
    assert [o.seq for o in out.orders] == [o.seq for b in batches for o in b]  # each checked once, in turn
