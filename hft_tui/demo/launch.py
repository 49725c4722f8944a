"""``hft-tui --demo`` / ``make demo``: the lab, an attached engine, a feed, the app.

Brings the default lab up, attaches the engine to its interface with the
demo config, starts the exchange simulator inside the lab (a continuous
feed whose random walks cross the targets), opens the app on that engine,
and on the way out stops the feed and takes the lab down (which detaches
the engine).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import time

from .. import engine, lab, paths
from ..config import load_config
from ..pins import attached_ifaces
from ..python_child import CHILD_CWD, python_module_argv
from ..safefile import open_private_log

DEMO_RATE = 1000  # updates a second: lively, and still readable on the tape
FEED_LOG = paths.RUN_DIR / "demo-feed.log"


def feed_command(config_path: str, rate: int = DEMO_RATE, lab_number: int | None = None) -> list[str]:
    """The exchange simulator when it is there, else the app's own random walk
    (isolated Python, run from /: the config's path is made absolute)."""
    sim = importlib.import_module("hft_tui.simulator")
    lab_args = ["--lab", str(lab_number)] if lab_number else []
    args = ["--rate", str(rate), "--count", "0", "--config", os.path.abspath(config_path), *lab_args]
    if hasattr(sim, "Simulator"):
        return python_module_argv("hft_tui", "lab", "feed", *args)
    return python_module_argv("hft_tui.demo.walk", *args)


def start_feed(
    config_path: str, rate: int = DEMO_RATE, lab_number: int | None = None, argv: list[str] | None = None
) -> subprocess.Popen:
    paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = open_private_log(FEED_LOG, append=False)  # 0600; the feed process writes to it for its whole life
    # Its own session: the terminal's signals go to the app, which stops it.
    return subprocess.Popen(
        argv or feed_command(config_path, rate, lab_number),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=CHILD_CWD,
    )


def stop_feed(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare(the_lab: lab.Lab, config_path: str, mode: str | None) -> None:
    """Lab up and a fresh engine attached (a leftover from an earlier demo is replaced)."""
    lab.up(the_lab)
    if the_lab.engine_iface in attached_ifaces():
        engine.detach(the_lab.engine_iface)
    engine.attach(the_lab.engine_iface, load_config(config_path), mode=mode, config_path=str(config_path))


def run_demo(args) -> int:
    """The demo's whole life under one signal watch (app/shutdown.py): SIGHUP or
    SIGTERM at any moment, from the first step on, ends it with the engine
    killed and detached and the lab removed; if its way out gets stuck, the
    watchdog does that itself."""
    from ..app import EXIT_ERROR, run_app, say, startup_problem
    from ..app.app import HftApp
    from ..app.formatting import one_line
    from ..app.session import EngineSession
    from ..app.shutdown import SignalWatch

    problem = startup_problem(args)
    if problem:
        print(f"hft-tui: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    the_lab = lab.DEFAULT_LAB
    replay = None
    if getattr(args, "replay", None):  # a capture instead of the simulator (hft_tui/replay/demo.py)
        from ..replay.demo import DemoReplay

        try:
            replay = DemoReplay(args.replay, args.config, the_lab)
        except Exception as exc:
            say(f"hft-tui: error: demo: {one_line(exc)}")
            return 1
        say(f"hft-tui demo: {replay.describe()}")
    config_path = replay.config_path if replay else str(args.config or paths.DEMO_CONFIG)
    feed: subprocess.Popen | None = None

    def take_down(signum: int | None = None) -> None:
        """What the demo made goes: the feed, the replay's files, then the lab (which detaches the engine)."""
        if feed is not None:
            stop_feed(feed)
        if replay is not None:
            replay.cleanup()
        for line in lab.down(the_lab, quiet=True):
            say(f"hft-tui demo: {line}")

    signals = SignalWatch().install()
    signals.safety.append(take_down)
    try:
        say(f"hft-tui demo: lab {the_lab.namespace}, engine on {the_lab.engine_iface}, config {config_path}")
        prepare(the_lab, config_path, args.mode)
        if signals.signum is None:
            feed = start_feed(config_path, argv=replay.feed_argv() if replay else None)
            time.sleep(0.2)
            if feed.poll() is not None:
                say(f"hft-tui: error: the exchange simulator exited at once: see {FEED_LOG}")
                return 1
        if signals.signum is not None:  # stopped while it was being set up: no app
            say(f"hft-tui: stopped by signal {signals.signum}")
            return 128 + signals.signum
        session = EngineSession(config_path=config_path, poll_hz=args.poll_hz)
        app = HftApp(session, iface=the_lab.engine_iface, mode=args.mode, take_over=True, signal_policy="detach")
        return run_app(app, signals=signals)
    except Exception as exc:
        say(f"hft-tui: error: demo: {one_line(exc)}")
        return 1
    finally:
        with contextlib.suppress(Exception):
            take_down()
        signals.finished()
