"""The order journal: every order and every reject, append-only, in SQLite.

Format and rules: docs/JOURNAL.md.  In short:

 - one SQLite file per interface, /var/lib/hft-tui/IFACE.journal.sqlite
   (directory 0700, file 0600, root only), WAL mode;
 - tables ``engines`` (one row per attached engine instance: its program
   hash, the last kernel counters the writer saw), ``orders`` (a row per
   order), ``reject_blocks`` (the rejects of one drained batch, kept as the
   kernel's events, decoded when read: a reject storm of 50,000/s costs the
   writer one row a tick, not one a reject) and ``control`` (attach,
   controller start/stop, config versions, kills);
 - the writer (the controller: one per engine) commits one transaction per
   batch it drains, and only then moves the ring buffer's consumer position,
   so a controller killed at any instant loses nothing: the next one reads
   the uncommitted records again; ``INSERT OR IGNORE`` on the order id (and
   the kill's ring position) and the tape ring's journaled end (rejects)
   make that exactly-once;
 - order ids are engine-wide and gap-free by construction (1, 2, 3, ...), so
   a missing id in ``orders`` proves a loss: :meth:`Journal.verify` counts
   the missing ids ("gaps") and reports the kernel's ring-buffer drop
   counters ("drops").

The CLI verbs ``hft-tui journal tail|export|verify`` live here too.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from . import paths
from .config import money_to_str
from .constants import EVENT_KILL, EVENT_KINDS, EVENT_ORDER, EVENT_UPDATE, EVENT_REJECT, KILL_STATES, REJECT_REASONS
from .controller import RECORD_STRIDE, RECORD_STRUCT, EVENT_FIELDS, EVENT_STRUCT, Alert, RecordRun
from .layout import key_name
from .engine import EngineError, attached_ifaces
from .protocol import price_to_str, symbol_bytes

SCHEMA_VERSION = 2            # 2: rejects in blocks of kernel events (1: a row per reject)
READABLE_SCHEMAS = (1, 2)     # a writer upgrades 1 in place; readers read both
# Field indices of an event tuple (layout.Event order), for record_raw.
_RAW = type("_RawFields", (), {name: i for i, name in enumerate(EVENT_FIELDS)})

SUFFIX = ".journal.sqlite"
#: gap ranges listed by verify (the count is always exact)
MAX_LISTED_GAPS = 100

_EVENT_COLUMNS = ("ring_pos", "ts_ns", "sender_ts", "seq", "symbol", "side", "price", "qty",
                  "position", "pnl", "bid", "bid_qty", "ask", "ask_qty")
# A reject read back from a block has the columns an order row has, with the
# reason in place of the order id (and no ring position of its own).
_REJECT_ROW_KEYS = ("jseq", "engine", "reason", *_EVENT_COLUMNS)
_KIND_CODE = {name: code for code, name in EVENT_KINDS.items()}
_REASON_CODE = {name: code for code, name in REJECT_REASONS.items()}

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
    {", ".join(f"{c} INTEGER" if c not in ("symbol", "side") else f"{c} TEXT" for c in _EVENT_COLUMNS)},
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
"""


class JournalError(EngineError):
    """A journal that cannot be opened, read or written; the text is for the user."""


def journal_path(iface: str) -> Path:
    return paths.JOURNAL_DIR / f"{paths.check_ifname(iface)}{SUFFIX}"


def journal_ifaces(directory: Path = paths.JOURNAL_DIR) -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(p.name[: -len(SUFFIX)] for p in directory.glob(f"*{SUFFIX}"))
    return []


def _ensure_private_dir(directory: Path) -> None:
    """The journal holds trading data: its directory is root's alone.

    Only our own directory is forced to 0700; the parent of a path given
    with --journal is the user's (it may be /tmp) and keeps its mode.
    """
    if directory.resolve() == paths.JOURNAL_DIR.resolve():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            os.chmod(directory, 0o700)
    elif not directory.is_dir():
        raise JournalError(f"journal directory {directory} does not exist")


def _create_private_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


