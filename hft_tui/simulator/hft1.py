"""The hft1 feed format, packed fast: one update (HFT_MSG_LEN bytes) a datagram.

Updates are packed with one precompiled struct whose layout is derived from
the offsets in ebpf/hft_protocol.h, straight into the sender's batch buffer
(protocol.encode_update is the readable reference, and the tests check that
both write the same bytes).  A batch is packed with timestamp 0;
:func:`stamp_batch` writes time.time_ns() into every update of it just
before it goes out.  Sequence numbers are one feed-wide counter.

This is the one module that knows hft1's bytes: the fast path packs a
batch buffer with the three functions below; :class:`FrameFormat` gives the
frame path (a gateway, a VLAN, a multicast group, a capture) the same
updates one at a time.
"""

from __future__ import annotations

import random
import struct

from ..constants import MAGIC, MSG_LEN, OFFSETS, SYMBOL_LEN, TYPE_UPDATE, VERSION
from ..protocol import Update, decode_update
from ..strategy_model import FeedMessage
from ..symbol import Symbol
from .mix import Block, Quote
from .walk import MarketWalk

MESSAGE_LEN = MSG_LEN  # bytes of one update, and of the datagram that carries it

# Field widths are the protocol's (u16 magic, u8 version, ...); the offsets come
# from hft_protocol.h, so this struct moves with the header.
_FIELDS = (
    ("magic", "H"),
    ("version", "B"),
    ("type", "B"),
    ("symbol", f"{SYMBOL_LEN}s"),
    ("seq", "Q"),
    ("bid", "I"),
    ("bid_qty", "I"),
    ("ask", "I"),
    ("ask_qty", "I"),
    ("timestamp", "Q"),
)


def update_struct() -> struct.Struct:
    """A big-endian struct of the whole update, padded to the header's offsets."""
    fmt, pos = "!", 0
    for name, code in sorted(_FIELDS, key=lambda f: OFFSETS[f[0]]):
        if OFFSETS[name] < pos:
            raise ValueError(f"field {name} overlaps the one before it")
        fmt += f"{OFFSETS[name] - pos}x" if OFFSETS[name] > pos else ""
        fmt += code
        pos = OFFSETS[name] + struct.calcsize("!" + code)
    fmt += f"{MSG_LEN - pos}x" if pos < MSG_LEN else ""
    packer = struct.Struct(fmt)
    if packer.size != MSG_LEN:
        raise ValueError(f"update struct is {packer.size} bytes, the protocol says {MSG_LEN}")
    return packer


UPDATE = update_struct()
_U64 = struct.Struct("!Q")
_TIMESTAMP = OFFSETS["timestamp"]


def pack_update(
    buf, offset: int, key: bytes, seq: int, bid: int, bid_qty: int, ask: int, ask_qty: int, ts: int
) -> None:
    UPDATE.pack_into(buf, offset, MAGIC, VERSION, TYPE_UPDATE, key, seq, bid, bid_qty, ask, ask_qty, ts)


def pack_batch(buf, walk: MarketWalk, first_seq: int, count: int) -> None:
    """The walk's next ``count`` updates, seq first_seq..., timestamp 0, one a
    MESSAGE_LEN slot of ``buf``."""
    step, keys, pack = walk.step, walk.keys, UPDATE.pack_into
    for i in range(count):
        k, bid, bq, ask, aq = step()
        pack(buf, i * MSG_LEN, MAGIC, VERSION, TYPE_UPDATE, keys[k], first_seq + i, bid, bq, ask, aq, 0)


def stamp_batch(buf, count: int, ts: int) -> None:
    """The sender timestamp into the first ``count`` updates of ``buf``."""
    stamp, offset = _U64.pack_into, _TIMESTAMP
    for i in range(count):
        stamp(buf, i * MSG_LEN + offset, ts)


def unpack_batch(buf, count: int) -> list[Update]:
    """The first ``count`` updates of ``buf``, decoded (the slow path: for the
    few updates the order checker must see before any order)."""
    return [decode_update(bytes(buf[i * MSG_LEN : (i + 1) * MSG_LEN])) for i in range(count)]


class FrameFormat:
    """hft1 for the frame path (mix.FeedSource): one update a packet, the walk
    only, as the fast path sends it (the same seeded walk, the same bytes)."""

    name = "hft1"
    max_messages = 1
    mixed = False
    channel = None  # hft1 has no channels: every update carries its own sequence

    def quote(self, q: Quote, seq: int, ts: int, rng: random.Random) -> list[Block]:
        buf = bytearray(MSG_LEN)
        pack_update(buf, 0, Symbol(q.symbol).key, seq, q.bid, q.bid_qty, q.ask, q.ask_qty, ts)
        return [(bytes(buf), FeedMessage(q.symbol, seq, ts, q.bid, q.bid_qty, q.ask, q.ask_qty))]

    def status(self, symbol: str, trading: bool, seq: int, ts: int, rng: random.Random) -> Block:
        raise ValueError("hft1 has no trading status messages")

    def other(self, seq: int, ts: int, rng: random.Random) -> Block:
        raise ValueError("hft1 has no other message types")

    def block_size(self, message: bytes) -> int:
        return len(message)

    def header_size(self) -> int:
        return 0

    def packet(self, messages: list[bytes], first_seq: int, ts: int) -> bytes:
        return b"".join(messages)
