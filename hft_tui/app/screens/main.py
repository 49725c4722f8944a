"""The main screen: kill button and headline on top, tabs in the middle, status at the bottom."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from .. import formatting as fmt
from ..formatting import Display
from ..labels import PaneTitle
from ..model import EngineView
from ..session import Session
from ..widgets.alerts import AlertLog
from ..widgets.book import BookTable
from ..widgets.interfaces import InterfacesPane
from ..widgets.kill import KillButton, KilledBanner
from ..widgets.params import ParametersPane
from ..widgets.pnl import PnlChart, PnlTable, SymbolSparklines, sparkline_title
from ..widgets.risk import RiskPanel
from ..widgets.status_bar import StatusBar, engine_state
from ..widgets.tape import Tape


@dataclass(frozen=True)
class Tab:
    id: str  # the TabPane's id, and what "Show ..." in the palette names
    title: str  # on the tab and in the help
    short: str  # in the footer
    key: str
    focus: str  # the widget that takes the keys when the tab is shown


# The one list of tabs: the tab bar, the keys, the footer, the palette and the help are made from it.
TABS = (
    Tab("trading", "Trading", "Trading", "1", "#tape"),
    Tab("parameters", "Parameters", "Params", "2", "#symbol-params"),
    Tab("interfaces", "Interfaces", "Interfaces", "3", "#interface-table"),
    Tab("risk", "Risk", "Risk", "4", "#alert-history"),
)


class Headline(Static):
    DEFAULT_CSS = """
    Headline {
        height: 3;
        width: 1fr;
        padding: 1 2;
        background: $panel;
    }
    """

    def show(self, view: EngineView | None, iface: str | None) -> None:
        self._set(self._text(view, iface))

    def _set(self, text: Text) -> None:
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text, layout=False)

    @staticmethod
    def _text(view: EngineView | None, iface: str | None) -> Text:
        label, style = engine_state(view)
        t = Text()
        t.append(f" {label} ", style=style)
        t.append(f"  {iface or '-'}", style="bold")
        if view is not None:
            t.append("   PnL ")
            t.append(fmt.signed_money(view.pnl), style="bold green" if view.pnl >= 0 else "bold red")
            t.append(f"   orders {view.orders:,}   updates {view.updates:,}   symbols {len(view.symbols)}")
        return t


class MainScreen(Screen):
    BINDINGS = [Binding(tab.key, f"show_tab('{tab.id}')", tab.short, id=f"tab-{tab.id}") for tab in TABS]

    def __init__(self, session: Session, mode: str, select: str | None = None, deterministic: bool = False) -> None:
        super().__init__(id="main")
        self.session = session
        self.mode = mode
        self.select = select
        self.deterministic = deterministic

    def compose(self) -> ComposeResult:
        titles = {tab.id: f"{tab.title} [{tab.key}]" for tab in TABS}
        with Horizontal(id="topbar"):
            yield KillButton()
            yield Headline(id="headline")
        yield KilledBanner(id="killed-banner")
        with TabbedContent(initial="trading", id="tabs"):
            with TabPane(titles["trading"], id="trading"):
                with Horizontal(id="trading-top"):
                    with Vertical(id="book-box"):
                        yield PaneTitle("Top of book")
                        yield BookTable(id="book")
                    with Vertical(id="spark-box"):
                        yield PaneTitle(sparkline_title(self.deterministic), id="spark-title")
                        yield SymbolSparklines(id="sparklines")
                yield PaneTitle("PnL (unrealised marked to the last bid)")
                yield PnlTable(id="pnl")
                with Horizontal(id="trading-bottom"):
                    yield PnlChart(id="pnl-chart")
                    with Vertical(id="tape-box"):
                        yield PaneTitle("Tape: sampled updates and orders (newest below)")
                        yield Tape(id="tape")
                yield AlertLog(id="alerts")
            with TabPane(titles["parameters"], id="parameters"):
                yield ParametersPane(self.session, id="parameters-pane")
            with TabPane(titles["interfaces"], id="interfaces"):
                yield InterfacesPane(self.session, mode=self.mode, select=self.select, id="interfaces-pane")
            with TabPane(titles["risk"], id="risk"):
                yield RiskPanel(id="risk-panel")
                yield PaneTitle("Alert history")
                yield AlertLog(id="alert-history")
        yield StatusBar(id="status-bar")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#alerts").border_title = "Alerts (rejects, drops, kills, errors)"

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one(next(t.focus for t in TABS if t.id == tab)).focus()

    def show_view(
        self,
        view: EngineView | None,
        iface: str | None,
        error: str | None,
        display: Display,
        tape: list | None = None,
        slow: bool = True,
    ) -> None:
        """Draws a view.  ``slow`` parts (chart, sparklines, risk, parameters) change
        little from one frame to the next and are drawn on every SLOW_EVERY-th frame only (app.py)."""
        self.query_one(Headline).show(view, iface)
        self.query_one(KilledBanner).show(view.kill_state if view else None, iface)
        self.query_one(StatusBar).show(view, iface, error, display)
        self.set_class(bool(view and view.killed), "-killed")
        params = self.query_one(ParametersPane)
        params.view = view  # an edit begins on the newest values, drawn or not
        if slow:
            self.query_one(RiskPanel).show(view, display)
            params.show(view)
        if view is None:
            return
        self.query_one(BookTable).show(view, display)
        self.query_one(PnlTable).show(view, display)
        if tape:
            self.query_one(Tape).show(tape, display)
        if slow:
            self.query_one(PnlChart).show(view, display)
            self.query_one(SymbolSparklines).show(view, display)

    def add_alert(self, clock: str, text: str, severity: str = "warning") -> None:
        for log in self.query(AlertLog):
            log.add(clock, text, severity)
