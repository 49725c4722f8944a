"""All columns (f on the Trading tab): the book and the PnL whole, scrolled sideways when wider than the terminal.

On a narrow terminal the Trading tab's tables leave their least important
columns out; this view shows every column of both, kept current from the
views the app draws (app.py), in a pane the arrow keys scroll.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.screen import ModalScreen

from ..formatting import Display
from ..labels import PaneTitle
from ..model import EngineView
from ..widgets.book import BookTable
from ..widgets.pnl import PnlTable


class FullTablesScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f,q", "close", "Close", id="full-tables-close")]
    DEFAULT_CSS = """
    FullTablesScreen {
        align: left top;
    }
    #full-tables {
        width: 100%;
        height: 100%;
        border: thick $primary;
        background: $surface;
        overflow: auto auto;
    }
    #full-tables PaneTitle {
        width: auto;
    }
    """

    def __init__(self, view: EngineView | None, display: Display) -> None:
        super().__init__()
        self.view, self.display_opts = view, display

    def compose(self) -> ComposeResult:
        with ScrollableContainer(id="full-tables"):
            yield PaneTitle("Top of book, all columns (arrows scroll, Escape closes)")
            yield BookTable(full=True, id="full-book")
            yield PaneTitle("PnL, all columns")
            yield PnlTable(full=True, id="full-pnl")

    def on_mount(self) -> None:
        self.query_one("#full-tables").border_title = "All columns"
        self.query_one("#full-tables").focus()
        self.show(self.view, self.display_opts)

    def show(self, view: EngineView | None, display: Display) -> None:
        if view is None:
            return
        self.query_one(BookTable).show(view, display)
        self.query_one(PnlTable).show(view, display)

    def action_close(self) -> None:
        self.dismiss(None)
