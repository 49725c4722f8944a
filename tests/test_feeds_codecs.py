"""hft_tui.feeds: the wire formats of IEX-TP and MoldUDP64/ITCH 5.0, and order frames.

Pure: no root, no kernel.  Every message type round-trips, bad input is one
clear ProtocolError, and every real capture in /work/shared/data/feeds
decodes to what its README says (read with dpkt, as the backtest will).
"""

from __future__ import annotations

import struct

import dpkt
import pytest
from feed_frames import CAPTURES

from hft_tui.constants import IEX, ITCH, MOLD
from hft_tui.errors import ProtocolError
from hft_tui.feeds import decode_orders, encode_orders, iex, itch
from hft_tui.protocol import Order, parse_price

pytestmark = pytest.mark.pure

P = parse_price


# -- IEX-TP --------------------------------------------------------------------------------

IEX_MESSAGES = [
    iex.QuoteUpdate("AAPL", P("190.01"), 300, P("190.05"), 200, flags=0, timestamp=1_700_000_000_000_000_001),
    iex.QuoteUpdate("ZIEXT", 0, 0, 0, 0, flags=iex.FLAG_HALTED | 0x40),
    iex.PriceLevel("S", "MSFT", P("410.25"), 50, flags=1, timestamp=5),
    iex.PriceLevel("B", "V", P("202.77"), 190, flags=0),
    iex.PriceLevel("S", "NEG", -1, 1),
    iex.TradingStatus("JHMU", "H", timestamp=9, reason="NA  "),
    iex.OtherMessage(b"T" + bytes(37)),
]


@pytest.mark.parametrize("msg", IEX_MESSAGES, ids=[type(m).__name__ for m in IEX_MESSAGES])
def test_an_iex_message_round_trips(msg):
    raw = iex.encode_message(msg)
    assert iex.decode_message(raw) == msg


def test_iex_message_lengths_and_offsets_are_the_headers():
    q = iex.encode_message(IEX_MESSAGES[0])
    assert len(q) == IEX["IEX_QUOTE_LEN"] == 42 and q[0] == ord("Q")
    assert struct.unpack_from("<q", q, IEX["IEX_Q_OFF_ASK"])[0] == P("190.05")
    assert q[IEX["IEX_Q_OFF_SYMBOL"] : IEX["IEX_Q_OFF_SYMBOL"] + 8] == b"AAPL    "
    assert len(iex.encode_message(IEX_MESSAGES[2])) == IEX["IEX_LEVEL_LEN"] == 30
    assert len(iex.encode_message(IEX_MESSAGES[5])) == IEX["IEX_STATUS_LEN"] == 22


def test_an_iex_segment_round_trips_with_its_header_fields():
    raw = tuple(iex.encode_message(m) for m in IEX_MESSAGES)
    seg = iex.Segment(iex.PROTO_DEEP, 7, 1150681088, 1000, raw, stream_offset=99, send_time=-5)
    data = iex.encode_segment(seg)
    assert iex.decode_segment(data) == seg
    assert struct.unpack_from("<HH", data, IEX["IEX_OFF_PAYLOAD_LEN"]) == (len(data) - iex.HDR_LEN, len(raw))
    assert [s for s, _ in iex.decode_messages(seg)] == list(range(1000, 1000 + len(raw)))
    assert iex.decode_segment(iex.encode_segment(iex.Segment(iex.PROTO_TOPS, 1, 2, 3))).heartbeat


BAD_SEGMENTS = [
    ("shorter than the header", lambda d: d[:39], "the header alone is 40"),
    ("another version", lambda d: b"\x02" + d[1:], "version 2"),
    ("neither TOPS nor DEEP", lambda d: d[:2] + b"\x05\x80" + d[4:], "neither TOPS nor DEEP"),
    ("a payload length that is not the rest", lambda d: d + b"\x00", "payload length"),
    (
        "a block running past the end",
        lambda d: d[:12] + struct.pack("<H", 8) + d[14:40] + b"\x20\x00" + d[42:48],
        "runs past the end",
    ),
]


@pytest.mark.parametrize("mutate,message", [b[1:] for b in BAD_SEGMENTS], ids=[b[0] for b in BAD_SEGMENTS])
def test_a_bad_iex_segment_is_one_clear_error(mutate, message):
    good = iex.encode_segment(iex.Segment(iex.PROTO_DEEP, 1, 2, 3, (iex.encode_message(IEX_MESSAGES[2]),)))
    with pytest.raises(ProtocolError, match=message):
        iex.decode_segment(mutate(good))


