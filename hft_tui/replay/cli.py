"""``hft-tui replay CAPTURE [--lab N] [--speed X | --max] [--loop N] [--json] [--check CFG]``.

Plays a capture into a lab whose engine interface has an engine attached
(player.py), checks the orders that came back (check.py) and, with
``--check CFG``, backtests the same capture with CFG and says whether the
live orders equal the backtest's, order for order.  They must, when the
engine was attached fresh with CFG and nothing else fed it: the proof that
the backtest tells the truth.  (A config with throttles is a matter of
timing: the live engine's clock is the wall clock of the replay, the
backtest's the capture's, so with --max or --speed they can differ there.)

A loop after the first resets the engine's sequences first (its channels
and every symbol's: what ``engine reset-seq`` does), or the engine would take
the capture's packets for copies of ones it has seen and trade nothing.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from .. import lab as lab_mod
from ..backtest.orders import BacktestOrder
from ..backtest.runner import BacktestResult, run_backtest
from ..config import Config, FeedParams, load_config
from ..engine import EngineHandle, EngineRecord
from ..errors import ConfigError, LabError
from ..locks import control_lock
from ..maps import FEEDS_WITH_CHANNELS
from ..pins import attached_ifaces
from ..simulator.engine_start import EngineStart
from .check import LiveOrders, ReplayChecker
from .player import Player, PlayStats, ReplayFrames, load_frames


def _speed(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v <= 1e6:
        raise argparse.ArgumentTypeError("a speed is above 0 (1: as captured, 10: ten times faster)")
    return v


def _loops(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError("--loop is 0 (until Ctrl-C) or more")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("capture", help="pcap or pcapng file of Ethernet frames (gzip too)")
    p.add_argument("--lab", type=lab_mod.lab_number_arg, metavar="N", help="numbered lab N (default: the demo lab)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=_speed, default=1.0, metavar="X", help="capture time / X (default 1)")
    pace.add_argument("--max", action="store_true", help="as fast as it goes")
    p.add_argument("--loop", type=_loops, default=1, metavar="N", help="play N times (0: until Ctrl-C; default 1)")
    p.add_argument("--json", action="store_true", help="one JSON object (the orders in the backtest's shape)")
    p.add_argument("--check", metavar="CFG", help="backtest the capture with CFG too: do the orders agree?")


@dataclass
class Comparison:
    equal: bool
    live: int
    backtest: int
    first_difference: dict[str, object] | None
    note: str = ""


def compare(live: list[BacktestOrder], bt: list[BacktestOrder], first_id: int) -> Comparison:
    """Order for order; live ids are taken from ``first_id`` on (1 for an engine attached fresh)."""
    shift = first_id - 1
    for i in range(max(len(live), len(bt))):
        a = live[i] if i < len(live) else None
        b = bt[i] if i < len(bt) else None
        ka = (a.id - shift, *a.key[1:]) if a else None
        if a is None or b is None or ka != b.key:
            return Comparison(
                False,
                len(live),
                len(bt),
                {
                    "index": i,
                    "live": a.as_dict() if a else None,
                    "backtest": b.as_dict() if b else None,
                },
            )
    return Comparison(True, len(live), len(bt), None)


def _engine_config(iface: str, record: EngineRecord | None) -> Config | None:
    """The running engine's own config (its maps), for the checks without --check."""
    try:
        with EngineHandle(iface) as h:
            symbols = {}
            for name in h.maps.symbol_names():
                p = h.symbol(name)
                if p is not None:
                    symbols[name] = p
            return Config(
                engine=h.engine_params(),
                symbols=symbols,
                feed=FeedParams(feed=record.feed if record else "hft1"),
            )
    except Exception:
        return None


def reset_sequences(iface: str, feed: str) -> None:
    """Every channel and every symbol's sequence forgotten (module doc)."""
    with EngineHandle(iface) as h, control_lock(iface):
        if feed in FEEDS_WITH_CHANNELS:
            for ch in h.maps.channels(feed):
                h.maps.reset_channel(ch)
        for name in h.maps.symbol_names():
            h.maps.reset_seq(name)


def _engine_seen(before: EngineStart | None, after: EngineStart | None, feed: str) -> int | None:
    """Feed packets the engine counted during the replay (None: no engine to ask)."""
    if before is None or after is None or before.feed_counts is None or after.feed_counts is None:
        return None
    return after.feed_counts.packets - before.feed_counts.packets


