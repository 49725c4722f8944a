"""``hft-tui --demo`` end to end, as a user runs it: on a terminal, to TRADING, then quit.

The demo uses the lab named hft-lab (interfaces hft0/hftx0); no other test
uses it, and this one refuses to start if it is up already (a demo someone
is running, or a leftover: ``hft-tui lab down`` removes it).  Quitting with
ctrl+q and "detach" must leave nothing behind: no namespace, no links, no
pins, no state file, no process in the lab.
"""

from __future__ import annotations

import os
import sys

from pyroute2 import IPRoute, netns

from hft_tui import engine, lab, paths
from hft_tui.bench.app_perf import AppInTerminal

HFT_TUI = os.path.join(os.path.dirname(sys.executable), "hft-tui")
CTRL_Q = b"\x11"
DEMO_LAB = lab.DEFAULT_LAB


def demo_leftovers() -> list[str]:
    left = []
    if DEMO_LAB.namespace in netns.listnetns():
        left.append(f"namespace {DEMO_LAB.namespace}")
    with IPRoute() as ipr:
        left += [
            f"link {name}" for name in (DEMO_LAB.engine_iface, DEMO_LAB.exchange_iface) if ipr.link_lookup(ifname=name)
        ]
    if paths.pin_dir(DEMO_LAB.engine_iface).exists():
        left.append(str(paths.pin_dir(DEMO_LAB.engine_iface)))
    if paths.state_file(DEMO_LAB.engine_iface).exists():
        left.append(str(paths.state_file(DEMO_LAB.engine_iface)))
    if DEMO_LAB.engine_iface in engine.attached_ifaces():
        left.append(f"engine on {DEMO_LAB.engine_iface}")
    return left


def run_demo(argv: list[str], while_trading) -> None:
    """``hft-tui`` with ``argv`` on a terminal until TRADING, ``while_trading()``, then
    ctrl+q and detach: it must exit 0, without a traceback, leaving nothing behind."""
    assert demo_leftovers() == [], "the demo lab is in use or left over: 'hft-tui lab down' removes it"
    app = AppInTerminal([HFT_TUI, *argv])
    try:
        app.wait_for(b"TRADING", timeout=90)  # compiled, attached, supervised, the simulator trading
        assert DEMO_LAB.engine_iface in engine.attached_ifaces()
        while_trading()
        app.press(CTRL_Q)
        app.wait_for(b"Detach and quit")
        app.press(b"d")
        assert app.proc.wait(60) == 0
    finally:
        app.close()
        if app.proc.returncode != 0:
            lab.down(DEMO_LAB, quiet=True)  # do not leave a broken demo to the next run
    assert b"Traceback" not in app.tail
    assert demo_leftovers() == []
    assert lab.lab_pids(DEMO_LAB) == []


def test_the_demo_trades_and_quitting_with_detach_leaves_nothing_behind():
    run_demo(["--demo"], lambda: None)
