"""Alerts: reject reasons firing, ring-buffer drops, kills, journal gaps, app errors."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

MAX_LINES = 300


class AlertLog(RichLog):
    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=True, markup=False, auto_scroll=True, **kwargs)

    def add(self, clock: str, text: str, severity: str = "warning") -> None:
        style = {"error": "bold red", "warning": "yellow", "information": ""}.get(severity, "")
        line = Text(f"{clock} ", style="dim")
        line.append(text, style=style)
        self.write(line)
