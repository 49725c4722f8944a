"""hft_tui.protocol: prices, symbols and the 44-byte payloads."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hft_tui.constants import MAGIC, MSG_LEN, OFFSETS, SYMBOL_LEN, TYPE_BUY, TYPE_SELL, TYPE_UPDATE, VERSION
from hft_tui.protocol import (
    U32_MAX,
    U64_MAX,
    Order,
    ProtocolError,
    Update,
    decode_order,
    decode_update,
    encode_order,
    encode_update,
    parse_price,
    price_to_str,
)
from hft_tui.symbol import Symbol

pytestmark = pytest.mark.pure  # no root, no kernel

SETTINGS = settings(max_examples=500, deadline=None, derandomize=True, database=None)

# -- prices -----------------------------------------------------------------

GOOD_PRICES = [
    ("190.25", 1902500),
    ("190.2500", 1902500),
    ("0.0001", 1),
    ("0", 0),
    ("0.0", 0),
    (" 42.5 ", 425000),
    (190, 1900000),
    (Decimal("190.1"), 1901000),
    ("429496.7295", U32_MAX),
]


@pytest.mark.parametrize("text,units", GOOD_PRICES, ids=[repr(t) for t, _ in GOOD_PRICES])
def test_price_parses_to_units_of_1e_4(text, units):
    assert parse_price(text) == units


BAD_PRICES = [
    ("abc", "not a number"),
    ("", "not a number"),
    ("19O.25", "not a number"),
    ("1,5", "not a number"),
    ("NaN", "not a number"),
    ("Infinity", "not a number"),
    ("-1", "negative"),
    ("-0.0001", "negative"),
    ("190.00001", "more than 4 decimal places"),
    ("1e-5", "more than 4 decimal places"),
    ("429496.7296", "above the largest price"),
    ("1e400", "above the largest price"),
    (2**32, "above the largest price"),
    (190.25, "not float"),
    (True, "not bool"),
]


@pytest.mark.parametrize("value,message", BAD_PRICES, ids=[repr(v) for v, _ in BAD_PRICES])
def test_bad_price_is_refused_with_one_clear_line(value, message):
    with pytest.raises(ProtocolError) as exc:
        parse_price(value)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_price_error_names_the_field():
    with pytest.raises(ProtocolError, match=r"^buy_target: "):
        parse_price("x", "buy_target")


@pytest.mark.parametrize("units,text", [(1902500, "190.2500"), (1, "0.0001"), (0, "0.0000"), (U32_MAX, "429496.7295")])
def test_price_prints_with_four_decimals(units, text):
    assert price_to_str(units) == text


@SETTINGS
@given(st.integers(0, U32_MAX))
def test_price_text_round_trips(units):
    assert parse_price(price_to_str(units)) == units


# -- symbols ----------------------------------------------------------------

GOOD_SYMBOLS = ["AAPL", "A", "BRK.B", "BF-B", "ABCDEFGH", "spy", "X1"]
BAD_SYMBOLS = ["", "ABCDEFGHI", "AA PL", "AAPL ", "ÄPPL", "AAPL\0", "A/B", "A_B", 123, None, b"AAPL"]


@pytest.mark.parametrize("name", GOOD_SYMBOLS)
def test_valid_symbol_is_accepted(name):
    assert Symbol(name) == name


@pytest.mark.parametrize("name", BAD_SYMBOLS, ids=repr)
def test_invalid_symbol_is_refused(name):
    with pytest.raises(ProtocolError, match="invalid symbol") as exc:
        Symbol(name)
    assert "\n" not in str(exc.value)


def test_symbol_is_space_padded_on_the_wire():
    payload = encode_update(Update("BRK.B", 1, 0, 0, 0, 0))
    at = OFFSETS["symbol"]
    assert payload[at : at + SYMBOL_LEN] == b"BRK.B   "


# -- payloads ---------------------------------------------------------------

symbols = st.sampled_from(GOOD_SYMBOLS)
u32 = st.integers(0, U32_MAX)
u64 = st.integers(0, U64_MAX)
updates = st.builds(Update, symbols, u64, u32, u32, u32, u32, u64)
orders = st.builds(Order, st.sampled_from("BS"), symbols, u64, u32, u32, u32, u64)


@SETTINGS
@given(updates, st.integers(MSG_LEN, 1472))
def test_update_round_trips(u, length):
    payload = encode_update(u, length)
    assert len(payload) == length
    assert payload[MSG_LEN:] == bytes(length - MSG_LEN)
    assert decode_update(payload) == u


@SETTINGS
@given(orders, st.integers(MSG_LEN, 1472))
def test_order_round_trips(o, length):
    assert decode_order(encode_order(o, length)) == o


def test_update_fields_sit_at_the_header_offsets_big_endian():
    u = Update("AAPL", 0x0102030405060708, 1902500, 300, 1903000, 400, 0x1112131415161718)
    p = encode_update(u)
    assert struct.unpack_from("!H", p, OFFSETS["magic"]) == (MAGIC,)
    assert (p[OFFSETS["version"]], p[OFFSETS["type"]]) == (VERSION, TYPE_UPDATE)
    assert struct.unpack_from("!Q", p, OFFSETS["seq"]) == (u.seq,)
    assert struct.unpack_from("!IIII", p, OFFSETS["bid"]) == (u.bid, u.bid_qty, u.ask, u.ask_qty)
    assert struct.unpack_from("!Q", p, OFFSETS["timestamp"]) == (u.timestamp,)


def test_order_puts_price_qty_and_id_in_the_update_fields():
    o = Order("S", "MSFT", 9, 4151000, 50, 7, 123)
    p = encode_order(o)
    assert p[OFFSETS["type"]] == TYPE_SELL
    assert struct.unpack_from("!IIII", p, OFFSETS["bid"]) == (o.price, o.qty, o.order_id, 0)


def _with(payload: bytes, offset: int, value: bytes) -> bytes:
    return payload[:offset] + value + payload[offset + len(value) :]


GOOD_UPDATE = encode_update(Update("AAPL", 1, 1902500, 100, 1903000, 100))
GOOD_ORDER = encode_order(Order("B", "AAPL", 1, 1903000, 100, 1, 0))

BAD_UPDATES = [
    ("short", GOOD_UPDATE[: MSG_LEN - 1], f"need {MSG_LEN}"),
    ("empty", b"", f"need {MSG_LEN}"),
    ("bad magic", _with(GOOD_UPDATE, OFFSETS["magic"], b"XX"), "bad magic"),
    ("bad version", _with(GOOD_UPDATE, OFFSETS["version"], bytes([VERSION + 1])), "bad version"),
    ("an order", GOOD_ORDER, "not an update"),
]


@pytest.mark.parametrize("name,payload,message", BAD_UPDATES, ids=[n for n, _, _ in BAD_UPDATES])
def test_decode_update_refuses(name, payload, message):
    with pytest.raises(ProtocolError, match=message):
        decode_update(payload)


BAD_ORDERS = [
    ("short", GOOD_ORDER[:10], f"need {MSG_LEN}"),
    ("bad magic", _with(GOOD_ORDER, OFFSETS["magic"], b"\0\0"), "bad magic"),
    ("bad version", _with(GOOD_ORDER, OFFSETS["version"], b"\0"), "bad version"),
    ("an update", GOOD_UPDATE, "not an order"),
    ("type X", _with(GOOD_ORDER, OFFSETS["type"], b"X"), "not an order"),
    ("ask_qty not 0", _with(GOOD_ORDER, OFFSETS["ask_qty"], b"\0\0\0\1"), "not 0"),
]


@pytest.mark.parametrize("name,payload,message", BAD_ORDERS, ids=[n for n, _, _ in BAD_ORDERS])
def test_decode_order_refuses(name, payload, message):
    with pytest.raises(ProtocolError, match=message):
        decode_order(payload)


def test_buy_and_sell_types_decode_as_sides():
    for side, code in (("B", TYPE_BUY), ("S", TYPE_SELL)):
        assert decode_order(_with(GOOD_ORDER, OFFSETS["type"], bytes([code]))).side == side


def test_encode_update_refuses_a_short_length():
    with pytest.raises(ProtocolError, match="below"):
        encode_update(Update("AAPL", 1, 0, 0, 0, 0), MSG_LEN - 1)


@pytest.mark.parametrize("name", ["", "TOOLONGNAME", "A B"])
def test_encode_refuses_an_invalid_symbol(name):
    with pytest.raises(ProtocolError, match="invalid symbol"):
        encode_update(Update(name, 1, 0, 0, 0, 0))
