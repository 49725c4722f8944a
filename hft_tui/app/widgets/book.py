"""Top of book per symbol, straight from the kernel's symbol state."""

from __future__ import annotations

from .. import formatting as fmt
from ..fitting import Cell, Column
from ..formatting import Display
from ..model import EngineView
from .text_table import TextTable

# What goes first when the table is too wide: the age, then the targets, then the sizes.
COLUMNS = [
    Column("Symbol", right=False),
    Column("Bid qty", drop=1),
    Column("Bid"),
    Column("Ask"),
    Column("Ask qty", drop=1),
    Column("Age", drop=3),
    Column("Buy @", drop=2),
    Column("Sell @", drop=2),
]


class BookTable(TextTable):
    def show(self, view: EngineView, display: Display) -> None:
        rows: list[list[Cell]] = []
        for s in view.symbols:
            rows.append(
                [
                    (s.name, "bold" if s.params.enabled else "dim"),
                    (fmt.qty(s.bid_qty), ""),
                    (fmt.price(s.bid), "green"),
                    (fmt.price(s.ask), "red"),
                    (fmt.qty(s.ask_qty), ""),
                    (display.age(s.age_ms), "dim"),
                    (fmt.price(s.params.buy_target), ""),
                    (fmt.price(s.params.sell_target), ""),
                ]
            )
        self.set_table(COLUMNS, rows)
