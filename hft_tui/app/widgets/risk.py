"""Risk and supervision: dead-man switch, program, config version, drops, rejects."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from .. import formatting as fmt
from ..formatting import Display
from ..model import EngineView


class RiskPanel(Static):
    DEFAULT_CSS = """
    RiskPanel {
        height: auto;
        padding: 1 2;
    }
    """

    def show(self, view: EngineView | None, display: Display) -> None:
        if view is None:
            self._set("no engine supervised: attach or take one over on the Interfaces tab")
            return
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        if view.deadman_ms:
            dm = Text(
                f"armed, deadline {view.deadman_ms} ms, heartbeat {display.age(view.heartbeat_age_ms)} ago",
                style="green",
            )
        else:
            dm = Text("NOT ARMED: nothing stops the engine if its controller dies", style="bold red")
        grid.add_row("dead-man switch", dm)
        grid.add_row("kill switch", Text(view.kill_state, style="bold red" if view.killed else "green"))
        grid.add_row("program", f"id {display.prog_id(view.prog_id)}, hash {display.program_hash(view.program_hash)}")
        grid.add_row("config version", str(view.config_version))
        grid.add_row(
            "ring-buffer drops",
            Text(
                f"orders {view.ringbuf_drops:,} (events ring), rejects/updates {view.tape_drops:,} (tape ring)",
                style="bold red" if view.ringbuf_drops else "",
            ),
        )
        grid.add_row(
            "journal",
            Text(
                f"gaps {view.journal_gaps:,}, write failures {view.journal_failures:,}",
                style="bold red" if view.journal_gaps or view.journal_failures else "",
            ),
        )
        grid.add_row(
            "updates / orders / passed", f"{view.updates:,} / {view.orders:,} / {display.noise_count(view.passed)}"
        )
        grid.add_row("open cost", fmt.money(view.open_cost))
        e = view.engine
        grid.add_row(
            "limits",
            f"max notional {fmt.money(e.max_notional)}, loss limit {fmt.money(e.loss_limit)}, "
            f"rate {e.rate_per_sec:,}/s burst {e.burst:,}",
        )
        rejects = ", ".join(f"{k} {v:,}" for k, v in view.rejects.items() if v) or "none"
        grid.add_row("rejects", Text(rejects, style="yellow" if rejects != "none" else ""))
        self._set(grid)

    def _set(self, content) -> None:
        # A Rich table has no equality: compare what it prints.
        from rich.console import Console

        console = Console(width=200, record=False, color_system=None)
        with console.capture() as cap:
            console.print(content)
        plain = cap.get()
        if plain != getattr(self, "_shown", None):
            relayout = plain.count("\n") != getattr(self, "_shown", "").count("\n")
            self._shown = plain
            self.update(content, layout=relayout)
