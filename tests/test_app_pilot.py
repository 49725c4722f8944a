"""The app driven by keyboard against the real engine in a lab (labs 31-35 and 65).

Each test reads the outcome from the kernel (maps, netlink), not from the
screen alone: what the app shows is what the kernel says.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pyroute2 import IPRoute
from textual.coordinate import Coordinate

from hft_tui import engine, netlink, pins, preflight
from hft_tui.app import session as session_module
from hft_tui.app.app import HftApp
from hft_tui.app.dialogs import ConfirmScreen, QuitScreen
from hft_tui.app.session import EngineSession
from hft_tui.config import ENGINE_KEYS
from hft_tui.constants import KILL_OFF, KILL_OPERATOR
from hft_tui.demo.lab_session import LabEngine

SIZE = (160, 48)


async def wait_until(pilot, predicate, what: str, timeout: float = 20.0) -> None:
    """Lets the app run until ``predicate()`` holds (a liveness bound, not a speed test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await pilot.pause(0.05)


async def netlink_call(fn, *args):
    """pyroute2's IPRoute runs its own event loop: call it from a thread, not from the test's loop."""

    def call():
        with IPRoute() as ipr:
            return fn(ipr, *args)

    return await asyncio.to_thread(call)


async def xdp_mode(iface: str) -> str | None:
    return (await netlink_call(netlink.xdp_state, iface)).mode


def supervised(app: HftApp) -> bool:
    return app.view is not None and app.session.poller is not None and app.session.poller.ticks > 1


def kernel(le: LabEngine):
    with le.handle() as h:
        return h.snapshot()


def alert_text(app: HftApp) -> str:
    log = app.main.query_one("#alerts")
    return "\n".join(line.plain for line in log.lines)


@pytest.fixture
def lab31():
    with LabEngine(31, attach=False) as le:
        yield le


@pytest.fixture
def lab32():
    with LabEngine(32) as le:
        yield le


@pytest.fixture
def lab33():
    with LabEngine(33) as le:
        yield le


@pytest.fixture
def lab34():
    with LabEngine(34) as le:
        yield le


@pytest.fixture
def lab35():
    with LabEngine(35, attach=False) as le:
        yield le


async def test_attach_in_the_chosen_mode_and_detach_by_keyboard(lab31):
    app = HftApp(EngineSession(config_path=str(lab31.config_path)), iface=lab31.iface)
    async with app.run_test(size=SIZE) as pilot:
        table = app.main.query_one("#interface-table")
        await wait_until(pilot, lambda: table.selected() == lab31.iface, "the lab interface selected")
        assert app.main.query_one("#tabs").active == "interfaces"
        await pilot.press("m")  # native -> generic
        assert app.interfaces_pane.mode == "generic"
        await pilot.press("a")
        await wait_until(pilot, lambda: supervised(app), "the engine attached and supervised")
        assert await xdp_mode(lab31.iface) == "generic"
        assert app.view.attached and app.view.mode == "generic"
        assert kernel(lab31).global_config.deadman_ms == 500  # supervision armed the dead-man switch
        assert set(app.view.engine.__dict__) and {s.name for s in app.view.symbols} == set(lab31.config.symbols)

        app.show_tab("interfaces")
        assert table.selected() == lab31.iface  # still, though other labs came and went meanwhile
        await pilot.press("d")
        await wait_until(
            pilot,
            lambda: lab31.iface not in engine.attached_ifaces() and app.interfaces_pane.busy is None,
            "the engine detached",
        )
        assert await xdp_mode(lab31.iface) is None
        assert app.session.iface is None and app.view is None


async def test_an_attached_engine_is_offered_for_take_over_not_loaded_twice(lab32):
    rec = engine.EngineRecord.load(lab32.iface)
    app = HftApp(EngineSession(), iface=lab32.iface)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the take-over question")
        await pilot.press("y")
        await wait_until(pilot, lambda: supervised(app), "supervision")
        assert engine.EngineRecord.load(lab32.iface).prog_id == rec.prog_id  # the same program
        snap = kernel(lab32)
        assert snap.global_config.deadman_ms == 500
        assert (time.monotonic_ns() - snap.heartbeat_ns) < 500_000_000  # the app beats it
        # Attaching again on the same interface takes over instead of loading a second program.
        app.show_tab("interfaces")
        await pilot.press("a")
        assert "already supervised" in str(app.interfaces_pane.query_one("#interfaces-message").render())
        assert engine.EngineRecord.load(lab32.iface).prog_id == rec.prog_id


async def test_editing_a_target_changes_the_kernel_map_and_echoes_it(lab32):
    app = HftApp(EngineSession(), iface=lab32.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: supervised(app), "supervision")
        version = kernel(lab32).global_config.config_version
        await pilot.press("2")
        table = app.main.query_one("#symbol-params")
        assert table.has_focus
        await pilot.press("right", "right", "enter")  # AAPL, buy_target
        editor = app.params_pane.editor
        assert editor.key == "buy_target" and editor.symbol == "AAPL"
        await pilot.press(*"190.3", "enter")
        with lab32.handle() as h:
            assert h.symbol("AAPL").buy_target == 1903000
            assert h.snapshot().global_config.config_version == version + 1
        message = str(editor.query_one("#edit-message").render())
        assert "buy_target = 190.3000" in message and "read back from the kernel" in message
        assert table.has_focus  # back to the table after Enter
        await wait_until(
            pilot,
            lambda: str(table.get_cell("AAPL", "buy_target")) == "190.3000",
            "the table showing the kernel's value",
        )

        # Escape discards: nothing written.
        await pilot.press("enter")
        assert (editor.symbol, editor.key) == ("AAPL", "buy_target")  # the editor is open on the field
        assert app.focused is editor.input and editor.input.value == "190.3000"
        await pilot.press(*"190.4")
        assert editor.input.value == "190.4"
        await pilot.press("escape")
        assert str(editor.query_one("#edit-message").render()) == "discarded the edit of buy_target"
        assert editor.key is None and editor.input.disabled and table.has_focus
        with lab32.handle() as h:
            assert h.symbol("AAPL").buy_target == 1903000
            assert h.snapshot().global_config.config_version == version + 1  # nothing written since

        # Engine-wide settings edit the same way.
        app.main.query_one("#engine-params").focus()
        table2 = app.main.query_one("#engine-params")
        table2.cursor_coordinate = Coordinate(list(ENGINE_KEYS).index("rate_per_sec"), 0)
        await pilot.press("enter", *"1234", "enter")
        assert kernel(lab32).global_config.rate_per_sec == 1234


async def test_kill_key_stops_orders_at_once_and_resume_asks_first(lab33):
    """Seen from the exchange: the feed counts the orders the engine sends back."""
    feed = lab33.start_feed(rate=2000)
    app = HftApp(EngineSession(), iface=lab33.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: supervised(app) and feed.orders_received > 0, "orders reaching the exchange")
        # ctrl+k works from inside an edit too (an Input would take ctrl+k otherwise).
        await pilot.press("2", "right", "right", "enter")
        assert app.focused.id == "edit-input"
        await pilot.press("ctrl+k")
        assert kernel(lab33).kill == KILL_OPERATOR  # set by the key handler itself
        assert app.main.has_class("-killed")
        # Orders already on the wire arrive; then the exchange has every order the kernel sent.
        orders = kernel(lab33).totals.order_seq
        await wait_until(pilot, lambda: feed.orders_received == orders, "the orders in flight to arrive")
        sent = feed.sent
        await wait_until(pilot, lambda: feed.sent > sent + 2000, "2000 more updates sent")
        snap = kernel(lab33)
        assert feed.orders_received == orders  # the exchange's count stops ...
        assert snap.totals.order_seq == orders  # ... and the kernel's
        assert snap.rejects["kill"] > 0  # the updates came, refused for the kill

        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # cancelled: still killed
        assert kernel(lab33).kill == KILL_OPERATOR
        await pilot.press("ctrl+r", "y")
        assert kernel(lab33).kill == KILL_OFF
        await wait_until(pilot, lambda: feed.orders_received > orders, "orders reaching the exchange again")
        await wait_until(pilot, lambda: not app.main.has_class("-killed"), "the killed look gone")

        # The kill button does the same as the key.
        await pilot.click("#kill-button")
        assert kernel(lab33).kill == KILL_OPERATOR
    feed.stop()


async def test_quit_asks_and_detaches_by_default(lab34):
    app = HftApp(EngineSession(), iface=lab34.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: supervised(app), "supervision")
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("enter")  # the default button: detach
        await wait_until(pilot, lambda: app.return_code is not None, "the app leaving")
    assert app.return_code == 0
    assert await xdp_mode(lab34.iface) is None


async def test_quit_leaving_the_engine_attached_leaves_it_to_the_dead_man_switch(lab34):
    app = HftApp(EngineSession(), iface=lab34.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: supervised(app), "supervision")
        await pilot.press("ctrl+q", "l")
        await wait_until(pilot, lambda: app.session.iface is None, "supervision ended")
    snap = kernel(lab34)
    assert lab34.iface in engine.attached_ifaces()
    assert snap.global_config.deadman_ms == 500 and snap.kill == KILL_OFF
    await asyncio.sleep(0.6)
    assert (time.monotonic_ns() - kernel(lab34).heartbeat_ns) > 500_000_000  # nobody beats it: no orders


async def test_a_crash_of_the_app_sets_the_kill_switch(lab34):
    app = HftApp(EngineSession(), iface=lab34.iface, take_over=True)

    def broken():
        raise RuntimeError("a bug in the app")

    with pytest.raises(RuntimeError):
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: supervised(app), "supervision")
            app.call_later(broken)
            await pilot.pause(0.5)
    assert kernel(lab34).kill == KILL_OPERATOR
    assert app.session.iface is None and not app.session.poller