@dataclass
class _GapTracker:
    """Finds missing order ids online, tolerating the small reordering two
    CPUs cause (an id is fetched before its event is written, so id 6 may
    reach the ring just before id 5, even across two reads).

    :meth:`end_batch` runs once a tick: an id below the highest id seen at
    the *previous* tick that has still not come is declared missing, so every
    id gets at least one whole tick of grace.
    """

    contig: int = 0          # every id <= contig was seen (or declared missing)
    horizon: int = 0         # highest id seen before the current batch
    ahead: set | None = None

    def __post_init__(self) -> None:
        self.ahead = set()

    def see(self, order_id: int) -> None:
        if order_id <= self.contig or order_id in self.ahead:
            return  # read again after a restart: already journaled
        if order_id == self.contig + 1:
            self.contig = order_id
            while self.contig + 1 in self.ahead:
                self.contig += 1
                self.ahead.discard(self.contig)
        else:
            self.ahead.add(order_id)

    def end_batch(self) -> list[tuple[int, int]]:
        """Missing ranges older than the previous batch; then a new horizon."""
        missing = []
        while self.ahead and self.contig < self.horizon:
            nxt = min(self.ahead)
            end = min(nxt - 1, self.horizon)
            if end > self.contig:
                missing.append((self.contig + 1, end))
                self.contig = end
            while self.contig + 1 in self.ahead:
                self.contig += 1
                self.ahead.discard(self.contig)
        self.horizon = max([self.contig, *self.ahead])
        return missing


