"""Bringing a DataTable in line with fresh rows without rebuilding it.

Rebuilding a table every tick resets its cursor and costs a full layout;
updating only the cells that changed keeps the cursor where the user left
it and costs almost nothing when the market is quiet.
"""

from __future__ import annotations

from textual.widgets import DataTable


def sync_rows(table: DataTable, rows: dict[str, tuple], column_keys: list[str]) -> None:
    """Adds, updates and removes rows so the table shows exactly ``rows`` (in order)."""
    present = [str(k.value) for k in table.rows]
    if present[: len(rows)] != list(rows)[: len(present)] or any(k not in rows for k in present):
        # Order changed or rows went away: a rebuild is simplest and rare.  The
        # cursor stays on the same row *key*: an interface list that changed
        # under the cursor must not leave "detach" pointing at another interface.
        cursor = table.cursor_coordinate
        selected = present[cursor.row] if 0 <= cursor.row < len(present) else None
        table.clear()
        for key, cells in rows.items():
            table.add_row(*cells, key=key)
        if rows:
            keys = list(rows)
            row = keys.index(selected) if selected in keys else min(cursor.row, len(keys) - 1)
            table.cursor_coordinate = table.validate_cursor_coordinate(cursor._replace(row=row))
        return
    for key, cells in rows.items():
        if key not in present:
            table.add_row(*cells, key=key)
            continue
        old = table.get_row(key)
        for col, (before, after) in enumerate(zip(old, cells)):
            if str(before) != str(after) or getattr(before, "style", None) != getattr(after, "style", None):
                table.update_cell(key, column_keys[col], after)
