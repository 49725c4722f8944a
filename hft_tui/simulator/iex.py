"""IEX-TP for the lab: TOPS 1.6 and DEEP 1.0 segments, bytes by hft_tui.feeds.iex.

TOPS: a quote of the walk is a Quote Update 'Q'; now and then one is
flagged halted (HALTED_FLAG_SHARE) or carries a price the engine's 32-bit
prices cannot hold (PRICE_RANGE_SHARE).  DEEP: a quote becomes Price Level
Updates: an offer ('5', the sell side: only the buy rule can take it), a bid
('8': only the sell rule), or both as one event, whose first level is sent
while the book is in transition (event flags without bit 0: the engine must
not trade on it); sometimes a level is removed (size 0).  Trading status 'H'
halts (H, O or P) and resumes (T) a symbol.  Every other message is a type
the engine skips, of its real length (TOPS 1.6 / DEEP 1.0 specifications),
with the timestamp and the symbol where the specification has them.

One segment a packet: channel CHANNEL, session SESSION, the stream offset
counting the payload bytes sent before, the send time the packet's.
"""

from __future__ import annotations

import random
import struct

from ..constants import IEX
from ..feeds import iex as codec
from ..strategy_model import FeedMessage
from .mix import MAX_BATCH, Block, Quote, status_letter

CHANNEL = 1
SESSION = 1
HALTS = "HOP"  # trading status letters that stop a symbol
HALTED_FLAG_SHARE = 0.01
PRICE_RANGE_SHARE = 0.003
# The types the engine skips, with their lengths, and how often a real feed
# sends them (trade reports most).
TOPS_OTHERS = {"T": (38, 50), "S": (10, 1), "D": (31, 4), "I": (18, 4), "O": (18, 2), "P": (19, 3),
               "X": (26, 3), "B": (38, 1), "A": (80, 6)}  # fmt: skip
DEEP_OTHERS = {"T": (38, 50), "S": (10, 1), "D": (31, 4), "E": (18, 3), "O": (18, 2), "P": (19, 3),
               "X": (26, 3), "B": (38, 1), "A": (80, 6)}  # fmt: skip
TS_OFF = IEX["IEX_Q_OFF_TIMESTAMP"]  # every IEX message has its timestamp here
SYMBOL_OFF = IEX["IEX_Q_OFF_SYMBOL"]  # and, but for a system event, its symbol here
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")


def out_of_range(price: int, rng: random.Random) -> int:
    """A price the engine cannot hold: negative, or above 2^32 - 1."""
    return -price if rng.random() < 0.5 else price + (1 << 32)


class _IexFormat:
    name = "iex"
    protocol = codec.PROTO_TOPS
    others: dict[str, tuple[int, int]] = TOPS_OTHERS
    max_messages = MAX_BATCH
    mixed = True
    channel = f"{SESSION}/{CHANNEL}"  # as the engine names it

    def __init__(self) -> None:
        self.stream_offset = 0
        self._types = list(self.others)
        self._weights = [w for _n, w in self.others.values()]

    def block_size(self, message: bytes) -> int:
        return codec.BLOCK_SIZE + len(message)

    def header_size(self) -> int:
        return codec.HDR_LEN

    def packet(self, messages: list[bytes], first_seq: int, ts: int) -> bytes:
        seg = codec.Segment(self.protocol, CHANNEL, SESSION, first_seq, tuple(messages), self.stream_offset, ts)
        payload = codec.encode_segment(seg)
        self.stream_offset += len(payload) - codec.HDR_LEN
        return payload

    def status(self, symbol: str, trading: bool, seq: int, ts: int, rng: random.Random) -> Block:
        letter = status_letter(trading, HALTS, rng)
        raw = codec.encode_message(codec.TradingStatus(symbol, letter, ts))
        return raw, FeedMessage(symbol, seq, ts, status=letter)

    def other(self, seq: int, ts: int, rng: random.Random) -> Block:
        kind = rng.choices(self._types, self._weights)[0]
        buf = bytearray(self.others[kind][0])
        buf[0] = ord(kind)
        _I64.pack_into(buf, TS_OFF, ts)
        if len(buf) >= SYMBOL_OFF + codec.SYMBOL_LEN:
            buf[SYMBOL_OFF : SYMBOL_OFF + codec.SYMBOL_LEN] = rng.choice((b"IBM     ", b"AAPL    ", b"ZIEXT   "))
        if kind in "TB":  # a trade's size and price sit where a price level has them
            _U32.pack_into(buf, IEX["IEX_L_OFF_SIZE"], rng.randint(1, 1000))
            _I64.pack_into(buf, IEX["IEX_L_OFF_PRICE"], rng.randrange(1_0000, 500_0000, 100))
        return codec.encode_message(codec.OtherMessage(bytes(buf))), None


class TopsFormat(_IexFormat):
    name = "iex-tops"
    protocol = codec.PROTO_TOPS
    others = TOPS_OTHERS

    def quote(self, q: Quote, seq: int, ts: int, rng: random.Random) -> list[Block]:
        bid, ask, flags = q.bid, q.ask, 0
        r = rng.random()
        if r < HALTED_FLAG_SHARE:
            flags = codec.FLAG_HALTED
        elif r < HALTED_FLAG_SHARE + PRICE_RANGE_SHARE:
            if rng.random() < 0.5:
                bid = out_of_range(bid, rng)
            else:
                ask = out_of_range(ask, rng)
        raw = codec.encode_message(codec.QuoteUpdate(q.symbol, bid, q.bid_qty, ask, q.ask_qty, flags, ts))
        meaning = FeedMessage(q.symbol, seq, ts, bid, q.bid_qty, ask, q.ask_qty, halted_flag=flags != 0)
        return [(raw, meaning)]


class DeepFormat(_IexFormat):
    name = "iex-deep"
    protocol = codec.PROTO_DEEP
    others = DEEP_OTHERS

    def _level(self, side: str, q: Quote, seq: int, ts: int, complete: bool, size: int, price: int) -> Block:
        flags = codec.FLAG_COMPLETE if complete else 0
        raw = codec.encode_message(codec.PriceLevel(side, q.symbol, price, size, flags, ts))
        if side == "S":  # an offer: ask only
            meaning = FeedMessage(q.symbol, seq, ts, 0, 0, price, size, in_transition=not complete)
        else:
            meaning = FeedMessage(q.symbol, seq, ts, price, size, 0, 0, in_transition=not complete)
        return raw, meaning

    def quote(self, q: Quote, seq: int, ts: int, rng: random.Random) -> list[Block]:
        r = rng.random()
        bid, ask = q.bid, q.ask
        if rng.random() < PRICE_RANGE_SHARE:
            bid, ask = out_of_range(bid, rng), out_of_range(ask, rng)
        sell = ("S", q.ask_qty, ask)
        buy = ("B", q.bid_qty, bid)
        if r < 0.40:
            return [self._level(sell[0], q, seq, ts, True, sell[1], sell[2])]
        if r < 0.80:
            return [self._level(buy[0], q, seq, ts, True, buy[1], buy[2])]
        if r < 0.95:  # one event, two levels: the first while the book is in transition
            first, second = (sell, buy) if rng.random() < 0.5 else (buy, sell)
            return [
                self._level(first[0], q, seq, ts, False, first[1], first[2]),
                self._level(second[0], q, seq + 1, ts, True, second[1], second[2]),
            ]
        side = sell if rng.random() < 0.5 else buy  # a level removed
        return [self._level(side[0], q, seq, ts, True, 0, side[2])]
