"""The app crashing or killed outright must not leave the engine trading (labs 38, 69).

An unexpected exception in the app: the kill switch is set, the traceback
goes to the crash log and the user reads one line.  Killed outright
(SIGKILL, no handler runs): the app runs as a user runs it, on a
pseudo-terminal; its supervisor process learns of the death
(PR_SET_PDEATHSIG), sets the kill switch and stops.  An app that dies before
its supervisor could even ask for PR_SET_PDEATHSIG is caught too: the
supervisor finds another parent than the app and sets the kill switch before
it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hft_tui.app import run_app
from hft_tui.app.app import HftApp
from hft_tui.app.session import EngineSession
from hft_tui.bench.app_perf import AppInTerminal
from hft_tui.constants import KILL_OFF, KILL_OPERATOR
from hft_tui.demo.lab_session import LabEngine


@pytest.fixture
def lab38():
    with LabEngine(38) as le:
        yield le


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_exception_in_the_app_sets_the_kill_switch_keeps_the_traceback_and_shows_one_line(lab38, tmp_path, capsys):
    log = tmp_path / "app-crash.log"
    app = HftApp(EngineSession(), iface=lab38.iface, take_over=True, crash_log=log)

    def broken():
        raise RuntimeError("a bug in the app")

    async def crash(pilot):
        deadline = time.monotonic() + 20
        while not (app.view is not None and app.session.poller.ticks > 1):
            assert time.monotonic() < deadline, "no supervision"
            await pilot.pause(0.05)
        with lab38.handle() as h:
            assert h.maps.kill() == KILL_OFF
        app.call_later(broken)
        await pilot.pause(0.5)

    assert run_app(app, headless=True, size=(160, 48), auto_pilot=crash) == 1
    with lab38.handle() as h:
        assert h.maps.kill() == KILL_OPERATOR
    assert app.session.iface is None and lab38.iface in engine_ifaces()  # killed, left attached
    [line] = capsys.readouterr().err.splitlines()  # one line, whatever the traceback
    assert line.startswith(
        f"hft-tui: error: the app failed (RuntimeError: a bug in the app); {lab38.iface}: "
        f"kill switch set, engine left attached (hft-tui engine detach {lab38.iface})"
    )
    assert line.endswith(f"; details in {log}")
    assert "RuntimeError: a bug in the app" in log.read_text() and "in broken" in log.read_text()


def engine_ifaces() -> list[str]:
    from hft_tui import engine

    return engine.attached_ifaces()


def test_sigkill_of_the_app_sets_the_kill_switch(lab38):
    feed = lab38.start_feed(rate=2000)
    app = AppInTerminal([os.path.join(os.path.dirname(sys.executable), "hft-tui"), "--iface", lab38.iface])
    try:
        app.wait_for(b"Take over")
        app.press(b"y")
        app.wait_for(b"TRADING")
        supervisor = children(app.proc.pid)
        assert supervisor, "no supervisor process"
        with lab38.handle() as h:
            assert h.maps.kill() == KILL_OFF
            orders = h.snapshot().totals.order_seq
            app.proc.send_signal(signal.SIGKILL)
            app.proc.wait(5)
            deadline = time.monotonic() + 5
            while h.maps.kill() == KILL_OFF and time.monotonic() < deadline:
                time.sleep(0.01)
            assert h.maps.kill() == KILL_OPERATOR
            while any(alive(p) for p in supervisor) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(alive(p) for p in supervisor)
            time.sleep(0.3)
            settled = h.snapshot().totals.order_seq
            time.sleep(0.5)
            assert h.snapshot().totals.order_seq == settled  # the feed goes on, no order goes out
            assert settled >= orders
    finally:
        app.close()
        feed.stop()


@pytest.fixture
def lab69():
    with LabEngine(69) as le:
        yield le


def test_an_app_dead_before_its_supervisor_asked_for_pdeathsig_still_gets_its_engine_killed(lab69):
    # The "app" is a shell that starts the supervisor process the way the app
    # does and exits at once: the supervisor, still starting Python, is
    # reparented before it can ask to be told of its parent's death.
    argv = f"{sys.executable} -m hft_tui.app.supervisor_process {lab69.iface} --app-pid $$ &"
    feed = lab69.start_feed(rate=2000)
    try:
        with lab69.handle() as h:
            deadline = time.monotonic() + 20
            while feed.orders_received == 0:  # a plain attach trades, unsupervised
                assert time.monotonic() < deadline, "no orders"
                time.sleep(0.05)
            subprocess.run(
                ["sh", "-c", argv],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while h.maps.kill() == KILL_OFF:
                assert time.monotonic() < deadline + 20, "the kill switch was not set"
                time.sleep(0.02)
            assert h.maps.kill() == KILL_OPERATOR
            orders = h.snapshot().totals.order_seq
            while feed.orders_received != orders:  # the orders in flight arrive
                assert time.monotonic() < deadline + 30, "orders in flight never arrived"
                time.sleep(0.02)
            sent = feed.sent
            while feed.sent < sent + 1000:  # the feed goes on ...
                assert time.monotonic() < deadline + 40, "the feed stopped"
                time.sleep(0.02)
            assert feed.orders_received == orders == h.snapshot().totals.order_seq  # ... no order goes out
            assert h.snapshot().global_config.deadman_ms == 0  # it never took the engine over
    finally:
        feed.stop()
