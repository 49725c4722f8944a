"""screenshots/replay.svg: the app on a recorded day (``hft-tui --demo --replay``).

    sudo python -m hft_tui.replay.screenshot [--lab N] [--seconds 12] [--out screenshots]

``make screenshots`` (hft_tui/demo/screenshots.py) calls :func:`shoot_replay`
after the demo's screens.  A fresh machine has no capture, so the lab
records one first (``hft-tui lab feed --format iex-deep --pcap-out``, about
twelve seconds of a DEEP feed into a private temporary directory); then the
demo's replay set-up: a config made from the capture, the engine attached
with it, the feeder looping over the capture, the app on the engine.  The
status bar shows the capture, its clock and progress.  The lab is taken
down afterwards (with a lab number, that lab; else the demo's).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import engine, lab, paths
from ..app.app import HftApp
from ..app.session import EngineSession
from ..config import load_config
from ..pins import attached_ifaces
from ..python_child import CHILD_CWD, python_module_argv
from .demo import DemoReplay

SIZE = (160, 48)


def record_day(the_lab: lab.Lab, lab_number: int | None, path: Path) -> None:
    argv = python_module_argv("hft_tui", "lab", "feed", "--format", "iex-deep", "--batch", "30")
    argv += ["--count", "24000", "--rate", "2000", "--quiet", "--pcap-out", str(path.resolve())]
    if lab_number:
        argv += ["--lab", str(lab_number)]
    subprocess.run(argv, check=True, timeout=120, cwd=CHILD_CWD)


async def _shoot(app: HftApp, out: Path, seconds: float) -> Path:
    session = app.session
    assert isinstance(session, EngineSession)
    async with app.run_test(size=SIZE) as pilot:
        waited = 0.0
        while not (session.poller and session.poller.ticks > 2) and waited < 30:
            await pilot.pause(0.1)
            waited += 0.1
        await pilot.pause(seconds)
        saved = Path(app.save_screenshot(filename="replay.svg", path=str(out)))
        await asyncio.to_thread(app.session.release, "detach")
    return saved


def shoot_replay(out: Path, lab_number: int | None = None, seconds: float = 12.0) -> Path:
    """The screenshot (module doc); the lab is down again afterwards."""
    the_lab = lab.Lab.numbered(lab_number) if lab_number else lab.DEFAULT_LAB
    feed = None
    demo: DemoReplay | None = None
    with tempfile.TemporaryDirectory(prefix="hft-tui-replay-shot-") as d:
        try:
            lab.up(the_lab)
            capture = Path(d) / "deep-day.pcap"
            record_day(the_lab, lab_number, capture)
            demo = DemoReplay(str(capture), None, the_lab, lab_number)
            if the_lab.engine_iface in attached_ifaces():
                engine.detach(the_lab.engine_iface)
            engine.attach(the_lab.engine_iface, load_config(demo.config_path), config_path=demo.config_path)
            feed = subprocess.Popen(demo.feed_argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            app = HftApp(EngineSession(config_path=demo.config_path), iface=the_lab.engine_iface, take_over=True)
            return asyncio.run(_shoot(app, out, seconds))
        finally:
            if feed is not None:
                feed.terminate()
                feed.wait(10)
            if demo is not None:
                demo.cleanup()
            lab.down(the_lab, quiet=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hft_tui.replay.screenshot", description=__doc__.splitlines()[0])
    p.add_argument("--lab", type=int, help="numbered lab to use instead of the demo's")
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--out", default=str(paths.REPO_DIR / "screenshots"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(shoot_replay(out, args.lab, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
