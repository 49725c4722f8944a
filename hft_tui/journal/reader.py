"""Reading a journal: its engines, its rows in journal order, and the verification.

:class:`JournalReader` is the reading half of :class:`~hft_tui.journal.store.Journal`
(a mixin over the same connection and lock); readers open the file
read-only and never block the writer (WAL).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ..errors import JournalError
from .records import READABLE_SCHEMAS, decode_reject_block

#: gap ranges listed by verify (the count is always exact)
MAX_LISTED_GAPS = 100


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

    def verify(self) -> dict:
        """Counts rows, missing order ids and drops; ``ok`` when none is lost."""
        with self._lock:
            try:
                return self._verify()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"journal {self.path}: {exc}") from None

    def _verify(self) -> dict:
        db = self._db
        self.schema = self._check_schema()  # a writer may have upgraded the file since it was opened
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
            rejects = db.execute(
                "SELECT count(*) FROM rejects WHERE engine=?"
                if self.schema == 1
                else "SELECT coalesce(sum(count), 0) FROM reject_blocks WHERE engine=?",
                (e["id"],),
            ).fetchone()[0]
            per_engine.append(
                {
                    "engine": e["id"],
                    "iface": e["iface"],
                    "prog_id": e["prog_id"],
                    "attached_at": e["attached_at"],
                    "program_hash": e["program_hash"],
                    "rows": rows,
                    "rejects": rejects,
                    "first_order_id": first,
                    "last_order_id": last,
                    "kernel_orders": e["kernel_orders"],
                    "closed": bool(e["closed"]),
                    "gaps": missing,
                    "drops": e["ringbuf_drops"] + e["tape_drops"],
                    "order_drops": e["ringbuf_drops"],
                    "tape_drops": e["tape_drops"],
                }
            )
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

    def entries(
        self, *, after: int = 0, last: int | None = None, tables=("orders", "rejects", "control")
    ) -> list[dict]:
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
