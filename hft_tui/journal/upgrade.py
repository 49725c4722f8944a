"""Journals of older schemas, brought up to this one by a writer (readers read them as they are)."""

from __future__ import annotations

import sqlite3

from ..rings import RECORD_STRIDE
from .records import EVENT_COLUMNS, SCHEMA_VERSION, event_tuple, ring_record, schema1_reject


def upgrade_from_1(db: sqlite3.Connection) -> None:
    """Schema 1 kept a row per reject: the writer turns each run of rejects
    with consecutive journal numbers into one block, so every reject keeps
    its jseq, its fields and its place in journal order."""
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
            "INSERT INTO reject_blocks (jseq, engine, ring_pos, ring_end, count, records) VALUES (?, ?, ?, ?, ?, ?)",
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


def upgrade_from_2(db: sqlite3.Connection) -> None:
    """Schema 3 adds tables only (reject_counts, continued: made by the schema
    script before this runs); nothing already written changes."""
    if int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]) == 2:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
