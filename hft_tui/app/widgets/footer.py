"""The footer: the keys that work here, as many as fit, whole.

Textual's Footer lays every key out in a row and cuts the row at the
terminal's edge, in the middle of a word.  This one keeps the keys that fit
in full, in their usual order, leaving out the least important first: the
tab keys (the tab titles show them), then Resume, Help, Quit; the kill key
and the keys of the pane in use stay.  On a narrow terminal the keys are
drawn compact and the palette key (ctrl+p still works) steps aside.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from ..fitting import NARROW_BELOW

# By binding id: which key gives way first (highest); the pane's own keys: PANE_RANK.
RANKS = {"kill": 0, "quit": 2, "help": 3, "resume": 4}
PANE_RANK = 1
TAB_RANK = 5
PALETTE_WIDTH = 14  # " ^p palette " with its border and padding


class KeysFooter(Footer):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._width = 0

    def compose(self):
        width = self.size.width or self.app.size.width
        narrow = width < NARROW_BELOW
        self.set_reactive(Footer.compact, narrow)
        self.set_class(narrow, "-compact")
        widgets = list(super().compose())
        palette = [w for w in widgets if isinstance(w, FooterKey) and w.has_class("-command-palette")]
        keys = [w for w in widgets if w not in palette]
        room = width - (0 if narrow else PALETTE_WIDTH * len(palette)) - 1
        kept = self.fitting(keys, room, narrow)
        yield from kept
        if not narrow:
            yield from palette

    def fitting(self, keys: list, room: int, compact: bool) -> list:
        """The keys that fit in ``room`` cells, in order, the highest ranks left out first."""
        ids = {key: binding.id for key, (_node, binding, _enabled, _tip) in self.screen.active_bindings.items()}

        def rank(w) -> int:
            if not isinstance(w, FooterKey):
                return PANE_RANK
            bid = ids.get(w.key) or ""
            return TAB_RANK if bid.startswith("tab-") else RANKS.get(bid, PANE_RANK)

        def width(w) -> int:
            if not isinstance(w, FooterKey):
                return 0
            key, text = cell_len(w.key_display), cell_len(w.description)
            return key + 1 + text + 1 if compact else key + 2 + text + 1

        kept = list(keys)
        while kept and sum(width(w) for w in kept) > room:
            kept.remove(max(reversed(kept), key=rank))
        return kept

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._width:
            self._width = event.size.width
            if self._bindings_ready:
                self.call_after_refresh(self.recompose)
