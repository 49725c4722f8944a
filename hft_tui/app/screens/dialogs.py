"""Modal dialogs: confirmations, the quit question, adding a symbol."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ...config import ConfigError, SYMBOL_KEYS
from ..formatting import param_value
from ..validation import new_symbol_values


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; Cancel has the focus, so a stray Enter changes nothing."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]

    def __init__(self, title: str, text: str, yes: str = "Yes", danger: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.text, self.yes = title, text, yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.text, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error" if self.danger else "primary")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class QuitScreen(ModalScreen[str | None]):
    """Quit: detach the engine (default), leave it attached, or stay."""

    BINDINGS = [
        Binding("d", "answer('detach')", "Detach and quit", id="quit-detach"),
        Binding("l", "answer('leave')", "Leave attached", id="quit-leave"),
        Binding("escape,c", "answer(None)", "Cancel", id="quit-cancel"),
    ]

    def __init__(self, iface: str, deadman_ms: int) -> None:
        super().__init__(classes="dialog-screen")
        self.iface, self.deadman_ms = iface, deadman_ms

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Quit hft-tui", classes="dialog-title")
            yield Static(
                f"Detach the engine from {self.iface}?\n\n"
                "Detach (default): the program leaves the interface; no more orders.\n"
                f"Leave attached: no controller beats its heartbeat, so the kernel's dead-man switch "
                f"stops trading {self.deadman_ms} ms after you quit, until a controller takes it over.",
                classes="dialog-text",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Detach and quit (d)", id="detach", variant="error")
                yield Button("Leave attached (l)", id="leave", variant="warning")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)


NEW_SYMBOL_FIELDS = ("buy_target", "sell_target", "base_qty", "max_order_qty", "max_position")


class AddSymbolScreen(ModalScreen[tuple[str, dict] | None]):
    """A new symbol: its name and the main parameters (the rest take the defaults)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="add-cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Add a symbol", classes="dialog-title")
            with Grid(id="add-grid"):
                yield Label("symbol")
                yield Input(placeholder="e.g. TSLA", id="new-name")
                for key in NEW_SYMBOL_FIELDS:
                    yield Label(key)
                    yield Input(value=param_value(key, _default(key)), id=f"new-{key}")
            yield Static("Enter adds it to the running engine; Escape cancels", id="add-message")

    def _values(self) -> tuple[str, dict]:
        name = self.query_one("#new-name", Input).value.strip()
        values = {key: self.query_one(f"#new-{key}", Input).value for key in NEW_SYMBOL_FIELDS}
        return name, values

    def _check(self) -> str | None:
        name, values = self._values()
        try:
            new_symbol_values(name, values)
        except ConfigError as exc:
            return str(exc)
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        problem = self._check()
        msg = self.query_one("#add-message", Static)
        msg.update(problem or "valid: Enter adds it")
        msg.set_classes("-error" if problem else "-info")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        problem = self._check()
        if problem:
            msg = self.query_one("#add-message", Static)
            msg.update(problem + " (nothing written)")
            msg.set_classes("-error")
            return
        self.dismiss(self._values())

    def action_cancel(self) -> None:
        self.dismiss(None)


def _default(key: str):
    parser, default = SYMBOL_KEYS[key]
    return parser(default, key)
