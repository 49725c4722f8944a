"""A stand-in for the app's engine session: recorded views played without a kernel.

The app's offline tests (test_app_offline.py, test_app_sizes.py,
test_app_watchdog.py) give the real app this session instead of
hft_tui.app.session.EngineSession: it plays the views a real supervisor
sent (tests/data/engine_views.json, see recorded.py) and notes every call.
"""

from __future__ import annotations

import io

from recorded import Recording
from rich.cells import cell_len
from rich.console import Console
from textual.widgets._footer import FooterKey

from hft_tui.app.messages import EngineTicked, SupervisionStarted
from hft_tui.app.screens.main import Headline
from hft_tui.app.widgets.kill import KillButton
from hft_tui.app.widgets.status_bar import StatusBar
from hft_tui.app.widgets.text_table import TextTable
from hft_tui.config import engine_params, symbol_params
from hft_tui.constants import KILL_OFF, KILL_OPERATOR
from hft_tui.engine import EngineError


class StandInSession:
    """The app's session without a kernel: plays a recording, and notes every call.

    It keeps the rules the app relies on (None when nothing is supervised, one
    engine at a time, parameters checked by hft_tui.config as the kernel's
    handle checks them); what it cannot know it takes from the recording."""

    deterministic = True

    def __init__(self, recording: Recording, *, attached: bool = True) -> None:
        self.recording = recording
        self.calls: list[tuple] = []
        self.supervised: str | None = None
        self.attached = {recording.iface: recording.record.prog_id} if attached else {}
        self.view = recording.views[-1]  # what the "kernel" holds now
        self.fail_attach: str | None = None

    @property
    def iface(self) -> str | None:
        return self.supervised

    def config_mode(self) -> str:
        return "native"

    def engines(self) -> dict[str, int]:
        return dict(self.attached)

    def record(self, iface: str):
        return self.recording.record if iface in self.attached else None

    def interfaces(self):
        return list(self.recording.interfaces)

    def take_over(self, iface, target) -> None:
        self.calls.append(("take_over", iface))
        if self.supervised is not None:
            raise EngineError(f"already supervising {self.supervised}: detach it first")
        if iface not in self.attached:
            raise EngineError(f"no hft-tui engine on {iface}")
        self.supervised = iface
        target.post_message(SupervisionStarted(iface, False))
        for view in self.recording.views:
            target.post_message(EngineTicked(view))

    def supervision_lost(self, iface: str) -> bool:
        self.calls.append(("supervision_lost", iface))
        if self.supervised != iface:
            return False
        self.supervised = None
        return True

    def release(self, policy: str) -> list[str]:
        self.calls.append(("release", policy))
        iface, self.supervised = self.supervised, None
        if iface is None:
            return []
        if policy == "detach":
            del self.attached[iface]
            return [f"{iface}: detached"]
        if policy == "kill":
            return [f"{iface}: kill switch set, engine left attached (hft-tui engine detach {iface})"]
        return []

    def abandon(self) -> list[str]:
        self.calls.append(("abandon",))
        return [f"{self.supervised}: kill switch set"] if self.supervised else []

    def attach(self, iface: str, mode: str) -> str:
        self.calls.append(("attach", iface, mode))
        if self.fail_attach:
            raise EngineError(self.fail_attach)
        self.attached[iface] = self.recording.record.prog_id
        return f"attached to {iface} in {mode} mode"

    def detach(self, iface: str) -> list[str]:
        self.calls.append(("detach", iface))
        if self.supervised == iface:
            return self.release("detach")
        del self.attached[iface]
        return [f"{iface}: detached"]

    def kill(self) -> int | None:
        self.calls.append(("kill",))
        return None if self.supervised is None else KILL_OPERATOR

    def kill_every_engine(self) -> tuple[list[str], list[str]]:
        self.calls.append(("kill_every_engine",))
        return list(self.attached), []

    def resume(self) -> tuple[str, int] | None:
        self.calls.append(("resume",))
        return None if self.supervised is None else (self.supervised, KILL_OFF)

    def set_param(self, symbol, key, value):
        self.calls.append(("set_param", symbol, key, value))
        if self.supervised is None:
            return None
        if symbol is None:
            applied = engine_params({key: value}, base=self.view.engine)
        else:
            applied = symbol_params(symbol, {key: value}, base=self.view.symbol(symbol).params)
        return applied, self.view.config_version + 1

    def add_symbol(self, name, values):
        self.calls.append(("add_symbol", name, values))
        if self.supervised is None:
            return None
        return symbol_params(name, {k: v for k, v in values.items() if v.strip()})

    def remove_symbol(self, name):
        self.calls.append(("remove_symbol", name))
        return None if self.supervised is None else True

    def called(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


async def supervising(pilot) -> None:
    """Until the last recorded view is in and drawn, and the interfaces listed.  It is
    drawn here rather than left to the app's next frame (a timer): what is on screen
    then does not depend on how fast the machine ran the test."""
    app = pilot.app
    last = app.session.recording.views[-1]
    for _ in range(200):
        if app.view == last and app.interfaces_pane.table.row_count:
            app.render_view()
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError("the recorded views were not shown")


def screen_lines(app) -> list[str]:
    """The screen as the terminal shows it, one string a row (what a snapshot shows, as text)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor", record=True
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().split("\n")[:height]


def table_rows_on_screen(app, lines: list[str]) -> int:
    """Asserts every row of every text table shown is one screen line, whole
    (as far as its viewport shows it); returns how many tables were checked."""
    checked = 0
    for table in app.screen.query(TextTable):
        if not table.display or table._shown is None:
            continue
        try:
            geometry = app.screen.find_widget(table)
        except Exception:
            continue  # not on screen (another tab)
        region, clip = geometry.region, geometry.clip
        visible = region.intersection(clip)
        if not visible.area:
            continue
        rows = table._shown.plain.split("\n")
        top, left = region.y + table.styles.padding.top, region.x + table.styles.padding.left
        assert len(rows) <= table.content_size.height, f"{table.id}: {len(rows)} rows in {table.content_size.height}"
        for i, row in enumerate(rows):
            y = top + i
            if not visible.y <= y < visible.bottom:
                continue
            x0, x1 = max(left, visible.x), visible.right
            shown = lines[y][x0:x1].rstrip()
            expected = row[x0 - left : x1 - left].rstrip()
            assert shown == expected, f"{table.id} row {i} at {app.size}: {shown!r} is not {expected!r}"
        checked += 1
    return checked


def essentials_on_screen(app, lines: list[str], state: str) -> None:
    """The kill button, the trading state, the session PnL; the status bar whole; the footer's keys whole."""
    width, height = app.size
    screen = "\n".join(lines)
    button = app.screen.query_one(KillButton)
    label_row = button.content_region.y + button.content_region.height // 2
    assert button.region.right <= width and button.region.bottom <= height and "KILL" in lines[label_row]
    headline = app.screen.query_one(Headline).content_region
    assert state in lines[headline.y] and "PnL " in lines[headline.y]
    status = app.screen.query_one(StatusBar)
    assert status._shown is not None and cell_len(status._shown.plain) <= width
    assert lines[status.region.y].rstrip() == status._shown.plain.rstrip()
    assert state in screen
    keys = [k for k in app.screen.query(FooterKey) if k.display]
    assert any(k.description == "KILL" for k in keys)
    for key in keys:
        region = app.screen.find_widget(key).region
        assert region.right <= width, f"footer key {key.key_display} cut at {app.size}"
        assert key.description in lines[region.y][region.x : region.right], key.description
