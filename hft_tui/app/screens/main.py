"""The main screen: kill button and headline on top, tabs in the middle, status at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, Static, TabbedContent, TabPane

from .. import formatting as fmt
from ..formatting import Display
from ..model import EngineView
from ..widgets.alerts import AlertLog
from ..widgets.book import BookTable
from ..widgets.interfaces import InterfacesPane
from ..widgets.kill import KillButton, KilledBanner
from ..widgets.params import ParametersPane
from ..widgets.pnl import PnlChart, PnlTable, SymbolSparklines, sparkline_title
from ..widgets.risk import RiskPanel
from ..widgets.status_bar import StatusBar, engine_state
from ..widgets.tape import Tape

TABS = ("trading", "parameters", "interfaces", "risk")


class Headline(Static):
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
    BINDINGS = [
        Binding("1", "show_tab('trading')", "Trading", id="tab-trading"),
        Binding("2", "show_tab('parameters')", "Params", id="tab-parameters"),
        Binding("3", "show_tab('interfaces')", "Interfaces", id="tab-interfaces"),
        Binding("4", "show_tab('risk')", "Risk", id="tab-risk"),
    ]

    def __init__(self, mode: str, deterministic: bool = False) -> None:
        super().__init__(id="main")
        self.mode = mode
        self.deterministic = deterministic

    def compose(self) -> ComposeResult:
        with Horizontal(id="topbar"):
            yield KillButton()
            yield Headline(id="headline")
        yield KilledBanner(id="killed-banner")
        with TabbedContent(initial="trading", id="tabs"):
            with TabPane("Trading [1]", id="trading"):
                with Horizontal(id="trading-top"):
                    with Vertical(id="book-box"):
                        yield Label("Top of book", classes="pane-title")
                        yield BookTable(id="book")
                    with Vertical(id="spark-box"):
                        yield Label(sparkline_title(self.deterministic), classes="pane-title", id="spark-title")
                        yield SymbolSparklines(id="sparklines")
                yield Label("PnL (unrealised marked to the last bid)", classes="pane-title")
                yield PnlTable(id="pnl")
                with Horizontal(id="trading-bottom"):
                    yield PnlChart(id="pnl-chart")
                    with Vertical(id="tape-box"):
                        yield Label("Tape: sampled updates and orders (newest below)", classes="pane-title")
                        yield Tape(id="tape")
                yield AlertLog(id="alerts")
            with TabPane("Parameters [2]", id="parameters"):
                yield ParametersPane(id="parameters-pane")
            with TabPane("Interfaces [3]", id="interfaces"):
                yield InterfacesPane(mode=self.mode, id="interfaces-pane")
            with TabPane("Risk [4]", id="risk"):
                yield RiskPanel(id="risk-panel")
                yield Label("Alert history", classes="pane-title")
                yield AlertLog(id="alert-history")
        yield StatusBar(id="status-bar")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#alerts").border_title = "Alerts (rejects, drops, kills, errors)"

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        focus = {"trading": "#tape", "parameters": "#symbol-params", "interfaces": "#interface-table",
                 "risk": "#alert-history"}[tab]
        self.query_one(focus).focus()

    def show_view(self, view: EngineView | None, iface: str | None, error: str | None, display: Display,
                  tape: list | None = None, slow: bool = True) -> None:
        """Draws a view.  ``slow`` parts (chart, sparklines, risk, parameters) change
        little from one frame to the next and are drawn on every SLOW_EVERY-th frame only (app.py)."""
        self.query_one(Headline).show(view, iface)
        self.query_one(KilledBanner).show(view.kill_state if view else None, iface)
        self.query_one(StatusBar).show(view, iface, error, display)
        self.set_class(bool(view and view.killed), "-killed")
        params = self.query_one(ParametersPane)
        params.view = view      # an edit begins on the newest values, drawn or not
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