def run(args: argparse.Namespace) -> int:
    the_lab = lab_mod.Lab.numbered(args.lab) if args.lab else lab_mod.DEFAULT_LAB
    check_cfg = load_config(args.check) if args.check else None  # a bad config stops before anything is sent
    if args.check and args.loop != 1:
        raise ConfigError("--check compares one play of the capture: leave out --loop")
    iface = the_lab.engine_iface
    engine_mac = lab_mod.engine_mac(the_lab)
    frames = load_frames(args.capture, engine_mac)  # a bad capture stops here, before anything is sent
    if not lab_mod.is_up(the_lab):
        up = f"hft-tui lab up --lab {args.lab}" if args.lab else "hft-tui lab up"
        raise LabError(f"the lab {the_lab.namespace} is not up ({up})")
    attached = iface in attached_ifaces()
    record = EngineRecord.load(iface) if attached else None
    feed = record.feed if record else (check_cfg.feed.feed if check_cfg else "hft1")
    warnings = []
    if not attached:
        warnings.append(f"no engine is attached on {iface}: expect no orders")
    if check_cfg is not None and check_cfg.feed.feed != feed:
        warnings.append(f"the engine reads {feed}, {args.check} says {check_cfg.feed.feed}")
    throttled = check_cfg is not None and (
        check_cfg.engine.rate_per_sec or any(p.rate_per_sec for p in check_cfg.symbols.values())
    )
    if throttled and (args.max or args.speed != 1):
        warnings.append("the config has throttles: at another pace than the capture's they may decide otherwise")
    start = EngineStart.read(iface, feed) if attached else None
    if start is not None and start.last_order_id and check_cfg is not None:
        warnings.append(f"the engine has sent {start.last_order_id} orders before: it was not attached fresh")
    psock = lab_mod.packet_socket(the_lab)
    try:
        player = Player(psock, frames)
        stats = player.play(
            None if args.max else args.speed,
            args.loop,
            before_loop=(lambda _k: reset_sequences(iface, feed)) if attached else None,
        )
    finally:
        psock.close()
    end = EngineStart.read(iface, feed) if attached else None
    config = check_cfg or (_engine_config(iface, record) if attached else None)
    live = ReplayChecker(frames, feed, config, start, engine_mac).check(stats.received, args.loop)
    comparison = None
    bt = None
    if check_cfg is not None:
        bt = run_backtest(args.capture, check_cfg)
        comparison = compare(live.orders, bt.orders, (start.last_order_id + 1) if start else 1)
    out = report(args, the_lab, frames, stats, live, _engine_seen(start, end, feed), comparison, bt, warnings)
    if args.json:
        print(json.dumps(out))
    else:
        print(text(out))
    if live.invalid or (comparison is not None and not comparison.equal):
        return 1
    return 0


def report(
    args: argparse.Namespace,
    the_lab: lab_mod.Lab,
    frames: ReplayFrames,
    stats: PlayStats,
    live: LiveOrders,
    engine_packets: int | None,
    comparison: Comparison | None,
    bt: BacktestResult | None,
    warnings: list[str],
) -> dict[str, object]:
    elapsed = stats.elapsed_s
    return {
        "capture": {
            "path": args.capture,
            "frames": frames.total,
            "udp_frames": len(frames.frames),
            "skipped": frames.skipped,
            "readdressed": frames.readdressed,
            "first_ts": frames.stamps[0] if frames.stamps else None,
            "last_ts": frames.stamps[-1] if frames.stamps else None,
        },
        "lab": the_lab.namespace,
        "pace": "max" if args.max else args.speed,
        "loops": stats.loops_done,
        "frames_sent": stats.frames_sent,
        "engine_packets": engine_packets,
        "orders_received": len(live.orders),
        "order_frames": live.order_frames,
        "other_frames": live.other_frames,
        "invalid_orders": live.invalid,
        "invalid_reasons": dict(sorted(live.reasons.items())),
        "invalid_examples": live.examples,
        "model_checked": live.model_checked,
        "elapsed_s": round(elapsed, 6),
        "frames_per_s": round(stats.frames_per_s, 1),
        "orders_per_s": round(len(live.orders) / elapsed, 1) if elapsed > 0 else 0.0,
        "orders": [o.as_dict() for o in live.orders],
        "check": None
        if comparison is None
        else {
            "config": args.check,
            "equal": comparison.equal,
            "live_orders": comparison.live,
            "backtest_orders": comparison.backtest,
            "first_difference": comparison.first_difference,
            "backtest_frames_per_s": round(bt.frames_per_s, 1) if bt else None,
        },
        "warnings": [*warnings, *([live.model_note] if live.model_note else [])],
    }


def text(out: dict[str, object]) -> str:
    cap = out["capture"]
    assert isinstance(cap, dict)
    pace = "as fast as it goes" if out["pace"] == "max" else f"speed {out['pace']}"
    loops = f"{out['loops']} loop{'s' if out['loops'] != 1 else ''}"
    lines = [
        f"replay of {cap['path']} into {out['lab']} ({pace}, {loops}): "
        f"{out['frames_sent']:,} frames sent in {out['elapsed_s']:.3f} s ({out['frames_per_s']:,.0f} frames/s)",
        f"  capture: {cap['frames']:,} frames, {cap['udp_frames']:,} IPv4/UDP sent, "
        f"{cap['skipped']:,} others not sent, {cap['readdressed']:,} given the engine's MAC",
    ]
    if out["engine_packets"] is not None:
        lines.append(f"  the engine counted {out['engine_packets']:,} feed packets")
    checked = "checked with the strategy model" if out["model_checked"] else "checked as frames"
    lines.append(
        f"  orders received: {out['orders_received']:,} in {out['order_frames']:,} frames "
        f"({out['orders_per_s']:,.0f}/s), {checked}: {out['invalid_orders']} invalid"
    )
    reasons = out["invalid_reasons"]
    assert isinstance(reasons, dict)
    if reasons:
        lines.append("  invalid: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
        examples = out["invalid_examples"]
        assert isinstance(examples, list)
        lines.extend(f"    {e}" for e in examples[:5])
    check = out["check"]
    if isinstance(check, dict):
        if check["equal"]:
            lines.append(
                f"  --check {check['config']}: the live orders equal the backtest's, order for order "
                f"({check['live_orders']:,} orders)"
            )
        else:
            diff = check["first_difference"]
            lines.append(
                f"  --check {check['config']}: the live orders DIFFER from the backtest's "
                f"({check['live_orders']:,} live, {check['backtest_orders']:,} backtest); first at {diff}"
            )
    warnings = out["warnings"]
    assert isinstance(warnings, list)
    lines.extend(f"  warning: {w}" for w in warnings)
    return "\n".join(lines)
