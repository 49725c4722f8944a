"""Help (?): what every key does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# hft-tui

The engine trades in the kernel (XDP); this screen shows what its maps say.

| Key | Does |
| --- | --- |
| **ctrl+k** | **KILL**: sets the kernel kill switch at once, no question asked |
| ctrl+r | resume trading (asks first) |
| 1 2 3 4 | Trading, Parameters, Interfaces, Risk tabs |
| ctrl+p | command palette (take over, refresh, less common actions) |
| ctrl+q | quit (asks whether to detach the engine; default: detach) |
| ? | this help |

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


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help-close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
