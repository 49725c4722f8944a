"""Closing the terminal under ``hft-tui --demo`` (SIGHUP, or SIGTERM) leaves nothing behind, every time.

The demo runs on a pseudo-terminal as a user runs it; at a random moment
between its start and a few seconds of trading, the terminal goes away: the
demo gets SIGHUP and its terminal is closed (its writes fail from then on),
or it gets SIGTERM.  Each time, within a bound, the demo must be gone with
everything it made: no process (the demo, its supervisor, the exchange
simulator), no namespace, no link, no pin, no state file, no engine.  The
demo uses the lab named hft-lab (interfaces hft0/hftx0): only this track's
tests use it, one at a time (test_app_demo.py, here).

``HFT_SIGNAL_RUNS`` sets how many times (default 10).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_app_demo import DEMO_LAB, HFT_TUI, demo_leftovers

from hft_tui import lab
from hft_tui.bench.app_perf import AppInTerminal

RUNS = int(os.environ.get("HFT_SIGNAL_RUNS", "10"))
# The demo must be gone this long after the signal: the app's own way out
# takes ~1-3 s, the watchdog steps in after APP_EXIT_S (app/shutdown.py).
GONE_WITHIN_S = 30.0
TRADING_WITHIN_S = 90.0
AFTER_TRADING_S = 3.0  # the latest moment: this long into trading


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


class ProcessTree:
    """Every process the demo starts (and theirs), seen while it runs: (pid, start time)."""

    def __init__(self, root: int) -> None:
        self.seen: set[tuple[int, int]] = set()
        self.root = root
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            todo = [self.root]
            while todo:
                pid = todo.pop()
                started = _start_time(pid)
                if started is not None:
                    self.seen.add((pid, started))
                    todo += _children(pid)
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[str]:
        left = []
        for pid, started in sorted(self.seen):
            if _start_time(pid) == started:
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    left.append(f"pid {pid} ({cmd.strip()})")
        return left


def stack_of(pid: int) -> str:
    """What a process that did not end is doing (py-spy, when it is installed)."""
    spy = Path(HFT_TUI).with_name("py-spy")
    if not spy.exists():
        return "(py-spy not installed)"
    try:
        return subprocess.run([str(spy), "dump", "-p", str(pid)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(py-spy: {exc})"


def close_terminal(app: AppInTerminal) -> None:
    """The terminal window goes away: its master side closes, so the demo's
    writes to it fail from now on (and its reads see the end)."""
    try:
        os.close(app.master)
    except OSError:
        pass
    app.master = -1


def one_run(delay: float, signum: int) -> tuple[float, str]:
    """Starts the demo, signals it ``delay`` s later (or that long after TRADING
    when delay < 0); returns (seconds until it was gone, what it printed)."""
    assert demo_leftovers() == [], "the demo lab is in use or left over: 'hft-tui lab down' removes it"
    app = AppInTerminal([HFT_TUI, "--demo"])
    tree = ProcessTree(app.proc.pid)
    try:
        if delay < 0:
            try:
                app.wait_for(b"TRADING", timeout=TRADING_WITHIN_S)
            except RuntimeError:
                said = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", app.tail[-2000:]).decode(errors="replace")
                pytest.fail(f"the demo did not reach TRADING (exit code {app.proc.poll()}): {said.strip()}")
            time.sleep(-delay)
        else:
            time.sleep(delay)
        signalled = time.monotonic()
        os.kill(app.proc.pid, signum)
        if signum == signal.SIGHUP:
            close_terminal(app)
        try:
            app.proc.wait(GONE_WITHIN_S)
        except subprocess.TimeoutExpired:
            stack = stack_of(app.proc.pid)
            pytest.fail(f"the demo was still there {GONE_WITHIN_S:.0f} s after signal {signum}:\n{stack}")
        took = time.monotonic() - signalled
        # Its children end right after it (the supervisor on PDEATHSIG).
        deadline = time.monotonic() + 10
        while tree.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return took, app.tail.decode(errors="replace")
    finally:
        tree.stop()
        left = tree.alive()
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait()
        if app.master >= 0:
            app.close()
        leftovers = demo_leftovers()
        if leftovers or lab.lab_pids(DEMO_LAB):
            lab.down(DEMO_LAB, quiet=True)  # do not leave a broken demo to the next run
        assert left == [], f"processes left after signal {signum} at {delay:.2f} s: {left}"
        assert leftovers == [], f"left after signal {signum} at {delay:.2f} s: {leftovers}"


def moments(runs: int, seed: int) -> list[tuple[float, int]]:
    """(delay, signal): half from the start (start-up, compile, attach, the
    app's first frames), half into trading; one in four a SIGTERM."""
    rnd = random.Random(seed)
    out = []
    for i in range(runs):
        delay = rnd.uniform(0.0, 4.0) if i % 2 == 0 else -rnd.uniform(0.0, AFTER_TRADING_S)
        out.append((round(delay, 3), signal.SIGTERM if i % 4 == 3 else signal.SIGHUP))
    return out


SEED = int(os.environ.get("HFT_SIGNAL_SEED", str(int(time.time()))))


def test_closing_the_terminal_under_the_demo_leaves_nothing_every_time():
    times = []
    for delay, signum in moments(RUNS, SEED):
        took, _out = one_run(delay, signum)
        times.append((delay, signal.Signals(signum).name, round(took, 2)))
    print(f"seed {SEED}: (delay s, signal, gone after s): {times}")
