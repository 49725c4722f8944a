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
import subprocess
import sys
import time

from .. import engine, lab, paths
from ..config import load_config
from ..pins import attached_ifaces

DEMO_RATE = 1000  # updates a second: lively, and still readable on the tape
FEED_LOG = paths.RUN_DIR / "demo-feed.log"


def feed_command(config_path: str, rate: int = DEMO_RATE, lab_number: int | None = None) -> list[str]:
    """The exchange simulator when it is there, else the app's own random walk."""
    sim = importlib.import_module("hft_tui.simulator")
    lab_args = ["--lab", str(lab_number)] if lab_number else []
    if hasattr(sim, "Simulator"):
        return [
            sys.executable,
            "-m",
            "hft_tui",
            "lab",
            "feed",
            "--rate",
            str(rate),
            "--count",
            "0",
            "--config",
            str(config_path),
            *lab_args,
        ]
    return [
        sys.executable,
        "-m",
        "hft_tui.demo.walk",
        "--rate",
        str(rate),
        "--count",
        "0",
        "--config",
        str(config_path),
        *lab_args,
    ]


def start_feed(config_path: str, rate: int = DEMO_RATE, lab_number: int | None = None) -> subprocess.Popen:
    paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = open(FEED_LOG, "w")  # noqa: SIM115 - the feed process writes to it for its whole life
    # Its own session: the terminal's signals go to the app, which stops it.
    return subprocess.Popen(
        feed_command(config_path, rate, lab_number),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
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
    config_path = str(args.config or paths.DEMO_CONFIG)
    feed: subprocess.Popen | None = None

    def take_down(signum: int | None = None) -> None:
        """What the demo made goes: the feed, then the lab (which detaches the engine)."""
        if feed is not None:
            stop_feed(feed)
        for line in lab.down(the_lab, quiet=True):
            say(f"hft-tui demo: {line}")

    signals = SignalWatch().install()
    signals.safety.append(take_down)
    try:
        say(f"hft-tui demo: lab {the_lab.namespace}, engine on {the_lab.engine_iface}, config {config_path}")
        prepare(the_lab, config_path, args.mode)
        if signals.signum is None:
            feed = start_feed(config_path)
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
