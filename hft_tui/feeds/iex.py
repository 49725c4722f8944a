"""IEX-TP segments carrying TOPS 1.6 and DEEP 1.0 messages (every integer little-endian).

A segment is a 40-byte header and ``count`` blocks of (u16 length, message);
a message's sequence is the header's first sequence plus its index, and a
heartbeat has no message.  The engine acts on Quote Update 'Q', Price Level
Update '8' (buy side) / '5' (sell side) and Trading Status 'H'; any other
type is an :class:`OtherMessage` here, kept as its bytes.  Prices are i64
with 4 implied decimals (the engine's price units).  Offsets and codes:
ebpf/feed_iex.h.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..constants import IEX
from ..errors import ProtocolError
from .common import OtherMessage as OtherMessage  # re-exported: each codec names its skipped messages
from .common import ascii_text, join_blocks, split_blocks, symbol_bytes, symbol_text

HDR_LEN = IEX["IEX_SEG_HDR_LEN"]
VERSION = IEX["IEX_VERSION"]
PROTO_TOPS = IEX["IEX_PROTO_TOPS"]
PROTO_DEEP = IEX["IEX_PROTO_DEEP"]
PROTOCOLS = {PROTO_TOPS: "tops", PROTO_DEEP: "deep"}
MSG_QUOTE = IEX["IEX_MSG_QUOTE"]
MSG_LEVEL_BUY = IEX["IEX_MSG_LEVEL_BUY"]
MSG_LEVEL_SELL = IEX["IEX_MSG_LEVEL_SELL"]
MSG_STATUS = IEX["IEX_MSG_STATUS"]
QUOTE_LEN = IEX["IEX_QUOTE_LEN"]
LEVEL_LEN = IEX["IEX_LEVEL_LEN"]
STATUS_LEN = IEX["IEX_STATUS_LEN"]
FLAG_HALTED = IEX["IEX_Q_FLAG_HALTED"]
FLAG_COMPLETE = IEX["IEX_L_FLAG_COMPLETE"]
STATUS_TRADING = chr(IEX["IEX_STATUS_TRADING"])
SYMBOL_LEN = IEX["IEX_SYMBOL_LEN"]
REASON_LEN = IEX["IEX_S_REASON_LEN"]
BLOCK_SIZE = IEX["IEX_BLOCK_LEN_SIZE"]
BLOCK = {2: "<H"}[BLOCK_SIZE]  # little-endian, as wide as the header says

_U8, _U16, _U32, _U64, _I64 = (struct.Struct(f) for f in ("<B", "<H", "<I", "<Q", "<q"))


@dataclass(frozen=True)
class Segment:
    protocol: int  # PROTO_TOPS or PROTO_DEEP
    channel: int
    session: int
    first_seq: int
    messages: tuple[bytes, ...] = ()
    stream_offset: int = 0
    send_time: int = 0  # ns since the epoch

    @property
    def heartbeat(self) -> bool:
        return not self.messages


def encode_segment(seg: Segment) -> bytes:
    """The UDP payload of a segment: header (payload length and count from the messages), blocks."""
    body = join_blocks(seg.messages, BLOCK)
    if len(seg.messages) > 0xFFFF or len(body) > 0xFFFF:
        raise ProtocolError(f"a segment of {len(seg.messages)} messages, {len(body)} bytes does not fit")
    hdr = bytearray(HDR_LEN)
    _U8.pack_into(hdr, IEX["IEX_OFF_VERSION"], VERSION)
    _U16.pack_into(hdr, IEX["IEX_OFF_PROTOCOL"], seg.protocol)
    _U32.pack_into(hdr, IEX["IEX_OFF_CHANNEL"], seg.channel)
    _U32.pack_into(hdr, IEX["IEX_OFF_SESSION"], seg.session)
    _U16.pack_into(hdr, IEX["IEX_OFF_PAYLOAD_LEN"], len(body))
    _U16.pack_into(hdr, IEX["IEX_OFF_COUNT"], len(seg.messages))
    _U64.pack_into(hdr, IEX["IEX_OFF_STREAM_OFFSET"], seg.stream_offset)
    _U64.pack_into(hdr, IEX["IEX_OFF_FIRST_SEQ"], seg.first_seq)
    _I64.pack_into(hdr, IEX["IEX_OFF_SEND_TIME"], seg.send_time)
    return bytes(hdr) + body


def decode_segment(data: bytes, *, partial: bool = False) -> Segment:
    """A segment from a UDP payload; anything that is not one whole segment is an error
    (with ``partial``, blocks running past the end are left out: common.split_blocks)."""
    if len(data) < HDR_LEN:
        raise ProtocolError(f"IEX-TP segment of {len(data)} bytes, the header alone is {HDR_LEN}")
    version = data[IEX["IEX_OFF_VERSION"]]
    protocol = _U16.unpack_from(data, IEX["IEX_OFF_PROTOCOL"])[0]
    if version != VERSION:
        raise ProtocolError(f"IEX-TP version {version}, expected {VERSION}")
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"IEX-TP message protocol {protocol:#06x} is neither TOPS nor DEEP")
    payload_len = _U16.unpack_from(data, IEX["IEX_OFF_PAYLOAD_LEN"])[0]
    body = data[HDR_LEN:]
    if payload_len != len(body):
        raise ProtocolError(f"IEX-TP payload length {payload_len}, {len(body)} bytes follow the header")
    count = _U16.unpack_from(data, IEX["IEX_OFF_COUNT"])[0]
    return Segment(
        protocol=protocol,
        channel=_U32.unpack_from(data, IEX["IEX_OFF_CHANNEL"])[0],
        session=_U32.unpack_from(data, IEX["IEX_OFF_SESSION"])[0],
        first_seq=_U64.unpack_from(data, IEX["IEX_OFF_FIRST_SEQ"])[0],
        messages=split_blocks(body, count, BLOCK, "IEX-TP segment", partial=partial),
        stream_offset=_U64.unpack_from(data, IEX["IEX_OFF_STREAM_OFFSET"])[0],
        send_time=_I64.unpack_from(data, IEX["IEX_OFF_SEND_TIME"])[0],
    )


# -- messages -------------------------------------------------------------


@dataclass(frozen=True)
class QuoteUpdate:
    """TOPS 'Q': the best bid and offer.  flags & FLAG_HALTED: halted or no quote."""

    symbol: str
    bid: int
    bid_size: int
    ask: int
    ask_size: int
    flags: int = 0
    timestamp: int = 0


@dataclass(frozen=True)
class PriceLevel:
    """DEEP '8' (side "B") or '5' (side "S"): a price level's size (0: the level is gone).
    flags & FLAG_COMPLETE: the exchange says the book is consistent again."""

    side: str
    symbol: str
    price: int
    size: int
    flags: int = FLAG_COMPLETE
    timestamp: int = 0


@dataclass(frozen=True)
class TradingStatus:
    """'H': status "H" halted, "O" order acceptance period, "P" paused, "T" trading."""

    symbol: str
    status: str
    timestamp: int = 0
    reason: str = "    "


IexMessage = QuoteUpdate | PriceLevel | TradingStatus | OtherMessage
_LEVEL_TYPE = {"B": MSG_LEVEL_BUY, "S": MSG_LEVEL_SELL}


# Where each type read here has its flags (a status: its status), timestamp and symbol.
_FIELDS = {
    t: (IEX[f"IEX_{k}_OFF_{flags}"], IEX[f"IEX_{k}_OFF_TIMESTAMP"], IEX[f"IEX_{k}_OFF_SYMBOL"])
    for t, k, flags in (
        (MSG_QUOTE, "Q", "FLAGS"),
        (MSG_LEVEL_BUY, "L", "FLAGS"),
        (MSG_LEVEL_SELL, "L", "FLAGS"),
        (MSG_STATUS, "S", "STATUS"),
    )
}


def _message(type_: int, length: int, flags: int, timestamp: int, symbol: str) -> bytearray:
    flags_at, ts_at, symbol_at = _FIELDS[type_]
    buf = bytearray(length)
    buf[IEX["IEX_OFF_TYPE"]] = type_
    buf[flags_at] = flags
    _I64.pack_into(buf, ts_at, timestamp)
    buf[symbol_at : symbol_at + SYMBOL_LEN] = symbol_bytes(symbol, SYMBOL_LEN)
    return buf


def encode_message(m: IexMessage) -> bytes:
    if isinstance(m, QuoteUpdate):
        buf = _message(MSG_QUOTE, QUOTE_LEN, m.flags, m.timestamp, m.symbol)
        _U32.pack_into(buf, IEX["IEX_Q_OFF_BID_SIZE"], m.bid_size)
        _I64.pack_into(buf, IEX["IEX_Q_OFF_BID"], m.bid)
        _I64.pack_into(buf, IEX["IEX_Q_OFF_ASK"], m.ask)
        _U32.pack_into(buf, IEX["IEX_Q_OFF_ASK_SIZE"], m.ask_size)
        return bytes(buf)
    if isinstance(m, PriceLevel):
        if m.side not in _LEVEL_TYPE:
            raise ProtocolError(f"price level side {m.side!r}: 'B' or 'S'")
        buf = _message(_LEVEL_TYPE[m.side], LEVEL_LEN, m.flags, m.timestamp, m.symbol)
        _U32.pack_into(buf, IEX["IEX_L_OFF_SIZE"], m.size)
        _I64.pack_into(buf, IEX["IEX_L_OFF_PRICE"], m.price)
        return bytes(buf)
    if isinstance(m, TradingStatus):
        if len(m.status) != 1 or len(m.reason) != REASON_LEN:
            raise ProtocolError(f"trading status {m.status!r} / reason {m.reason!r}: 1 and {REASON_LEN} characters")
        buf = _message(MSG_STATUS, STATUS_LEN, ord(m.status), m.timestamp, m.symbol)
        off = IEX["IEX_S_OFF_REASON"]
        buf[off : off + REASON_LEN] = m.reason.encode("ascii")
        return bytes(buf)
    if not m.raw:
        raise ProtocolError("an empty message")
    return bytes(m.raw)


def _need(raw: bytes, length: int, what: str) -> None:
    if len(raw) < length:
        raise ProtocolError(f"IEX {what} of {len(raw)} bytes, its layout is {length}")


def _symbol(raw: bytes, type_: int) -> str:
    off = _FIELDS[type_][2]
    return symbol_text(raw[off : off + SYMBOL_LEN])


def _timestamp(raw: bytes, type_: int) -> int:
    return int(_I64.unpack_from(raw, _FIELDS[type_][1])[0])


def decode_message(raw: bytes) -> IexMessage:
    """One message; a type the engine acts on must hold its whole layout."""
    if not raw:
        raise ProtocolError("an empty IEX message")
    t = raw[IEX["IEX_OFF_TYPE"]]
    if t == MSG_QUOTE:
        _need(raw, QUOTE_LEN, "quote update")
        return QuoteUpdate(
            symbol=_symbol(raw, t),
            bid=_I64.unpack_from(raw, IEX["IEX_Q_OFF_BID"])[0],
            bid_size=_U32.unpack_from(raw, IEX["IEX_Q_OFF_BID_SIZE"])[0],
            ask=_I64.unpack_from(raw, IEX["IEX_Q_OFF_ASK"])[0],
            ask_size=_U32.unpack_from(raw, IEX["IEX_Q_OFF_ASK_SIZE"])[0],
            flags=raw[IEX["IEX_Q_OFF_FLAGS"]],
            timestamp=_timestamp(raw, t),
        )
    if t in (MSG_LEVEL_BUY, MSG_LEVEL_SELL):
        _need(raw, LEVEL_LEN, "price level update")
        return PriceLevel(
            side="B" if t == MSG_LEVEL_BUY else "S",
            symbol=_symbol(raw, t),
            price=_I64.unpack_from(raw, IEX["IEX_L_OFF_PRICE"])[0],
            size=_U32.unpack_from(raw, IEX["IEX_L_OFF_SIZE"])[0],
            flags=raw[IEX["IEX_L_OFF_FLAGS"]],
            timestamp=_timestamp(raw, t),
        )
    if t == MSG_STATUS:
        _need(raw, STATUS_LEN, "trading status")
        off = IEX["IEX_S_OFF_REASON"]
        return TradingStatus(
            symbol=_symbol(raw, t),
            status=chr(raw[IEX["IEX_S_OFF_STATUS"]]),
            timestamp=_timestamp(raw, t),
            reason=ascii_text(raw[off : off + REASON_LEN]),
        )
    return OtherMessage(bytes(raw))


def decode_messages(seg: Segment) -> list[tuple[int, IexMessage]]:
    """(sequence, message) of every message of a segment."""
    return [(seg.first_seq + i, decode_message(m)) for i, m in enumerate(seg.messages)]
