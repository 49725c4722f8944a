"""A one-line widget whose parts fit its width (fitting.fit_line), refitted on resize.

The status bar and the main screen's headline are both this: parts given by
``show_parts``, drawn again only when the fitted line changes.
"""

from __future__ import annotations

from textual.widgets import Static

from ..fitting import Part, fit_line


class FittedLine(Static):
    _parts: list[Part] | None = None
    _shown: object = None

    def show_parts(self, parts: list[Part]) -> None:
        self._parts = parts
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._parts is None:
            return
        text = fit_line(self._parts, self.content_size.width or 10_000)
        if text != self._shown:  # unchanged: no repaint at all
            self._shown = text
            self.update(text, layout=False)