class Journal:
    """One journal file.  Thread-safe: the TUI may open it in one thread and
    tick the controller in another.  One writer per engine (the controller
    holds a lock that guarantees it)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._engine: int | None = None
        self._tracker = _GapTracker()
        self._alerts: list[Alert] = []
        self._names: dict[bytes, str] = {}  # at most HFT_MAX_SYMBOLS: only known symbols make events
        self._known = {"ringbuf_drops": 0, "tape_drops": 0}
        self._tape_journaled = 0   # tape-ring position up to which this engine's rejects are in the journal
        try:
            if readonly:
                if not self.path.exists():
                    raise JournalError(f"no journal at {self.path}")
                # ro: never creates or changes anything (WAL still needs the -shm, root has it).
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                           isolation_level=None, check_same_thread=False)
            else:
                _ensure_private_dir(self.path.parent)
                _create_private_file(self.path)
                old = os.umask(0o077)  # the -wal and -shm files too
                try:
                    self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                    self._db.execute("PRAGMA journal_mode=WAL")
                finally:
                    os.umask(old)
            # Readers never block a WAL writer; only another writer could.  The
            # writer waits at most 1 s, so a stall never holds the heartbeat long.
            self._db.execute(f"PRAGMA busy_timeout={5000 if readonly else 1000}")
            if not readonly:
                # WAL + NORMAL: a commit survives the writer's death (SIGKILL); only
                # a power loss can take the last transactions (docs/JOURNAL.md).
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                if self._check_schema() == 1:
                    self._upgrade_from_1()
            self.schema = self._check_schema()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise JournalError(f"{self.path} is not an hft-tui journal ({exc})") from None
            raise JournalError(f"journal {self.path}: {exc}") from None
        except PermissionError:
            raise JournalError(f"journal {self.path}: permission denied (the journal is root's: run as root)") from None

    @classmethod
    def for_iface(cls, iface: str, path: str | Path | None = None, *, readonly: bool = False) -> "Journal":
        return cls(path or journal_path(iface), readonly=readonly)

    def _check_schema(self) -> int:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            row = None
        if not row:
            raise JournalError(f"{self.path} is not an hft-tui journal")
        if int(row[0]) not in READABLE_SCHEMAS:
            raise JournalError(f"{self.path} has journal schema {row[0]}, this hft-tui reads "
                               f"{', '.join(map(str, READABLE_SCHEMAS))}")
        return int(row[0])

    def _upgrade_from_1(self) -> None:
        """Schema 1 kept a row per reject: the writer turns each run of rejects
        with consecutive journal numbers into one block, so every reject keeps
        its jseq, its fields and its place in journal order."""
        with self._tx() as db:
            # Another writer may have upgraded it since this one looked: decide inside the transaction.
            if int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]) != 1:
                return
            rows = db.execute(f"SELECT jseq, engine, reason, {', '.join(_EVENT_COLUMNS)} FROM rejects"
                              " ORDER BY engine, jseq").fetchall()
            runs: list[list] = []
            for row in rows:
                if runs and runs[-1][-1][1] == row[1] and runs[-1][-1][0] + 1 == row[0]:
                    runs[-1].append(row)
                else:
                    runs.append([row])
            for run in runs:
                events = [_ring_record(_event_tuple(_schema1_reject(row))) for row in run]
                positions = [r[3] for r in run if r[3] is not None]
                db.execute("INSERT INTO reject_blocks (jseq, engine, ring_pos, ring_end, count, records)"
                           " VALUES (?, ?, ?, ?, ?, ?)",
                           (run[0][0], run[0][1], min(positions) if positions else None,
                            max(positions) + RECORD_STRIDE if positions else None, len(run), b"".join(events)))
            db.execute("DROP TABLE rejects")
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing --------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self):
        """One write transaction; the journal's rows and cursor move together."""
        if self.readonly:
            raise JournalError(f"journal {self.path} is open read-only")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: write failed: {exc}") from None

    def _next_jseq(self, db) -> int:
        # Read inside the transaction, so two writers can never reuse a number.
        # Blocks never overlap: the one with the highest jseq ends highest (index, not a scan).
        row = db.execute(
            "SELECT max(coalesce((SELECT max(jseq) FROM orders), 0),"
            " coalesce((SELECT jseq + count - 1 FROM reject_blocks ORDER BY jseq DESC LIMIT 1), 0),"
            " coalesce((SELECT max(jseq) FROM control), 0))"
        ).fetchone()
        return row[0] + 1

    def _load_tape_journaled(self, db) -> None:
        row = db.execute("SELECT max(ring_end) FROM reject_blocks WHERE engine=?", (self._engine,)).fetchone()
        self._tape_journaled = row[0] or 0

    def begin_engine(self, *, iface: str, prog_id: int, attached_at: float, program_hash: str | None) -> int:
        """Makes this engine instance the one events are recorded for."""
        now_wall, now_mono = time.time_ns(), time.monotonic_ns()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO engines (iface, prog_id, attached_at, program_hash, first_seen_ns,"
                " clock_offset_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (iface, prog_id, attached_at, program_hash, now_wall, now_wall - now_mono),
            )
            # A reboot changes the monotonic clock's origin; keep it current.
            db.execute("UPDATE engines SET clock_offset_ns=? WHERE prog_id=? AND attached_at=?",
                       (now_wall - now_mono, prog_id, attached_at))
            row = db.execute(
                "SELECT id, ringbuf_drops, tape_drops FROM engines WHERE prog_id=? AND attached_at=?",
                (prog_id, attached_at),
            ).fetchone()
            count, last = db.execute(
                "SELECT count(*), coalesce(max(order_id), 0) FROM orders WHERE engine=?", (row[0],)
            ).fetchone()
        self._engine = row[0]
        self._known = {"ringbuf_drops": row[1], "tape_drops": row[2]}
        self._load_tape_journaled(self._db)
        # Gaps already journaled are verify's to report, not new alerts.
        self._tracker = _GapTracker(contig=last, horizon=last)
        return self._engine

    def _engine_id(self, db) -> int:
        if self._engine is None:
            # Recorded without begin_engine (no engine record): an "unknown" engine.
            db.execute(
                "INSERT OR IGNORE INTO engines (iface, prog_id, attached_at, program_hash, first_seen_ns,"
                " clock_offset_ns) VALUES ('?', 0, 0, NULL, ?, ?)",
                (time.time_ns(), time.time_ns() - time.monotonic_ns()),
            )
            self._engine = db.execute("SELECT id FROM engines WHERE prog_id=0 AND attached_at=0").fetchone()[0]
            self._load_tape_journaled(db)
        return self._engine

    def record_events(self, events, positions: list[int] | None = None) -> int:
        """Journals the orders, rejects and kernel kills among ``events``
        (EngineEvents) in one transaction; returns the rows written.

        ``positions``: each event's ring-buffer position (bytes since the ring
        was made; the two rings number separately), which makes a second
        recording of the same record a no-op.
        """
        orders, rejects, kills = [], [], []
        for i, ev in enumerate(events):
            pos = positions[i] if positions is not None else None
            row = (pos, ev.ts_ns, ev.sender_ts, ev.seq, ev.symbol, ev.side, ev.price, ev.qty,
                   ev.position, ev.pnl, ev.bid, ev.bid_qty, ev.ask, ev.ask_qty)
            if ev.kind == "order":
                orders.append((ev.order_id, *row))
            elif ev.kind == "reject":
                rejects.append((pos, _event_tuple(ev)))
            elif ev.kind == "kill":
                kills.append((pos, _kill_detail(ev.reason, ev.pnl, ev.symbol, ev.seq, ev.ts_ns)))
        return self._insert(orders, self._blocks(rejects, ()), kills)

    def record_raw(self, records, runs=()) -> int:
        """The controller's fast path: ``records`` are (ring position, event
        tuple in layout.Event order) straight from the ring buffers, ``runs``
        the tape ring's records as read (RecordRun): their rejects are kept
        as the kernel wrote them."""
        f = _RAW
        names = self._names  # symbols repeat: decode each once
        orders, rejects, kills = [], [], []
        for pos, t in records:
            kind = t[f.kind]
            if kind == EVENT_UPDATE:
                continue
            side = t[f.side]
            raw_symbol = t[f.symbol]
            symbol = names.get(raw_symbol)
            if symbol is None:
                symbol = names[raw_symbol] = key_name(raw_symbol)
            row = (pos, t[f.ts_ns], t[f.sender_ts], t[f.seq], symbol, chr(side) if side else "",
                   t[f.price], t[f.qty], t[f.position], t[f.pnl], t[f.bid], t[f.bid_qty], t[f.ask], t[f.ask_qty])
            if kind == EVENT_ORDER:
                orders.append((t[f.order_id], *row))
            elif kind == EVENT_REJECT:
                rejects.append((pos, t))
            elif kind == EVENT_KILL:
                kills.append((pos, _kill_detail(KILL_STATES.get(t[f.reason], str(t[f.reason])), t[f.pnl],
                                                key_name(t[f.symbol]), t[f.seq], t[f.ts_ns])))
        return self._insert(orders, self._blocks(rejects, runs), kills)

    def _blocks(self, rejects: list, runs) -> list[tuple]:
        """(ring_pos, ring_end, count, records) per block: the rejects among
        ``rejects`` ((position, event tuple)) and among each run.  Records at
        tape-ring positions already journaled (read again after a writer died
        before it moved the ring) are left out: exactly once."""
        done = self._tape_journaled
        blocks = []
        fresh = [(pos, t) for pos, t in rejects if pos is None or pos >= done]
        if fresh:
            positions = [pos for pos, _ in fresh if pos is not None]
            blocks.append((min(positions) if positions else None,
                           max(positions) + RECORD_STRIDE if positions else None,
                           len(fresh), b"".join(_ring_record(t) for _, t in fresh)))
        for run in runs:
            start = RecordRun.position_index(run.pos, done)
            records, count = run.records_of_kind(EVENT_REJECT, start)
            if count:
                blocks.append((run.pos + start * RECORD_STRIDE, run.end, count, records))
        return blocks

    def _insert(self, orders: list, blocks: list, kills: list) -> int:
        if not (orders or blocks or kills):
            return 0
        cols = ", ".join(_EVENT_COLUMNS)
        marks = ", ".join("?" * (len(_EVENT_COLUMNS) + 3))
        written = 0
        with self._tx() as db:
            engine = self._engine_id(db)
            jseq = self._next_jseq(db)
            if orders:
                before = db.total_changes
                db.executemany(
                    f"INSERT OR IGNORE INTO orders (jseq, engine, order_id, {cols}) VALUES ({marks})",
                    [(jseq + i, engine, *r) for i, r in enumerate(orders)],
                )
                written += db.total_changes - before
                jseq += len(orders)
            for ring_pos, ring_end, count, records in blocks:
                before = db.total_changes
                db.execute(
                    "INSERT OR IGNORE INTO reject_blocks (jseq, engine, ring_pos, ring_end, count, records)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (jseq, engine, ring_pos, ring_end, count, records))
                written += count if db.total_changes > before else 0
                jseq += count
            if kills:
                before = db.total_changes
                now = time.time_ns()
                db.executemany(
                    "INSERT OR IGNORE INTO control (jseq, engine, wall_ns, kind, ring_pos, detail)"
                    " VALUES (?, ?, ?, 'kernel_kill', ?, ?)",
                    [(jseq + i, engine, now, pos, detail) for i, (pos, detail) in enumerate(kills)],
                )
                written += db.total_changes - before
        with self._lock:
            for r in orders:
                self._tracker.see(r[0])
            # Committed: these tape positions are journaled.
            ends = [end for _pos, end, _n, _r in blocks if end is not None]
            if ends:
                self._tape_journaled = max(self._tape_journaled, *ends)
        return written

    def record_control(self, kind: str, *, program_hash: str | None = None, config_version: int | None = None,
                       detail: dict | None = None) -> None:
        """An attach, a controller start/stop, a config change, a kill, ..."""
        with self._tx() as db:
            engine = self._engine
            db.execute(
                "INSERT INTO control (jseq, engine, wall_ns, kind, program_hash, config_version, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self._next_jseq(db), engine, time.time_ns(), kind, program_hash, config_version,
                 json.dumps(detail or {}, sort_keys=True, default=str)),
            )

    def record_kernel(self, *, orders_sent: int, ringbuf_drops: int, tape_drops: int, final: bool = False) -> None:
        """The kernel's own counts for this engine: what verify checks the rows
        against.  ``final``: the engine is detached and its rings drained."""
        with self._tx() as db:
            engine = self._engine_id(db)
            db.execute(
                "UPDATE engines SET kernel_orders=?, ringbuf_drops=?, tape_drops=?, closed=max(closed, ?)"
                " WHERE id=?",
                (orders_sent, ringbuf_drops, tape_drops, int(final), engine),
            )
            for key, total, what in (("ringbuf_drops", ringbuf_drops, "order(s)"),
                                     ("tape_drops", tape_drops, "reject(s)/sampled update(s)")):
                delta = total - self._known[key]
                if delta > 0:
                    db.execute(
                        "INSERT INTO control (jseq, engine, wall_ns, kind, detail) VALUES (?, ?, ?, ?, ?)",
                        (self._next_jseq(db), engine, time.time_ns(), key,
                         json.dumps({"delta": delta, "total": total})),
                    )
                    self._alerts.append(Alert(key, key, delta, message=(
                        f"RING BUFFER FULL: the kernel dropped {delta} {what} ({total} in all); "
                        "the journal is missing them")))
                self._known[key] = max(self._known[key], total)

    def take_alerts(self) -> list[Alert]:
        """New gaps and drops since the last call (the controller calls it once
        a tick: an order id missing for a whole tick is declared a gap)."""
        with self._lock:
            for start, end in self._tracker.end_batch():
                n = end - start + 1
                self._alerts.append(Alert("journal_gap", "gap", n, message=(
                    f"JOURNAL GAP: order id{'s' if n > 1 else ''} {start}" + (f"..{end}" if n > 1 else "")
                    + " never reached the journal")))
            out, self._alerts = self._alerts, []
        return out

    # -- reading --------------------------------------------------------
    def engines(self) -> list[dict]:
        rows = self._db.execute(
            "SELECT id, iface, prog_id, attached_at, program_hash, kernel_orders, ringbuf_drops, tape_drops,"
            " closed, clock_offset_ns FROM engines ORDER BY id"
        ).fetchall()
        keys = ("id", "iface", "prog_id", "attached_at", "program_hash", "kernel_orders", "ringbuf_drops",
                "tape_drops", "closed", "clock_offset_ns")
        return [dict(zip(keys, r)) for r in rows]

    def verify(self) -> dict:
        """Counts rows, missing order ids and drops; ``ok`` when none is lost."""
        with self._lock:
            try:
                return self._verify()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"journal {self.path}: {exc}") from None

    def _verify(self) -> dict:
        db = self._db
        self.schema = self._check_schema()   # a writer may have upgraded the file since it was opened
        per_engine = []
        ranges: list[list[int]] = []
        for e in self.engines():
            rows, first, last = db.execute(
                "SELECT count(*), min(order_id), max(order_id) FROM orders WHERE engine=?", (e["id"],)
            ).fetchone()
            # Ids are unique and start at 1: every id in 1..end not in the table is lost.
            end = max(last or 0, e["kernel_orders"] if e["closed"] else 0)
            missing = end - rows
            if missing:
                for start, stop in db.execute(
                    "SELECT prev + 1, order_id - 1 FROM (SELECT order_id, lag(order_id, 1, 0)"
                    " OVER (ORDER BY order_id) AS prev FROM orders WHERE engine=?) WHERE order_id - prev > 1",
                    (e["id"],),
                ):
                    if len(ranges) < MAX_LISTED_GAPS:
                        ranges.append([start, stop])
                if end > (last or 0) and len(ranges) < MAX_LISTED_GAPS:
                    ranges.append([(last or 0) + 1, end])
            rejects = db.execute("SELECT count(*) FROM rejects WHERE engine=?" if self.schema == 1 else
                                 "SELECT coalesce(sum(count), 0) FROM reject_blocks WHERE engine=?",
                                 (e["id"],)).fetchone()[0]
            per_engine.append({
                "engine": e["id"], "iface": e["iface"], "prog_id": e["prog_id"],
                "attached_at": e["attached_at"], "program_hash": e["program_hash"],
                "rows": rows, "rejects": rejects, "first_order_id": first, "last_order_id": last,
                "kernel_orders": e["kernel_orders"], "closed": bool(e["closed"]), "gaps": missing,
                "drops": e["ringbuf_drops"] + e["tape_drops"],
                "order_drops": e["ringbuf_drops"], "tape_drops": e["tape_drops"],
            })
        integrity = db.execute("PRAGMA quick_check").fetchone()[0]
        control = db.execute("SELECT count(*) FROM control").fetchone()[0]
        gaps = sum(e["gaps"] for e in per_engine)
        order_drops = sum(e["order_drops"] for e in per_engine)
        tape_drops = sum(e["tape_drops"] for e in per_engine)
        latest = per_engine[-1] if per_engine else {}
        return {
            "journal": str(self.path),
            "ok": gaps == 0 and order_drops == 0 and tape_drops == 0 and integrity == "ok",
            "rows": sum(e["rows"] for e in per_engine),
            "gaps": gaps,
            "drops": order_drops + tape_drops,
            "first_order_id": latest.get("first_order_id"),
            "last_order_id": latest.get("last_order_id"),
            "order_drops": order_drops,
            "tape_drops": tape_drops,
            # Missing orders the kernel's drop counter does not explain: lost after the kernel.
            "unexplained_gaps": max(0, gaps - order_drops),
            "gap_ranges": ranges,
            "rejects": sum(e["rejects"] for e in per_engine),
            "control": control,
            "integrity": integrity,
            "engines": per_engine,
        }

    def rows(self, table: str, *, after: int = 0, limit: int | None = None, newest: bool = False) -> list[dict]:
        """Rows of one table as dicts, by journal order (jseq > ``after``);
        ``rejects`` are read out of their blocks, a row each."""
        if table not in ("orders", "rejects", "control"):
            raise JournalError(f"no table {table!r}")
        offsets = {e["id"]: e["clock_offset_ns"] for e in self.engines()}
        with self._lock:
            try:
                raw = self._raw_rows(table, after, limit, newest)
            except sqlite3.OperationalError:
                # A writer upgraded the file under this reader (schema 1 -> 2): look again.
                self.schema = self._check_schema()
                raw = self._raw_rows(table, after, limit, newest)
        out = []
        for row in raw:
            row["table"] = table
            row["kind"] = {"orders": "order", "rejects": "reject"}.get(table, row.get("kind"))
            # Kernel times are CLOCK_MONOTONIC; shown as wall time via the engine's offset.
            row["wall_ns"] = row["ts_ns"] + offsets.get(row["engine"], 0) if "ts_ns" in row else row["wall_ns"]
            out.append(row)
        return out[::-1] if newest else out

    def _raw_rows(self, table: str, after: int, limit: int | None, newest: bool) -> list[dict]:
        if table == "rejects" and self.schema != 1:
            return self._reject_rows(after, limit, newest)
        return self._table_rows(table, after, limit, newest)

    def _table_rows(self, table: str, after: int, limit: int | None, newest: bool) -> list[dict]:
        sql = f"SELECT * FROM {table} WHERE jseq > ? ORDER BY jseq {'DESC' if newest else ''} LIMIT ?"
        cur = self._db.execute(sql, (after, -1 if limit is None else limit))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def _reject_rows(self, after: int, limit: int | None, newest: bool) -> list[dict]:
        """Rejects with jseq > ``after``: the first ``limit`` (newest first with ``newest``)."""
        # The block that starts at or before ``after`` may hold later rejects too (by the index, no scan).
        cur = self._db.execute(
            "SELECT jseq, engine, records FROM reject_blocks"
            " WHERE jseq >= coalesce((SELECT max(jseq) FROM reject_blocks WHERE jseq <= ?), 0)"
            f" ORDER BY jseq {'DESC' if newest else ''}", (after,))
        out: list[dict] = []
        for jseq, engine, records in cur:
            rows = [r for r in _decode_reject_block(jseq, engine, records) if r["jseq"] > after]
            out.extend(reversed(rows) if newest else rows)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def entries(self, *, after: int = 0, last: int | None = None,
                tables=("orders", "rejects", "control")) -> list[dict]:
        """Rows of several tables merged in journal order: at most ``last``
        (the newest) or, without it, every row after jseq ``after``."""
        out = []
        for table in tables:
            out.extend(self.rows(table, after=after, limit=last, newest=last is not None))
        out.sort(key=lambda r: r["jseq"])
        return out[-last:] if last is not None else out

    def slices(self, tables=("orders", "rejects", "control"), size: int = 50_000):
        """Every row in journal order, ``size`` at a time (for export)."""
        after = 0
        while True:
            merged = []
            for table in tables:
                merged.extend(self.rows(table, after=after, limit=size))
            if not merged:
                return
            merged.sort(key=lambda r: r["jseq"])
            batch = merged[:size]  # every row up to the size-th jseq of any table is here
            yield batch
            after = batch[-1]["jseq"]


