"""The exchange simulator: ``hft-tui lab feed``.

It lives in the lab's network namespace, sends market-data updates from the
exchange address to the engine's feed port and checks every order that comes
back on the same UDP socket.  One job a module, in the order a run uses them:

    walk.py          the market: a seeded mean-reverting walk per symbol
    hft1.py          the feed format: updates packed fast into a batch buffer
    engine_start.py  what the engine held when the run began (its pinned maps)
    sender.py        the exchange's socket in the lab, sendmmsg batches, CPU pin
    receiver.py      orders back: each checked, its round trip recorded
    checker.py       the sent log and the order checks (the invalid reasons)
    stats.py         round trips, percentiles, UDP counters, the summary
    runner.py        Simulator: one run, the send loop that ties them together
    cli.py           ``hft-tui lab feed``'s arguments and run()

Another exchange format is another module beside hft1.py (the walk gives
prices, the format gives bytes); what is sent can be written elsewhere too
(a capture) at the one place runner.py hands a batch to the sender; orders
collected another way (a gateway's packet socket) are another receiver.

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
