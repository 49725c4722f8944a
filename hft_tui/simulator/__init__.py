"""The exchange simulator: ``hft-tui lab feed``.

It lives in the lab's network namespace, sends market data from the
exchange address to the engine's feed and checks every order that comes
back.  One job a module, in the order a run uses them:

    options.py       the feed format and its options (batch, group, VLAN, A/B, gaps, capture)
    walk.py          the market: a seeded mean-reverting walk per symbol
    mix.py           what a real feed carries besides quotes, packed into packets
    hft1.py          hft1's bytes (the fast path's batch packer, the frame path's format)
    iex.py, itch.py  IEX-TP TOPS/DEEP and MoldUDP64/ITCH bytes, by hft_tui.feeds
    engine_start.py  what the engine held when the run began (its pinned maps, its channels)
    sender.py        the fast path: the exchange's UDP socket, sendmmsg batches, CPU pin
    receiver.py      the fast path's orders back on that socket, each checked
    frame_path.py    the frame path: whole frames from a packet socket, A/B, gaps, the capture
    collector.py     the frame path's orders: frames collected at the gateway, each checked
    checker.py       the sent logs and the order checks (the invalid reasons)
    stats.py         round trips, percentiles, UDP counters, the summary
    runner.py        Simulator: one run, the fast path's send loop, the choice of path
    cli.py           ``hft-tui lab feed``'s arguments and run()

The names other modules and the tests use are importable from here, and
``add_arguments``/``run`` are what hft_tui.cli's plugin loader calls.
"""

from __future__ import annotations

from ..errors import SimulatorError
from .checker import SENT_LOG_SLOTS, OrderChecker, SentLog, SymbolCounts
from .cli import add_arguments, run
from .engine_start import EngineStart, SymbolStart, config_warnings
from .hft1 import UPDATE, pack_update, update_struct
from .receiver import OrderReceiver
from .runner import GRACE_S, Simulator
from .sender import MAX_BATCH, BatchSender, current_cpu, exchange_socket, pin_thread
from .stats import FeedSummary, RttRecorder, percentile, read_udp_snmp
from .walk import MarketWalk, WalkShape, walk_shape

__all__ = [
    "GRACE_S",
    "MAX_BATCH",
    "SENT_LOG_SLOTS",
    "UPDATE",
    "BatchSender",
    "EngineStart",
    "FeedSummary",
    "MarketWalk",
    "OrderChecker",
    "OrderReceiver",
    "RttRecorder",
    "SentLog",
    "Simulator",
    "SimulatorError",
    "SymbolCounts",
    "SymbolStart",
    "WalkShape",
    "add_arguments",
    "config_warnings",
    "current_cpu",
    "exchange_socket",
    "pack_update",
    "percentile",
    "pin_thread",
    "read_udp_snmp",
    "run",
    "update_struct",
    "walk_shape",
]