def _event_tuple(ev) -> tuple:
    """An EngineEvent (or any object with its fields, names for the coded ones)
    back as the kernel's event tuple (layout.Event order)."""
    values = {
        "ts_ns": ev.ts_ns, "sender_ts": ev.sender_ts, "seq": ev.seq, "symbol": symbol_bytes(ev.symbol),
        "kind": _KIND_CODE[ev.kind], "side": ord(ev.side) if ev.side else 0, "price": ev.price, "qty": ev.qty,
        "order_id": ev.order_id, "reason": _reason_code(ev.reason), "bid": ev.bid, "bid_qty": ev.bid_qty,
        "ask": ev.ask, "ask_qty": ev.ask_qty, "position": ev.position, "pnl": ev.pnl,
    }
    return tuple(values.get(name, 0) for name in EVENT_FIELDS)


def _schema1_reject(row: tuple):
    """A schema 1 reject row (jseq, engine, reason, then the event columns) as an event-like object."""
    fields = dict(zip(("reason", *_EVENT_COLUMNS), row[2:]))
    return SimpleNamespace(kind="reject", order_id=0, **fields)


def _reason_code(reason: str) -> int:
    """A reject reason's kernel code; a code this hft-tui has no name for was
    kept as its number, and stays that number (never another reason)."""
    if reason in _REASON_CODE:
        return _REASON_CODE[reason]
    if reason.isdigit():
        return int(reason)
    raise JournalError(f"reject reason {reason!r} has no kernel code")


