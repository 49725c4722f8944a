"""Help (?): what every key does.

The key table is made from the bindings themselves (their keys and tooltips)
and from the list of tabs, so a key changed in one place changes here too;
it is drawn as a plain two-column table, so no row wraps on a narrow terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.keys import key_to_character
from textual.widgets import Markdown

from ..dialogs import DialogScreen
from ..fitting import Cell, Column
from ..widgets.text_table import TextTable
from .main import TABS, Tab

INTRO = """\
# hft-tui

The engine trades in the kernel (XDP); this screen shows what its maps say.
"""

# The rows of the key table in reading order, by binding id ("tabs": the tab
# keys in one row); the emergency key first, and in bold.
ROWS = ("kill", "resume", "tabs", "palette", "quit", "help")
EMPHASISED = ("kill",)

DETAILS = """\
**Parameters**: arrows move, Enter edits a cell, Enter applies (one map update;
the value shown afterwards is read back from the kernel), Escape discards,
`n` adds a symbol, `x` removes one. Every value is checked as you type by
the same rules as the config file.

**Interfaces**: arrows select, `m` switches native/generic XDP, `a` attaches,
`d` detaches. An interface with an hft-tui engine already attached is taken
over, never loaded twice.

**Supervision**: while the app runs it beats the engine's heartbeat; if the app
dies the kernel's dead-man switch stops trading after the deadline.  With no
engine supervised here, ctrl+k sets the kill switch of every hft-tui engine
attached on this machine.

Press Escape to close.
"""


def key_name(key: str) -> str:
    """A key as the help writes it: ctrl+k, ?, 1."""
    return key_to_character(key) or key


def tab_keys(tabs: Sequence[Tab] = TABS) -> str:
    """The tabs' keys as the help writes them: "1-5" when they run in order, else each."""
    keys = [tab.key for tab in tabs]
    if (
        len(keys) > 2
        and all(k.isdigit() for k in keys)
        and [int(k) for k in keys] == list(range(int(keys[0]), int(keys[0]) + len(keys)))
    ):
        return f"{keys[0]}-{keys[-1]}"
    return " ".join(keys)


def key_rows(bindings: Iterable[BindingType], tabs: Sequence[Tab] = TABS) -> list[tuple[str, str, bool]]:
    """(key, what it does, emphasised) for ROWS, from ``bindings`` (by id) and ``tabs``."""
    # A binding written as a tuple has no id (nor tooltip): no row names it.
    by_id = {b.id: b for b in bindings if isinstance(b, Binding) and b.id}
    missing = [row for row in ROWS if row != "tabs" and row not in by_id]
    if missing:
        raise KeyError(f"no binding with id {missing[0]!r} for the help")
    rows = []
    for row in ROWS:
        if row == "tabs":
            rows.append((tab_keys(tabs), f"{', '.join(tab.title for tab in tabs)} tabs", False))
            continue
        b = by_id[row]
        if row in EMPHASISED:
            rows.append((key_name(b.key), f"{b.description}: {b.tooltip}", True))
        else:
            rows.append((key_name(b.key), b.tooltip or "", False))
    return rows


KEY_COLUMNS = [Column("Key", right=False), Column("Does", right=False)]


class KeyTable(TextTable):
    """The key table: one line a key at every width (no borders to wrap around)."""

    def show(self, bindings: Iterable[BindingType]) -> None:
        rows: list[list[Cell]] = [
            [(key, "bold red" if bold else "bold"), (does, "bold" if bold else "")]
            for key, does, bold in key_rows(bindings)
        ]
        self.set_table(KEY_COLUMNS, rows)


class HelpScreen(DialogScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help-close")]
    # Top left, as the help has always been drawn (the confirmations are centred).
    DEFAULT_CSS = """
    HelpScreen {
        align: left top;
    }
    #help-dialog {
        width: 90;
        height: 80%;
    }
    HelpScreen.-short #help-dialog {
        height: 100%;
    }
    #help-keys {
        margin: 0 1 1 1;
    }
    """

    def __init__(self, bindings: Iterable[BindingType]) -> None:
        super().__init__()
        self.bindings = list(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Markdown(INTRO)
            yield KeyTable(id="help-keys")
            yield Markdown(DETAILS)

    def on_mount(self) -> None:
        self.query_one(KeyTable).show(self.bindings)

    def action_close(self) -> None:
        self.dismiss(None)
