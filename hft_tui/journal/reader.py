"""Reading a journal: its engines, its rows in journal order, and the verification.

:class:`JournalReader` is the reading half of :class:`~hft_tui.journal.store.Journal`
(a mixin over the same connection and lock); readers open the file
read-only and never block the writer (WAL).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from ..constants import REJECT_REASONS
from ..errors import JournalError
from .records import READABLE_SCHEMAS, decode_reject_block

#: gap ranges listed by verify (the count is always exact)
MAX_LISTED_GAPS = 100
#: what rows() reads: a row each (rejects: out of their blocks; reject_counts: a count each)
TABLES = ("orders", "rejects", "reject_counts", "control")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection: never creates or changes anything (WAL still needs the -shm, root has it)."""
    if not path.exists():
        raise JournalError(f"no journal at {path}")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    return db


def journal_error(path: Path, exc: sqlite3.DatabaseError | PermissionError) -> JournalError:
    """What opening the journal file ``path`` met, in one line."""
    if isinstance(exc, PermissionError):
        return JournalError(f"journal {path}: permission denied (the journal is root's: run as root)")
    if "not a database" in str(exc):
        return JournalError(f"{path} is not an hft-tui journal ({exc})")
    return JournalError(f"journal {path}: {exc}")


def last_continued(db: sqlite3.Connection) -> tuple[int, str | None] | None:
    """A part closed for good: the journal number of its last ``journal_continued`` row and the
    part it names (None when its detail names none); None for a part never closed."""
    row = db.execute(
        "SELECT jseq, detail FROM control WHERE kind='journal_continued' ORDER BY jseq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    try:
        named = json.loads(row[1]).get("next")
    except (ValueError, TypeError, AttributeError):
        named = None
    return row[0], named


class JournalReader:
    """Every read of a journal; the class that mixes it in opens the file and
    sets these four (Journal.__init__)."""

    path: Path
    _db: sqlite3.Connection
    _lock: threading.RLock  # one statement (or transaction) at a time over the one connection
    schema: int  # the file's schema version, as _check_schema last read it

    def _check_schema(self) -> int:
        """The file's schema version; a file that is no journal, or one of a
        schema this hft-tui cannot read, is a JournalError."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            row = None
        if not row:
            raise JournalError(f"{self.path} is not an hft-tui journal")
        if int(row[0]) not in READABLE_SCHEMAS:
            raise JournalError(
                f"{self.path} has journal schema {row[0]}, this hft-tui reads {', '.join(map(str, READABLE_SCHEMAS))}"
            )
        return int(row[0])

    def engines(self) -> list[dict]:
        rows = self._db.execute(
            "SELECT id, iface, prog_id, attached_at, program_hash, kernel_orders, ringbuf_drops, tape_drops,"
            " closed, clock_offset_ns FROM engines ORDER BY id"
        ).fetchall()
        keys = (
            "id",
            "iface",
            "prog_id",
            "attached_at",
            "program_hash",
            "kernel_orders",
            "ringbuf_drops",
            "tape_drops",
            "closed",
            "clock_offset_ns",
        )
        return [dict(zip(keys, r)) for r in rows]

    def census(self) -> dict:
        """What this one file holds, for verify (chain.py): per engine instance
        its rows, order-id range, rejects (kept whole and counted) and the
        kernel's counts; the file's journal numbers, integrity and place among
        the parts."""
        with self._lock:
            try:
                return self._census()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"journal {self.path}: {exc}") from None

    def _census(self) -> dict:
        db = self._db
        self.schema = self._check_schema()  # a writer may have upgraded the file since it was opened
        engines = []
        for e in self.engines():
            # Rows are the distinct ids an engine can have (1 and up): a row of any other id, or one
            # id twice, hides no missing one.
            rows, first, last = db.execute(
                "SELECT count(DISTINCT order_id), min(order_id), max(order_id) FROM orders "
                "WHERE engine=? AND order_id >= 1",
                (e["id"],),
            ).fetchone()
            whole = db.execute(
                "SELECT count(*) FROM rejects WHERE engine=?"
                if self.schema == 1
                else "SELECT coalesce(sum(count), 0) FROM reject_blocks WHERE engine=?",
                (e["id"],),
            ).fetchone()[0]
            counted = (
                db.execute("SELECT coalesce(sum(count), 0) FROM reject_counts WHERE engine=?", (e["id"],)).fetchone()[0]
                if self.schema >= 3
                else 0
            )
            engines.append({**e, "rows": rows, "first": first, "last": last, "whole": whole, "counted": counted})
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        continued = last_continued(db)
        return {
            "continued_into": continued[1] if continued else None,
            "path": str(self.path),
            "engines": engines,
            "integrity": db.execute("PRAGMA quick_check").fetchone()[0],
            "control": db.execute("SELECT count(*) FROM control").fetchone()[0],
            "first_jseq": self._jseq_bound("min"),
            "last_jseq": self._jseq_bound("max"),
            "part": int(meta.get("part", 0)),
            "previous_last_jseq": int(meta["previous_last_jseq"]) if "previous_last_jseq" in meta else None,
        }

    def _jseq_bound(self, which: str) -> int | None:
        tables = ["orders", "control", "rejects" if self.schema == 1 else "reject_blocks"]
        if self.schema >= 3:
            tables.append("reject_counts")
        values = [self._db.execute(f"SELECT {which}(jseq) FROM {t}").fetchone()[0] for t in tables]
        if which == "max" and self.schema != 1:
            top = self._db.execute("SELECT jseq + count - 1 FROM reject_blocks ORDER BY jseq DESC LIMIT 1").fetchone()
            values.append(top[0] if top else None)
        found = [v for v in values if v is not None]
        return (min(found) if which == "min" else max(found)) if found else None

    def order_ids(self, engine: int):
        """The order ids of one engine an order can have (1 and up), ascending (for verify across parts)."""
        return (
            r[0]
            for r in self._db.execute(
                "SELECT order_id FROM orders WHERE engine=? AND order_id >= 1 ORDER BY order_id", (engine,)
            )
        )

    def gap_ranges(self, engine: int, limit: int) -> list[list[int]]:
        """Missing order ids between the first and the last in this file, as ranges."""
        return [
            [start, stop]
            for start, stop in self._db.execute(
                "SELECT prev + 1, order_id - 1 FROM (SELECT order_id, lag(order_id, 1, 0)"
                " OVER (ORDER BY order_id) AS prev FROM orders WHERE engine=? AND order_id >= 1)"
                " WHERE order_id - prev > 1 LIMIT ?",
                (engine, limit),
            )
        ]

    def rows(self, table: str, *, after: int = 0, limit: int | None = None, newest: bool = False) -> list[dict]:
        """Rows of one table as dicts, by journal order (jseq > ``after``);
        ``rejects`` are read out of their blocks, a row each."""
        if table not in TABLES:
            raise JournalError(f"no table {table!r}")
        if table == "reject_counts" and self.schema < 3:
            return []
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
            row["kind"] = {"orders": "order", "rejects": "reject", "reject_counts": "reject_count"}.get(
                table, row.get("kind")
            )
            if table == "reject_counts":
                row["reason"] = REJECT_REASONS.get(row["reason"], str(row["reason"]))
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
            f" ORDER BY jseq {'DESC' if newest else ''}",
            (after,),
        )
        out: list[dict] = []
        for jseq, engine, records in cur:
            rows = [r for r in decode_reject_block(jseq, engine, records) if r["jseq"] > after]
            out.extend(reversed(rows) if newest else rows)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def entries(self, *, after: int = 0, last: int | None = None, tables: tuple[str, ...] = TABLES) -> list[dict]:
        """Rows of several tables merged in journal order: at most ``last``
        (the newest) or, without it, every row after jseq ``after``."""
        out = []
        for table in tables:
            out.extend(self.rows(table, after=after, limit=last, newest=last is not None))
        out.sort(key=lambda r: r["jseq"])
        return out[-last:] if last is not None else out

    def slices(self, tables: tuple[str, ...] = TABLES, size: int = 50_000) -> Iterator[list[dict]]:
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