async def test_add_and_remove_a_symbol(lab32):
    app = HftApp(EngineSession(), iface=lab32.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: supervised(app), "supervision")
        await pilot.press("2", "n")
        await pilot.press(*"TSLA")
        await pilot.press("tab", *"250.5")  # buy_target
        await pilot.press("tab", *"251")  # sell_target
        await pilot.press("enter")
        with lab32.handle() as h:
            p = h.symbol("TSLA")
        assert p is not None and p.buy_target == 2505000 and p.sell_target == 2510000
        table = app.main.query_one("#symbol-params")
        await wait_until(pilot, lambda: "TSLA" in [str(k.value) for k in table.rows], "TSLA on screen")
        table.focus()
        row = [str(k.value) for k in table.rows].index("TSLA")
        table.cursor_coordinate = Coordinate(row, 1)
        await pilot.press("x", "y")
        with lab32.handle() as h:
            assert h.symbol("TSLA") is None


async def test_failures_are_shown_in_the_app_never_as_a_traceback(lab35):
    # Another XDP program on the interface: the attach is refused and said so.
    bcc = preflight.require_bcc()
    b = bcc.BPF(text=b"int xdp_other(struct xdp_md *ctx) { return XDP_PASS; }")
    fn = b.load_func(b"xdp_other", bcc.BPF.XDP)
    await netlink_call(netlink.attach_xdp, lab35.iface, fn.fd, "generic")
    b.cleanup()
    app = HftApp(EngineSession(config_path=str(lab35.config_path)), iface=lab35.iface)
    async with app.run_test(size=SIZE) as pilot:
        table = app.main.query_one("#interface-table")
        await wait_until(pilot, lambda: table.selected() == lab35.iface, "the interface selected")
        await pilot.press("a")
        await wait_until(pilot, lambda: app.interfaces_pane.busy is None and app.last_error, "the attach failing")
        assert "already has an XDP program" in app.last_error
        assert lab35.iface not in engine.attached_ifaces()
        other = await netlink_call(netlink.xdp_state, lab35.iface)
        assert other.mode == "generic"  # the other program is untouched
        # Detaching a program that is not ours is refused, and it stays attached.
        assert table.selected() == lab35.iface
        await pilot.press("d")
        assert "never detaches other programs" in str(app.interfaces_pane.query_one("#interfaces-message").render())
        await pilot.pause(0.2)
        assert app.interfaces_pane.busy is None
        assert await netlink_call(netlink.xdp_state, lab35.iface) == other  # same program, same mode
        await netlink_call(netlink.detach_xdp, lab35.iface, "generic")

        # The interface disappearing under a supervised engine.
        assert table.selected() == lab35.iface
        await pilot.press("a")
        await wait_until(pilot, lambda: supervised(app), "attached")
        await netlink_call(lambda ipr: ipr.link("del", index=ipr.link_lookup(ifname=lab35.iface)[0]))
        await wait_until(
            pilot,
            lambda: app.view is None and app.last_error and lab35.iface in app.last_error,
            "the loss of the interface shown",
            timeout=10,
        )
        assert "is gone" in app.last_error
        status = str(app.main.query_one("#status-bar").render())
        assert "DETACHED" in status and "is gone" in status
        assert lab35.iface not in engine.attached_ifaces()  # the controller cleaned the pins


