"""PnL: the per-symbol table, the chart over time (plotext) and a sparkline per symbol."""

from __future__ import annotations

import time

from rich.text import Text
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Sparkline, Static
from textual_plotext import PlotextPlot

from .. import formatting as fmt
from ..fitting import Cell, Column
from ..formatting import Display
from ..model import SPARK_POINTS, SPARK_SECONDS, EngineView
from .text_table import TextTable

# What goes first when the table is too wide: the money in and out, then the
# quantities, then the order count, then the split of the PnL (its total stays).
COLUMNS = [
    Column("Symbol", right=False),
    Column("Position"),
    Column("Bought", drop=3),
    Column("Sold", drop=3),
    Column("Capital spent", drop=4),
    Column("Proceeds", drop=4),
    Column("Realised", drop=1),
    Column("Unrealised", drop=1),
    Column("Total PnL"),
    Column("Orders", drop=2),
]


def _pnl_style(units: int) -> str:
    return "green" if units > 0 else ("red" if units < 0 else "")


def _pnl(units: int) -> Text:
    return Text(fmt.signed_money(units), style=_pnl_style(units), justify="right")


def _pnl_cell(units: int) -> Cell:
    return fmt.signed_money(units), _pnl_style(units)


class PnlTable(TextTable):
    def show(self, view: EngineView, display: Display) -> None:
        rows: list[list[Cell]] = []
        for s in view.symbols:
            rows.append(
                [
                    (s.name, "bold"),
                    (fmt.qty(s.position), ""),
                    (fmt.qty(s.bought), ""),
                    (fmt.qty(s.sold), ""),
                    (fmt.money(s.capital_spent), ""),
                    (fmt.money(s.proceeds), ""),
                    _pnl_cell(s.realised),
                    _pnl_cell(s.unrealised),
                    _pnl_cell(s.total),
                    (fmt.qty(s.buy_orders + s.sell_orders), ""),
                ]
            )

        def tot(attr: str) -> int:
            return sum(getattr(s, attr) for s in view.symbols)

        rows.append(
            [
                ("TOTAL", "bold"),
                (fmt.qty(tot("position")), "bold"),
                (fmt.qty(tot("bought")), "bold"),
                (fmt.qty(tot("sold")), "bold"),
                (fmt.money(tot("capital_spent")), "bold"),
                (fmt.money(tot("proceeds")), "bold"),
                _pnl_cell(tot("realised")),
                _pnl_cell(tot("unrealised")),
                _pnl_cell(view.pnl),
                (fmt.qty(view.orders), "bold"),
            ]
        )
        self.set_table(COLUMNS, rows)


class RatesLine(Static):
    """The rates beside the PnL they make (the status bar shows them too)."""

    DEFAULT_CSS = """
    RatesLine {
        height: 1;
        padding: 0 1;
    }
    """

    def show(self, view: EngineView, display: Display) -> None:
        text = Text()
        text.append("orders/s ", style="bold")
        text.append(display.rate(view.orders_per_s))
        text.append("   updates/s ", style="bold")
        text.append(display.rate(view.updates_per_s))
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text, layout=False)


CHART_EVERY_S = 2.0  # the chart spans minutes; drawing it is the costliest part of a frame


class PnlChart(PlotextPlot):
    """Session PnL (the kernel's total) over the last minutes, redrawn every CHART_EVERY_S at most."""

    def on_mount(self) -> None:
        self._points: tuple = ()
        self._drawn_at = -CHART_EVERY_S
        self._draw()

    def show(self, view: EngineView, display: Display) -> None:
        if view.pnl_history == self._points:
            return
        now = time.monotonic()
        if not display.deterministic and now - self._drawn_at < CHART_EVERY_S:
            return
        self._points, self._drawn_at = view.pnl_history, now
        self._draw(display.deterministic)

    def _draw(self, deterministic: bool = False) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Session PnL ($)")
        plt.xlabel("change #" if deterministic else "seconds")
        if self._points:
            xs = [p[0] for p in self._points]
            ys = [p[1] for p in self._points]
            plt.plot(xs, ys, marker="braille", color="green" if ys[-1] >= 0 else "red")
        self.refresh()


def sparkline_title(deterministic: bool = False) -> str:
    """What a sparkline spans: SPARK_POINTS points, one per CHART_POINT_EVERY_S
    (in snapshot mode, one per change of the PnL)."""
    if deterministic:
        return f"PnL by symbol (last {SPARK_POINTS} changes)"
    return f"PnL by symbol (last {SPARK_SECONDS:g} s)"


class SymbolSparklines(VerticalScroll):
    """One line per symbol: its name, its PnL now, and a sparkline of its last SPARK_POINTS points."""

    DEFAULT_CSS = """
    SymbolSparklines {
        height: auto;
    }
    """

    def show(self, view: EngineView, display: Display) -> None:
        names = [s.name for s in view.symbols]
        have = [row.symbol for row in self.query(SparkRow)]
        if have != names:
            self.remove_children()
            self.mount_all(SparkRow(name) for name in names)
            return  # filled on the next tick, once mounted
        for row in self.query(SparkRow):
            s = view.symbol(row.symbol)
            row.show(s.total if s else 0, view.sparklines.get(row.symbol, ()))


class SparkRow(Horizontal):
    DEFAULT_CSS = """
    SparkRow {
        height: 1;
    }
    .spark-name {
        width: 10;
        text-style: bold;
        padding: 0 1;
    }
    .spark-value {
        width: 14;
        text-align: right;
        padding: 0 1;
    }
    .spark {
        width: 1fr;
        height: 1;
    }
    """

    def __init__(self, symbol: str) -> None:
        super().__init__(name=symbol)
        self.symbol = symbol  # the widget's name, never None here
        self.value = Label("", classes="spark-value")
        self.spark = Sparkline([], classes="spark")

    def compose(self):
        yield Label(self.symbol, classes="spark-name")
        yield self.value
        yield self.spark

    def show(self, total: int, points: tuple[float, ...]) -> None:
        if not self.spark.is_mounted:
            return  # mounted a moment ago; the next tick fills it
        text = _pnl(total)
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.value.update(text, layout=False)  # fixed width: no need to lay the screen out again
        data = list(points) or [0.0]
        if list(self.spark.data or []) != data:
            self.spark.data = data
