"""The app at every terminal size, without a kernel (recorded engine views, see stand_in.py).

Every tab is laid out from 80x24 up to 250x70: snapshots of each at 80x24,
120x40 and 200x60, the killed state, a dialog, the full tables and the
too-small line at 80x24 or below; and, read off the rendered screen rather
than the snapshot, at more sizes: no table row wraps (each row is one screen
line, whole), the kill button, the trading state and the session PnL are on
screen, the status bar and the footer show whole words and whole keys.
Regenerate the snapshots with ``pytest tests/test_app_sizes.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

import pytest
from recorded import load
from rich.cells import cell_len
from stand_in import StandInSession, essentials_on_screen, screen_lines, supervising, table_rows_on_screen

from hft_tui.app.app import HftApp
from hft_tui.app.dialogs import QuitScreen
from hft_tui.app.fitting import MIN_HEIGHT, MIN_WIDTH
from hft_tui.app.screens.full_tables import FullTablesScreen
from hft_tui.app.screens.main import TABS, TooSmall
from hft_tui.app.widgets.risk import RiskPanel
from hft_tui.app.widgets.text_table import TextTable

pytestmark = pytest.mark.pure

SNAPSHOT_SIZES = [(80, 24), (120, 40), (200, 60)]
# The rendered rows are checked at more sizes than are kept as snapshots.
CHECKED_SIZES = [
    (80, 24),
    (80, 50),
    (90, 30),
    (100, 40),
    (119, 31),
    (120, 40),
    (140, 35),
    (160, 48),
    (200, 60),
    (250, 70),
]


@pytest.fixture(scope="module")
def recording():
    return load()


@pytest.fixture
def make_app(tmp_path, recording):
    def make() -> HftApp:
        return HftApp(StandInSession(recording), iface=recording.iface, take_over=True, crash_log=tmp_path / "crash")

    return make


def size_id(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# -- snapshots ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SNAPSHOT_SIZES, ids=size_id)
@pytest.mark.parametrize("tab", TABS, ids=lambda t: t.id)
def test_every_tab_at_every_size(make_app, snap_compare, tab, size):
    async def show(pilot):
        await supervising(pilot)
        await pilot.press(tab.key)
        await pilot.pause(0.1)

    assert snap_compare(make_app(), terminal_size=size, run_before=show)


def test_the_killed_theme_at_80x24(make_app, snap_compare):
    async def kill(pilot):
        await supervising(pilot)
        await pilot.press("ctrl+k")
        await pilot.pause(0.1)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=kill)


def test_the_quit_dialog_at_80x24(make_app, snap_compare):
    async def quit_(pilot):
        await supervising(pilot)
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert isinstance(pilot.app.screen, QuitScreen)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=quit_)


def test_all_columns_at_80x24(make_app, snap_compare):
    async def full(pilot):
        await supervising(pilot)
        await pilot.press("f")
        await pilot.pause(0.1)
        assert isinstance(pilot.app.screen, FullTablesScreen)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=full)


def test_below_the_smallest_size_one_line_says_so(make_app, snap_compare):
    assert snap_compare(make_app(), terminal_size=(70, 20), run_before=supervising)


# -- the rendered rows ----------------------------------------------------------------------------


def risk_rows_on_screen(app: HftApp) -> None:
    panel = app.screen.query_one(RiskPanel)
    rows = panel._rows or []
    assert rows and len(panel._shown.rstrip("\n").splitlines()) == len(rows)


@pytest.mark.parametrize("size", CHECKED_SIZES, ids=size_id)
async def test_no_table_row_wraps_and_the_essentials_show_at_every_size(make_app, size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await supervising(pilot)
        for tab in TABS:
            await pilot.press(tab.key)
            await pilot.pause(0.1)
            lines = screen_lines(app)
            checked = table_rows_on_screen(app, lines)
            assert checked == (2 if tab.id == "trading" else 0), tab.id
            essentials_on_screen(app, lines, "TRADING")
            if tab.id == "risk":
                risk_rows_on_screen(app)

        await pilot.press("1", "ctrl+k")
        await pilot.pause(0.1)
        lines = screen_lines(app)
        assert table_rows_on_screen(app, lines) == 2
        essentials_on_screen(app, lines, "KILLED")
        banner = app.main.query_one("#killed-banner")
        middle = banner.region.y + banner.region.height // 2
        assert banner.display and lines[middle].strip().startswith("KILLED by the operator")

        await pilot.press("f")
        await pilot.pause(0.1)
        assert isinstance(app.screen, FullTablesScreen)
        assert table_rows_on_screen(app, screen_lines(app)) == 2
        full = app.screen.query_one("#full-pnl", TextTable)
        assert full.hidden == [], "the full tables keep every column"

        await pilot.press("escape", "question_mark")
        await pilot.pause(0.1)
        assert table_rows_on_screen(app, screen_lines(app)) == 1  # the help's key table


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=size_id)
async def test_a_narrow_table_leaves_out_its_least_important_columns_first(make_app, size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await supervising(pilot)
        await pilot.pause(0.1)
        book, pnl = app.main.query_one("#book", TextTable), app.main.query_one("#pnl", TextTable)
        if size == (80, 24):
            assert pnl.hidden == ["Capital spent", "Proceeds"] and book.hidden == []
        else:
            assert pnl.hidden == [] and book.hidden == []
        assert all(h not in ("Symbol", "Total PnL", "Bid", "Ask") for h in book.hidden + pnl.hidden)


@pytest.mark.parametrize("size", [(79, 24), (80, 23), (40, 10)], ids=size_id)
async def test_below_the_smallest_size_the_screen_says_what_it_needs_and_ctrl_k_still_kills(make_app, size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await supervising(pilot)
        await pilot.pause(0.1)
        lines = [line.rstrip() for line in screen_lines(app)]
        said = [line for line in lines if line]
        assert len(said) == 1 and f"{MIN_WIDTH}×{MIN_HEIGHT}" in said[0] and cell_len(said[0]) <= size[0]
        assert app.main.query_one(TooSmall).display
        await pilot.press("ctrl+k")
        assert app.session.called("kill") == [("kill",)] and app.main.has_class("-killed")
        assert [line.rstrip() for line in screen_lines(app) if line.strip()] == said  # still the one line

        await pilot.resize_terminal(MIN_WIDTH, MIN_HEIGHT)
        await pilot.pause(0.1)
        lines = screen_lines(app)
        assert not app.main.query_one(TooSmall).display
        essentials_on_screen(app, lines, "KILLED")
