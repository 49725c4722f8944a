"""Modal dialogs: confirmations, the quit question, adding a symbol."""

from __future__ import annotations

from typing import TypeVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..config import SYMBOL_KEYS
from ..errors import ConfigError
from ..symbol import Symbol
from .fitting import SHORT_BELOW
from .formatting import param_value
from .labels import MessageLine
from .validation import new_symbol_values

ResultType = TypeVar("ResultType")


class DialogScreen(ModalScreen[ResultType]):
    """A box over the screen (class "dialog"): a title, a text, buttons."""

    DEFAULT_CSS = """
    DialogScreen {
        align: center middle;
    }
    .dialog {
        width: 80;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    .dialog-title {
        text-style: bold;
        width: 1fr;
        content-align: center middle;
    }
    .dialog-text {
        margin: 1 0;
    }
    .dialog-buttons {
        height: auto;
        align: center middle;
    }
    .dialog-buttons Button {
        margin: 0 1;
    }
    DialogScreen.-short .dialog {
        padding: 0 1;
        max-height: 100%;
    }
    DialogScreen.-short .dialog-text {
        margin: 0;
    }
    """

    def on_resize(self, event: events.Resize) -> None:
        """On a short terminal the box loses its margins and its fields and buttons their borders."""
        short = event.size.height < SHORT_BELOW
        self.set_class(short, "-short")
        for widget in self.query("Input, Button"):
            if isinstance(widget, Input | Button):
                widget.compact = short


class ConfirmScreen(DialogScreen[bool]):
    """Yes or no; Cancel has the focus, so a stray Enter changes nothing."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]

    def __init__(self, title: str, text: str, yes: str = "Yes", danger: bool = False) -> None:
        super().__init__()
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


class QuitScreen(DialogScreen[str | None]):
    """Quit: detach the engine (default), leave it attached, or stay."""

    BINDINGS = [
        Binding("d", "answer('detach')", "Detach and quit", id="quit-detach"),
        Binding("l", "answer('leave')", "Leave attached", id="quit-leave"),
        Binding("escape,c", "answer(None)", "Cancel", id="quit-cancel"),
    ]

    def __init__(self, iface: str, deadman_ms: int) -> None:
        super().__init__()
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


def new_symbol_problems(name: str, values: dict[str, str]) -> dict[str, str]:
    """field ("name" or a key) -> what is wrong with it; empty when the symbol can be added.

    Each field is checked alone (the rules of hft_tui.config), then the rules
    between fields (sell above buy), which are shown beside the field they name."""
    problems: dict[str, str] = {}
    try:
        Symbol(name.strip())
    except ConfigError as exc:
        problems["name"] = str(exc) if name.strip() else "give the symbol a name (1-8 letters, digits, '.', '-')"
    for key in NEW_SYMBOL_FIELDS:
        text = values.get(key, "")
        if text.strip():
            parser, _ = SYMBOL_KEYS[key]
            try:
                parser(text.strip(), key)
            except ConfigError as exc:
                problems[key] = str(exc)
    if not problems:
        try:
            new_symbol_values(name, values)
        except ConfigError as exc:
            text = str(exc)
            rule = text.split(":", 1)[-1]
            named = sorted((k for k in NEW_SYMBOL_FIELDS if k in rule.split()), key=rule.index)
            problems[named[0] if named else "name"] = text  # beside the field the rule names first
    return problems


class AddSymbolScreen(DialogScreen[tuple[str, dict] | None]):
    """A new symbol: its name and the main parameters (the rest take the defaults).
    What is wrong with a field is shown beside it as it is typed; Enter adds the
    symbol only when every field is right."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="add-cancel")]
    # Top left, as this dialog has always been drawn (the confirmations are centred).
    DEFAULT_CSS = """
    AddSymbolScreen {
        align: left top;
    }
    #add-dialog {
        width: 120;
    }
    #add-grid {
        grid-size: 3;
        grid-columns: 16 22 1fr;
        grid-rows: 3;
        height: auto;
    }
    #add-grid Label {
        padding: 1 1;
    }
    AddSymbolScreen.-short #add-grid {
        grid-rows: 1;
    }
    AddSymbolScreen.-short #add-grid Label, AddSymbolScreen.-short .field-problem {
        padding: 0 1;
        height: 1;
    }
    AddSymbolScreen.-short #add-message {
        padding: 0 1;
    }
    .field-problem {
        padding: 0 1;
        color: $error;
        text-style: bold;
        content-align: left middle;
        height: 3;
    }
    """

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="add-dialog"):
            yield Label("Add a symbol", classes="dialog-title")
            with Grid(id="add-grid"):
                yield Label("symbol")
                yield Input(placeholder="e.g. TSLA", id="new-name")
                yield Static("", id="problem-name", classes="field-problem")
                for key in NEW_SYMBOL_FIELDS:
                    yield Label(key)
                    yield Input(value=param_value(key, _default(key)), id=f"new-{key}")
                    yield Static("", id=f"problem-{key}", classes="field-problem")
            yield MessageLine("Enter adds it to the running engine; Escape cancels", id="add-message")

    def _values(self) -> tuple[str, dict]:
        name = self.query_one("#new-name", Input).value.strip()
        values = {key: self.query_one(f"#new-{key}", Input).value for key in NEW_SYMBOL_FIELDS}
        return name, values

    def _check(self, *, submitted: bool = False) -> dict[str, str]:
        """Shows each field's problem beside it (the name's only once something was
        typed or Enter pressed); returns the problems."""
        name, values = self._values()
        problems = new_symbol_problems(name, values)
        for field in ("name", *NEW_SYMBOL_FIELDS):
            text = problems.get(field, "")
            if field == "name" and not name and not submitted:
                text = ""
            self.query_one(f"#problem-{field}", Static).update(text)
            self.query_one(f"#new-{field}", Input).set_class(bool(text), "-invalid")
        return problems

    def problem(self, field: str) -> str:
        """The message shown beside ``field`` ("name" or a key) now."""
        return str(self.query_one(f"#problem-{field}", Static).render())

    def on_input_changed(self, event: Input.Changed) -> None:
        problems = self._check()
        self.query_one("#add-message", MessageLine).show(
            "fix the field marked in red" if problems else "valid: Enter adds it", "error" if problems else "info"
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        problems = self._check(submitted=True)
        if problems:
            self.query_one("#add-message", MessageLine).show(
                next(iter(problems.values())) + " (nothing written)", "error"
            )
            return
        self.dismiss(self._values())

    def action_cancel(self) -> None:
        self.dismiss(None)


def _default(key: str):
    parser, default = SYMBOL_KEYS[key]
    return parser(default, key)
