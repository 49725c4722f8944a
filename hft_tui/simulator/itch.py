"""MoldUDP64 carrying TotalView-ITCH 5.0 for the lab, bytes by hft_tui.feeds.itch.

A quote of the walk becomes Add Orders: a sell add at the ask (an offer:
only the buy rule can take it), a buy add at the bid (only the sell rule),
or both; a fifth of them are 'F' (with an MPID).  Stock Trading Action 'H'
halts (H, P or Q) and resumes (T) a symbol.  Every other message is a type
the engine skips, of its real length (the ITCH 5.0 specification), with
the common fields (stock locate, tracking number, timestamp) and, for the
order messages, the reference of an earlier add.

Timestamps are nanoseconds since midnight (UTC here), six bytes; the stock
locate is the symbol's place in the run's own directory.  One MoldUDP64
packet a packet, session SESSION.
"""

from __future__ import annotations

import random
import struct

from ..constants import ITCH
from ..feeds import itch as codec
from ..strategy_model import FeedMessage
from .mix import MAX_BATCH, Block, Quote, status_letter

SESSION = "HFTLAB0001"
HALTS = "HPQ"
DAY_NS = 86_400 * 1_000_000_000
MPID_SHARE = 0.2
MPIDS = ("HFTL", "NITE", "GSCO")
# The types the engine skips, with their lengths, and how often a real feed sends them.
OTHERS = {"E": (31, 12), "C": (36, 2), "X": (23, 6), "D": (19, 30), "U": (35, 10), "P": (44, 8), "Q": (40, 1),
          "B": (19, 1), "S": (12, 1), "R": (39, 2), "Y": (20, 1), "L": (26, 1), "I": (50, 4), "J": (35, 1),
          "h": (21, 1), "N": (20, 1), "V": (35, 1), "W": (12, 1), "K": (28, 1), "O": (48, 1)}  # fmt: skip
ORDER_TYPES = "ECXDU"  # messages about an earlier order: its reference follows the common fields
REF_OFF = ITCH["ITCH_ADD_OFF_REF"]
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


class ItchFormat:
    name = "itch"
    max_messages = MAX_BATCH
    mixed = True
    channel = SESSION  # as the engine names it

    def __init__(self) -> None:
        self.locates: dict[str, int] = {}
        self.next_ref = 1
        self._types = list(OTHERS)
        self._weights = [w for _n, w in OTHERS.values()]

    def _locate(self, symbol: str) -> int:
        return self.locates.setdefault(symbol, len(self.locates) + 1)

    def block_size(self, message: bytes) -> int:
        return codec.BLOCK_SIZE + len(message)

    def header_size(self) -> int:
        return codec.HDR_LEN

    def packet(self, messages: list[bytes], first_seq: int, ts: int) -> bytes:
        return codec.encode_packet(codec.MoldPacket(SESSION, first_seq, tuple(messages)))

    def _add(self, side: str, q: Quote, seq: int, ts: int, rng: random.Random) -> Block:
        day_ts = ts % DAY_NS
        price, shares = (q.ask, q.ask_qty) if side == "S" else (q.bid, q.bid_qty)
        mpid = rng.choice(MPIDS) if rng.random() < MPID_SHARE else None
        m = codec.AddOrder(side, q.symbol, price, shares, self.next_ref, day_ts, self._locate(q.symbol), 0, mpid)
        self.next_ref += 1
        if side == "S":  # an offer: ask only
            meaning = FeedMessage(q.symbol, seq, day_ts, 0, 0, price, shares)
        else:
            meaning = FeedMessage(q.symbol, seq, day_ts, price, shares, 0, 0)
        return codec.encode_message(m), meaning

    def quote(self, q: Quote, seq: int, ts: int, rng: random.Random) -> list[Block]:
        r = rng.random()
        if r < 0.45:
            return [self._add("S", q, seq, ts, rng)]
        if r < 0.90:
            return [self._add("B", q, seq, ts, rng)]
        return [self._add("S", q, seq, ts, rng), self._add("B", q, seq + 1, ts, rng)]

    def status(self, symbol: str, trading: bool, seq: int, ts: int, rng: random.Random) -> Block:
        letter = status_letter(trading, HALTS, rng)
        day_ts = ts % DAY_NS
        raw = codec.encode_message(codec.TradingAction(symbol, letter, day_ts, self._locate(symbol)))
        return raw, FeedMessage(symbol, seq, day_ts, status=letter)

    def other(self, seq: int, ts: int, rng: random.Random) -> Block:
        kind = rng.choices(self._types, self._weights)[0]
        buf = bytearray(OTHERS[kind][0])
        buf[ITCH["ITCH_OFF_TYPE"]] = ord(kind)
        _U16.pack_into(buf, ITCH["ITCH_OFF_LOCATE"], rng.randint(1, 8000))
        off = ITCH["ITCH_OFF_TIMESTAMP"]
        buf[off : off + codec.TIMESTAMP_LEN] = (ts % DAY_NS).to_bytes(codec.TIMESTAMP_LEN, "big")
        if kind in ORDER_TYPES and self.next_ref > 1:
            _U64.pack_into(buf, REF_OFF, rng.randrange(1, self.next_ref))
        return codec.encode_message(codec.OtherMessage(bytes(buf))), None