def _ring_record(t: tuple) -> bytes:
    """An event tuple as a ring record (header, event, padding), as the kernel writes one."""
    return RECORD_STRUCT.pack(EVENT_STRUCT.size, 0, *t)


def _decode_reject_block(jseq: int, engine: int, records: bytes) -> list[dict]:
    """The rejects of one block as rows (the columns of an order row, a reason for the id)."""
    f = _RAW
    rows = []
    for i, rec in enumerate(RECORD_STRUCT.iter_unpack(records)):
        t = rec[2:]
        side = t[f.side]
        rows.append(dict(zip(_REJECT_ROW_KEYS, (
            jseq + i, engine, REJECT_REASONS.get(t[f.reason], str(t[f.reason])), None, t[f.ts_ns],
            t[f.sender_ts], t[f.seq], key_name(t[f.symbol]), chr(side) if side else "", t[f.price], t[f.qty],
            t[f.position], t[f.pnl], t[f.bid], t[f.bid_qty], t[f.ask], t[f.ask_qty]))))
    return rows


def _kill_detail(state: str, pnl: int, symbol: str, seq: int, ts_ns: int) -> str:
    return json.dumps({"state": state, "pnl": pnl, "symbol": symbol, "seq": seq, "ts_ns": ts_ns}, sort_keys=True)


