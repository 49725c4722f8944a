"""The journal's schema and its records: the SQL, and kernel events to and from rows.

Rejects are kept as the kernel wrote them (ring records, back to back, in
``reject_blocks``); these functions turn an event into such a record and a
block back into rows, so the writer never decodes a reject on the way in.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Final

from ..constants import EVENT_KINDS, REJECT_REASONS
from ..errors import JournalError
from ..layout import key_name
from ..rings import EVENT_FIELDS, EVENT_STRUCT, RECORD_STRUCT
from ..symbol import Symbol

# 3: rejects above the row rate counted (reject_counts), a journal in parts (continued);
# 2: rejects in blocks of kernel events; 1: a row per reject
SCHEMA_VERSION = 3
READABLE_SCHEMAS = (1, 2, 3)  # a writer upgrades 1 and 2 in place; readers read all


class RawField:
    """Where each field the journal reads sits in an event tuple, for
    record_raw and the reject blocks.  Each index is looked up by name in
    EVENT_FIELDS (the order of layout.Event, the mirror of the C struct), so
    a field moved in the struct moves here too, and a field renamed there
    fails at import here."""

    ts_ns: Final = EVENT_FIELDS.index("ts_ns")
    sender_ts: Final = EVENT_FIELDS.index("sender_ts")
    seq: Final = EVENT_FIELDS.index("seq")
    symbol: Final = EVENT_FIELDS.index("symbol")
    kind: Final = EVENT_FIELDS.index("kind")
    side: Final = EVENT_FIELDS.index("side")
    price: Final = EVENT_FIELDS.index("price")
    qty: Final = EVENT_FIELDS.index("qty")
    order_id: Final = EVENT_FIELDS.index("order_id")
    reason: Final = EVENT_FIELDS.index("reason")
    bid: Final = EVENT_FIELDS.index("bid")
    bid_qty: Final = EVENT_FIELDS.index("bid_qty")
    ask: Final = EVENT_FIELDS.index("ask")
    ask_qty: Final = EVENT_FIELDS.index("ask_qty")
    position: Final = EVENT_FIELDS.index("position")
    pnl: Final = EVENT_FIELDS.index("pnl")


EVENT_COLUMNS = (
    "ring_pos",
    "ts_ns",
    "sender_ts",
    "seq",
    "symbol",
    "side",
    "price",
    "qty",
    "position",
    "pnl",
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
)
# A reject read back from a block has the columns an order row has, with the
# reason in place of the order id (and no ring position of its own).
REJECT_ROW_KEYS = ("jseq", "engine", "reason", *EVENT_COLUMNS)
KIND_CODE = {name: code for code, name in EVENT_KINDS.items()}
REASON_CODE = {name: code for code, name in REJECT_REASONS.items()}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per engine instance (an attach).  Order ids restart at 1 with each.
CREATE TABLE IF NOT EXISTS engines (
    id              INTEGER PRIMARY KEY,
    iface           TEXT    NOT NULL,
    prog_id         INTEGER NOT NULL,
    attached_at     REAL    NOT NULL,
    program_hash    TEXT,
    first_seen_ns   INTEGER NOT NULL,   -- wall clock, when the journal first saw it
    clock_offset_ns INTEGER NOT NULL,   -- wall - monotonic, to show kernel times
    kernel_orders   INTEGER NOT NULL DEFAULT 0,  -- totals.order_seq last seen
    ringbuf_drops   INTEGER NOT NULL DEFAULT 0,  -- orders the events ring lost
    tape_drops      INTEGER NOT NULL DEFAULT 0,  -- rejects/samples the tape ring lost
    closed          INTEGER NOT NULL DEFAULT 0,  -- detached and drained: kernel_orders is final
    UNIQUE (prog_id, attached_at)
);
-- jseq: one journal order across orders, rejects and control.
CREATE TABLE IF NOT EXISTS orders (
    jseq      INTEGER PRIMARY KEY,
    engine    INTEGER NOT NULL,
    order_id  INTEGER NOT NULL,
    {", ".join(f"{c} INTEGER" if c not in ("symbol", "side") else f"{c} TEXT" for c in EVENT_COLUMNS)},
    UNIQUE (engine, order_id)
);
-- The rejects of one drained batch: `records` holds `count` ring records as
-- the kernel wrote them, back to back (each an 8-byte ring header, the
-- struct hft_event, padding to 8 bytes; native byte order); reject i has
-- journal order jseq + i.  ring_pos..ring_end is the part of the tape ring
-- the batch covered (NULL when read through libbpf).
CREATE TABLE IF NOT EXISTS reject_blocks (
    jseq      INTEGER PRIMARY KEY,
    engine    INTEGER NOT NULL,
    ring_pos  INTEGER,
    ring_end  INTEGER,
    count     INTEGER NOT NULL,
    records   BLOB    NOT NULL,
    UNIQUE (engine, ring_pos)
);
CREATE TABLE IF NOT EXISTS control (
    jseq           INTEGER PRIMARY KEY,
    engine         INTEGER,
    wall_ns        INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    ring_pos       INTEGER,            -- kernel kill events: their events-ring position
    program_hash   TEXT,
    config_version INTEGER,
    detail         TEXT    NOT NULL DEFAULT '{{}}',
    UNIQUE (engine, ring_pos)
);
-- Rejects past journal_reject_rows_per_s in one second of kernel time, counted
-- per reason and symbol instead of kept whole: one row per (second, reason,
-- symbol), its count growing while that second's rejects are drained (in the
-- transaction that moves ring_end, so a count is exact across a writer's death).
CREATE TABLE IF NOT EXISTS reject_counts (
    jseq       INTEGER PRIMARY KEY,
    engine     INTEGER NOT NULL,
    second     INTEGER NOT NULL,   -- kernel time (CLOCK_MONOTONIC) of the rejects, whole seconds
    reason     INTEGER NOT NULL,   -- the kernel's reason code
    symbol     TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    ts_ns      INTEGER NOT NULL,   -- the first counted reject's kernel time
    last_ts_ns INTEGER NOT NULL,   -- the last one's
    ring_end   INTEGER,            -- the tape-ring position counted up to
    UNIQUE (engine, second, reason, symbol)
);
-- A part after the first (IFACE.journal.sqlite.N): where the earlier parts left
-- each engine, so a writer that reads records again after a crash never
-- journals them twice across the parts.
CREATE TABLE IF NOT EXISTS continued (
    engine     INTEGER PRIMARY KEY,
    tape_end   INTEGER NOT NULL,   -- tape-ring position journaled in the earlier parts
    events_end INTEGER NOT NULL,   -- events-ring position journaled in the earlier parts
    last_order INTEGER NOT NULL    -- the highest order id in the earlier parts
);
"""

