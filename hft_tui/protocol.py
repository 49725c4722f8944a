"""Encoding and decoding of the 44-byte market-data and order payloads.

Offsets and constants come from ebpf/hft_protocol.h (see constants.py).
Prices are integers with 4 implied decimals; :func:`price_to_str` and
:func:`parse_price` convert at the edges (CLI, TOML, TUI) only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .constants import (
    MAGIC,
    MSG_LEN,
    OFFSETS,
    PRICE_SCALE,
    SYMBOL_LEN,
    TYPE_BUY,
    TYPE_SELL,
    TYPE_UPDATE,
    VERSION,
)
from .errors import ProtocolError
from .symbol import Symbol

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
PRICE_DECIMALS = len(str(PRICE_SCALE)) - 1


def decimal_to_units(dec: Decimal, what: str) -> int:
    """An exact decimal (>= 0, already checked against its limit) to 1e-4 units.

    Works on the digits, not with Decimal arithmetic, which rounds at 28
    significant digits: 190.250000000000000000000000001 must be refused, not
    rounded to 190.25.  Callers compare with their limit first, so 1E+999999
    never becomes a million-digit integer.
    """
    _, digit_tuple, exp = dec.as_tuple()
    if not isinstance(exp, int):  # 'n', 'N', 'F': a NaN or an infinity has no places to count
        raise ProtocolError(f"{what}: {dec} is not a number")
    digits = list(digit_tuple)
    while exp < -PRICE_DECIMALS and digits and digits[-1] == 0:
        digits.pop()
        exp += 1
    if exp < -PRICE_DECIMALS and any(digits):
        raise ProtocolError(f"{what}: {dec} has more than {PRICE_DECIMALS} decimal places")
    return int(dec.scaleb(PRICE_DECIMALS))


def plain_number_text(text: str) -> bool:
    """Whether operator text may go to int() or Decimal(): ASCII, no underscore.  Both also
    take "1_0" (as 10) and other scripts' digits, which nobody typing a price means."""
    return text.isascii() and "_" not in text


def parse_price(value: object, what: str = "price") -> int:
    """A decimal price (str, int or Decimal) to integer price units.

    Floats are refused: 190.1 as a float is not 190.1.
    """
    if isinstance(value, (bool, float)):
        raise ProtocolError(f"{what}: give a decimal number, not {type(value).__name__}")
    text = str(value).strip()
    try:
        if not plain_number_text(text):
            raise InvalidOperation
        dec = Decimal(text)
    except InvalidOperation:
        raise ProtocolError(f"{what}: {value!r} is not a number") from None
    if not dec.is_finite():
        raise ProtocolError(f"{what}: {value!r} is not a number")
    if dec < 0:
        raise ProtocolError(f"{what}: {value} is negative")
    if dec > price_to_decimal(U32_MAX):
        raise ProtocolError(f"{what}: {value} is above the largest price {price_to_str(U32_MAX)}")
    return decimal_to_units(dec, what)


def price_to_str(units: int) -> str:
    return f"{units // PRICE_SCALE}.{units % PRICE_SCALE:0{PRICE_DECIMALS}d}"


def price_to_decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-PRICE_DECIMALS)


@dataclass(frozen=True)
class Update:
    symbol: str
    seq: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int
    timestamp: int = 0


@dataclass(frozen=True)
class Order:
    side: str  # "B" or "S"
    symbol: str
    seq: int  # the update that triggered it
    price: int
    qty: int
    order_id: int
    timestamp: int  # echoed from the update


_U16, _U32, _U64 = struct.Struct("!H"), struct.Struct("!I"), struct.Struct("!Q")


def encode_update(u: Update, length: int = MSG_LEN) -> bytes:
    """The payload of an update; ``length`` > 44 pads with zero bytes."""
    if length < MSG_LEN:
        raise ProtocolError(f"payload length {length} is below {MSG_LEN}")
    buf = bytearray(length)
    _U16.pack_into(buf, OFFSETS["magic"], MAGIC)
    buf[OFFSETS["version"]] = VERSION
    buf[OFFSETS["type"]] = TYPE_UPDATE
    buf[OFFSETS["symbol"] : OFFSETS["symbol"] + SYMBOL_LEN] = Symbol(u.symbol).key
    _U64.pack_into(buf, OFFSETS["seq"], u.seq)
    _U32.pack_into(buf, OFFSETS["bid"], u.bid)
    _U32.pack_into(buf, OFFSETS["bid_qty"], u.bid_qty)
    _U32.pack_into(buf, OFFSETS["ask"], u.ask)
    _U32.pack_into(buf, OFFSETS["ask_qty"], u.ask_qty)
    _U64.pack_into(buf, OFFSETS["timestamp"], u.timestamp)
    return bytes(buf)


def _header(payload: bytes) -> int:
    if len(payload) < MSG_LEN:
        raise ProtocolError(f"payload of {len(payload)} bytes, need {MSG_LEN}")
    if _U16.unpack_from(payload, OFFSETS["magic"])[0] != MAGIC:
        raise ProtocolError("bad magic")
    if payload[OFFSETS["version"]] != VERSION:
        raise ProtocolError(f"bad version {payload[OFFSETS['version']]}")
    return payload[OFFSETS["type"]]


def _symbol(payload: bytes) -> str:
    return payload[OFFSETS["symbol"] : OFFSETS["symbol"] + SYMBOL_LEN].decode("ascii", "replace").rstrip(" ")


def decode_update(payload: bytes) -> Update:
    if _header(payload) != TYPE_UPDATE:
        raise ProtocolError("not an update")
    return Update(
        symbol=_symbol(payload),
        seq=_U64.unpack_from(payload, OFFSETS["seq"])[0],
        bid=_U32.unpack_from(payload, OFFSETS["bid"])[0],
        bid_qty=_U32.unpack_from(payload, OFFSETS["bid_qty"])[0],
        ask=_U32.unpack_from(payload, OFFSETS["ask"])[0],
        ask_qty=_U32.unpack_from(payload, OFFSETS["ask_qty"])[0],
        timestamp=_U64.unpack_from(payload, OFFSETS["timestamp"])[0],
    )


def decode_order(payload: bytes) -> Order:
    kind = _header(payload)
    if kind not in (TYPE_BUY, TYPE_SELL):
        raise ProtocolError(f"not an order (type {kind:#04x})")
    if _U32.unpack_from(payload, OFFSETS["ask_qty"])[0] != 0:
        raise ProtocolError("order field at offset 32 is not 0")
    return Order(
        side=chr(kind),
        symbol=_symbol(payload),
        seq=_U64.unpack_from(payload, OFFSETS["seq"])[0],
        price=_U32.unpack_from(payload, OFFSETS["bid"])[0],
        qty=_U32.unpack_from(payload, OFFSETS["bid_qty"])[0],
        order_id=_U32.unpack_from(payload, OFFSETS["ask"])[0],
        timestamp=_U64.unpack_from(payload, OFFSETS["timestamp"])[0],
    )


def encode_order(o: Order, length: int = MSG_LEN) -> bytes:
    """An order payload as the engine writes it (for tests and models)."""
    buf = bytearray(encode_update(Update(o.symbol, o.seq, 0, 0, 0, 0, o.timestamp), length))
    buf[OFFSETS["type"]] = ord(o.side)
    _U32.pack_into(buf, OFFSETS["bid"], o.price)
    _U32.pack_into(buf, OFFSETS["bid_qty"], o.qty)
    _U32.pack_into(buf, OFFSETS["ask"], o.order_id)
    return bytes(buf)
