"""The feed in the app, without a kernel: views recorded from a real engine reading IEX TOPS.

tests/data/engine_views_feed.json (tests/recorded.py --feed): an engine built
for IEX with no feed_sources, one channel of real IEX-TP segments from the
lab, in order, then the B line's copy of one (a duplicate), then, once
supervised, a gap of four messages (the controller's FEED GAP alert).  The
app shows what the engine reads and from whom, the channel with its gap and
duplicate, the gap in the status bar and the alert log, and, while no
sender is required, OPEN FEED on every tab.
"""

from __future__ import annotations

import dataclasses

import pytest
from recorded import FEED_DATA, load
from stand_in import StandInSession, essentials_on_screen, screen_lines, supervising, table_rows_on_screen

from hft_tui.app.app import HftApp
from hft_tui.app.screens.main import TABS
from hft_tui.app.widgets.feed import OPEN_FEED

pytestmark = pytest.mark.pure


@pytest.fixture(scope="module")
def recording():
    return load(FEED_DATA)


@pytest.fixture
def make_app(tmp_path):
    def make(recording) -> HftApp:
        return HftApp(StandInSession(recording), iface=recording.iface, take_over=True, crash_log=tmp_path / "crash")

    return make


def closed(recording, sources=("198.18.153.2/32",)):
    """The same engine as if attached with feed_sources (the senders it trades on)."""
    views = tuple(dataclasses.replace(v, feed=dataclasses.replace(v.feed, sources=sources)) for v in recording.views)
    return dataclasses.replace(recording, views=views)


def test_the_recording_is_an_open_iex_feed_with_a_duplicate_and_a_gap(recording):
    last = recording.views[-1].feed
    assert last.format == "iex" and last.open and last.gateway is None
    [ch] = last.channels
    assert (ch.id, ch.next_seq, ch.packets, ch.messages) == ("1/1", 12, 4, 7)
    assert (ch.gaps, ch.gap_messages, ch.dup_packets) == (1, 4, 1)
    assert any(a.startswith("FEED GAP on channel 1/1") for v in recording.views for a in v.alerts)


async def test_the_feed_tab_shows_what_is_read_from_whom_and_each_channel(recording, make_app):
    app = make_app(recording)
    async with app.run_test(size=(120, 40)) as pilot:
        await supervising(pilot)
        await pilot.press("5")
        await pilot.pause(0.1)
        summary = str(app.main.query_one("#feed-summary").render())
        assert "iex on UDP port 9000, from any sender" in summary
        assert "orders to the sender of each update (no gateway)" in summary
        assert "4 packets, 7 messages, 1 duplicate packets" in summary
        rows = str(app.main.query_one("#channels").render()).splitlines()
        assert rows[0].split() == ["Channel", "Next", "seq", "Packets", "Messages", "Gaps", "Missed", "Duplicates"]
        assert rows[1].split() == ["1/1", "12", "4", "7", "1", "4", "1"]
        assert table_rows_on_screen(app, screen_lines(app)) == 1


async def test_a_gap_is_an_alert_and_in_the_status_bar(recording, make_app):
    app = make_app(recording)
    async with app.run_test(size=(160, 48)) as pilot:
        await supervising(pilot)
        await pilot.pause(0.6)  # a frame: the newest view drawn
        alerts = [line.plain for line in app.main.query_one("#alerts").lines]
        assert any("FEED GAP on channel 1/1: 1 gap, 4 message(s) never received" in a for a in alerts)
        status = app.main.query_one("#status-bar")._shown.plain
        assert "feed iex: gaps 1, missed 4, dup 1" in status


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_an_open_feed_says_so_on_every_tab_at_every_size(recording, make_app, size):
    app = make_app(recording)
    async with app.run_test(size=size) as pilot:
        await supervising(pilot)
        for tab in TABS:
            await pilot.press(tab.key)
            await pilot.pause(0.05)
            lines = screen_lines(app)
            banner = app.main.query_one("#open-feed-banner")
            assert banner.display and lines[banner.region.y].strip().startswith(OPEN_FEED), tab.id
            essentials_on_screen(app, lines, "TRADING")
            table_rows_on_screen(app, lines)
        assert "OPEN FEED" in app.main.query_one("#status-bar")._shown.plain


async def test_a_feed_with_its_senders_set_shows_no_banner(recording, make_app):
    app = make_app(closed(recording))
    async with app.run_test(size=(120, 40)) as pilot:
        await supervising(pilot)
        assert not app.main.query_one("#open-feed-banner").display
        assert "OPEN FEED" not in app.main.query_one("#status-bar")._shown.plain
        await pilot.press("5")
        await pilot.pause(0.1)
        assert "from 198.18.153.2/32" in str(app.main.query_one("#feed-summary").render())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_feed_tab(recording, make_app, snap_compare, size):
    async def feed(pilot):
        await supervising(pilot)
        await pilot.press("5")
        await pilot.pause(0.1)

    assert snap_compare(make_app(recording), terminal_size=size, run_before=feed)


def test_trading_on_an_open_feed_at_80x24(recording, make_app, snap_compare):
    assert snap_compare(make_app(recording), terminal_size=(80, 24), run_before=supervising)
