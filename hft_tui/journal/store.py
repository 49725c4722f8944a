"""The order journal's file and its writer: every order and every reject, append-only, in SQLite.

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
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..constants import EVENT_KILL, EVENT_ORDER, EVENT_REJECT, EVENT_UPDATE, KILL_STATES
from ..errors import JournalError
from ..events import Alert
from ..layout import key_name
from ..rings import RECORD_STRIDE, RecordRun
from .reader import JournalReader
from .records import (
    EVENT_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    RawField,
    event_tuple,
    kill_detail,
    ring_record,
    schema1_reject,
)

SUFFIX = ".journal.sqlite"


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

    contig: int = 0  # every id <= contig was seen (or declared missing)
    horizon: int = 0  # highest id seen before the current batch
    ahead: set[int] = field(default_factory=set)  # ids seen above contig

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


class Journal(JournalReader):
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
        self._tape_journaled = 0  # tape-ring position up to which this engine's rejects are in the journal
        try:
            if readonly:
                if not self.path.exists():
                    raise JournalError(f"no journal at {self.path}")
                # ro: never creates or changes anything (WAL still needs the -shm, root has it).
                self._db = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
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
    def for_iface(cls, iface: str, path: str | Path | None = None, *, readonly: bool = False) -> Journal:
        return cls(path or journal_path(iface), readonly=readonly)

    def _upgrade_from_1(self) -> None:
        """Schema 1 kept a row per reject: the writer turns each run of rejects
        with consecutive journal numbers into one block, so every reject keeps
        its jseq, its fields and its place in journal order."""
        with self._tx() as db:
            # Another writer may have upgraded it since this one looked: decide inside the transaction.
            if int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]) != 1:
                return
            rows = db.execute(
                f"SELECT jseq, engine, reason, {', '.join(EVENT_COLUMNS)} FROM rejects ORDER BY engine, jseq"
            ).fetchall()
            runs: list[list] = []
            for row in rows:
                if runs and runs[-1][-1][1] == row[1] and runs[-1][-1][0] + 1 == row[0]:
                    runs[-1].append(row)
                else:
                    runs.append([row])
            for run in runs:
                events = [ring_record(event_tuple(schema1_reject(row))) for row in run]
                positions = [r[3] for r in run if r[3] is not None]
                db.execute(
                    "INSERT INTO reject_blocks (jseq, engine, ring_pos, ring_end, count, records)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        run[0][0],
                        run[0][1],
                        min(positions) if positions else None,
                        max(positions) + RECORD_STRIDE if positions else None,
                        len(run),
                        b"".join(events),
                    ),
                )
            db.execute("DROP TABLE rejects")
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
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
            db.execute(
                "UPDATE engines SET clock_offset_ns=? WHERE prog_id=? AND attached_at=?",
                (now_wall - now_mono, prog_id, attached_at),
            )
            row = db.execute(
                "SELECT id, ringbuf_drops, tape_drops FROM engines WHERE prog_id=? AND attached_at=?",
                (prog_id, attached_at),
            ).fetchone()
            _count, last = db.execute(
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
            row = (
                pos,
                ev.ts_ns,
                ev.sender_ts,
                ev.seq,
                ev.symbol,
                ev.side,
                ev.price,
                ev.qty,
                ev.position,
                ev.pnl,
                ev.bid,
                ev.bid_qty,
                ev.ask,
                ev.ask_qty,
            )
            if ev.kind == "order":
                orders.append((ev.order_id, *row))
            elif ev.kind == "reject":
                rejects.append((pos, event_tuple(ev)))
            elif ev.kind == "kill":
                kills.append((pos, kill_detail(ev.reason, ev.pnl, ev.symbol, ev.seq, ev.ts_ns)))
        return self._insert(orders, self._blocks(rejects, ()), kills)

    def record_raw(self, records, runs=()) -> int:
        """The controller's fast path: ``records`` are (ring position, event
        tuple in layout.Event order) straight from the ring buffers, ``runs``
        the tape ring's records as read (RecordRun): their rejects are kept
        as the kernel wrote them."""
        f = RawField
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
            row = (
                pos,
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
            if kind == EVENT_ORDER:
                orders.append((t[f.order_id], *row))
            elif kind == EVENT_REJECT:
                rejects.append((pos, t))
            elif kind == EVENT_KILL:
                kills.append(
                    (
                        pos,
                        kill_detail(
                            KILL_STATES.get(t[f.reason], str(t[f.reason])),
                            t[f.pnl],
                            key_name(t[f.symbol]),
                            t[f.seq],
                            t[f.ts_ns],
                        ),
                    )
                )
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
            blocks.append(
                (
                    min(positions) if positions else None,
                    max(positions) + RECORD_STRIDE if positions else None,
                    len(fresh),
                    b"".join(ring_record(t) for _, t in fresh),
                )
            )
        for run in runs:
            start = RecordRun.position_index(run.pos, done)
            records, count = run.records_of_kind(EVENT_REJECT, start)
            if count:
                blocks.append((run.pos + start * RECORD_STRIDE, run.end, count, records))
        return blocks

    def _insert(self, orders: list, blocks: list, kills: list) -> int:
        if not (orders or blocks or kills):
            return 0
        cols = ", ".join(EVENT_COLUMNS)
        marks = ", ".join("?" * (len(EVENT_COLUMNS) + 3))
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
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (jseq, engine, ring_pos, ring_end, count, records),
                )
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

    def record_control(
        self,
        kind: str,
        *,
        program_hash: str | None = None,
        config_version: int | None = None,
        detail: dict | None = None,
    ) -> None:
        """An attach, a controller start/stop, a config change, a kill, ..."""
        with self._tx() as db:
            engine = self._engine
            db.execute(
                "INSERT INTO control (jseq, engine, wall_ns, kind, program_hash, config_version, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self._next_jseq(db),
                    engine,
                    time.time_ns(),
                    kind,
                    program_hash,
                    config_version,
                    json.dumps(detail or {}, sort_keys=True, default=str),
                ),
            )

    def record_kernel(self, *, orders_sent: int, ringbuf_drops: int, tape_drops: int, final: bool = False) -> None:
        """The kernel's own counts for this engine: what verify checks the rows
        against.  ``final``: the engine is detached and its rings drained."""
        with self._tx() as db:
            engine = self._engine_id(db)
            db.execute(
                "UPDATE engines SET kernel_orders=?, ringbuf_drops=?, tape_drops=?, closed=max(closed, ?) WHERE id=?",
                (orders_sent, ringbuf_drops, tape_drops, int(final), engine),
            )
            for key, total, what in (
                ("ringbuf_drops", ringbuf_drops, "order(s)"),
                ("tape_drops", tape_drops, "reject(s)/sampled update(s)"),
            ):
                delta = total - self._known[key]
                if delta > 0:
                    db.execute(
                        "INSERT INTO control (jseq, engine, wall_ns, kind, detail) VALUES (?, ?, ?, ?, ?)",
                        (
                            self._next_jseq(db),
                            engine,
                            time.time_ns(),
                            key,
                            json.dumps({"delta": delta, "total": total}),
                        ),
                    )
                    self._alerts.append(
                        Alert(
                            key,
                            key,
                            delta,
                            message=(
                                f"RING BUFFER FULL: the kernel dropped {delta} {what} ({total} in all); "
                                "the journal is missing them"
                            ),
                        )
                    )
                self._known[key] = max(self._known[key], total)

    def take_alerts(self) -> list[Alert]:
        """New gaps and drops since the last call (the controller calls it once
        a tick: an order id missing for a whole tick is declared a gap)."""
        with self._lock:
            for start, end in self._tracker.end_batch():
                n = end - start + 1
                self._alerts.append(
                    Alert(
                        "journal_gap",
                        "gap",
                        n,
                        message=(
                            f"JOURNAL GAP: order id{'s' if n > 1 else ''} {start}"
                            + (f"..{end}" if n > 1 else "")
                            + " never reached the journal"
                        ),
                    )
                )
            out, self._alerts = self._alerts, []
        return out


def record_cli_change(
    iface: str,
    kind: str,
    detail: dict,
    *,
    program_hash: str | None,
    prog_id: int,
    attached_at: float,
    config_version: int,
) -> None:
    """An attach or a change made from the command line, journaled by the
    command itself.  Only while no controller runs: a running controller
    journals every change it sees (config versions, kills) on its own."""
    with Journal.for_iface(iface) as j:
        j.begin_engine(iface=iface, prog_id=prog_id, attached_at=attached_at, program_hash=program_hash)
        j.record_control(kind, program_hash=program_hash, config_version=config_version, detail={"by": "cli", **detail})


def open_journal(iface: str, path: str | Path | None = None) -> Journal:
    """The writer's journal for ``iface`` (made if missing, modes 0700/0600)."""
    return Journal.for_iface(iface, path)
