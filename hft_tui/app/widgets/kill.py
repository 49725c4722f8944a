"""The emergency kill: a large red button, and the banner of the killed state."""

from __future__ import annotations

from textual.widgets import Button, Static

from ..fitting import Part, fit_line


class KillButton(Button):
    """Always on screen; pressing it (or ctrl+k anywhere) runs the app's kill."""

    # !important: the button looks the same whatever state Button's own rules
    # style (hover, pressed), so nothing about it ever suggests it is off.
    DEFAULT_CSS = """
    KillButton {
        width: 24;
        height: 3;
        min-width: 24;
        text-style: bold !important;
        background: $error !important;
        color: $text !important;
        border: tall $error-darken-2 !important;
    }
    """

    def __init__(self) -> None:
        super().__init__("■ KILL  (ctrl+k)", variant="error", id="kill-button", action="app.kill")
        self.can_focus = False  # never steals focus from an edit: ctrl+k works everywhere


class KilledBanner(Static):
    """Shown across the screen while the kernel's kill switch is set (where: app.tcss, the killed theme).
    Its text shortens to the width (the first part always stays)."""

    DEFAULT_CSS = """
    KilledBanner {
        display: none;
        height: 3;
        content-align: center middle;
        text-style: bold;
        background: $error;
        color: $text;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def show(self, kill_state: str | None, iface: str | None) -> None:
        if (kill_state, iface) == getattr(self, "_state", None):
            return
        self._state = (kill_state, iface)
        # Shown by the screen's killed theme (app.tcss), not here: the too-small line hides it.
        if kill_state and kill_state != "off":
            self._parts = banner_parts(kill_state, iface)
            self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        parts = getattr(self, "_parts", None)
        if parts is not None:
            self.update(fit_line(parts, self.content_size.width or 10_000))


def banner_parts(kill_state: str, iface: str | None) -> list[Part]:
    if kill_state == "loss_limit":
        who = Part.of("KILLED by the loss limit (latched in the kernel)", "KILLED by the loss limit", rank=1)
    else:
        who = Part.of("KILLED by the operator", "KILLED", rank=1)
    return [
        who,
        Part.of(f": {iface} sends no orders", ": no orders", rank=2),
        Part.of(" · ctrl+r to resume", " · ctrl+r resumes", rank=3),
    ]