@pytest.mark.parametrize(
    "raw,message",
    [(b"", "empty"), (b"Q" + bytes(40), "quote update of 41 bytes"), (b"5" + bytes(20), "price level update")],
)
def test_a_known_iex_type_shorter_than_its_layout_is_an_error(raw, message):
    with pytest.raises(ProtocolError, match=message):
        iex.decode_message(raw)


@pytest.mark.parametrize(
    "msg,message",
    [
        (iex.PriceLevel("X", "A", 1, 1), "side"),
        (iex.QuoteUpdate("TOOLONGSYM", 1, 1, 1, 1), "1 to 8 characters"),
        (iex.TradingStatus("A", "HH"), "1 and 4 characters"),
    ],
)
def test_an_iex_message_that_cannot_be_encoded_is_an_error(msg, message):
    with pytest.raises(ProtocolError, match=message):
        iex.encode_message(msg)


# -- MoldUDP64 / ITCH ------------------------------------------------------------------------

ITCH_MESSAGES = [
    itch.AddOrder("B", "IVOO", P("87.39"), 1600, ref=23508286, timestamp=34_199_999_894_278, locate=5528),
    itch.AddOrder("S", "CASY", P("255.52"), 100, ref=1, timestamp=2**48 - 1, mpid="FLTU"),
    itch.TradingAction("AMC", "T", timestamp=34_763_322_465_824, locate=464, reason="    "),
    itch.TradingAction("CAML", "H", reason="LUDP"),
    itch.OtherMessage(b"D" + bytes(18)),
]


@pytest.mark.parametrize("msg", ITCH_MESSAGES, ids=[type(m).__name__ for m in ITCH_MESSAGES])
def test_an_itch_message_round_trips(msg):
    assert itch.decode_message(itch.encode_message(msg)) == msg


def test_itch_message_lengths_and_offsets_are_the_headers():
    a, f = (itch.encode_message(m) for m in ITCH_MESSAGES[:2])
    assert (len(a), len(f)) == (ITCH["ITCH_ADD_LEN"], ITCH["ITCH_ADD_MPID_LEN"]) == (36, 40)
    assert (a[0], f[0]) == (ord("A"), ord("F"))
    assert struct.unpack_from(">I", a, ITCH["ITCH_ADD_OFF_PRICE"])[0] == P("87.39")
    assert len(itch.encode_message(ITCH_MESSAGES[2])) == ITCH["ITCH_TA_LEN"] == 25


def test_a_mold_packet_round_trips():
    raw = tuple(itch.encode_message(m) for m in ITCH_MESSAGES)
    p = itch.MoldPacket("000010059B", 14757721, raw)
    data = itch.encode_packet(p)
    assert itch.decode_packet(data) == p
    assert struct.unpack_from(">QH", data, MOLD["MOLD_OFF_SEQ"]) == (14757721, len(raw))
    end = itch.MoldPacket("000010059B", 5, end_of_session=True)
    assert itch.decode_packet(itch.encode_packet(end)) == end
    assert struct.unpack_from(">H", itch.encode_packet(end), MOLD["MOLD_OFF_COUNT"]) == (0xFFFF,)
    assert itch.decode_packet(itch.encode_packet(itch.MoldPacket("000010059B", 5))).heartbeat


@pytest.mark.parametrize(
    "p,message",
    [
        (itch.MoldPacket("SHORT", 1), "exactly 10 characters"),
        (itch.MoldPacket("0123456789", 1, (b"x",), end_of_session=True), "carries no messages"),
    ],
)
def test_a_mold_packet_that_cannot_be_encoded_is_an_error(p, message):
    with pytest.raises(ProtocolError, match=message):
        itch.encode_packet(p)


def test_an_itch_timestamp_past_six_bytes_is_an_error():
    with pytest.raises(ProtocolError, match="does not fit 6 bytes"):
        itch.encode_message(itch.AddOrder("B", "A", 1, 1, timestamp=2**48))


def test_a_mold_packet_with_a_block_past_its_end_is_an_error():
    data = itch.encode_packet(itch.MoldPacket("0123456789", 1, (itch.encode_message(ITCH_MESSAGES[0]),)))
    with pytest.raises(ProtocolError, match="runs past the end"):
        itch.decode_packet(data[:-1])


# -- order frames --------------------------------------------------------------------------------


def test_order_frames_of_several_orders_round_trip():
    orders = [Order("B", "AAPL", 10, P("99.00"), 10, 1, 5), Order("S", "MSFT", 11, P("410.00"), 3, 2, 6)]
    assert decode_orders(encode_orders(orders)) == orders


