"""Top of book per symbol, straight from the kernel's symbol state."""

from __future__ import annotations

from .. import formatting as fmt
from ..formatting import Display
from ..model import EngineView
from .text_table import TextTable, render_table

HEADERS = ["Symbol", "Bid qty", "Bid", "Ask", "Ask qty", "Age", "Buy @", "Sell @"]
RIGHT = {1, 2, 3, 4, 5, 6, 7}


class BookTable(TextTable):
    DEFAULT_CSS = """
    BookTable {
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, view: EngineView, display: Display) -> None:
        rows = []
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
        self.set_text(render_table(HEADERS, rows, RIGHT))
