"""The watchdog behind SIGHUP/SIGTERM (hft_tui/app/shutdown.py), without a kernel.

The app runs in a process of its own (the watchdog ends the process) on the
recorded engine views (tests/recorded.py), headless, and signals itself.
When its way out gets stuck (here: releasing the engine never returns, as
the app once hung in Textual's writer queue), the watchdog does the safety
steps itself, in order (the app's: kill switch, supervision ended; then the
caller's: the demo's lab) and ends the process with 128 + the signal.  When
the way out is not stuck, the watchdog does nothing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

TESTS = Path(__file__).parent

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from recorded import load
    from stand_in import StandInSession, supervising
    from hft_tui.app import run_app
    from hft_tui.app.app import HftApp
    from hft_tui.app.shutdown import SignalWatch

    OUT = {out!r}
    STUCK = {stuck!r}

    def note(line):
        with open(OUT, "a") as f:
            f.write(line + "\\n")

    class Session(StandInSession):
        def release(self, policy):
            note(f"release {{policy}}")
            if STUCK:
                threading.Event().wait()  # never returns: the app cannot exit
            return super().release(policy)

        def abandon(self):
            note(f"abandon {{self.supervised}}")
            return super().abandon()

    rec = load()
    app = HftApp(Session(rec), iface=rec.iface, take_over=True, crash_log=OUT + ".crash")
    signals = SignalWatch(app_exit_s={app_exit_s}, cleanup_s=5.0, log=Path(OUT + ".log")).install()
    signals.safety.append(lambda signum: note(f"the caller's step {{signum}}"))

    async def signalled(pilot):
        await supervising(pilot)
        os.kill(os.getpid(), {signum})
        await pilot.pause(0.2)

    try:
        code = run_app(app, signals=signals, headless=True, size=(80, 24), auto_pilot=signalled)
        note(f"exited {{code}}")
    finally:
        signals.finished()
    sys.exit(code)
    """
)


def run(tmp_path: Path, *, stuck: bool, signum: int, app_exit_s: float = 1.0) -> tuple[int, list[str], float]:
    out = tmp_path / "steps.txt"
    script = SCRIPT.format(tests=str(TESTS), out=str(out), stuck=stuck, app_exit_s=app_exit_s, signum=int(signum))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    steps = out.read_text().splitlines() if out.exists() else []
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, steps, took


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stuck_way_out_is_taken_over_by_the_watchdog(tmp_path, signum):
    code, steps, _ = run(tmp_path, stuck=True, signum=signum)
    assert code == 128 + signum
    # The app's way out began (and hung); the watchdog set the kill switch and ended
    # supervision, then ran the caller's step; nothing after that ran.
    iface = steps[1].split()[1] if len(steps) > 1 else "?"
    assert steps == ["release kill", f"abandon {iface}", f"the caller's step {int(signum)}"]
    logged = (tmp_path / "steps.txt.log").read_text()
    assert f"stopped by signal {int(signum)}; the app did not exit in time: the watchdog took over" in logged


def test_the_watchdog_does_nothing_when_the_app_leaves_in_time(tmp_path):
    code, steps, _ = run(tmp_path, stuck=False, signum=signal.SIGTERM, app_exit_s=10.0)
    assert code == 128 + signal.SIGTERM
    assert steps == ["release kill", f"exited {128 + signal.SIGTERM}"]
    assert not (tmp_path / "steps.txt.log").exists()
