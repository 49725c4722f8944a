"""``hft-tui backtest CAPTURE --config CFG [--json] [--orders-csv FILE] [--from TIME] [--to TIME]
[--set SYM.key=v1,v2 ...] [--jobs N]``: the verb's arguments and its run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import load_config
from ..errors import ConfigError
from ..safefile import NewFile, write_file
from .report import orders_csv, result_dict, summary_text
from .runner import run_backtest
from .sweep import parse_axis, run_sweep, sweep_table
from .window import parse_time


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


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    start = parse_time(args.start, "--from") if args.start else None
    end = parse_time(args.end, "--to") if args.end else None
    if args.orders_csv:
        NewFile(Path(args.orders_csv)).abort()  # a target that may not be written: refused before anything runs
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
        write_file(args.orders_csv, orders_csv(result))  # whole, 0600, never through a planted link
    if args.json:
        print(json.dumps(result_dict(result)))
    else:
        print(summary_text(result))
        if args.orders_csv:
            print(f"\n{len(result.orders):,} orders written to {args.orders_csv}", file=sys.stderr)
    return 0
