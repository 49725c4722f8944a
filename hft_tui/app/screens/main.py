"""The main screen: kill button and headline on top, tabs in the middle, status at the bottom.

It lays itself out by the terminal's size: on every resize it toggles the
size classes app.tcss uses (fitting.size_classes), as Textual's own apps
do, and below the smallest size it shows one line saying so instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, Static, TabbedContent, TabPane

from .. import formatting as fmt
from ..fitting import MIN_HEIGHT, MIN_WIDTH, SIZE_CLASSES, Part, fit_line, size_classes
from ..formatting import Display
from ..labels import PaneTitle
from ..model import EngineView
from ..session import Session
from ..widgets.alerts import AlertLog
from ..widgets.book import BookTable
from ..widgets.feed import ChannelTable, FeedSummary, OpenFeedBanner
from ..widgets.footer import KeysFooter
from ..widgets.interfaces import InterfacesPane
from ..widgets.kill import KillButton, KilledBanner
from ..widgets.params import ParametersPane
from ..widgets.pnl import PnlChart, PnlTable, RatesLine, SymbolSparklines, sparkline_title
from ..widgets.risk import RiskPanel
from ..widgets.status_bar import StatusBar, engine_state
from ..widgets.tape import Tape
from .full_tables import FullTablesScreen


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
    Tab("feed", "Feed", "Feed", "5", "#feed-pane"),
)


class Headline(Static):
    DEFAULT_CSS = """
    Headline {
        height: 3;
        width: 1fr;
        padding: 1 2;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def show(self, view: EngineView | None, iface: str | None) -> None:
        self._parts = headline_parts(view, iface)
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        parts = getattr(self, "_parts", None)
        if parts is None:
            return
        text = fit_line(parts, self.content_size.width or 10_000)
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text, layout=False)


def headline_parts(view: EngineView | None, iface: str | None) -> list[Part]:
    """State, interface and session PnL always; the counts give way first."""
    label, style = engine_state(view)
    parts = [Part.of(f" {label} ", style=style), Part.of(f"  {iface or '-'}", style="bold", rank=1)]
    if view is not None:
        pnl = Text("   PnL ")
        pnl.append(fmt.signed_money(view.pnl), style="bold green" if view.pnl >= 0 else "bold red")
        parts.append(Part((pnl, Text(" ") + pnl[3:]), rank=1))
        parts.append(Part.of(f"   orders {view.orders:,}", f"  ord {view.orders:,}", "", rank=2))
        parts.append(Part.of(f"   updates {view.updates:,}", f"  upd {view.updates:,}", "", rank=3))
        parts.append(Part.of(f"   symbols {len(view.symbols)}", "", rank=4))
    return parts


class TooSmall(Static):
    """The one line shown instead of the screen when the terminal is below the smallest size."""

    DEFAULT_CSS = """
    TooSmall {
        display: none;
        height: 1;
        text-wrap: nowrap;
        text-overflow: clip;
        color: $warning;
        text-style: bold;
    }
    """

    def show(self, width: int, height: int) -> None:
        need, now = f"{MIN_WIDTH}×{MIN_HEIGHT}", f"{width}×{height}"
        parts = [
            Part.of(f"hft-tui needs a terminal of at least {need}", f"needs ≥{need}", need, rank=1),
            Part.of(f"; this one is {now}", f" (now {now})", "", rank=2),
            Part.of(" · ctrl+k still kills", " · ^k kills", rank=3),
        ]
        self.update(fit_line(parts, width))


