"""Snapshots of the main screens against the real engine (lab 37).

The feed is fixed (seed 7, 1200 updates, sent and counted before the app
starts) and the config has no time-dependent limits, so the kernel holds the
same state on every run; the app runs in snapshot mode, where ages, clock
times, program ids and hashes print as placeholders.  Regenerate with
``pytest tests/test_app_snapshots.py --snapshot-update`` and look at the
report before committing.
"""

from __future__ import annotations

import time

import pytest
from textual.coordinate import Coordinate

from hft_tui.app.app import HftApp
from hft_tui.app.session import EngineSession
from hft_tui.config import SYMBOL_KEYS
from hft_tui.demo.lab_session import LabEngine

SIZE = (160, 48)
FEED_COUNT = 1200
FEED_SEED = 7


@pytest.fixture
def traded_lab():
    """Lab 37 with the engine attached and the fixed feed already traded on."""
    with LabEngine(37) as le:
        le.feed(count=FEED_COUNT, seed=FEED_SEED)
        yield le


def app_for(le: LabEngine) -> HftApp:
    return HftApp(EngineSession(deterministic=True), iface=le.iface, take_over=True)


async def settled(pilot) -> None:
    """Waits for supervision, the first views drawn and the interface list."""
    app = pilot.app
    deadline = time.monotonic() + 20
    while not (
        app.session.poller is not None
        and app.session.poller.ticks >= 3
        and app.view is not None
        and app.interfaces_pane.table.row_count
    ):
        assert time.monotonic() < deadline, "the app did not settle"
        await pilot.pause(0.05)
    await pilot.pause(0.3)


def test_trading_screen(traded_lab, snap_compare):
    assert snap_compare(app_for(traded_lab), terminal_size=SIZE, run_before=settled)


def test_killed_screen(traded_lab, snap_compare):
    async def kill(pilot):
        await settled(pilot)
        await pilot.press("ctrl+k")
        await pilot.pause(0.3)

    assert snap_compare(app_for(traded_lab), terminal_size=SIZE, run_before=kill)


def test_parameter_editing_with_a_bad_value(traded_lab, snap_compare):
    async def edit(pilot):
        await settled(pilot)
        await pilot.press("2")
        table = pilot.app.main.query_one("#symbol-params")
        table.cursor_coordinate = Coordinate(0, list(SYMBOL_KEYS).index("sell_target") + 1)
        await pilot.press("enter", *"190.1")
        await pilot.pause(0.3)

    assert snap_compare(app_for(traded_lab), terminal_size=SIZE, run_before=edit)


def test_risk_screen(traded_lab, snap_compare):
    async def risk(pilot):
        await settled(pilot)
        await pilot.press("4")
        await pilot.pause(0.3)

    assert snap_compare(app_for(traded_lab), terminal_size=SIZE, run_before=risk)


def test_help_screen(traded_lab, snap_compare):
    async def help_(pilot):
        await settled(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(app_for(traded_lab), terminal_size=SIZE, run_before=help_)
