"""The status bar: engine state, interface, rates, drops, last error."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...replay_status import replay_note
from ..formatting import Display
from ..model import EngineView


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


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
    }
    """

    def show(self, view: EngineView | None, iface: str | None, error: str | None, display: Display) -> None:
        label, style = engine_state(view)
        text = Text()
        text.append(f" {label} ", style=style)
        text.append(f" {iface or 'no interface'} ", style="bold")
        if view is not None:
            text.append(f"│ upd/s {display.rate(view.updates_per_s)} ")
            text.append(f"│ ord/s {display.rate(view.orders_per_s)} ")
            text.append(f"│ drops: orders {view.ringbuf_drops:,}", style="bold red" if view.ringbuf_drops else "")
            text.append(f" tape {view.tape_drops:,} ", style="yellow" if view.tape_drops else "")
            if view.deadman_ms:
                text.append(f"│ dead-man {view.deadman_ms} ms, hb {display.age(view.heartbeat_age_ms)} ")
            else:
                text.append("│ dead-man OFF ", style="bold red")
            text.append(f"│ cfg v{view.config_version} ")
        note = replay_note(iface)  # a capture feeding this interface (hft-tui --demo --replay)
        if note:
            text.append(f"│ {note} ", style="bold cyan")
        if error:
            text.append("│ ")
            text.append(error, style="bold red")
        if text != getattr(self, "_shown", None):  # unchanged: no repaint at all
            self._shown = text
            self.update(text, layout=False)
