"""Regenerates screenshots/*.svg from the real app in the demo.

    sudo python -m hft_tui.demo.screenshots [--lab N] [--seconds 20] [--out screenshots]

The demo's set-up (lab, engine attached with configs/demo.toml, the
exchange simulator trading) with the app on it, driven by its keys; each
screen is saved with Textual's own SVG export.  Without --lab it uses the
demo's lab (hft-lab, hft0) and takes it down afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from textual.coordinate import Coordinate

from .. import lab, paths
from ..app.app import HftApp
from ..app.formatting import one_line
from ..app.session import EngineSession
from ..app.widgets.params import SymbolParamsTable
from ..config import SYMBOL_KEYS
from . import launch

SIZE = (160, 48)
SMALL = (80, 24)  # the standard terminal: the trading and killed screens at this size too
SCREENS = ("trading", "parameters", "interfaces", "risk", "trading-80x24", "killed-80x24", "killed", "help")


async def shoot(app: HftApp, out: Path, seconds: float) -> list[Path]:
    saved = []

    def save(name: str) -> None:
        saved.append(Path(app.save_screenshot(filename=f"{name}.svg", path=str(out))))

    session = app.session
    assert isinstance(session, EngineSession), "the screenshots are of the real engine"
    async with app.run_test(size=SIZE) as pilot:
        waited = 0.0
        while not (session.poller and session.poller.ticks > 2) and waited < 30:
            await pilot.pause(0.1)
            waited += 0.1
        await pilot.pause(seconds)  # let the chart and the tape fill
        save("trading")

        await pilot.press("2")
        table = app.main.query_one("#symbol-params", SymbolParamsTable)
        table.cursor_coordinate = Coordinate(0, list(SYMBOL_KEYS).index("sell_target") + 1)
        await pilot.press("enter", *"190.1")  # below the buy target: refused as typed
        await pilot.pause(0.5)
        save("parameters")
        await pilot.press("escape")

        await pilot.press("3")
        await pilot.pause(2.5)  # the interface list refreshes every 2 s
        save("interfaces")

        await pilot.press("4")
        await pilot.pause(1.5)
        save("risk")

        await pilot.resize_terminal(*SMALL)
        await pilot.press("1")
        await pilot.pause(1.5)
        save("trading-80x24")

        await pilot.press("ctrl+k")
        await pilot.pause(2.0)
        save("killed-80x24")

        await pilot.resize_terminal(*SIZE)
        await pilot.pause(1.5)
        save("killed")

        await pilot.press("question_mark")
        await pilot.pause(0.5)
        save("help")
        await pilot.press("escape")

        await asyncio.to_thread(app.session.release, "detach")  # netlink wants its own loop
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hft_tui.demo.screenshots", description=__doc__.splitlines()[0])
    p.add_argument("--lab", type=int, help="numbered lab to use instead of the demo's")
    p.add_argument("--seconds", type=float, default=20.0, help="trading time before the first screenshot")
    p.add_argument("--out", default=str(paths.REPO_DIR / "screenshots"))
    args = p.parse_args(argv)
    the_lab = lab.Lab.numbered(args.lab) if args.lab else lab.DEFAULT_LAB
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = str(paths.DEMO_CONFIG)
    feed = None
    try:
        launch.prepare(the_lab, config, None)
        feed = launch.start_feed(config, lab_number=args.lab)
        app = HftApp(EngineSession(config_path=config), iface=the_lab.engine_iface, take_over=True)
        for path in asyncio.run(shoot(app, out, args.seconds)):
            print(path)
    except Exception as exc:
        print(f"screenshots: error: {one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        if feed is not None:
            launch.stop_feed(feed)
        lab.down(the_lab, quiet=True)
    try:  # the app on a recorded day (hft-tui --demo --replay): hft_tui/replay/screenshot.py
        from ..replay.screenshot import shoot_replay

        print(shoot_replay(out, args.lab))
    except Exception as exc:
        print(f"screenshots: error: replay: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
