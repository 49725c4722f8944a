"""``hft-tui bench``: the latency and throughput benchmark (``make bench``).

In a numbered lab, the same exchange-side client sends the same updates to
each variant (bare reflector, engine native and generic, the Python bot and
the C bot on their own core and on the simulator's core), interleaved, and
times every round trip from the echoed send time to the kernel's receive
timestamp of the order, and every tick-to-trade on the wire (BPF stamps on
the exchange's end of the veth).  Then BPF_PROG_TEST_RUN times the program
itself, and the throughput runs find how many updates a core (and two)
turns into orders with every one accounted for.  See runner.py for the sequence and report.py for the output.

This module stays light: ``python -m hft_tui.bench.python_bot`` imports it.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import HftError


class BenchError(HftError):
    """Anything that stops the benchmark; its text is the one line the user sees."""


DEFAULT_COUNT = 5000
DEFAULT_LAB = 50


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--count",
        type=_positive(int),
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"measured round trips per variant and pattern (default {DEFAULT_COUNT})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    parser.add_argument(
        "--lab",
        type=int,
        default=DEFAULT_LAB,
        metavar="N",
        help=f"number of the lab the bench creates and removes (default {DEFAULT_LAB})",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="where results.json, results.md and latency.svg go (default docs/bench)"
    )
    parser.add_argument("--no-save", action="store_true", help="write no files, only print")
    parser.add_argument(
        "--rounds",
        type=_positive(int),
        default=10,
        help="interleaving rounds: each variant runs count/rounds trips per turn (default 10)",
    )
    parser.add_argument(
        "--paced-rate",
        type=_positive(int),
        default=1000,
        metavar="PER_SEC",
        help="update rate of the paced pattern (default 1000/s)",
    )
    parser.add_argument(
        "--sim-cpu", type=int, metavar="CPU", help="CPU of the exchange simulator (default: first allowed)"
    )
    parser.add_argument("--bot-cpu", type=int, metavar="CPU", help="a bot's own CPU (default: second allowed)")
    parser.add_argument(
        "--repeat", type=_positive(int), default=1_000_000, help="BPF_PROG_TEST_RUN repeat (default 1000000)"
    )
    parser.add_argument(
        "--throughput-frames",
        type=_positive(int),
        default=1_000_000,
        metavar="N",
        help="updates sent in each throughput step (default 1000000)",
    )


def run(args: argparse.Namespace) -> int:
    from . import report, runner
    from .options import Options

    try:
        opts = Options.from_args(args)
        result = runner.run_bench(opts, progress=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"hft-tui: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"hft-tui: error: the bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(report.to_json(result))
    else:
        print(report.markdown(result))
    if result.get("files"):
        print("bench: wrote " + ", ".join(result["files"]), file=sys.stderr)
    return 0
