"""Alerts: reject reasons firing, ring-buffer drops, kills, journal gaps, app errors.

The newest alerts, newest at the bottom, in a fixed-height block.  A log
widget that grows would re-layout the whole screen on every line; this one
only repaints itself (the journal keeps the full history).
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import Static

KEPT = 200
STYLES = {"error": "bold red", "warning": "yellow", "information": ""}


class AlertLog(Static):
    DEFAULT_CSS = """
    AlertLog {
        border: round $warning-darken-2;
        border-title-color: $warning;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.lines: deque[Text] = deque(maxlen=KEPT)

    def add(self, clock: str, text: str, severity: str = "warning") -> None:
        line = Text(f"{clock} ", style="dim")
        line.append(text, style=STYLES.get(severity, ""))
        self.lines.append(line)
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        """The newest alerts that fit, newest at the bottom; a long one wraps onto
        the next lines (at a word), so the newest is never the one cut off."""
        rows = max(1, self.content_size.height or 1)
        width = self.content_size.width
        shown: list[Text] = []
        used = 0
        for line in reversed(self.lines):
            wrapped = line.wrap(self.app.console, width) if width else [line]
            if used + len(wrapped) > rows:
                if not shown:  # the newest alone is taller than the log: its first lines
                    shown = list(wrapped)[:rows]
                break
            shown[:0] = wrapped
            used += len(wrapped)
        self.update(Text("\n").join(shown), layout=False)