def record_cli_change(iface: str, kind: str, detail: dict, *, program_hash: str | None, prog_id: int,
                      attached_at: float, config_version: int) -> None:
    """An attach or a change made from the command line, journaled by the
    command itself.  Only while no controller runs: a running controller
    journals every change it sees (config versions, kills) on its own."""
    with Journal.for_iface(iface) as j:
        j.begin_engine(iface=iface, prog_id=prog_id, attached_at=attached_at, program_hash=program_hash)
        j.record_control(kind, program_hash=program_hash, config_version=config_version,
                         detail={"by": "cli", **detail})


def open_journal(iface: str, path: str | Path | None = None) -> Journal:
    """The writer's journal for ``iface`` (made if missing, modes 0700/0600)."""
    return Journal.for_iface(iface, path)


# -- presentation -----------------------------------------------------------

def _when(wall_ns: int) -> str:
    return datetime.fromtimestamp(wall_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_entry(row: dict) -> str:
    when = _when(row["wall_ns"])
    if row["table"] == "orders":
        side = {"B": "BUY ", "S": "SELL"}.get(row["side"], row["side"])
        return (f"{when} ORDER  #{row['order_id']:<8} {side} {row['symbol']:<8} {row['qty']:>7} @ "
                f"{price_to_str(row['price'])}  seq {row['seq']}  pos {row['position']}")
    if row["table"] == "rejects":
        side = f" {row['side']} @ {price_to_str(row['price'])}" if row["side"] else ""
        return (f"{when} REJECT {row['reason']:<15} {row['symbol']:<8}{side}  seq {row['seq']}  "
                f"bid {price_to_str(row['bid'])} ask {price_to_str(row['ask'])}")
    extra = []
    if row.get("config_version") is not None:
        extra.append(f"config v{row['config_version']}")
    if row.get("program_hash"):
        extra.append(f"program {row['program_hash'][:12]}")
    detail = row.get("detail") or "{}"
    if detail != "{}":
        extra.append(detail)
    return f"{when} {row['kind'].upper():<6} " + "  ".join(extra)


CSV_COLUMNS = ("jseq", "kind", "engine", "time", "ts_ns", "sender_ts", "order_id", "seq", "symbol", "side",
               "price", "qty", "reason", "position", "pnl", "bid", "bid_qty", "ask", "ask_qty",
               "config_version", "program_hash", "detail")


def csv_row(row: dict) -> list:
    def price(key):
        return price_to_str(row[key]) if row.get(key) is not None else ""

    return [
        row["jseq"], row["kind"], row.get("engine") or "", _when(row["wall_ns"]), row.get("ts_ns", ""),
        row.get("sender_ts", ""), row.get("order_id", ""), row.get("seq", ""), row.get("symbol", ""),
        row.get("side", ""), price("price"), row.get("qty", ""), row.get("reason", ""),
        row.get("position", ""), money_to_str(row["pnl"]) if row.get("pnl") is not None else "",
        price("bid"), row.get("bid_qty", ""), price("ask"), row.get("ask_qty", ""),
        row.get("config_version") if row.get("config_version") is not None else "",
        row.get("program_hash") or "", row.get("detail") or "",
    ]


# -- CLI ------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="jverb", metavar="VERB", required=True)

    def common(p):
        p.add_argument("--iface", "-i", help="the engine's interface (may be left out when only one journal exists)")
        p.add_argument("--journal", metavar="PATH", help=f"a journal file (default {paths.JOURNAL_DIR}/IFACE{SUFFIX})")

    p = sub.add_parser("tail", help="the last entries: orders, rejects, control")
    common(p)
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many entries (default 20)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new entries until Ctrl-C")
    p = sub.add_parser("export", help="the whole journal as CSV")
    common(p)
    p.add_argument("--csv", action="store_true", default=True, help="CSV with a header line (the only format)")
    p.add_argument("--out", "-o", metavar="FILE", help="write here (mode 0600) instead of stdout")
    p.add_argument("--table", choices=("all", "orders", "rejects", "control"), default="all")
    p = sub.add_parser("verify", help="count rows, gaps in order ids and ring-buffer drops")
    common(p)
    p.add_argument("--json", action="store_true", help="one JSON object")


def _resolve_path(args) -> Path:
    if getattr(args, "journal", None):
        return Path(args.journal)
    if args.iface:
        return journal_path(args.iface)
    found = journal_ifaces()
    if len(found) == 1:
        return journal_path(found[0])
    attached = attached_ifaces()
    if len(attached) == 1:
        return journal_path(attached[0])
    if not found:
        raise JournalError(f"no journal in {paths.JOURNAL_DIR} ('hft-tui engine run IFACE' writes one)")
    raise JournalError(f"several journals ({', '.join(found)}): name one with --iface")


def run(args) -> int:
    from .engine import require_root

    require_root()
    if args.jverb == "tail" and args.n < 1:
        raise JournalError(f"-n {args.n}: give a number of entries >= 1")
    try:
        with Journal(_resolve_path(args), readonly=True) as j:
            if args.jverb == "verify":
                return _cmd_verify(j, args)
            if args.jverb == "export":
                return _cmd_export(j, args)
            return _cmd_tail(j, args)
    except BrokenPipeError:
        # `journal export | head`: the reader left, which is not an error; stdout
        # goes to /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _cmd_verify(j: Journal, args) -> int:
    v = j.verify()
    if args.json:
        print(json.dumps(v, indent=2))
    else:
        state = "OK" if v["ok"] else "LOSS"
        print(f"{state}: {v['journal']}: {v['rows']} order(s), ids {v['first_order_id']}..{v['last_order_id']}, "
              f"{v['rejects']} reject(s), {v['gaps']} missing order id(s), {v['drops']} ring-buffer drop(s) "
              f"({v['order_drops']} order, {v['tape_drops']} tape), integrity {v['integrity']}")
        for start, stop in v["gap_ranges"]:
            print(f"  missing order ids {start}..{stop}" if stop > start else f"  missing order id {start}")
    return 0 if v["ok"] else 1


def _cmd_export(j: Journal, args) -> int:
    tables = ("orders", "rejects", "control") if args.table == "all" else (args.table,)
    if args.out:
        out_path = Path(args.out)
        try:
            fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot write {out_path}: {exc.strerror}") from None
        f = os.fdopen(fd, "w", newline="")
    else:
        f = sys.stdout
    n = 0
    try:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for batch in j.slices(tables):
            w.writerows(csv_row(row) for row in batch)
            n += len(batch)
    finally:
        if args.out:
            f.close()
        else:
            f.flush()
    if args.out:
        print(f"exported {n} row(s) to {args.out}", file=sys.stderr)
    return 0


def _cmd_tail(j: Journal, args) -> int:
    rows = j.entries(last=args.n)
    for row in rows:
        print(format_entry(row), flush=False)
    sys.stdout.flush()
    if not args.follow:
        return 0
    after = rows[-1]["jseq"] if rows else 0
    try:
        while True:
            time.sleep(0.2)
            for row in j.entries(after=after):
                print(format_entry(row))
                after = row["jseq"]
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
