"""The app killed outright (SIGKILL, no handler runs) must not leave the engine trading (lab 38).

The app runs as a user runs it, on a pseudo-terminal; its supervisor process
learns of the death (PR_SET_PDEATHSIG), sets the kill switch and stops.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from hft_tui.app.lab_session import LabEngine
from hft_tui.app.perf import AppInTerminal
from hft_tui.constants import KILL_OFF, KILL_OPERATOR


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
            assert h.snapshot().totals.order_seq == settled   # the feed goes on, no order goes out
            assert settled >= orders
    finally:
        app.close()
        feed.stop()