# -- lab 65: the kill with nothing supervised, the link going down, the heartbeat at a slow poll rate --------


@pytest.fixture
def lab65():
    with LabEngine(65) as le:
        yield le


def status_bar(app: HftApp) -> str:
    return str(app.main.query_one("#status-bar").render())


def headline(app: HftApp) -> str:
    return str(app.main.query_one("#headline").render())


async def test_the_kill_key_and_the_button_kill_an_attached_engine_this_app_does_not_supervise(lab65, monkeypatch):
    # "Every engine on this machine" is this lab's here: other test runs may have engines of their own.
    every_engine = pins.attached_ifaces
    monkeypatch.setattr(session_module, "attached_ifaces", lambda: [i for i in every_engine() if i == lab65.iface])
    feed = lab65.start_feed(rate=2000)
    app = HftApp(EngineSession(), iface=lab65.iface)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the take-over question")
        await pilot.press("n")  # declined: attached, trading, not supervised
        assert app.session.iface is None
        await wait_until(pilot, lambda: feed.orders_received > 0, "the engine trading unsupervised")

        await pilot.press("ctrl+k")
        assert kernel(lab65).kill == KILL_OPERATOR
        assert f"KILL: kill switch set on {lab65.iface}" in app.last_error
        assert f"kill switch set on {lab65.iface}" in str(app.main.query_one("#status-bar").render())
        orders = kernel(lab65).totals.order_seq
        await wait_until(pilot, lambda: feed.orders_received == orders, "the orders in flight to arrive")
        sent = feed.sent
        await wait_until(pilot, lambda: feed.sent > sent + 2000, "2000 more updates sent")
        assert feed.orders_received == orders and kernel(lab65).totals.order_seq == orders

        # The red button does the same.
        with lab65.handle() as h:
            h.resume()
        await wait_until(pilot, lambda: feed.orders_received > orders, "trading again after a resume")
        app.last_error = None
        await pilot.click("#kill-button")
        assert kernel(lab65).kill == KILL_OPERATOR
        assert f"kill switch set on {lab65.iface}" in app.last_error
    feed.stop()


