"""One backtest: a capture through the live engine's program, frame by frame.

    result = run_backtest("day.pcap", load_config("cfg.toml"))

The capture is opened first (a file that is not a capture is refused before
anything is compiled), then the program is built for the config's feed
(engine.BacktestEngine), then every frame goes through it in capture order
(loop.TestRunLoop: the clock set to the frame's capture time, one
BPF_PROG_TEST_RUN); the frames it sent are checked and booked
(orders.OrderFrames, orders.Ledger) and held against its maps at the end
(orders.cross_check).  A failed check is an error (BacktestError), not a
result.  ``elapsed_s`` is the run itself: reading the capture, the test runs
and the checks, not the compilation.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ..capture_reader import CaptureReader
from ..config import Config
from ..errors import HftError
from ..maps import Snapshot
from . import loop as loop_mod
from .engine import BacktestEngine
from .loop import TestRunLoop
from .orders import BacktestOrder, Book, Ledger, OrderFrames, cross_check
from .window import TimeBound, window_ns


class BacktestError(HftError):
    """The backtest cannot run, or its program did something it must not."""


@dataclass(frozen=True)
class SymbolResult:
    """One symbol at the end (money in 1e-4 units; ``pnl`` marked to the program's mark)."""

    position: int
    bought: int
    sold: int
    capital_spent: int
    proceeds: int
    pnl: int
    buys: int = 0
    sells: int = 0
    max_position: int = 0


@dataclass
class BacktestResult:
    path: str
    capture_format: str  # "pcap" or "pcapng" (", gzip" appended when compressed)
    frames: int  # frames inside the window (all of them without --from/--to)
    udp_frames: int  # of which IPv4/UDP: the frames the program ran on
    first_ts: int | None  # capture time of the window's first and last frame, ns since the epoch
    last_ts: int | None
    feed: dict[str, object]
    orders: list[BacktestOrder]
    symbols: dict[str, SymbolResult]
    rejects: dict[str, int]
    elapsed_s: float
    program_hash: str = ""
    actions: dict[str, int] = field(default_factory=dict)  # XDP actions of the frames run

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def pnl(self) -> int:
        return sum(s.pnl for s in self.symbols.values())

    @property
    def max_position(self) -> int:
        return max((s.max_position for s in self.symbols.values()), default=0)

    @property
    def reject_total(self) -> int:
        return sum(self.rejects.values())


def feed_status(config: Config, snap: Snapshot) -> dict[str, object]:
    """``feed`` as ``engine status --json`` has it (issue 11 §4)."""
    counts = snap.feed
    return {
        "format": config.feed.feed,
        "port": config.engine.feed_port,
        "addr": str(config.feed.feed_addr) if config.feed.feed_addr else None,
        "messages": counts.messages if counts else 0,
        "in_transition": counts.in_transition if counts else 0,
        "truncated_packets": counts.truncated_packets if counts else 0,
        "channels": [c.as_dict() for c in snap.channels],
    }


def _symbols(config: Config, ledger: Ledger, snap: Snapshot) -> dict[str, SymbolResult]:
    marks = {str(name): st.mark for name, (_cfg, st) in snap.symbols.items()}
    names = sorted({*(str(n) for n in config.symbols), *ledger.books})
    out = {}
    for name in names:
        b = ledger.books.get(name, Book())
        pnl = b.proceeds - b.capital_spent + b.position * marks.get(name, 0)
        out[name] = SymbolResult(
            b.position, b.bought, b.sold, b.capital_spent, b.proceeds, pnl, b.buys, b.sells, b.max_position
        )
    return out


def run_backtest(
    path: str | os.PathLike[str],
    config: Config,
    *,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
) -> BacktestResult:
    """The backtest of one capture with one config (module doc)."""
    loop_mod.prepare()
    with CaptureReader(path) as reader, BacktestEngine(config) as engine:
        frames = OrderFrames(config.feed.feed, engine.route, config.engine.max_orders_per_packet)
        ledger = Ledger()
        t0 = time.perf_counter()
        tl: TestRunLoop | None = None
        try:
            for batch in reader.batches():
                if tl is None:
                    lo, hi = window_ns(start, end, batch.stamps[0]) if len(batch) else (0, 0)
                    tl = TestRunLoop(engine.prog_fd, engine.clock_fd, lo, hi)
                for sent in tl.run(batch):
                    frames.add(sent)
        except loop_mod.LoopFailure as exc:
            raise BacktestError(f"backtest {path}: {exc}") from None
        for o in frames.orders:
            ledger.book(o)
        elapsed = time.perf_counter() - t0
        snap = engine.maps.snapshot(config.feed.feed)
        problems = [*frames.examples, *cross_check(ledger, snap, len(frames.orders))]
        if problems:
            more = frames.problems + len(problems) - len(frames.examples) - 1
            tail = f" (and {more} more)" if more > 0 else ""
            raise BacktestError(f"backtest {path}: the program's orders failed a check: {problems[0]}{tail}")
        counts = tl.count if tl is not None else (lambda _i: 0)
        window = counts(loop_mod.WINDOW)
        return BacktestResult(
            path=str(path),
            capture_format=reader.format + (", gzip" if reader.compressed else ""),
            frames=window,
            udp_frames=counts(loop_mod.FED),
            first_ts=counts(loop_mod.FIRST_TS) if window else None,
            last_ts=counts(loop_mod.LAST_TS) if window else None,
            feed=feed_status(config, snap),
            orders=frames.orders,
            symbols=_symbols(config, ledger, snap),
            rejects=dict(snap.rejects),
            elapsed_s=elapsed,
            program_hash=engine.program_hash,
            actions={
                name: counts(i)
                for name, i in (
                    ("tx", loop_mod.TX),
                    ("pass", loop_mod.PASS),
                    ("drop", loop_mod.DROP),
                    ("aborted", loop_mod.ABORTED),
                    ("redirect", loop_mod.REDIRECT),
                )
            },
        )
