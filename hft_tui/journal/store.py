"""The order journal's writer: every order and every reject, append-only, in SQLite.

Format and rules: docs/JOURNAL.md.  In short:

 - one journal per interface, /var/lib/hft-tui/IFACE.journal.sqlite
   (directory 0700, files 0600, root only), WAL mode, in parts of at most
   ``journal_max_mb`` each (files.py, capacity.py);
 - tables ``engines`` (one row per attached engine instance: its program
   hash, the last kernel counters the writer saw), ``orders`` (a row per
   order), ``reject_blocks`` (the rejects of one drained batch, kept as the
   kernel's events, decoded when read), ``reject_counts`` (rejects past
   ``journal_reject_rows_per_s`` in a second, counted per reason and symbol:
   budget.py) and ``control`` (attach, controller start/stop, config
   versions, kills, the journal's parts);
 - the writer (the controller: one per engine) commits one transaction per
   batch it drains, and only then moves the ring buffer's consumer position,
   so a controller killed at any instant loses nothing: the next one reads
   the uncommitted records again; ``INSERT OR IGNORE`` on the order id (and
   the kill's ring position), the tape ring's journaled end (rejects, kept
   or counted) and, in a new part, the positions the earlier parts reached
   make that exactly-once;
 - order ids are engine-wide and gap-free by construction (1, 2, 3, ...), so
   a missing id in ``orders`` proves a loss: :meth:`Journal.verify` counts
   the missing ids ("gaps") across the parts and reports the kernel's
   ring-buffer drop counters ("drops").
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from ..errors import JournalError
from ..events import Alert, EngineEvent
from ..layout import key_name
from ..rings import RecordRun
from . import capacity
from .batch import batch_of_events, batch_of_records
from .budget import RejectBudget
from .chain import verify_journal
from .files import (
    SUFFIX,
    create_private_file,
    ensure_private_dir,
    journal_ifaces,
    journal_path,
    making_path,
    newest_part,
    part_numbers,
    part_path,
    remove_making,
)
from .gaps import GapTracker
from .reader import JournalReader, connect_readonly, journal_error, last_continued
from .records import EVENT_COLUMNS, JOURNAL_TABLES, SCHEMA, SCHEMA_VERSION, RawField
from .upgrade import upgrade_from_1, upgrade_from_2

__all__ = ["SUFFIX", "Journal", "journal_ifaces", "journal_path", "open_journal", "record_cli_change"]

_GapTracker = GapTracker  # its name before it had a module of its own
T = TypeVar("T")
#: the journal's defaults when no config says otherwise (config.py: journal_max_mb, journal_reject_rows_per_s)
DEFAULT_MAX_MB = 1024
DEFAULT_REJECT_ROWS_PER_S = 5000
#: how often the writer looks at the disk's free space
DISK_CHECK_S = 1.0
_REJECT_KEY_FIELDS = (RawField.ts_ns, RawField.reason, RawField.symbol)


class _PartFull(Exception):
    """A write would take the part past its cap: roll back, continue in the next part."""


class Journal(JournalReader):
    """One journal (its newest part: :attr:`path`).  Thread-safe: the TUI may
    open it in one thread and tick the controller in another.  One writer per
    engine (the controller holds a lock that guarantees it).

    ``max_bytes``: the cap of a part (None: no cap, one part).
    ``reject_rows_per_s``: rejects kept whole per second of kernel time, the
    rest counted (None: all kept).  ``low_disk_bytes``: below this much free
    space on the journal's file system every reject is counted, none kept
    whole, and an alert says so (default: one part's cap).
    ``readonly``: reads the one file ``path`` (``verify`` reads every part)."""

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        max_bytes: int | None = None,
        reject_rows_per_s: int | None = None,
        low_disk_bytes: int | None = None,
    ) -> None:
        self.base = Path(path)
        self.readonly = readonly
        self.max_bytes = max_bytes
        self.low_disk_bytes = low_disk_bytes if low_disk_bytes is not None else max_bytes
        self._lock = threading.RLock()
        self._engine: int | None = None
        self._tracker = GapTracker()
        self._alerts: list[Alert] = []
        self._names: dict[bytes, str] = {}  # at most HFT_MAX_SYMBOLS: only known symbols make events
        self._known = {"ringbuf_drops": 0, "tape_drops": 0}
        self._tape_journaled = 0  # tape-ring position up to which this engine's rejects are in the journal
        self._events_journaled = 0  # events-ring position journaled in earlier parts
        self._budget = RejectBudget(reject_rows_per_s)
        self._near_cap_said = False
        self._low_disk_said = False
        self._next_disk_check = 0.0
        self._fresh_part = False  # a part just begun: never closed before its first write
        self._carried_last_order = 0  # the highest order id of this engine in earlier parts
        if readonly:
            self.path, self.part = self.base, 0  # connect_readonly refuses one that is not there
        else:
            self.path, self.part = newest_part(self.base)
            try:
                remove_making(self.path)  # a writer that died once the part was linked in place
            except OSError as exc:
                raise JournalError(f"journal {self.path}: {exc.strerror}") from None
        self._open()
        if not readonly:
            try:
                self._finish_move()
            except BaseException:
                self.close()
                raise

    def _open(self, *, linked_here: bool = False) -> None:
        """``linked_here``: a part this writer has just linked into place (_make_part)."""
        try:
            if self.readonly:
                self._db = connect_readonly(self.path)
            else:
                self._db = self._connect(self.path, linked_here=linked_here)
                self._refuse_other_database()
                _make_schema(self._db)
                for upgrade in (upgrade_from_1, upgrade_from_2):  # each decides inside its transaction
                    with self._tx() as db:
                        upgrade(db)
            self.schema = self._check_schema()
        except (sqlite3.DatabaseError, PermissionError) as exc:
            raise journal_error(self.path, exc) from None

    def _connect(self, path: Path, *, linked_here: bool = False) -> sqlite3.Connection:
        """A writer's connection to ``path``: made 0600 if new, after the checks of files.py,
        except for a part this writer linked in place itself (in a sticky directory the checks
        refuse any name that exists; nobody else can replace a name of root's there)."""
        if not linked_here:
            ensure_private_dir(path.parent)
            create_private_file(path)
        old = os.umask(0o077)  # the -wal and -shm files too
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            os.umask(old)
        # Readers never block a WAL writer; only another writer could.  The
        # writer waits at most 1 s, so a stall never holds the heartbeat long.
        db.execute("PRAGMA busy_timeout=1000")
        # WAL + NORMAL: a commit survives the writer's death (SIGKILL); only
        # a power loss can take the last transactions (docs/JOURNAL.md).
        db.execute("PRAGMA synchronous=NORMAL")
        if self.max_bytes is not None:
            capacity.limit_wal(db, self.max_bytes)
        return db

    def _refuse_other_database(self) -> None:
        """A database with a table no journal has is someone else's: never written into.  (A
        journal's own tables without its meta yet are a journal whose writer died making it.)"""
        db = self._db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        foreign = sorted(t for t in tables - JOURNAL_TABLES if not t.startswith("sqlite_"))
        if foreign:
            db.close()
            raise JournalError(f"{self.path} is not an hft-tui journal (it holds table {foreign[0]})")

    @classmethod
    def for_iface(cls, iface: str, path: str | Path | None = None, *, readonly: bool = False) -> Journal:
        return cls(path or journal_path(iface), readonly=readonly)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def verify(self) -> dict:
        """The whole journal, every part (chain.py); ``ok`` when none is lost."""
        return verify_journal(self.base)

    # -- writing --------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the journal's rows and cursor move together."""
        if self.readonly:
            raise JournalError(f"journal {self.path} is open read-only")
        with self._lock, _transaction(self._db, self.path) as db:
            yield db

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one transaction of the newest part.  When it would take
        the part past its cap, it is rolled back, the part is closed, and it
        runs again in the next part (a part just begun takes any one batch)."""
        with self._lock:
            self._watch_disk()
            engine = self._engine  # work may make the "unknown" engine: undone with the rollback
            try:
                with self._tx() as db:
                    result = work(db)
                    if self._past_cap(db):
                        raise _PartFull
            except _PartFull:
                self._engine = engine
                self._next_part()
                with self._tx() as db:
                    result = work(db)
            self._fresh_part = False
            self._watch_size()
            return result

    def _past_cap(self, db: sqlite3.Connection) -> bool:
        if self.max_bytes is None or self._fresh_part:
            return False
        return capacity.database_bytes(db) > capacity.database_cap(self.max_bytes)

    def _watch_size(self) -> None:
        if self.max_bytes is None or self._near_cap_said:
            return
        # The database's share of the cap is what fills; the WAL beside it stays small.
        if capacity.database_bytes(self._db) >= capacity.NEAR_CAP * capacity.database_cap(self.max_bytes):
            size = capacity.part_bytes(self.path)
            self._near_cap_said = True
            self._alerts.append(
                capacity.near_cap_alert(self.path, size, self.max_bytes, part_path(self.base, self.part + 1).name)
            )

    def _watch_disk(self) -> None:
        """Below ``low_disk_bytes`` free, rejects are counted only (none kept whole)."""
        if self.low_disk_bytes is None or time.monotonic() < self._next_disk_check:
            return
        self._next_disk_check = time.monotonic() + DISK_CHECK_S
        try:
            free = capacity.free_bytes(self.path.parent)
        except OSError as exc:  # a journal failure like any other: the kill latches, supervision goes on
            raise JournalError(f"journal {self.path}: cannot see the disk's free space ({exc.strerror})") from None
        low = free < self.low_disk_bytes
        if low != self._budget.counting_only:
            self._budget.counting_only = low
            self._alerts.append(capacity.disk_alert(low, free, self.path.parent))

    def _next_part(self) -> None:
        """Closes this part for good and continues the journal in the next one."""
        if self._finish_move():
            return  # closed already, by an earlier try whose next part could not be made
        number = max([self.part, *part_numbers(self.base)]) + 1
        new = part_path(self.base, number)
        with self._tx() as db:
            jseq = self._next_jseq(db)
            db.execute(
                "INSERT INTO control (jseq, engine, wall_ns, kind, detail) VALUES (?, ?, ?, 'journal_continued', ?)",
                (jseq, self._engine, time.time_ns(), json.dumps({"next": new.name})),
            )
            carry = capacity.read_carry(db, jseq, self.schema)
        self._continue_in(new, number, carry)

    def _finish_move(self) -> bool:
        """This part closed for good, its successor never made (a writer died in between, or
        could not make it): the move is finished now, from what the closed part holds.
        Returns whether this part was one."""
        new = part_path(self.base, self.part + 1)
        with self._tx() as db:
            continued = last_continued(db)
            # A row after it: an older writer went on in this part (the successor is the next rotation's).
            if continued is None or self._next_jseq(db) != continued[0] + 1:
                return False
            if continued[1] != new.name:
                return False  # not a move this writer made: written on, as a writer before this one did
            carry = capacity.read_carry(db, continued[0], self.schema)
        self._continue_in(new, self.part + 1, carry)
        return True

    def _continue_in(self, new: Path, number: int, carry: capacity.Carry) -> None:
        """This part is closed: the journal goes on in ``new``, made whole before anyone sees it.
        Made or not, the writer is left on a part it can write: ``new`` once it is in place,
        else this one (whose next write that finds it full tries again)."""
        old = self.path
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        try:
            self._make_part(new, number, old, carry)
        except BaseException:
            self._open()
            raise
        self.path, self.part = new, number
        self._open(linked_here=True)
        self._fresh_part = True
        self._near_cap_said = False
        if self._engine is not None:
            self._load_journaled(self._db)
        self._alerts.append(capacity.rotated_alert(old, new))
        try:
            remove_making(new)  # the part's other name: its link count back to one
            _sync_directory(new.parent)  # the new name lasts
        except OSError as exc:
            raise JournalError(f"journal {new}: cannot finish making it: {exc.strerror}") from None

    def _make_part(self, new: Path, number: int, old: Path, carry: capacity.Carry) -> None:
        """Part ``number``, whole (its schema, then what it carries over and where it follows
        on, in one transaction), made under its making name and linked to ``new`` once
        closed, never over a name that exists (in a directory others can write, one may have
        been planted).  Raises with ``new`` not there.  A writer that dies on the way leaves
        no part: a reader never opens one half made (a file being created, a part that does
        not yet say which it follows), and the next writer makes it (_finish_move)."""
        making = making_path(new)
        try:
            remove_making(new)
            db = self._connect(making)
            try:
                _make_schema(db)
                with _transaction(db, making) as tx:
                    capacity.write_carry(tx, carry)
                    tx.executemany(
                        "INSERT INTO meta VALUES (?, ?)",
                        [
                            ("part", str(number)),
                            ("previous_part", old.name),
                            ("previous_last_jseq", str(carry.last_jseq)),
                        ],
                    )
                    tx.execute(
                        "INSERT INTO control (jseq, engine, wall_ns, kind, detail)"
                        " VALUES (?, ?, ?, 'journal_continues', ?)",
                        (carry.last_jseq + 1, self._engine, time.time_ns(), json.dumps({"previous": old.name})),
                    )
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()  # the last connection: its WAL is checkpointed and removed
            os.link(making, new, follow_symlinks=False)
        except sqlite3.DatabaseError as exc:
            raise journal_error(making, exc) from None
        except FileExistsError:
            raise JournalError(f"journal {new}: already there, but {old.name} is the newest part") from None
        except OSError as exc:
            raise JournalError(f"journal {new}: cannot make the next part: {exc.strerror}") from None

    def _next_jseq(self, db: sqlite3.Connection) -> int:
        # Read inside the transaction, so two writers can never reuse a number.
        # Blocks never overlap: the one with the highest jseq ends highest (index, not a scan).
        row = db.execute(
            "SELECT max(coalesce((SELECT max(jseq) FROM orders), 0),"
            " coalesce((SELECT jseq + count - 1 FROM reject_blocks ORDER BY jseq DESC LIMIT 1), 0),"
            " coalesce((SELECT max(jseq) FROM reject_counts), 0),"
            " coalesce((SELECT max(jseq) FROM control), 0))"
        ).fetchone()
        return int(row[0]) + 1

    def _load_journaled(self, db: sqlite3.Connection) -> None:
        """Where this engine's rings are journaled up to, this part and the earlier ones."""
        e = self._engine
        ends = [
            db.execute("SELECT max(ring_end) FROM reject_blocks WHERE engine=?", (e,)).fetchone()[0],
            db.execute("SELECT max(ring_end) FROM reject_counts WHERE engine=?", (e,)).fetchone()[0],
        ]
        carried = db.execute("SELECT tape_end, events_end, last_order FROM continued WHERE engine=?", (e,)).fetchone()
        carried = carried or (0, 0, 0)
        self._tape_journaled = max([carried[0], *(x for x in ends if x is not None)])
        self._events_journaled = carried[1]
        self._carried_last_order = carried[2]

    def begin_engine(self, *, iface: str, prog_id: int, attached_at: float, program_hash: str | None) -> int:
        """Makes this engine instance the one events are recorded for."""
        now_wall, now_mono = time.time_ns(), time.monotonic_ns()

        def work(db: sqlite3.Connection) -> tuple:
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
            last = db.execute("SELECT coalesce(max(order_id), 0) FROM orders WHERE engine=?", (row[0],)).fetchone()[0]
            return row, last

        row, last = self._write(work)
        self._engine = row[0]
        self._known = {"ringbuf_drops": row[1], "tape_drops": row[2]}
        self._load_journaled(self._db)
        # Gaps already journaled are verify's to report, not new alerts.
        last = max(last, self._carried_last_order)
        self._tracker = GapTracker(contig=last, horizon=last)
        return self._engine

    def _engine_id(self, db: sqlite3.Connection) -> int:
        if self._engine is None:
            # Recorded without begin_engine (no engine record): an "unknown" engine.
            db.execute(
                "INSERT OR IGNORE INTO engines (iface, prog_id, attached_at, program_hash, first_seen_ns,"
                " clock_offset_ns) VALUES ('?', 0, 0, NULL, ?, ?)",
                (time.time_ns(), time.time_ns() - time.monotonic_ns()),
            )
            self._engine = db.execute("SELECT id FROM engines WHERE prog_id=0 AND attached_at=0").fetchone()[0]
            self._load_journaled(db)
        return self._engine

    def record_events(self, events: Iterable[EngineEvent], positions: list[int] | None = None) -> int:
        """Journals the orders, rejects and kernel kills among ``events``
        (EngineEvents) in one transaction; returns the rows written (a counted
        reject counts as one).

        ``positions``: each event's ring-buffer position (bytes since the ring
        was made; the two rings number separately), which makes a second
        recording of the same record a no-op.
        """
        b = batch_of_events(events, positions)
        return self._insert(b.orders, b.rejects, (), b.kills)

    def record_raw(self, records: list[tuple[int, tuple]], runs: Iterable[RecordRun] = ()) -> int:
        """The controller's fast path: ``records`` are (ring position, event
        tuple in layout.Event order) straight from the ring buffers, ``runs``
        the tape ring's records as read (RecordRun): their rejects are kept
        as the kernel wrote them (or counted, past the rate)."""
        b = batch_of_records(records, self._names)
        return self._insert(b.orders, b.rejects, runs, b.kills)

    def _insert(self, orders: list, rejects: list, runs, kills: list) -> int:
        skip = self._events_journaled  # only after a new part began: what the earlier parts have
        if skip:
            orders = [o for o in orders if o[1] is None or o[1] >= skip]
            kills = [k for k in kills if k[0] is None or k[0] >= skip]
        blocks, counts, tape_end = self._budget.split(rejects, runs, self._tape_journaled)
        if not (orders or blocks or counts or kills):
            return 0
        cols = ", ".join(EVENT_COLUMNS)
        marks = ", ".join("?" * (len(EVENT_COLUMNS) + 3))

        def work(db: sqlite3.Connection) -> int:
            written = 0
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
            for (second, reason, raw_symbol), c in counts.items():
                symbol = key_name(raw_symbol)
                got = db.execute(
                    "UPDATE reject_counts SET count = count + ?, ts_ns = min(ts_ns, ?),"
                    " last_ts_ns = max(last_ts_ns, ?), ring_end = max(coalesce(ring_end, 0), ?)"
                    " WHERE engine=? AND second=? AND reason=? AND symbol=?",
                    (c.count, c.first_ts, c.last_ts, tape_end or 0, engine, second, reason, symbol),
                )
                if not got.rowcount:
                    db.execute(
                        "INSERT INTO reject_counts (jseq, engine, second, reason, symbol, count, ts_ns, last_ts_ns,"
                        " ring_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (jseq, engine, second, reason, symbol, c.count, c.first_ts, c.last_ts, tape_end),
                    )
                    jseq += 1
                written += c.count
            if kills:
                before = db.total_changes
                now = time.time_ns()
                db.executemany(
                    "INSERT OR IGNORE INTO control (jseq, engine, wall_ns, kind, ring_pos, detail)"
                    " VALUES (?, ?, ?, 'kernel_kill', ?, ?)",
                    [(jseq + i, engine, now, pos, detail) for i, (pos, detail) in enumerate(kills)],
                )
                written += db.total_changes - before
            return written

        written = self._write(work)
        with self._lock:
            for r in orders:
                self._tracker.see(r[0])
            # Committed: these tape positions are journaled.
            if tape_end is not None:
                self._tape_journaled = max(self._tape_journaled, tape_end)
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
        text = json.dumps(detail or {}, sort_keys=True, default=str)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO control (jseq, engine, wall_ns, kind, program_hash, config_version, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self._next_jseq(db), self._engine, time.time_ns(), kind, program_hash, config_version, text),
            )

        self._write(work)

    def record_kernel(self, *, orders_sent: int, ringbuf_drops: int, tape_drops: int, final: bool = False) -> None:
        """The kernel's own counts for this engine: what verify checks the rows
        against.  ``final``: the engine is detached and its rings drained."""
        totals = {"ringbuf_drops": ringbuf_drops, "tape_drops": tape_drops}
        deltas = {key: totals[key] - self._known[key] for key in totals if totals[key] > self._known[key]}

        def work(db: sqlite3.Connection) -> None:
            engine = self._engine_id(db)
            db.execute(
                "UPDATE engines SET kernel_orders=?, ringbuf_drops=?, tape_drops=?, closed=max(closed, ?) WHERE id=?",
                (orders_sent, ringbuf_drops, tape_drops, int(final), engine),
            )
            for key, delta in deltas.items():
                db.execute(
                    "INSERT INTO control (jseq, engine, wall_ns, kind, detail) VALUES (?, ?, ?, ?, ?)",
                    (
                        self._next_jseq(db),
                        engine,
                        time.time_ns(),
                        key,
                        json.dumps({"delta": delta, "total": totals[key]}),
                    ),
                )

        self._write(work)
        what = {"ringbuf_drops": "order(s)", "tape_drops": "reject(s)/sampled update(s)"}
        for key, delta in deltas.items():
            self._alerts.append(
                Alert(
                    key,
                    key,
                    delta,
                    message=(
                        f"RING BUFFER FULL: the kernel dropped {delta} {what[key]} ({totals[key]} in all); "
                        "the journal is missing them"
                    ),
                )
            )
        for key, total in totals.items():
            self._known[key] = max(self._known[key], total)

    def take_alerts(self) -> list[Alert]:
        """New gaps and drops since the last call (the controller calls it once
        a tick: an order id missing for a whole tick is declared a gap), and
        the journal's size alerts (near the cap, a new part, low disk)."""
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


def _make_schema(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction of ``db`` (the file ``path``), committed whole or not at all."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise JournalError(f"journal {path}: write failed: {exc}") from None


def _sync_directory(directory: Path) -> None:
    """A new name is lasting once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def open_journal(
    iface: str,
    path: str | Path | None = None,
    *,
    max_mb: int = DEFAULT_MAX_MB,
    reject_rows_per_s: int = DEFAULT_REJECT_ROWS_PER_S,
) -> Journal:
    """The writer's journal for ``iface`` (made if missing, modes 0700/0600),
    capped and budgeted as the config's journal_max_mb and
    journal_reject_rows_per_s say."""
    return Journal(path or journal_path(iface), max_bytes=max_mb * 1_000_000, reject_rows_per_s=reject_rows_per_s)