class TradingPane(Vertical):
    """The Trading tab: book, sparklines, PnL, chart, tape and alerts (app.tcss lays them out by size)."""

    BINDINGS = [Binding("f", "full_tables", "All columns", id="full-tables")]

    def __init__(self, deterministic: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.deterministic = deterministic

    def compose(self) -> ComposeResult:
        with Horizontal(id="trading-top"):
            with Vertical(id="book-box"):
                yield PaneTitle("Top of book", id="book-title")
                yield BookTable(id="book")
            with Vertical(id="spark-box"):
                yield PaneTitle(sparkline_title(self.deterministic), id="spark-title")
                yield SymbolSparklines(id="sparklines")
        yield PaneTitle("PnL (unrealised marked to the last bid)", id="pnl-title")
        yield PnlTable(id="pnl")
        yield RatesLine(id="rates")
        with Grid(id="trading-bottom"):
            yield PnlChart(id="pnl-chart")
            yield Tape(id="tape")
            yield AlertLog(id="alerts")

    def on_mount(self) -> None:
        self.query_one("#tape").border_title = "Tape: sampled updates and orders (newest below)"
        self.query_one("#alerts").border_title = "Alerts (rejects, drops, kills, errors)"

    def action_full_tables(self) -> None:
        main = self.screen
        if isinstance(main, MainScreen):
            self.app.push_screen(FullTablesScreen(main.view, main.display_opts))

    def show_titles(self) -> None:
        """Says in the tables' titles when columns are left out, and which key shows them."""
        for table, title_id, title in (
            (self.query_one(BookTable), "#book-title", "Top of book"),
            (self.query_one(PnlTable), "#pnl-title", "PnL (unrealised marked to the last bid)"),
        ):
            hint = f" · {len(table.hidden)} more columns: f" if table.hidden else ""
            label = self.query_one(title_id, PaneTitle)
            if str(label.render()) != title + hint:  # an update lays the screen out again
                label.update(title + hint)


class MainScreen(Screen):
    BINDINGS = [Binding(tab.key, f"show_tab('{tab.id}')", tab.short, id=f"tab-{tab.id}") for tab in TABS]

    def __init__(self, session: Session, mode: str, select: str | None = None, deterministic: bool = False) -> None:
        super().__init__(id="main")
        self.session = session
        self.mode = mode
        self.select = select
        self.deterministic = deterministic
        self.view: EngineView | None = None  # the last view drawn
        self.display_opts = Display(deterministic=deterministic)

    def compose(self) -> ComposeResult:
        titles = {tab.id: f"{tab.title} [{tab.key}]" for tab in TABS}
        yield TooSmall(id="too-small")
        with Horizontal(id="topbar"):
            yield KillButton()
            yield Headline(id="headline")
        yield KilledBanner(id="killed-banner")
        yield OpenFeedBanner(id="open-feed-banner")
        with TabbedContent(initial="trading", id="tabs"):
            with TabPane(titles["trading"], id="trading"):
                yield TradingPane(self.deterministic, id="trading-pane")
            with TabPane(titles["parameters"], id="parameters"):
                yield ParametersPane(self.session, id="parameters-pane")
            with TabPane(titles["interfaces"], id="interfaces"):
                yield InterfacesPane(self.session, mode=self.mode, select=self.select, id="interfaces-pane")
            with TabPane(titles["risk"], id="risk"):
                yield RiskPanel(id="risk-panel")
                yield PaneTitle("Alert history", id="history-title")
                yield AlertLog(id="alert-history")
            with TabPane(titles["feed"], id="feed"), VerticalScroll(id="feed-pane"):
                yield PaneTitle("Feed · what the engine reads, from whom, where orders go")
                yield FeedSummary(id="feed-summary")
                yield PaneTitle("Channels · gaps and duplicates (an alert on every gap)", id="channels-title")
                yield ChannelTable(id="channels")
        yield StatusBar(id="status-bar")
        yield KeysFooter()

    def on_resize(self, event: events.Resize) -> None:
        self.fit_to(event.size.width, event.size.height)

    def fit_to(self, width: int, height: int) -> None:
        """The size classes app.tcss lays the screen out by (fitting.size_classes)."""
        wanted = size_classes(width, height)
        for name in SIZE_CLASSES:
            self.set_class(name in wanted, name)
        self.app.set_class("-too-small" in wanted, "-too-small")  # the dialogs step aside too
        if "-too-small" in wanted:
            self.query_one(TooSmall).show(width, height)
        short = "-short" in wanted
        for widget in self.query("Input, Button"):
            if isinstance(widget, Input | Button) and not isinstance(widget, KillButton):
                widget.compact = short

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
        little from one frame to the next and are drawn on every SLOW_EVERY-th frame only (app.py).
        Of the tabs, only the one shown is drawn (the others when they are shown)."""
        self.view, self.display_opts, self._drawn = view, display, (iface, error)
        self.query_one(Headline).show(view, iface)
        self.query_one(KilledBanner).show(view.kill_state if view else None, iface)
        self.query_one(StatusBar).show(view, iface, error, display)
        self.set_class(bool(view and view.killed), "-killed")
        self.set_class(bool(view and view.feed and view.feed.open), "-open-feed")
        params = self.query_one(ParametersPane)
        params.view = view  # an edit begins on the newest values, drawn or not
        active = self.query_one(TabbedContent).active
        if slow and active == "risk":
            self.query_one(RiskPanel).show(view, display)
        if slow and active == "parameters":
            params.show(view)
        if active == "feed":
            feed = view.feed if view else None
            self.query_one(FeedSummary).show(feed)
            self.query_one(ChannelTable).show(feed)
            self.query_one("#channels-title").display = bool(feed and feed.channels)
        if view is None:
            return
        if tape:
            self.query_one(Tape).show(tape, display)  # the tape keeps its history whatever is shown
        if active != "trading":
            return
        self.query_one(BookTable).show(view, display)
        self.query_one(PnlTable).show(view, display)
        self.query_one(RatesLine).show(view, display)
        if slow:
            self.query_one(PnlChart).show(view, display)
            self.query_one(SymbolSparklines).show(view, display)
            self.query_one(TradingPane).show_titles()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The tab just shown is drawn from the newest view at once (the interfaces listed again)."""
        iface, error = getattr(self, "_drawn", (None, None))
        self.show_view(self.view, iface, error, self.display_opts)
        if event.pane.id == "interfaces":
            self.query_one(InterfacesPane).refresh_interfaces()

    def add_alert(self, clock: str, text: str, severity: str = "warning") -> None:
        for log in self.query(AlertLog):
            log.add(clock, text, severity)
