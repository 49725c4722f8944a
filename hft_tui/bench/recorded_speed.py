"""The recorded-data figures of ``make bench``: the backtest's and the replay's speed.

Issue 12's two benchmark figures, measured by the modules that own them
(backtest/bench.py: a capture of 67-message IEX DEEP packets through the
backtest, at least 200,000 frames/s on one core; replay/bench.py: the same
capture played with ``--max`` into a lab of its own, at least 100,000
frames/s with every frame counted by the engine), written with the machine
they ran on:

    python -m hft_tui.bench.recorded_speed [--out FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import HftError
from ..safefile import write_file
from .machine import machine


def measure(frames: int | None = None, lab_number: int | None = None) -> dict:
    """Both figures (``frames``: each capture's length; default: each module's own;
    ``lab_number``: the replay's lab, default the replay benchmark's)."""
    from ..backtest.bench import FRAMES as BACKTEST_FRAMES
    from ..backtest.bench import measure as backtest_speed
    from ..replay.bench import BENCH_LAB, measure_replay
    from ..replay.bench import FRAMES as REPLAY_FRAMES

    return {
        "machine": machine(),
        "backtest": backtest_speed(frames or BACKTEST_FRAMES),
        "replay": measure_replay(lab_number or BENCH_LAB, frames or REPLAY_FRAMES),
    }


def summary(result: dict) -> str:
    bt, rp = result["backtest"], result["replay"]
    return "\n".join(
        [
            f"backtest  {bt['frames']:,} frames of {bt['messages_per_frame']} messages: "
            f"{bt['frames_per_s']:,.0f} frames/s (target {bt['target_frames_per_s']:,}: "
            f"{'met' if bt['met'] else 'NOT met'})",
            f"replay    --max {rp['frames_sent']:,} frames into the lab: {rp['frames_per_s']:,.0f} frames/s, "
            f"the engine counted {rp['engine_packets']} (target {rp['target_frames_per_s']:,}: "
            f"{'met' if rp['met'] else 'NOT met'})",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hft_tui.bench.recorded_speed", description=__doc__.splitlines()[0])
    p.add_argument("--out", metavar="FILE", help="also write the result as JSON here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--frames", type=int, help="frames in each capture (default: 200,000 and 100,000)")
    p.add_argument("--lab", type=int, help="the replay's lab number (default 169)")
    args = p.parse_args(argv)
    try:
        result = measure(args.frames, args.lab)
        if args.out:
            write_file(args.out, json.dumps(result, indent=2) + "\n")
    except (HftError, OSError) as exc:
        print(f"recorded speed: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0 if result["backtest"]["met"] and result["replay"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
