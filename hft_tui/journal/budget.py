"""How many rejects the journal keeps whole: a budget of rows per second.

Every reject of a traded symbol reaches the journal, and a flood of them
(a sender repeating an old sequence number at line rate, a symbol stuck at
its limit while the feed runs at 100,000 updates a second) would grow the
file by ~100 bytes each until the disk is full and the kill latches.  So
the journal keeps the first ``journal_reject_rows_per_s`` rejects of each
second of kernel time whole, as the kernel wrote them, and counts the rest
per (second, reason, symbol): a row per such triple, however many rejects
it stands for.  Orders are never counted: each is journaled whole.

The second is the reject's own kernel time (``ts_ns``, CLOCK_MONOTONIC),
so the split does not depend on when the controller drains the ring.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..constants import EVENT_REJECT
from ..layout import Event
from ..rings import RECORD_STRIDE, RINGBUF_HDR_SZ, RecordRun
from .records import RawField, ring_record

NS_PER_S = 1_000_000_000


def _key_struct() -> tuple[struct.Struct, tuple[int, int, int]]:
    """A struct reading (ts_ns, symbol, reason) out of a whole ring record, at
    the offsets of layout.Event (the C struct's mirror): never retyped.
    Returns the struct and where each of the three lands in its tuple."""
    fields = sorted(
        [
            (RINGBUF_HDR_SZ + Event.ts_ns.offset, "ts", "Q", Event.ts_ns.size),
            (RINGBUF_HDR_SZ + Event.symbol.offset, "symbol", f"{Event.symbol.size}s", Event.symbol.size),
            (RINGBUF_HDR_SZ + Event.reason.offset, "reason", "I", Event.reason.size),
        ]
    )
    fmt, at = "=", 0
    for offset, _name, code, size in fields:
        fmt += "x" * (offset - at) + code
        at = offset + size
    fmt += "x" * (RECORD_STRIDE - at)
    order = [name for _o, name, _c, _s in fields]
    st = struct.Struct(fmt)
    assert st.size == RECORD_STRIDE
    return st, (order.index("ts"), order.index("symbol"), order.index("reason"))


_KEY, (_TS, _SYMBOL, _REASON) = _key_struct()

CountKey = tuple[int, int, bytes]  # (second, reason code, the symbol as the kernel wrote it)
Block = tuple[int | None, int | None, int, bytes]  # ring_pos, ring_end, count, records (a reject_blocks row)
_TUPLE_FIELDS = (RawField.ts_ns, RawField.reason, RawField.symbol)


@dataclass
class Counted:
    """Rejects of one (second, reason, symbol) not kept whole."""

    count: int
    first_ts: int
    last_ts: int

    def add(self, ts: int) -> None:
        self.count += 1
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)


class RejectBudget:
    """The rows-per-second budget of one writer.  ``rows_per_s`` None: every
    reject kept whole; 0: every reject counted.  ``counting_only`` (set by
    the writer when the disk runs low) counts every reject whatever the rate."""

    def __init__(self, rows_per_s: int | None) -> None:
        self.rows_per_s = rows_per_s
        self.counting_only = False
        self._second = -1
        self._used = 0

    def _keep(self, keys: Iterable[tuple[int, int, bytes]], counts: dict[CountKey, Counted]) -> list[bool]:
        """For each reject (ts_ns, reason, symbol), in ring order: kept whole,
        or added to ``counts``."""
        limit = 0 if self.counting_only else self.rows_per_s
        keep = []
        for ts, reason, symbol in keys:
            second = ts // NS_PER_S
            if second > self._second:  # two CPUs may interleave at a boundary: never step back
                self._second, self._used = second, 0
            if limit is None or self._used < limit:
                self._used += 1
                keep.append(True)
                continue
            keep.append(False)
            key = (second, reason, symbol)
            got = counts.get(key)
            if got is None:
                counts[key] = Counted(1, ts, ts)
            else:
                got.add(ts)
        return keep

    def split_records(self, records: bytes, counts: dict[CountKey, Counted]) -> tuple[bytes, int]:
        """Whole ring records of rejects -> (the records kept, back to back; how
        many); the others are added to ``counts``."""
        if self.rows_per_s is None and not self.counting_only:
            return records, len(records) // RECORD_STRIDE
        keys = ((k[_TS], k[_REASON], k[_SYMBOL]) for k in _KEY.iter_unpack(records))
        keep = self._keep(keys, counts)
        if all(keep):
            return records, len(keep)
        pieces, start = [], None
        for i, kept in enumerate([*keep, False]):
            if kept and start is None:
                start = i
            elif not kept and start is not None:
                pieces.append(records[start * RECORD_STRIDE : i * RECORD_STRIDE])
                start = None
        return b"".join(pieces), sum(keep)

    def split_tuples(
        self, rejects: list[tuple[int | None, tuple]], counts: dict[CountKey, Counted], fields: tuple[int, int, int]
    ) -> list[tuple[int | None, tuple]]:
        """(ring position, event tuple) rejects -> those kept; the others are
        added to ``counts``.  ``fields``: where ts_ns, reason and symbol sit in a tuple."""
        ts, reason, symbol = fields
        keep = self._keep(((t[ts], t[reason], t[symbol]) for _pos, t in rejects), counts)
        return [r for r, kept in zip(rejects, keep) if kept]

    def split(
        self, rejects: list[tuple[int | None, tuple]], runs: Iterable[RecordRun], done: int
    ) -> tuple[list[Block], dict[CountKey, Counted], int | None]:
        """The rejects among ``rejects`` ((position, event tuple)) and among each
        run, split: a block of those kept whole per source, the counts of the
        others, and the tape-ring position they all reach.  Records at
        tape-ring positions before ``done`` (journaled already, read again
        after a writer died before it moved the ring) are left out: exactly once."""
        blocks: list[Block] = []
        counts: dict[CountKey, Counted] = {}
        ends = []
        fresh = [(pos, t) for pos, t in rejects if pos is None or pos >= done]
        if fresh:
            positions = [pos for pos, _ in fresh if pos is not None]
            start = min(positions) if positions else None
            end = max(positions) + RECORD_STRIDE if positions else None
            kept = self.split_tuples(fresh, counts, _TUPLE_FIELDS)
            if kept:
                blocks.append((start, end, len(kept), b"".join(ring_record(t) for _, t in kept)))
            if end is not None:
                ends.append(end)
        for run in runs:
            first = RecordRun.position_index(run.pos, done)
            records, count = run.records_of_kind(EVENT_REJECT, first)
            if count:
                records, count = self.split_records(records, counts)
                if count:
                    blocks.append((run.pos + first * RECORD_STRIDE, run.end, count, records))
                ends.append(run.end)
        return blocks, counts, max(ends) if ends else None
