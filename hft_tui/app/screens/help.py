"""Help (?): what every key does.

The key table is made from the bindings themselves (their keys and tooltips)
and from the list of tabs, so a key changed in one place changes here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.keys import key_to_character
from textual.widgets import Markdown

from ..dialogs import DialogScreen
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


def key_table(bindings: Iterable[BindingType], tabs: Sequence[Tab] = TABS) -> str:
    """The Markdown table of ROWS from ``bindings`` (by id) and ``tabs``."""
    # A binding written as a tuple has no id (nor tooltip): no row names it.
    by_id = {b.id: b for b in bindings if isinstance(b, Binding) and b.id}
    missing = [row for row in ROWS if row != "tabs" and row not in by_id]
    if missing:
        raise KeyError(f"no binding with id {missing[0]!r} for the help")
    lines = ["| Key | Does |", "| --- | --- |"]
    for row in ROWS:
        if row == "tabs":
            keys = " ".join(tab.key for tab in tabs)
            lines.append(f"| {keys} | {', '.join(tab.title for tab in tabs)} tabs |")
            continue
        b = by_id[row]
        key = key_name(b.key)
        if row in EMPHASISED:
            lines.append(f"| **{key}** | **{b.description}**: {b.tooltip} |")
        else:
            lines.append(f"| {key} | {b.tooltip} |")
    return "\n".join(lines) + "\n"


def help_text(bindings: Iterable[BindingType]) -> str:
    return f"{INTRO}\n{key_table(bindings)}\n{DETAILS}"


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
    """

    def __init__(self, bindings: Iterable[BindingType]) -> None:
        super().__init__()
        self.text = help_text(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Markdown(self.text)

    def action_close(self) -> None:
        self.dismiss(None)
