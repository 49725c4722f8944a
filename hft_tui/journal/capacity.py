"""How big the journal may grow: a part's size, its cap, and what a new part carries over.

``journal_max_mb`` caps each part (files.py): before a write would take the
part's database past the cap, the writer closes the part and continues in
the next.  The write-ahead log is kept small beside it (checkpointed at an
eighth of the cap, cut back to that size after each checkpoint), so the
database plus its WAL stay within the cap.

A new part starts with what the earlier parts know and a writer needs: the
engines (same ids), and per engine the ring positions already journaled and
the highest order id, so a writer that reads records again after a crash
never journals them twice across two parts, and its gap detector goes on
where it was.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..events import Alert
from ..rings import RECORD_STRIDE

#: alert when a part reaches this share of its cap
NEAR_CAP = 0.9
#: the most the WAL may take of a part's cap, and the most it ever takes (SQLite's default checkpoint)
WAL_SHARE = 8
MAX_WAL_BYTES = 4 << 20


def wal_bytes(max_bytes: int) -> int:
    return min(MAX_WAL_BYTES, max(64 << 10, max_bytes // WAL_SHARE))


def database_cap(max_bytes: int) -> int:
    """What the database itself may take: the cap less twice the WAL's room
    (the WAL may grow by a batch past its checkpoint)."""
    return max(max_bytes - 2 * wal_bytes(max_bytes), max_bytes // 2)


def limit_wal(db: sqlite3.Connection, max_bytes: int) -> None:
    """Checkpoint the WAL once it holds an eighth of the cap, and cut it back to that after."""
    page = db.execute("PRAGMA page_size").fetchone()[0]
    wal = wal_bytes(max_bytes)
    db.execute(f"PRAGMA wal_autocheckpoint={max(16, wal // page)}")
    db.execute(f"PRAGMA journal_size_limit={wal}")


def database_bytes(db: sqlite3.Connection) -> int:
    """The database's size as the open transaction leaves it (pages in use, WAL included)."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    return int(pages * db.execute("PRAGMA page_size").fetchone()[0])


def part_bytes(path: Path) -> int:
    """What a part takes on disk now: the database file and its WAL."""
    total = 0
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            total += os.stat(name).st_size
        except FileNotFoundError:
            pass
    return total


def free_bytes(directory: Path) -> int:
    """Room left for an unprivileged writer on the file system of ``directory``
    (f_bavail: what is left once the root reserve is kept for the system)."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


@dataclass
class Carry:
    """What a new part starts with (see the module's docstring)."""

    engine_columns: list[str]
    engines: list[tuple]
    continued: list[tuple[int, int, int, int]]  # engine, tape_end, events_end, last_order
    last_jseq: int


def read_carry(db: sqlite3.Connection, last_jseq: int, schema: int) -> Carry:
    """Read inside the last transaction of the part being closed."""
    cur = db.execute("SELECT * FROM engines ORDER BY id")
    columns = [d[0] for d in cur.description]
    engines = cur.fetchall()
    continued = []
    has_continued = schema >= 3
    for row in engines:
        engine = row[columns.index("id")]
        tape = [
            db.execute("SELECT max(ring_end) FROM reject_blocks WHERE engine=?", (engine,)).fetchone()[0],
            db.execute("SELECT max(ring_end) FROM reject_counts WHERE engine=?", (engine,)).fetchone()[0],
        ]
        events = [
            db.execute("SELECT max(ring_pos) FROM orders WHERE engine=?", (engine,)).fetchone()[0],
            db.execute("SELECT max(ring_pos) FROM control WHERE engine=? AND kind='kernel_kill'", (engine,)).fetchone()[
                0
            ],
        ]
        last_order = db.execute("SELECT max(order_id) FROM orders WHERE engine=?", (engine,)).fetchone()[0] or 0
        tape_end = max([t for t in tape if t is not None], default=0)
        events_end = max([e + RECORD_STRIDE for e in events if e is not None], default=0)
        if has_continued:
            got = db.execute(
                "SELECT tape_end, events_end, last_order FROM continued WHERE engine=?", (engine,)
            ).fetchone()
            if got:
                tape_end, events_end, last_order = (max(a, b) for a, b in zip((tape_end, events_end, last_order), got))
        continued.append((engine, tape_end, events_end, last_order))
    return Carry(columns, engines, continued, last_jseq)


def write_carry(db: sqlite3.Connection, carry: Carry) -> None:
    """Into the new part's first transaction."""
    cols = ", ".join(carry.engine_columns)
    marks = ", ".join("?" * len(carry.engine_columns))
    db.executemany(f"INSERT INTO engines ({cols}) VALUES ({marks})", carry.engines)
    db.executemany(
        "INSERT INTO continued (engine, tape_end, events_end, last_order) VALUES (?, ?, ?, ?)", carry.continued
    )


# -- what the operator is told (alert kind "journal_size") ---------------------------------


def near_cap_alert(path: Path, size: int, max_bytes: int, next_name: str) -> Alert:
    return Alert(
        "journal_size",
        "near_cap",
        1,
        message=(
            f"JOURNAL NEAR ITS CAP: {path.name} holds {size / 1e6:.1f} MB of its {max_bytes / 1e6:.1f} MB "
            f"(journal_max_mb); it continues in {next_name} at the cap"
        ),
    )


def rotated_alert(old: Path, new: Path) -> Alert:
    return Alert(
        "journal_size",
        "rotated",
        1,
        message=f"journal {old.name} reached its cap ({part_bytes(old) / 1e6:.1f} MB): continued in {new.name}",
    )


def disk_alert(low: bool, free: int, directory: Path) -> Alert:
    if low:
        text = (
            f"LOW DISK: {free / 1e6:.0f} MB free for the journal in {directory}: rejects are now only counted "
            "(per reason and symbol), orders still journaled whole"
        )
    else:
        text = f"disk space back ({free / 1e6:.0f} MB free): rejects kept whole again up to the rate"
    return Alert("journal_size", "low_disk" if low else "disk_ok", 1, message=text)