async def test_the_kill_key_with_no_engine_attached_says_there_is_nothing_to_kill(lab65, monkeypatch):
    monkeypatch.setattr(session_module, "attached_ifaces", lambda: [])
    app = HftApp(EngineSession(), iface=lab65.iface)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+k")
        assert app.last_error == "no hft-tui engine attached on this machine: nothing to kill"
    assert kernel(lab65).kill == KILL_OFF


async def test_a_link_going_down_shows_in_the_status_bar_and_as_an_alert(lab65):
    def set_link(state: str):
        return netlink_call(lambda ipr: ipr.link("set", index=ipr.link_lookup(ifname=lab65.iface)[0], state=state))

    app = HftApp(EngineSession(), iface=lab65.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: supervised(app) and "TRADING" in status_bar(app), "trading")
        await set_link("down")
        await wait_until(pilot, lambda: "LINK DOWN (down)" in status_bar(app), "LINK DOWN in the status bar")
        assert "LINK DOWN" in headline(app) and "TRADING" not in status_bar(app)
        assert f"LINK DOWN: {lab65.iface} is down" in alert_text(app)
        await set_link("up")
        await wait_until(pilot, lambda: "TRADING" in status_bar(app), "TRADING again")
        assert f"link {lab65.iface} is up again" in alert_text(app)
        assert "LINK DOWN" not in headline(app)


async def test_at_one_poll_a_second_the_heartbeat_meets_the_deadline_and_one_shortened_live(lab65):
    """The view goes to the screen once a second; the heartbeat still beats
    five times per dead-man deadline, so no update is refused for it."""
    feed = lab65.start_feed(rate=2000)
    app = HftApp(EngineSession(poll_hz=1), iface=lab65.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: supervised(app), "supervision")
        assert kernel(lab65).global_config.deadman_ms == 500
        start = kernel(lab65)
        sent = feed.sent
        await wait_until(pilot, lambda: feed.sent > sent + 6000, "6000 updates sent")
        snap = kernel(lab65)
        assert snap.rejects["deadman"] == start.rejects["deadman"]
        assert snap.totals.order_seq > start.totals.order_seq  # trading all along

        # The deadline shortened in the Parameters tab: met from the next beat on,
        # and shown as the kernel holds it.
        await pilot.press("2")
        table = app.main.query_one("#engine-params")
        table.focus()
        table.cursor_coordinate = Coordinate(list(ENGINE_KEYS).index("deadman_ms"), 0)
        await pilot.press("enter", *"100", "enter")
        assert kernel(lab65).global_config.deadman_ms == 100
        await wait_until(
            pilot,
            lambda: app.view.engine.deadman_ms == 100 and str(table.get_cell("deadman_ms", "value")) == "100",
            "the engine table showing 100 ms",
        )
        start = kernel(lab65)
        sent = feed.sent
        await wait_until(pilot, lambda: feed.sent > sent + 6000, "6000 more updates sent")
        snap = kernel(lab65)
        assert snap.rejects["deadman"] == start.rejects["deadman"]
        assert snap.totals.order_seq > start.totals.order_seq
    feed.stop()
