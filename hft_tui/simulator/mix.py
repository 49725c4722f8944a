"""What a real feed carries besides the quotes we trade on, packed into packets.

A real exchange feed is mostly messages the engine does not act on: other
message types (trades, system events, order deletes...), symbols nobody
configured, trading status changes.  :class:`FeedSource` makes such a stream,
seeded and stable, one packet at a time:

    QUOTE_SHARE    of messages: today's walk for a configured symbol
    UNKNOWN_SHARE  the same kind of message for a symbol the engine does not hold
    STATUS_SHARE   a trading status change for a configured symbol (a halt,
                   later its resume: a halt lasts about HALT_MESSAGES messages)
    the rest       a type the engine skips, of the format's real lengths

The format (iex.py, itch.py, hft1.py's FrameFormat) turns each of these into
its messages and bytes (a quote can be one or two messages: a DEEP level per
side, an ITCH add per side) and frames a packet.  A packet holds up to
``batch`` messages and never more than MAX_PAYLOAD bytes (one 1,500-byte
Ethernet frame), so it may hold fewer.  Every message comes with what it
means (strategy_model.FeedMessage, or None for a skipped type): that is what
the orders are checked against, and what the tests decode the bytes back to.

Sequence numbers run on from ``first_seq``, one a message; a packet the
runner does not send (a gap) keeps its numbers.  :meth:`FeedSource.close`
gives the resumes of symbols still halted, so a run never leaves one halted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from ..strategy_model import TRADING, FeedMessage
from .walk import MarketWalk

MAX_PAYLOAD = 1500 - 20 - 8  # an IPv4/UDP datagram in a 1,500-byte MTU
MAX_BATCH = 128  # the messages of a packet the engine reads (more are counted truncated)
QUOTE_SHARE = 0.45
UNKNOWN_SHARE = 0.15
STATUS_SHARE = 0.01
HALT_MESSAGES = 200
# Symbols a real feed quotes that the lab's configs do not hold.
UNKNOWN_SYMBOLS = ("IBM", "TSLA", "AMZN", "GOOG", "QQQ", "XLF", "ZVZZT", "BRK.B", "IWM", "F")


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int


@dataclass(frozen=True)
class Packet:
    """One packet of the feed: its payload, its first sequence number and
    what each of its messages means (in order, one sequence number each)."""

    payload: bytes
    first_seq: int
    messages: tuple[FeedMessage | None, ...]


Block = tuple[bytes, FeedMessage | None]  # one message's bytes and meaning


class FeedFormat(Protocol):
    """What a wire format gives FeedSource (see the module doc)."""

    name: str
    max_messages: int  # at most this many messages a packet (hft1: 1)
    mixed: bool  # other types, unknown symbols and halts mixed in (hft1: only the walk)
    channel: str | None  # the channel it sends on, as the engine names it (None: hft1)

    def quote(self, q: Quote, seq: int, ts: int, rng: random.Random) -> list[Block]: ...

    def status(self, symbol: str, trading: bool, seq: int, ts: int, rng: random.Random) -> Block: ...

    def other(self, seq: int, ts: int, rng: random.Random) -> Block: ...

    def block_size(self, message: bytes) -> int: ...

    def packet(self, messages: list[bytes], first_seq: int, ts: int) -> bytes: ...

    def header_size(self) -> int: ...


class FeedSource:
    """The seeded message stream of one run, one packet at a time (module doc)."""

    def __init__(self, fmt: FeedFormat, walk: MarketWalk, seed: int, first_seq: int, batch: int = 1) -> None:
        if not 1 <= batch <= fmt.max_messages:
            raise ValueError(f"a {fmt.name} packet holds 1..{fmt.max_messages} messages")
        self.fmt = fmt
        self.walk = walk
        self.rng = random.Random(seed * 7919 + 17)  # its own stream: the walk's stays today's
        self.next_seq = first_seq
        self.batch = batch
        self.unknown = [s for s in UNKNOWN_SYMBOLS if s not in set(walk.names)]
        self.halted: dict[str, int] = {}  # symbol -> the sequence number after which it resumes
        self._pending: list[Block] = []  # messages made but not yet in a packet (a quote's second side)

    def _next_blocks(self, seq: int, ts: int) -> list[Block]:
        rng, fmt = self.rng, self.fmt
        if not fmt.mixed:
            k, bid, bq, ask, aq = self.walk.step()
            return fmt.quote(Quote(self.walk.names[k], bid, bq, ask, aq), seq, ts, rng)
        for name, until in self.halted.items():
            if seq >= until:
                del self.halted[name]
                return [fmt.status(name, True, seq, ts, rng)]
        r = rng.random()
        if r < QUOTE_SHARE:
            k, bid, bq, ask, aq = self.walk.step()
            return fmt.quote(Quote(self.walk.names[k], bid, bq, ask, aq), seq, ts, rng)
        r -= QUOTE_SHARE
        if r < UNKNOWN_SHARE and self.unknown:
            tick = 100 * rng.randint(1, 4)
            bid = rng.randrange(10_0000, 500_0000, 100)
            q = Quote(rng.choice(self.unknown), bid, rng.randint(1, 5000), bid + tick, rng.randint(1, 5000))
            return fmt.quote(q, seq, ts, rng)
        r -= UNKNOWN_SHARE
        if r < STATUS_SHARE:
            name = rng.choice(self.walk.names)
            if name not in self.halted:
                self.halted[name] = seq + rng.randint(HALT_MESSAGES // 2, HALT_MESSAGES * 3 // 2)
                return [fmt.status(name, False, seq, ts, rng)]
        return [fmt.other(seq, ts, rng)]

    def next_packet(self, ts: int, limit: int | None = None) -> Packet:
        """The next packet (at most ``limit`` messages), its messages stamped
        ``ts`` (ns since the epoch)."""
        fmt = self.fmt
        first = seq = self.next_seq
        room = MAX_PAYLOAD - fmt.header_size()
        most = self.batch if limit is None else max(1, min(self.batch, limit))
        blocks: list[Block] = []
        while len(blocks) < most:
            if not self._pending:
                self._pending = self._next_blocks(seq, ts)
            size = fmt.block_size(self._pending[0][0])
            if size > room and blocks:
                break
            blocks.append(self._pending.pop(0))
            room -= size
            seq += 1
        return self._pack(blocks, first, ts)

    def close(self, ts: int) -> Packet | None:
        """A last packet: the resumes of the symbols still halted (None if none)."""
        blocks = [self.fmt.status(name, True, self.next_seq + i, ts, self.rng) for i, name in enumerate(self.halted)]
        self.halted.clear()
        # A quote's second side made but not sent stays unsent: it is simply not part of the run.
        self._pending.clear()
        return self._pack(blocks, self.next_seq, ts) if blocks else None

    def heartbeat(self, ts: int) -> Packet:
        """A packet of no messages that carries the next sequence number."""
        return self._pack([], self.next_seq, ts)

    def _pack(self, blocks: list[Block], first: int, ts: int) -> Packet:
        # The meanings carry their sequence numbers: a message's is its place in the packet.
        meanings = tuple(None if m is None else _with_seq(m, first + i) for i, (_raw, m) in enumerate(blocks))
        self.next_seq = first + len(blocks)
        return Packet(self.fmt.packet([raw for raw, _m in blocks], first, ts), first, meanings)


def _with_seq(m: FeedMessage, seq: int) -> FeedMessage:
    if m.seq == seq:
        return m
    return FeedMessage(
        m.symbol, seq, m.timestamp, m.bid, m.bid_qty, m.ask, m.ask_qty, m.halted_flag, m.in_transition, m.status
    )


def status_letter(trading: bool, halts: str, rng: random.Random) -> str:
    """A trading status letter: T, or one of the format's halt letters."""
    return TRADING if trading else rng.choice(halts)
