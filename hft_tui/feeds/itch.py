"""MoldUDP64 packets carrying Nasdaq TotalView-ITCH 5.0 messages (every integer big-endian).

A packet is a 20-byte MoldUDP64 header (session, the first message's
sequence, the count) and ``count`` blocks of (u16 length, message); count 0
is a heartbeat and 0xFFFF the end of the session.  The engine acts on Add
Order 'A', Add Order with MPID 'F' and Stock Trading Action 'H'; any other
type is an :class:`OtherMessage` here, kept as its bytes.  Prices are u32
with 4 implied decimals.  Offsets and codes: ebpf/feed_itch.h.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..constants import ITCH, MOLD
from ..errors import ProtocolError
from .common import OtherMessage as OtherMessage  # re-exported: each codec names its skipped messages
from .common import ascii_text, join_blocks, split_blocks, symbol_bytes, symbol_text

HDR_LEN = MOLD["MOLD_HDR_LEN"]
SESSION_LEN = MOLD["MOLD_SESSION_LEN"]
COUNT_HEARTBEAT = MOLD["MOLD_COUNT_HEARTBEAT"]
COUNT_END_OF_SESSION = MOLD["MOLD_COUNT_END_OF_SESSION"]
MSG_ADD = ITCH["ITCH_MSG_ADD"]
MSG_ADD_MPID = ITCH["ITCH_MSG_ADD_MPID"]
MSG_TRADING_ACTION = ITCH["ITCH_MSG_TRADING_ACTION"]
ADD_LEN = ITCH["ITCH_ADD_LEN"]
ADD_MPID_LEN = ITCH["ITCH_ADD_MPID_LEN"]
TA_LEN = ITCH["ITCH_TA_LEN"]
STATE_TRADING = chr(ITCH["ITCH_STATE_TRADING"])
STOCK_LEN = ITCH["ITCH_STOCK_LEN"]
TIMESTAMP_LEN = ITCH["ITCH_TIMESTAMP_LEN"]
SIDES = (chr(ITCH["ITCH_SIDE_BUY"]), chr(ITCH["ITCH_SIDE_SELL"]))
BLOCK_SIZE = MOLD["MOLD_BLOCK_LEN_SIZE"]
BLOCK = {2: ">H"}[BLOCK_SIZE]  # big-endian, as wide as the header says
MPID_LEN = ITCH["ITCH_MPID_LEN"]
REASON_LEN = ITCH["ITCH_TA_REASON_LEN"]

_U16, _U32, _U64 = (struct.Struct(f) for f in (">H", ">I", ">Q"))


@dataclass(frozen=True)
class MoldPacket:
    session: str  # 10 ASCII characters
    seq: int  # the first message's sequence (the next expected, for a heartbeat)
    messages: tuple[bytes, ...] = ()
    end_of_session: bool = False

    @property
    def heartbeat(self) -> bool:
        return not self.messages and not self.end_of_session


def encode_packet(p: MoldPacket) -> bytes:
    """The UDP payload: the header (count from the messages, or 0xFFFF), the blocks."""
    if p.end_of_session and p.messages:
        raise ProtocolError("an end-of-session packet carries no messages")
    if len(p.messages) >= COUNT_END_OF_SESSION:
        raise ProtocolError(f"{len(p.messages)} messages do not fit a MoldUDP64 packet")
    session = p.session.encode("ascii")
    if len(session) != SESSION_LEN:
        raise ProtocolError(f"MoldUDP64 session {p.session!r}: exactly {SESSION_LEN} characters")
    hdr = bytearray(HDR_LEN)
    off = MOLD["MOLD_OFF_SESSION"]
    hdr[off : off + SESSION_LEN] = session
    _U64.pack_into(hdr, MOLD["MOLD_OFF_SEQ"], p.seq)
    _U16.pack_into(hdr, MOLD["MOLD_OFF_COUNT"], COUNT_END_OF_SESSION if p.end_of_session else len(p.messages))
    return bytes(hdr) + join_blocks(p.messages, BLOCK)


def decode_packet(data: bytes, *, partial: bool = False) -> MoldPacket:
    """A packet from a UDP payload; blocks running past the end are an error (bytes after the
    last block are allowed, as padding; with ``partial`` they are left out: common.split_blocks)."""
    if len(data) < HDR_LEN:
        raise ProtocolError(f"MoldUDP64 packet of {len(data)} bytes, the header alone is {HDR_LEN}")
    off = MOLD["MOLD_OFF_SESSION"]
    count = _U16.unpack_from(data, MOLD["MOLD_OFF_COUNT"])[0]
    end = count == COUNT_END_OF_SESSION
    return MoldPacket(
        session=ascii_text(data[off : off + SESSION_LEN]),
        seq=_U64.unpack_from(data, MOLD["MOLD_OFF_SEQ"])[0],
        messages=() if end else split_blocks(data[HDR_LEN:], count, BLOCK, "MoldUDP64 packet", partial=partial),
        end_of_session=end,
    )


# -- messages -------------------------------------------------------------


@dataclass(frozen=True)
class AddOrder:
    """'A' (36 bytes), or 'F' with ``mpid`` (40 bytes).  side "B" a bid, "S" an offer."""

    side: str
    symbol: str
    price: int
    shares: int
    ref: int = 0
    timestamp: int = 0  # ns since midnight, 6 bytes on the wire
    locate: int = 0
    tracking: int = 0
    mpid: str | None = None


@dataclass(frozen=True)
class TradingAction:
    """'H': state "H" halted, "P" paused, "Q" quotation only, "T" trading."""

    symbol: str
    state: str
    timestamp: int = 0
    locate: int = 0
    tracking: int = 0
    reason: str = "    "


ItchMessage = AddOrder | TradingAction | OtherMessage


def _common(type_: int, length: int, locate: int, tracking: int, timestamp: int) -> bytearray:
    if not 0 <= timestamp < 1 << (8 * TIMESTAMP_LEN):
        raise ProtocolError(f"ITCH timestamp {timestamp} does not fit {TIMESTAMP_LEN} bytes")
    buf = bytearray(length)
    buf[ITCH["ITCH_OFF_TYPE"]] = type_
    _U16.pack_into(buf, ITCH["ITCH_OFF_LOCATE"], locate)
    _U16.pack_into(buf, ITCH["ITCH_OFF_TRACKING"], tracking)
    off = ITCH["ITCH_OFF_TIMESTAMP"]
    buf[off : off + TIMESTAMP_LEN] = timestamp.to_bytes(TIMESTAMP_LEN, "big")
    return buf


def _put(buf: bytearray, off: int, raw: bytes) -> None:
    buf[off : off + len(raw)] = raw


def encode_message(m: ItchMessage) -> bytes:
    if isinstance(m, AddOrder):
        if m.side not in SIDES:
            raise ProtocolError(f"add order side {m.side!r}: 'B' or 'S'")
        mpid = m.mpid is not None
        buf = _common(
            MSG_ADD_MPID if mpid else MSG_ADD, ADD_MPID_LEN if mpid else ADD_LEN, m.locate, m.tracking, m.timestamp
        )
        _U64.pack_into(buf, ITCH["ITCH_ADD_OFF_REF"], m.ref)
        buf[ITCH["ITCH_ADD_OFF_SIDE"]] = ord(m.side)
        _U32.pack_into(buf, ITCH["ITCH_ADD_OFF_SHARES"], m.shares)
        _put(buf, ITCH["ITCH_ADD_OFF_STOCK"], symbol_bytes(m.symbol, STOCK_LEN))
        _U32.pack_into(buf, ITCH["ITCH_ADD_OFF_PRICE"], m.price)
        if m.mpid is not None:
            _put(buf, ITCH["ITCH_ADD_OFF_MPID"], symbol_bytes(m.mpid, MPID_LEN))
        return bytes(buf)
    if isinstance(m, TradingAction):
        if len(m.state) != 1 or len(m.reason) != REASON_LEN:
            raise ProtocolError(f"trading state {m.state!r} / reason {m.reason!r}: 1 and {REASON_LEN} characters")
        buf = _common(MSG_TRADING_ACTION, TA_LEN, m.locate, m.tracking, m.timestamp)
        _put(buf, ITCH["ITCH_TA_OFF_STOCK"], symbol_bytes(m.symbol, STOCK_LEN))
        buf[ITCH["ITCH_TA_OFF_STATE"]] = ord(m.state)
        _put(buf, ITCH["ITCH_TA_OFF_REASON"], m.reason.encode("ascii"))
        return bytes(buf)
    if not m.raw:
        raise ProtocolError("an empty message")
    return bytes(m.raw)


def _need(raw: bytes, length: int, what: str) -> None:
    if len(raw) < length:
        raise ProtocolError(f"ITCH {what} of {len(raw)} bytes, its layout is {length}")


def _timestamp(raw: bytes) -> int:
    off = ITCH["ITCH_OFF_TIMESTAMP"]
    return int.from_bytes(raw[off : off + TIMESTAMP_LEN], "big")


def decode_message(raw: bytes) -> ItchMessage:
    """One message; a type the engine acts on must hold its whole layout."""
    if not raw:
        raise ProtocolError("an empty ITCH message")
    t = raw[ITCH["ITCH_OFF_TYPE"]]
    if t in (MSG_ADD, MSG_ADD_MPID):
        _need(raw, ADD_MPID_LEN if t == MSG_ADD_MPID else ADD_LEN, "add order")
        stock = ITCH["ITCH_ADD_OFF_STOCK"]
        mpid = ITCH["ITCH_ADD_OFF_MPID"]
        side = chr(raw[ITCH["ITCH_ADD_OFF_SIDE"]])
        if side not in SIDES:  # the program refuses it too: malformed
            raise ProtocolError(f"ITCH add order side {side!r}: 'B' or 'S'")
        return AddOrder(
            side=side,
            symbol=symbol_text(raw[stock : stock + STOCK_LEN]),
            price=_U32.unpack_from(raw, ITCH["ITCH_ADD_OFF_PRICE"])[0],
            shares=_U32.unpack_from(raw, ITCH["ITCH_ADD_OFF_SHARES"])[0],
            ref=_U64.unpack_from(raw, ITCH["ITCH_ADD_OFF_REF"])[0],
            timestamp=_timestamp(raw),
            locate=_U16.unpack_from(raw, ITCH["ITCH_OFF_LOCATE"])[0],
            tracking=_U16.unpack_from(raw, ITCH["ITCH_OFF_TRACKING"])[0],
            mpid=ascii_text(raw[mpid : mpid + MPID_LEN]).rstrip(" \0") if t == MSG_ADD_MPID else None,
        )
    if t == MSG_TRADING_ACTION:
        _need(raw, TA_LEN, "stock trading action")
        stock, reason = ITCH["ITCH_TA_OFF_STOCK"], ITCH["ITCH_TA_OFF_REASON"]
        return TradingAction(
            symbol=symbol_text(raw[stock : stock + STOCK_LEN]),
            state=chr(raw[ITCH["ITCH_TA_OFF_STATE"]]),
            timestamp=_timestamp(raw),
            locate=_U16.unpack_from(raw, ITCH["ITCH_OFF_LOCATE"])[0],
            tracking=_U16.unpack_from(raw, ITCH["ITCH_OFF_TRACKING"])[0],
            reason=ascii_text(raw[reason : reason + REASON_LEN]),
        )
    return OtherMessage(bytes(raw))


def decode_messages(p: MoldPacket) -> list[tuple[int, ItchMessage]]:
    """(sequence, message) of every message of a packet."""
    return [(p.seq + i, decode_message(m)) for i, m in enumerate(p.messages)]