# Every table a journal holds, now or in an older schema (schema 1's rejects, dropped by its upgrade).
JOURNAL_TABLES: Final = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA)) | {"rejects"}


def event_tuple(ev) -> tuple:
    """An EngineEvent (or any object with its fields, names for the coded ones)
    back as the kernel's event tuple (layout.Event order)."""
    values = {
        "ts_ns": ev.ts_ns,
        "sender_ts": ev.sender_ts,
        "seq": ev.seq,
        "symbol": Symbol(ev.symbol).key,
        "kind": KIND_CODE[ev.kind],
        "side": ord(ev.side) if ev.side else 0,
        "price": ev.price,
        "qty": ev.qty,
        "order_id": ev.order_id,
        "reason": reason_code(ev.reason),
        "bid": ev.bid,
        "bid_qty": ev.bid_qty,
        "ask": ev.ask,
        "ask_qty": ev.ask_qty,
        "position": ev.position,
        "pnl": ev.pnl,
    }
    return tuple(values.get(name, 0) for name in EVENT_FIELDS)


def schema1_reject(row: tuple):
    """A schema 1 reject row (jseq, engine, reason, then the event columns) as an event-like object."""
    fields = dict(zip(("reason", *EVENT_COLUMNS), row[2:]))
    return SimpleNamespace(kind="reject", order_id=0, **fields)


def reason_code(reason: str) -> int:
    """A reject reason's kernel code; a code this hft-tui has no name for was
    kept as its number, and stays that number (never another reason)."""
    if reason in REASON_CODE:
        return REASON_CODE[reason]
    if reason.isdigit():
        return int(reason)
    raise JournalError(f"reject reason {reason!r} has no kernel code")


def ring_record(t: tuple) -> bytes:
    """An event tuple as a ring record (header, event, padding), as the kernel writes one."""
    return RECORD_STRUCT.pack(EVENT_STRUCT.size, 0, *t)


def event_columns(t: tuple, symbol: str) -> tuple:
    """An event tuple's columns of a journal row, from ts_ns to ask_qty (``symbol``
    already decoded: callers cache it)."""
    f = RawField
    side = t[f.side]
    return (
        t[f.ts_ns],
        t[f.sender_ts],
        t[f.seq],
        symbol,
        chr(side) if side else "",
        t[f.price],
        t[f.qty],
        t[f.position],
        t[f.pnl],
        t[f.bid],
        t[f.bid_qty],
        t[f.ask],
        t[f.ask_qty],
    )


def decode_reject_block(jseq: int, engine: int, records: bytes) -> list[dict]:
    """The rejects of one block as rows (the columns of an order row, a reason for the id)."""
    f = RawField
    if not isinstance(records, bytes):
        raise JournalError(f"reject block {jseq} is malformed: a {type(records).__name__}, not ring records")
    if len(records) % RECORD_STRUCT.size:
        raise JournalError(
            f"reject block {jseq} is malformed: {len(records)} bytes, not whole {RECORD_STRUCT.size}-byte records"
        )
    rows = []
    for i, rec in enumerate(RECORD_STRUCT.iter_unpack(records)):
        t = rec[2:]
        reason = REJECT_REASONS.get(t[f.reason], str(t[f.reason]))
        columns = (jseq + i, engine, reason, None, *event_columns(t, key_name(t[f.symbol])))
        rows.append(dict(zip(REJECT_ROW_KEYS, columns)))
    return rows


def kill_detail(state: str, pnl: int, symbol: str, seq: int, ts_ns: int) -> str:
    return json.dumps({"state": state, "pnl": pnl, "symbol": symbol, "seq": seq, "ts_ns": ts_ns}, sort_keys=True)
