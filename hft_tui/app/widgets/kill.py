"""The emergency kill: a large red button, and the banner of the killed state."""

from __future__ import annotations

from textual.widgets import Button, Static


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
    """Shown across the screen while the kernel's kill switch is set (where: app.tcss, the killed theme)."""

    DEFAULT_CSS = """
    KilledBanner {
        display: none;
        height: 3;
        content-align: center middle;
        text-style: bold;
        background: $error;
        color: $text;
    }
    """

    def show(self, kill_state: str | None, iface: str | None) -> None:
        if (kill_state, iface) == getattr(self, "_shown", None):
            return
        self._shown = (kill_state, iface)
        if kill_state and kill_state != "off":
            why = "by the loss limit (latched in the kernel)" if kill_state == "loss_limit" else "by the operator"
            self.update(f"KILLED {why}: {iface} sends no orders · ctrl+r to resume")
            self.display = True
        else:
            self.display = False
