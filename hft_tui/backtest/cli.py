"""``hft-tui backtest CAPTURE --config CFG [--json] [--orders-csv FILE] [--from TIME] [--to TIME]
[--set SYM.key=v1,v2 ...] [--jobs N]``: the verb's arguments and its run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..capture import check_target
from ..config import load_config
from ..errors import CaptureError, ConfigError
from .report import orders_csv, result_dict, summary_text
from .runner import run_backtest
from .sweep import parse_axis, run_sweep, sweep_table
from .window import parse_time

FILE_MODE = 0o600


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("capture", help="pcap or pcapng file of Ethernet frames (gzip too)")
    p.add_argument("--config", required=True, help="the engine's TOML config (its feed, symbols, gateway)")
    p.add_argument("--json", action="store_true", help="one JSON object (a sweep: a list)")
    p.add_argument("--orders-csv", metavar="FILE", help="write the orders to FILE (CSV, mode 0600)")
    p.add_argument("--from", dest="start", metavar="TIME", help="first capture time run (see README)")
    p.add_argument("--to", dest="end", metavar="TIME", help="last capture time run (inclusive)")
    p.add_argument(
        "--set",
        dest="sweep",
        action="append",
        metavar="SYM.key=v1,v2",
        help="a sweep: every combination of these values (SYM.key, or an engine key), repeatable",
    )
    p.add_argument("--jobs", type=int, metavar="N", help="a sweep's variants run N at a time (default: every CPU)")


def write_private(path: str, text: str) -> None:
    """``text`` becomes ``path`` whole (mode 0600) or not at all: a temporary
    file in the same directory, renamed over it (capture.check_target
    refuses a directory others could swap the file in)."""
    target = Path(path)
    check_target(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CaptureError(f"cannot write {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    start = parse_time(args.start, "--from") if args.start else None
    end = parse_time(args.end, "--to") if args.end else None
    if args.orders_csv:
        check_target(Path(args.orders_csv))  # refused before anything runs
    if args.sweep:
        if args.orders_csv:
            raise ConfigError("--orders-csv writes one backtest's orders: run the variant you want without --set")
        axes = [parse_axis(text, config) for text in args.sweep]
        results = run_sweep(args.capture, config, axes, jobs=args.jobs, start=start, end=end)
        if args.json:
            print(json.dumps([r.as_dict() for r in results]))
        else:
            print(f"sweep of {args.capture}: {len(results)} variants, best PnL first")
            print(sweep_table(results))
        return 0
    if args.jobs is not None:
        raise ConfigError("--jobs is for a sweep (--set)")
    result = run_backtest(args.capture, config, start=start, end=end)
    if args.orders_csv:
        write_private(args.orders_csv, orders_csv(result))
    if args.json:
        print(json.dumps(result_dict(result)))
    else:
        print(summary_text(result))
        if args.orders_csv:
            print(f"\n{len(result.orders):,} orders written to {args.orders_csv}", file=sys.stderr)
    return 0
