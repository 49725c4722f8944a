"""The tape: sampled updates and the engine's orders, newest at the bottom.

A RichLog with a line limit: the worker already cut each tick down to a few
lines, and the log forgets the oldest, so nothing queues without bound.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from .. import formatting as fmt
from ..formatting import Display
from ..model import TapeEntry

MAX_LINES = 200
SIDE_STYLE = {"B": "bold green", "S": "bold red"}
COMPACT_BELOW = 68  # a tape narrower than a full update line gets the compact lines


def tape_line(e: TapeEntry, display: Display, compact: bool = False) -> Text:
    if compact:
        return compact_line(e, display)
    t = Text(display.mono_clock(e.ts_ns) + " ", style="dim")
    if e.kind == "order":
        side = "BUY " if e.side == "B" else "SELL"
        t.append(
            f"{side} #{e.order_id:<7} {e.symbol:<8} {e.qty:>7,} @ {fmt.price(e.price):>10}",
            style=SIDE_STYLE.get(e.side, ""),
        )
    elif e.kind == "update":
        t.append(
            f"upd  {e.symbol:<8} {e.bid_qty:>7,} {fmt.price(e.bid):>10} / {fmt.price(e.ask):<10} {e.ask_qty:<7,}",
            style="grey70",
        )
    elif e.kind == "reject":
        times = f" ×{e.count:,}" if e.count > 1 else ""
        t.append(f"rej  {e.symbol:<8} {e.reason}{times}", style="yellow")
    elif e.kind == "kill":
        t.append(f"KILL {e.reason}", style="bold white on red")
    else:
        t.append(e.text, style="italic dim")
    return t


def compact_line(e: TapeEntry, display: Display) -> Text:
    """The same line in about 36 cells: seconds, no order id, no sizes on updates."""
    t = Text(display.mono_clock(e.ts_ns)[:8] + " ", style="dim")
    if e.kind == "order":
        side = "BUY " if e.side == "B" else "SELL"
        t.append(f"{side} {e.symbol} {e.qty:,} @ {fmt.price(e.price)}", style=SIDE_STYLE.get(e.side, ""))
    elif e.kind == "update":
        t.append(f"upd {e.symbol} {fmt.price(e.bid)}/{fmt.price(e.ask)}", style="grey70")
    elif e.kind == "reject":
        times = f" ×{e.count:,}" if e.count > 1 else ""
        t.append(f"rej {e.symbol} {e.reason}{times}", style="yellow")
    elif e.kind == "kill":
        t.append(f"KILL {e.reason}", style="bold white on red")
    elif e.kind == "summary" and e.count > 1:
        t.append(f"… {e.count:,} more, journal has all", style="italic dim")
    else:
        t.append(e.text, style="italic dim")
    return t


class Tape(RichLog):
    DEFAULT_CSS = """
    Tape {
        border: round $primary-darken-2;
        overflow-x: hidden;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, min_width=20, wrap=False, markup=False, auto_scroll=True, **kwargs)

    def show(self, entries, display: Display) -> None:
        """Writes the entries of one frame in one go (one scroll, one repaint)."""
        if entries:
            compact = 0 < self.content_size.width < COMPACT_BELOW
            self.write(Text("\n").join(tape_line(e, display, compact) for e in entries))
