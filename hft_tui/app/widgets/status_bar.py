"""The status bar: engine state, interface, rates, drops, dead-man, last error.

One line at every width: when it does not fit, the least important parts
take their short forms or go (fitting.fit_line); the engine state and an
error always stay, an error shortened at a word (the alert log has it whole).
"""

from __future__ import annotations

from rich.text import Text

from ..fitting import Part
from ..formatting import Display
from ..model import EngineView
from .fitted_line import FittedLine

SEP = "│ "


def engine_state(view: EngineView | None) -> tuple[str, str]:
    """(label, style) of the engine state the status bar leads with."""
    if view is None:
        return "DETACHED", "bold black on grey70"
    if not view.present:
        return "INTERFACE GONE", "bold white on red"
    link = f"LINK DOWN ({view.operstate})" if view.link_down else ""
    if view.killed:
        return f"KILLED ({view.kill_state})" + (f" · {link}" if link else ""), "bold white on red"
    if link:
        return link, "bold white on red"
    if view.attached:
        return f"TRADING {view.mode}", "bold black on green"
    return "NOT ATTACHED (pins left)", "bold black on yellow"


def short_state(label: str) -> str:
    """The state's short form: its first word ("TRADING", "KILLED" ...), or its first two
    where one word would not say it ("LINK DOWN", "INTERFACE GONE", "NOT ATTACHED")."""
    for long in ("LINK DOWN", "INTERFACE GONE", "NOT ATTACHED"):
        if label.startswith(long):
            return long
    return label.split(" ", 1)[0]


def status_parts(view: EngineView | None, iface: str | None, error: str | None, display: Display) -> list[Part]:
    """The bar's parts, most important first; rank: which gives way first (highest)."""
    label, style = engine_state(view)
    parts = [
        Part((Text(f" {label} ", style=style), Text(f" {short_state(label)} ", style=style)), rank=0),
        Part.of(f" {iface or 'no interface'} ", style="bold", rank=1),
    ]
    feed = view.feed if view is not None else None
    if feed is not None:
        if feed.open:
            parts.append(Part.of(f"{SEP}OPEN FEED ", "", style="bold red", rank=2))
        gaps = feed.gaps
        style = "bold red" if gaps else ""
        if feed.channels:
            parts.append(
                Part.of(
                    f"{SEP}feed {feed.format}: gaps {gaps:,}, missed {feed.gap_messages:,}, dup {feed.dup_packets:,} ",
                    f"{SEP}gaps {gaps:,} ",
                    *(() if gaps else ("",)),
                    style=style,
                    rank=2 if gaps else 5,
                )
            )
        else:
            parts.append(Part.of(f"{SEP}feed {feed.format} ", "", rank=6))
    if view is not None:
        upd, ords = display.rate(view.updates_per_s), display.rate(view.orders_per_s)
        parts.append(Part.of(f"{SEP}upd/s {upd} ", f"{SEP}upd {upd} ", "", rank=4))
        parts.append(Part.of(f"{SEP}ord/s {ords} ", f"{SEP}ord {ords} ", "", rank=4))
        dropped = view.ringbuf_drops or view.tape_drops
        drops = Text(SEP)
        drops.append(f"drops: orders {view.ringbuf_drops:,}", style="bold red" if view.ringbuf_drops else "")
        drops.append(f" tape {view.tape_drops:,} ", style="yellow" if view.tape_drops else "")
        short_drops = Text(SEP)
        short_drops.append(
            f"drops {view.ringbuf_drops:,}/{view.tape_drops:,} ", style="bold red" if view.ringbuf_drops else ""
        )
        parts.append(Part((drops, short_drops) if dropped else (drops, short_drops, Text()), rank=2 if dropped else 5))
        if view.deadman_ms:
            parts.append(
                Part.of(
                    f"{SEP}dead-man {view.deadman_ms} ms, hb {display.age(view.heartbeat_age_ms)} ",
                    f"{SEP}dead-man {view.deadman_ms} ms ",
                    "",
                    rank=3,
                )
            )
        else:
            parts.append(Part.of(f"{SEP}dead-man OFF ", style="bold red", rank=2))
        parts.append(Part.of(f"{SEP}cfg v{view.config_version} ", "", rank=6))
    note = view.replay if view is not None else None  # a capture feeding this interface
    if note:
        parts.append(Part.of(f"{SEP}{note} ", "", style="bold cyan", rank=3))
    if error:
        # Never dropped: fit_line cuts the line's end (the error's) at a word when nothing else can give.
        parts.append(Part((Text(SEP) + Text(error, style="bold red"),), rank=0))
    return parts


class StatusBar(FittedLine):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def show(self, view: EngineView | None, iface: str | None, error: str | None, display: Display) -> None:
        self.show_parts(status_parts(view, iface, error, display))
