"""Risk and supervision: dead-man switch, program, config version, drops, limits, rejects.

A two-column grid, one line a row at every width: a value that does not fit
takes its short form, and the rejects get a row per reason.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from .. import formatting as fmt
from ..fitting import shorten
from ..formatting import Display
from ..model import EngineView

Row = tuple[str, tuple[Text, ...]]  # label, value forms (longest first)


def _forms(*forms: str, style: str = "") -> tuple[Text, ...]:
    return tuple(Text(f, style=style) for f in forms)


def risk_rows(view: EngineView, display: Display) -> list[Row]:
    rows: list[Row] = []
    if view.deadman_ms:
        beat = display.age(view.heartbeat_age_ms)
        rows.append(
            (
                "dead-man switch",
                _forms(
                    f"armed, deadline {view.deadman_ms} ms, heartbeat {beat} ago",
                    f"armed, {view.deadman_ms} ms, beat {beat} ago",
                    style="green",
                ),
            )
        )
    else:
        rows.append(
            (
                "dead-man switch",
                _forms(
                    "NOT ARMED: nothing stops the engine if its controller dies",
                    "NOT ARMED: no stop if the controller dies",
                    style="bold red",
                ),
            )
        )
    rows.append(("kill switch", _forms(view.kill_state, style="bold red" if view.killed else "green")))
    rows.append(
        (
            "program",
            _forms(
                f"id {display.prog_id(view.prog_id)}, hash {display.program_hash(view.program_hash)}",
                f"id {display.prog_id(view.prog_id)}",
            ),
        )
    )
    rows.append(("config version", _forms(str(view.config_version))))
    rows.append(
        (
            "ring-buffer drops",
            _forms(
                f"orders {view.ringbuf_drops:,} (events ring), rejects/updates {view.tape_drops:,} (tape ring)",
                f"orders {view.ringbuf_drops:,}, tape {view.tape_drops:,}",
                style="bold red" if view.ringbuf_drops else "",
            ),
        )
    )
    rows.append(
        (
            "journal",
            _forms(
                f"gaps {view.journal_gaps:,}, write failures {view.journal_failures:,}",
                f"gaps {view.journal_gaps:,}, failures {view.journal_failures:,}",
                style="bold red" if view.journal_gaps or view.journal_failures else "",
            ),
        )
    )
    passed = display.noise_count(view.passed)
    rows.append(("updates / orders / passed", _forms(f"{view.updates:,} / {view.orders:,} / {passed}")))
    rows.append(("open cost", _forms(fmt.money(view.open_cost))))
    e = view.engine
    rows.append(
        (
            "limits",
            _forms(
                f"max notional {fmt.money(e.max_notional)}, loss limit {fmt.money(e.loss_limit)}",
                f"notional {fmt.money(e.max_notional)}, loss {fmt.money(e.loss_limit)}",
            ),
        )
    )
    rows.append(("rate limit", _forms(f"{e.rate_per_sec:,}/s, burst {e.burst:,}")))
    rejects = [(k, v) for k, v in view.rejects.items() if v]
    if not rejects:
        rows.append(("rejects", _forms("none")))
    for i, (reason, count) in enumerate(rejects):
        rows.append(("rejects" if i == 0 else "", _forms(f"{reason} {count:,}", style="yellow")))
    return rows


def risk_grid(rows: list[Row], width: int) -> Table:
    """The rows as a grid of ``width`` cells: each value in its longest form that fits."""
    label_w = max(cell_len(label) for label, _ in rows)
    room = max(1, width - label_w - 2)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True, overflow="crop")
    for label, forms in rows:
        value = next((f for f in forms if f.cell_len <= room), None) or shorten(forms[-1], room)
        grid.add_row(label, value)
    return grid


class RiskPanel(Static):
    DEFAULT_CSS = """
    RiskPanel {
        height: auto;
        padding: 1 2;
    }
    """

    def show(self, view: EngineView | None, display: Display) -> None:
        if view is None:
            self._rows = None
            self._set(Text("no engine supervised: attach or take one over on the Interfaces tab"))
            return
        self._rows = risk_rows(view, display)
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        rows = getattr(self, "_rows", None)
        if rows:
            self._set(risk_grid(rows, self.content_size.width or 200))

    def _set(self, content) -> None:
        # A Rich table has no equality: compare what it prints.
        from rich.console import Console

        console = Console(width=max(20, self.content_size.width or 200), record=False, color_system=None)
        with console.capture() as cap:
            console.print(content)
        plain = cap.get()
        if plain != getattr(self, "_shown", None):
            relayout = plain.count("\n") != getattr(self, "_shown", "").count("\n")
            self._shown = plain
            self.update(content, layout=relayout)
