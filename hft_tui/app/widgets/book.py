"""Top of book per symbol, straight from the kernel's symbol state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from .. import formatting as fmt
from ..formatting import Display
from ..model import EngineView
from .table_sync import sync_rows

COLUMNS = [("symbol", "Symbol"), ("bid_qty", "Bid qty"), ("bid", "Bid"), ("ask", "Ask"),
           ("ask_qty", "Ask qty"), ("age", "Age"), ("buy", "Buy @"), ("sell", "Sell @")]


class BookTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, view: EngineView, display: Display) -> None:
        rows = {}
        for s in view.symbols:
            rows[s.name] = (
                Text(s.name, style="bold" if s.params.enabled else "dim"),
                Text(fmt.qty(s.bid_qty), justify="right"),
                Text(fmt.price(s.bid), style="green", justify="right"),
                Text(fmt.price(s.ask), style="red", justify="right"),
                Text(fmt.qty(s.ask_qty), justify="right"),
                Text(display.age(s.age_ms), justify="right"),
                Text(fmt.price(s.params.buy_target), justify="right"),
                Text(fmt.price(s.params.sell_target), justify="right"),
            )
        sync_rows(self, rows, [k for k, _ in COLUMNS])
