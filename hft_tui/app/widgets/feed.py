"""The feed: what the engine reads and from whom, gaps and duplicates per channel, and the open-feed banner.

Gaps and duplicates are what a desk watches first on a real feed: the Risk
tab shows them per channel (a gap in red), the status bar sums them, and a
gap raises an alert (the controller's, digested in model.AlertDigest).  An
engine without ``[engine] feed_sources`` trades on any sender's packets:
the banner says so on every tab until it is set.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..fitting import Cell, Column, Part, fit_line
from ..model import FeedView
from .text_table import TextTable

OPEN_FEED = "OPEN FEED: any sender can trade"
OPEN_FEED_FIX = "; set [engine] feed_sources"

# What goes first when the table is too wide: the counts of everything, then the next sequence.
COLUMNS = [
    Column("Channel", right=False),
    Column("Next seq", drop=1),
    Column("Packets", drop=2),
    Column("Messages", drop=2),
    Column("Gaps"),
    Column("Missed"),
    Column("Duplicates"),
]


class OpenFeedBanner(Static):
    """One line across the screen while the feed is open (shown by app.tcss: MainScreen.-open-feed)."""

    DEFAULT_CSS = """
    OpenFeedBanner {
        display: none;
        height: 1;
        content-align: center middle;
        text-style: bold;
        background: $warning;
        color: $background;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        parts = [Part.of(OPEN_FEED, "OPEN FEED"), Part.of(OPEN_FEED_FIX, "", rank=1)]
        self.update(fit_line(parts, self.content_size.width or 10_000))


def feed_summary(feed: FeedView) -> Text:
    """What the engine reads, from whom, where orders go, and the feed's counters, in a few lines."""
    to = f"{feed.addr}:{feed.port}" if feed.addr else f"port {feed.port}"
    text = Text()
    text.append(f"{feed.format}", style="bold")
    text.append(f" on UDP {to}, ")
    if feed.open:
        text.append("from any sender", style="bold red")
    else:
        text.append("from " + ", ".join(feed.sources or ()))
    text.append("\norders to ")
    text.append(feed.gateway or "the sender of each update (no gateway)")
    text.append(f"\n{feed.packets:,} packets, {feed.messages:,} messages, ")
    text.append(f"{feed.dup_packets:,} duplicate packets, {feed.truncated_packets:,} truncated, ")
    text.append(f"{feed.in_transition:,} in transition, ")
    text.append(f"{feed.foreign_source:,} from foreign senders", style="yellow" if feed.foreign_source else "")
    return text


class FeedSummary(Static):
    DEFAULT_CSS = """
    FeedSummary {
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, feed: FeedView | None) -> None:
        text = feed_summary(feed) if feed else Text("no real-feed support in this engine: hft1 on the feed port")
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text)


class ChannelTable(TextTable):
    """A row per channel: its next sequence number, gaps (red) and duplicates."""

    def show(self, feed: FeedView | None) -> None:
        rows: list[list[Cell]] = []
        for ch in feed.channels if feed else ():
            rows.append(
                [
                    (ch.id, "bold"),
                    (f"{ch.next_seq:,}", ""),
                    (f"{ch.packets:,}", ""),
                    (f"{ch.messages:,}", ""),
                    (f"{ch.gaps:,}", "bold red" if ch.gaps else ""),
                    (f"{ch.gap_messages:,}", "bold red" if ch.gap_messages else ""),
                    (f"{ch.dup_packets:,}", ""),
                ]
            )
        self.set_table(COLUMNS, rows)
        self.display = bool(rows)
