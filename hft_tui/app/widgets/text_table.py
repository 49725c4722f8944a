"""Read-only tables drawn as one block of text, fitted to their width.

The book and the PnL change on every frame under load.  A DataTable
re-renders each changed cell through Rich's full layout machinery, which
at 5 frames a second was most of the app's CPU; these tables have no
cursor and no scrolling, so they are laid out here once per frame in plain
fixed-width columns and drawn as a single Text.  A table narrower than its
columns drops the least important ones (fitting.fit_table) and says which
in ``hidden``; no row ever wraps.  ``full`` tables keep every column (the
full-tables view scrolls them sideways).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..fitting import Cell, Column, fit_table


class TextTable(Static):
    """A Static that draws a table fitted to its width and repaints only when the text changed."""

    DEFAULT_CSS = """
    TextTable {
        height: auto;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    TextTable.-full {
        width: auto;
    }
    """

    def __init__(self, *, full: bool = False, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.full = full
        self.set_class(full, "-full")
        self.hidden: list[str] = []  # the headers of the columns left out to fit
        self._table: tuple[list[Column], list[list[Cell]], Text | None] | None = None
        self._shown: Text | None = None
        self._lines = -1

    def set_table(self, columns: list[Column], rows: list[list[Cell]], below: Text | None = None) -> None:
        """The table to draw, and an optional line below it (not fitted: keep it short)."""
        self._table = (columns, rows, below)
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._table is None:
            return
        columns, rows, below = self._table
        width = self.content_size.width
        text, self.hidden = fit_table(columns, rows, None if self.full or not width else width)
        if below is not None:
            text.append("\n")
            text.append_text(below)
        if text != self._shown:
            self._shown = text
            lines = text.plain.count("\n") + 1
            self.update(text, layout=lines != self._lines or self.full)
            self._lines = lines
