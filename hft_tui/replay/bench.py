"""The replay's speed, as a benchmark figure (issue 12 §4: ``--max`` plays at
least 100,000 frames a second into the lab).

:func:`measure_replay` brings a lab up, attaches the engine with the
backtest benchmark's config (the IEX feed, four symbols, orders to the lab's
gateway), writes the backtest benchmark's capture (67-message DEEP packets,
backtest/bench.py), plays it as fast as it goes (player.Player) and reads
how many packets the engine counted (every frame sent must have reached
it); the lab goes down afterwards.  ``hft-tui bench`` (the bench track) can
call it; so can anyone:

    python -m hft_tui.replay.bench [--lab N] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from .. import engine, lab
from ..backtest.bench import bench_config, write_capture
from ..config import Gateway
from ..maps import FEEDS_WITH_CHANNELS
from ..simulator.engine_start import EngineStart
from .player import Player, load_frames

TARGET_FRAMES_PER_S = 100_000
FRAMES = 100_000
BENCH_LAB = 169  # a lab number of the bench track's range (160-169)


def measure_replay(lab_number: int = BENCH_LAB, frames: int = FRAMES) -> dict[str, object]:
    the_lab = lab.Lab.numbered(lab_number)
    lab.down(the_lab, quiet=True)
    lab.up(the_lab)
    try:
        gw = lab.gateway(the_lab)
        cfg = replace(bench_config(), gateway=Gateway(IPv4Address(gw.ip), gw.port, gw.mac))
        engine.attach(the_lab.engine_iface, cfg)
        with tempfile.TemporaryDirectory(prefix="hft-tui-bench-replay-") as d:
            path = Path(d) / "deep67.pcap"
            write_capture(path, frames)
            loaded = load_frames(str(path), lab.engine_mac(the_lab))
        feed = cfg.feed.feed
        before = EngineStart.read(the_lab.engine_iface, feed)
        psock = lab.packet_socket(the_lab)
        try:
            stats = Player(psock, loaded).play(None, 1)
        finally:
            psock.close()
        after = EngineStart.read(the_lab.engine_iface, feed)
    finally:
        lab.down(the_lab, quiet=True)
    seen = None
    if before and after and before.feed_counts and after.feed_counts and feed in FEEDS_WITH_CHANNELS:
        seen = after.feed_counts.packets - before.feed_counts.packets
    fps = stats.frames_per_s
    return {
        "frames_sent": stats.frames_sent,
        "engine_packets": seen,
        "elapsed_s": round(stats.elapsed_s, 4),
        "frames_per_s": round(fps),
        "frames_returned": len(stats.received),
        "target_frames_per_s": TARGET_FRAMES_PER_S,
        "met": fps >= TARGET_FRAMES_PER_S and seen == stats.frames_sent,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hft_tui.replay.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--lab", type=int, default=BENCH_LAB)
    ap.add_argument("--frames", type=int, default=FRAMES)
    args = ap.parse_args(argv)
    print(json.dumps(measure_replay(args.lab, args.frames)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