@pytest.mark.parametrize("payload", [b"", bytes(43), bytes(45)], ids=["empty", "43 bytes", "45 bytes"])
def test_an_order_payload_that_is_not_whole_orders_is_an_error(payload):
    with pytest.raises(ProtocolError, match="not whole 44-byte orders"):
        decode_orders(payload)


# -- the real captures ------------------------------------------------------------------------------


def frames(name: str) -> list[bytes]:
    with (CAPTURES / name).open("rb") as f:
        return [bytes(dpkt.ethernet.Ethernet(buf).data.data.data) for _, buf in dpkt.pcap.Reader(f)]


IEX_CAPTURES = {
    "iex-tops-1.6-quote-update.pcap": [
        iex.QuoteUpdate("ATSG", P("24.19"), 18773, P("24.25"), 60677, 0, 1517065700930439360)
    ],
    "iex-tops-1.5-trading-status.pcap": [iex.TradingStatus("JHMU", "H", 1517066180254907889, "NA  ")],
    "iex-deep-1.0-price-level-buy.pcap": [iex.PriceLevel("B", "V", P("202.77"), 190, 1, 1611692981294956478)],
    "iex-deep-1.0-price-level-sell.pcap": [iex.PriceLevel("S", "UNH", P("344.14"), 82, 1, 1611692982062856490)],
    "iex-deep-1.0-heartbeat.pcap": [],
}


@pytest.mark.parametrize("name,expected", list(IEX_CAPTURES.items()), ids=list(IEX_CAPTURES))
def test_an_iex_capture_decodes_to_what_its_readme_says(name, expected):
    (data,) = frames(name)
    seg = iex.decode_segment(data)
    assert [m for _, m in iex.decode_messages(seg)] == expected
    assert iex.encode_segment(seg) == data  # byte for byte


def test_the_iex_security_directory_packet_holds_52_messages():
    (data,) = frames("iex-tops-1.5-security-directory.pcap")
    msgs = [m for _, m in iex.decode_messages(iex.decode_segment(data))]
    kinds = {chr(m.type) if isinstance(m, iex.OtherMessage) else type(m).__name__ for m in msgs}
    assert len(msgs) == 52 and kinds == {"D", "P", "O", "TradingStatus", "QuoteUpdate"}


ITCH_CAPTURES = {
    "itch50-add-order.pcap": [("A", "IVOO", "B", 1600, P("87.39"))],
    "itch50-add-order-5-zeroed-framing.pcap": [
        ("A", "IVOO", "B", 1600, P("87.39")),
        ("A", "RETL", "S", 100, P("7.17")),
        ("A", "XLF", "S", 100, P("33.95")),
        ("A", "XLF", "S", 4000, P("33.95")),
        ("A", "T", "S", 200, P("14.13")),
    ],
    "itch50-add-order-mpid-5-zeroed-framing.pcap": [("F", "CASY", "S", 100, P("255.52"))],
    "itch50-stock-trading-action.pcap": [("H", "AMC", "T")],
    "itch50-trading-action-5-zeroed-framing.pcap": [
        ("H", "ZXZZT", "P"),
        ("H", "ZVZZT", "P"),
        ("H", "CAML", "H"),
        ("H", "LTRY", "P"),
        ("H", "CSMD", "H"),
    ],
    "itch50-order-delete.pcap": [("D",)],
    "itch50-order-executed.pcap": [("E",)],
    "itch50-luld-collar-5-zeroed-framing.pcap": [("J",)] * 5,
}


def summary(m) -> tuple:
    if isinstance(m, itch.AddOrder):
        return ("F" if m.mpid else "A", m.symbol, m.side, m.shares, m.price)
    if isinstance(m, itch.TradingAction):
        return ("H", m.symbol, m.state)
    return (chr(m.type),)


@pytest.mark.parametrize("name,expected", list(ITCH_CAPTURES.items()), ids=list(ITCH_CAPTURES))
def test_an_itch_capture_decodes_to_what_its_readme_says(name, expected):
    packets = [itch.decode_packet(d) for d in frames(name)]
    got = [summary(m) for p in packets for _, m in itch.decode_messages(p)]
    assert got[: len(expected)] == expected
    for p, data in zip(packets, frames(name)):
        assert itch.encode_packet(p) == data  # byte for byte


def test_the_codecs_read_the_headers_layout():
    assert (iex.HDR_LEN, itch.HDR_LEN) == (IEX["IEX_SEG_HDR_LEN"], MOLD["MOLD_HDR_LEN"]) == (40, 20)
    assert (iex.PROTO_TOPS, iex.PROTO_DEEP) == (0x8003, 0x8004)
