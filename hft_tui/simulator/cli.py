"""``hft-tui lab feed``: its arguments, and a run of the simulator inside the lab.

The simulator is its own process: run() moves the whole process into the
lab's network namespace (only the network namespace, so the engine's pins
stay readable), sends until the count, the duration or Ctrl-C/SIGTERM, and
prints the summary.  The exit code is 0 when no order was invalid.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys

from .. import lab as lab_mod
from .. import paths
from ..capture import check_target
from ..config import load_config
from ..errors import SimulatorError
from ..preflight import require_root
from ..stopflag import StopFlag
from ..symbol import Symbol
from .options import FORMATS, FeedOptions
from .runner import Simulator


def _nonneg_int(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is below 0")
    return n


def _positive_int(text: str) -> int:
    n = _nonneg_int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _port(text: str) -> int:
    n = _nonneg_int(text)
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError("a port is 1..65535")
    return n


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return v


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share of packets (0 <= r < 1)")
    return v


def add_arguments(parser) -> None:
    parser.add_argument(
        "--rate", type=_nonneg_int, default=1000, help="updates per second, 0 = as fast as possible (default 1000)"
    )
    parser.add_argument(
        "--count", type=_nonneg_int, default=10_000, help="updates to send, 0 = until Ctrl-C/SIGTERM (default 10000)"
    )
    parser.add_argument("--symbols", nargs="+", metavar="SYM", help="symbols to quote (default: the config's)")
    parser.add_argument("--seed", type=_nonneg_int, default=1, help="random seed of the market (default 1)")
    parser.add_argument("--config", help="engine config the orders are checked against (default configs/demo.toml)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--lab", type=lab_mod.lab_number_arg, metavar="N", help="numbered lab N (default: the demo lab)"
    )
    parser.add_argument("--port", type=_port, help="engine feed port (default: the config's feed_port)")
    parser.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--first-seq",
        type=_positive_int,
        metavar="N",
        help="first sequence number (default: 1, or after the engine's last one)",
    )
    parser.add_argument("--cpu", type=_nonneg_int, help="CPU to run on (default: the one it starts on)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors (the exit code tells)")
    feed = parser.add_argument_group("the feed (whole frames unless plain hft1)")
    feed.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="hft1",
        help="wire format: hft1 (default), iex-tops, iex-deep or itch (MoldUDP64)",
    )
    feed.add_argument(
        "--batch", type=_positive_int, default=1, metavar="N", help="messages a packet, at most (default 1)"
    )
    feed.add_argument("--group", metavar="ADDR", help="send to this IPv4 multicast group (and its MAC)")
    feed.add_argument("--vlan", type=_positive_int, metavar="ID", help="tag every frame with this 802.1Q VLAN")
    feed.add_argument("--ab", action="store_true", help="send every packet twice: the A and B lines")
    feed.add_argument(
        "--gap-rate", type=_share, default=0.0, metavar="R", help="share of packets not sent (0..1, default 0)"
    )
    feed.add_argument("--pcap-out", metavar="FILE", help="write every frame sent to FILE (pcap, ns times)")


def run(args) -> int:
    require_root()  # it enters the lab's namespace: one clear line, not EPERM from setns
    lab = lab_mod.Lab.numbered(args.lab) if args.lab else lab_mod.Lab()
    config = load_config(args.config or paths.DEMO_CONFIG)
    for name in args.symbols or ():
        Symbol(name)
    feed = FeedOptions(args.format, args.batch, args.group, args.vlan, args.ab, args.gap_rate, args.pcap_out)
    try:
        feed.validate()
        if feed.pcap_out:
            check_target(feed.pcap_out)
    except SimulatorError as exc:
        raise lab_mod.LabError(str(exc)) from None
    if not lab.netns_path.exists():
        raise lab_mod.LabError(f"lab {lab.namespace} is not up (hft-tui lab up)")
    count = args.count
    stopping = StopFlag()  # set from the signal handler: no lock taken
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    # The simulator is its own process: all of it moves into the lab.
    lab_mod.enter_namespace(lab)
    try:
        sim = Simulator(
            lab,
            config,
            seed=args.seed,
            symbols=args.symbols,
            port=args.port,
            first_seq=args.first_seq,
            cpu="auto" if args.cpu is None else args.cpu,
            feed=feed,
        )
        summary = sim.run(count, args.rate, duration=args.duration, stop=stopping.is_set)
    except SimulatorError as exc:
        raise lab_mod.LabError(str(exc)) from None
    if not args.quiet:
        if args.json:
            print(json.dumps(summary.as_dict()))
        else:
            print(summary.text())
            sys.stdout.flush()
    return 0 if summary.invalid_orders == 0 else 1
