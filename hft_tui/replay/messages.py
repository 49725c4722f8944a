"""What a captured feed packet says, message by message, as the strategy model reads it.

The replay checks the live engine's orders with the simulator's checker
(simulator.checker.OrderChecker against a FeedLog), which needs each
message of each packet as a strategy_model.FeedMessage, in the form the
lab's feed formats give them (simulator/iex.py, itch.py, hft1.py): a DEEP
offer (sell side) is an ask, a bid level a bid, a level sent while the book
is in transition is marked so; a TOPS quote is both sides with its halted
flag; a trading status or trading action is its letter; an ITCH add order is
one side; every other type is None (the engine walks past it).  The bytes
are read by hft_tui.feeds, the codecs of the program's own headers.

A packet is read as the engine reads it: a message the codec refuses (a
known type shorter than its layout, an empty block, an ITCH side that is
none) is None, and the packet goes on; a block running past the packet ends
it, the messages before it standing; the messages past the engine's
MAX_MESSAGES are not read (the engine counts the packet truncated, and
the channel's next packet has them as a gap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..constants import MAX_MESSAGES, MSG_LEN
from ..errors import ProtocolError
from ..feeds import iex, itch
from ..protocol import decode_update
from ..strategy_model import FeedMessage

#: the furthest a packet's range may end (one past its last sequence): the engine's u64, never wrapped
SEQ_END = 2**64 - 1


@dataclass(frozen=True)
class PacketMeaning:
    """A feed packet: its channel (as maps.FeedChannel names it; "" for hft1),
    its first sequence number and each message's meaning, in order."""

    channel: str
    first_seq: int
    messages: tuple[FeedMessage | None, ...]


def _readable(decode: Callable[[int, bytes], FeedMessage | None], seq: int, raw: bytes) -> FeedMessage | None:
    """A message as ``decode`` reads it; None when the codec refuses it (the engine counts it malformed)."""
    try:
        return decode(seq, raw)
    except ProtocolError:
        return None


def _iex(seq: int, raw: bytes) -> FeedMessage | None:
    m = iex.decode_message(raw)
    if isinstance(m, iex.QuoteUpdate):
        halted = bool(m.flags & iex.FLAG_HALTED)
        return FeedMessage(m.symbol, seq, m.timestamp, m.bid, m.bid_size, m.ask, m.ask_size, halted_flag=halted)
    if isinstance(m, iex.PriceLevel):
        transition = not m.flags & iex.FLAG_COMPLETE
        if m.side == "S":
            return FeedMessage(m.symbol, seq, m.timestamp, 0, 0, m.price, m.size, in_transition=transition)
        return FeedMessage(m.symbol, seq, m.timestamp, m.price, m.size, 0, 0, in_transition=transition)
    if isinstance(m, iex.TradingStatus):
        return FeedMessage(m.symbol, seq, m.timestamp, status=m.status)
    return None


def _itch(seq: int, raw: bytes) -> FeedMessage | None:
    m = itch.decode_message(raw)
    if isinstance(m, itch.AddOrder):
        if m.side == "S":
            return FeedMessage(m.symbol, seq, m.timestamp, 0, 0, m.price, m.shares)
        return FeedMessage(m.symbol, seq, m.timestamp, m.price, m.shares, 0, 0)
    if isinstance(m, itch.TradingAction):
        return FeedMessage(m.symbol, seq, m.timestamp, status=m.state)
    return None


def packet_meaning(feed: str, payload: bytes) -> PacketMeaning | None:
    """The packet's messages (module doc); None when it is not a whole packet of
    ``feed`` (a heartbeat is one, with no messages)."""
    try:
        if feed == "iex":
            seg = iex.decode_segment(payload, partial=True)
            if seg.first_seq + len(seg.messages) > SEQ_END:
                return None  # sequences past 2^64 - 1: the engine counts it malformed
            msgs = tuple(_readable(_iex, seg.first_seq + i, raw) for i, raw in enumerate(seg.messages[:MAX_MESSAGES]))
            return PacketMeaning(f"{seg.session}/{seg.channel}", seg.first_seq, msgs)
        if feed == "itch":
            pkt = itch.decode_packet(payload, partial=True)
            if pkt.seq + len(pkt.messages) > SEQ_END:
                return None
            msgs = tuple(_readable(_itch, pkt.seq + i, raw) for i, raw in enumerate(pkt.messages[:MAX_MESSAGES]))
            return PacketMeaning(pkt.session.rstrip(" \0"), pkt.seq, msgs)
        u = decode_update(payload[:MSG_LEN])
    except ProtocolError:
        return None
    return PacketMeaning("", u.seq, (FeedMessage(u.symbol, u.seq, u.timestamp, u.bid, u.bid_qty, u.ask, u.ask_qty),))
