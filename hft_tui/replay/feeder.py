"""The demo's feed from a capture: ``hft-tui --demo --replay CAPTURE`` starts it.

    python -m hft_tui.replay.feeder CAPTURE [--lab N] [--speed X] [--auto-config]

Plays the capture into the lab at its own pace (player.Player), again and
again until SIGTERM or SIGINT; before each loop after the first the engine's
sequences are reset (cli.reset_sequences), so every loop trades.  A few
times a second it writes what it is doing for the app's status bar
(replay_status: the capture's name, its clock, the progress, the loop);
the file goes when the feeder does.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .. import lab as lab_mod
from ..engine import EngineRecord
from ..errors import HftError
from ..replay_status import ReplayStatus, clear_status, write_status
from ..stopflag import StopFlag
from .cli import reset_sequences
from .player import Player, load_frames

STATUS_EVERY_S = 0.25


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hft_tui.replay.feeder", description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--lab", type=lab_mod.lab_number_arg, metavar="N")
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--auto-config", action="store_true", help="the engine's config was made from the capture")
    args = ap.parse_args(argv)
    the_lab = lab_mod.Lab.numbered(args.lab) if args.lab else lab_mod.DEFAULT_LAB
    iface = the_lab.engine_iface
    stopping = StopFlag()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        record = EngineRecord.load(iface)
        feed = record.feed if record else "hft1"
        frames = load_frames(args.capture, lab_mod.engine_mac(the_lab))
        name = Path(args.capture).name
        last = [0.0]

        def progress(loop: int, index: int, ts: int) -> None:
            now = time.monotonic()
            if now - last[0] >= STATUS_EVERY_S or index == len(frames.frames) - 1:
                last[0] = now
                status = ReplayStatus(name, ts, index, len(frames.frames), loop + 1, args.auto_config, os.getpid())
                write_status(iface, status)

        psock = lab_mod.packet_socket(the_lab)
        try:
            Player(psock, frames, wake=stopping.fileno()).play(
                args.speed,
                0,
                before_loop=lambda _k: reset_sequences(iface, feed),
                stop=stopping.is_set,
                progress=progress,
                grace_s=0,
            )
        finally:
            psock.close()
    except HftError as exc:
        print(f"hft-tui replay feeder: error: {exc}", file=sys.stderr)
        return 1
    finally:
        clear_status(iface)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
