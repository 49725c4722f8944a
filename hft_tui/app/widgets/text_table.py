"""Read-only tables drawn as one block of text.

The book and the PnL change on every frame under load.  A DataTable
re-renders each changed cell through Rich's full layout machinery, which
at 5 frames a second was most of the app's CPU; these tables have no
cursor and no scrolling, so they are laid out here once per frame in plain
fixed-width columns and drawn as a single Text.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

Cell = tuple[str, str]  # (text, style)


def render_table(headers: list[str], rows: list[list[Cell]], right: set[int]) -> Text:
    """Columns as wide as their widest cell, two spaces apart; ``right`` columns right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, (text, _) in enumerate(row):
            widths[i] = max(widths[i], len(text))
    out = Text()
    for i, h in enumerate(headers):
        out.append((h.rjust(widths[i]) if i in right else h.ljust(widths[i])) + "  ", style="bold")
    for row in rows:
        out.append("\n")
        for i, (text, style) in enumerate(row):
            out.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]), style=style)
            out.append("  ")
    return out


class TextTable(Static):
    """A Static that repaints only when its text changed."""

    def set_text(self, text: Text) -> None:
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text, layout=len(text.plain.splitlines()) != getattr(self, "_lines", -1))
            self._lines = len(text.plain.splitlines())
