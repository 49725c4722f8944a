"""The program itself, timed with BPF_PROG_TEST_RUN.

With repeat > 1 the kernel runs the program again and again on one buffer
and keeps what the program wrote: after the first run a trading update has
become an order.  So every measurement goes through testrun_harness.c,
which restores the frame from a template, writes a fresh increasing seq
(and, for the symbol figures, the next of N symbols) and tail-calls the
program under test (the strategy, or the trivial XDP_PASS program).  The
figures are therefore measured the same way and each includes the harness;
``harness_overhead`` (trivial through the harness minus trivial alone) says
how much that is.

Each figure is the median of a few runs of ``repeat`` iterations, and each
run is checked against the engine's counters: a trading update that did not
trade on every iteration is an error, not a number.

Nobody drains the ring buffer during a run, and the engine's 4 MiB orders
ring holds about 40,000 order events: in a run of a million trades the rest
would fail fast and make a trade look cheaper than it is.  So the strategy
figures are taken on a copy of the strategy compiled only for measurement
(:class:`MeasuredCopy`), the same source with a larger orders ring
(HFT_RINGBUF_PAGES, big enough for every event of a run) and its own maps
configured like the engine's; a run that drops an event is an error.  The
throughput runs use the same copy.  ``trade_events_written`` is the
deployed program itself, with its own ring, in a trading run short enough
to fit it: the two agree when the ring size costs nothing per event.
"""

from __future__ import annotations

import ctypes
import os
import statistics
from dataclasses import dataclass, replace
from typing import Any

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from .. import libbpf
from ..constants import CTR_REJECT_BASE, NUM_COUNTERS, SYMBOL_LEN, C
from ..errors import EngineError
from ..lab import PASS_PROGRAM
from ..layout import Event
from ..maps import EngineMaps
from ..paths import EBPF_DIR
from ..program import bcc_map_fds, load_strategy
from ..protocol import Update, encode_update
from ..rings import RECORD_STRIDE, RingDrain
from ..symbol import Symbol
from . import BenchError, workload

HARNESS_SOURCE = __file__.rsplit("/", 1)[0] + "/testrun_harness.c"
XDP_PASS, XDP_TX = 2, 3  # enum xdp_action (uapi/linux/bpf.h)
NON_FEED_PORT = 53  # a DNS datagram: well-formed UDP, not the feed
RUNS = 3
RINGBUF_RECORD_HEADER = 8  # BPF_RINGBUF_HDR_SZ; records are 8-byte aligned
CTR_UPDATES = C["HFT_CTR_UPDATES"]
CTR_PASSED = C["HFT_CTR_PASSED"]
CTR_ORDERS = C["HFT_CTR_ORDERS"]
CTR_RINGBUF_DROPS = C["HFT_CTR_RINGBUF_DROPS"]
CTR_TAPE_DROPS = C.get("HFT_CTR_TAPE_DROPS")  # engines with a separate tape ring
CTR_UNKNOWN = CTR_REJECT_BASE + C["HFT_REJECT_UNKNOWN_SYMBOL"]
UNKNOWN_SYMBOL = "NOSUCH"  # configured nowhere
FRAMES = ("trade", "no_trade", "unknown", "non_feed")
MAX_SYMBOLS_DEFINE = "HFT_MAX_SYMBOLS"


def frame(lab, payload: bytes, dport: int) -> tuple[bytes, int]:
    """An Ethernet frame from the exchange to the engine; (bytes, payload offset)."""
    pkt = (
        Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
        / IP(src=lab.exchange_ip, dst=lab.engine_ip)
        / UDP(sport=40000, dport=dport)
        / payload
    )
    raw = bytes(pkt)
    return raw, len(raw) - len(payload)


def frames(lab, feed_port: int, p) -> dict[str, tuple[bytes, int]]:
    sym = workload.TEST_RUN_SYMBOL
    trade = Update(sym, 1, p.buy_target - 2 * p.tick_size, 1, p.buy_target - p.tick_size, 1, 1)
    no_trade = replace(trade, ask=p.buy_target + p.tick_size, bid=p.buy_target)
    unknown = replace(trade, symbol=UNKNOWN_SYMBOL)
    return {
        "trade": frame(lab, encode_update(trade), feed_port),
        "no_trade": frame(lab, encode_update(no_trade), feed_port),
        "unknown": frame(lab, encode_update(unknown), feed_port),
        "non_feed": frame(lab, encode_update(trade), NON_FEED_PORT),
    }


RECORD = (ctypes.sizeof(Event) + RINGBUF_RECORD_HEADER + 7) // 8 * 8  # bytes an event takes in a ring


def ring_capacity(pages: int = C["HFT_RINGBUF_PAGES"]) -> int:
    """Order events a ring of ``pages`` (the engine's by default) holds before it is full."""
    return pages * os.sysconf("SC_PAGE_SIZE") // RECORD


def ring_pages_for(events: int) -> int:
    """The smallest ring (a power of two pages, never below the engine's orders ring) with room for
    ``events``."""
    pages = C["HFT_RINGBUF_PAGES"]
    while ring_capacity(pages) < events:
        pages *= 2
    return pages


def max_symbols_overridable() -> bool:
    """Whether a build may set HFT_MAX_SYMBOLS with -D (the header defines it only when unset)."""
    return f"#ifndef {MAX_SYMBOLS_DEFINE}" in (EBPF_DIR / "hft_structs.h").read_text()


class Rings:
    """Every ring buffer of an engine (orders, and the tape where it has one), emptied without reading:
    the bench is the only reader, and a ring left full would make emitting cheaper than it is."""

    NAMES = ("events", "tape_events")

    def __init__(self, maps) -> None:
        self._rings = {n: RingDrain(maps.fds[n]) for n in self.NAMES if n in maps.fds}

    def discard(self) -> dict[str, int]:
        """Empties every ring; how many records each held."""
        out = {}
        for name, r in self._rings.items():
            prod = r.producer_pos
            out[name] = (prod - r.consumer_pos) // RECORD_STRIDE
            r.commit(prod)
        return out

    def close(self) -> None:
        for r in self._rings.values():
            r.close()
        self._rings = {}


@dataclass
class MeasuredCopy:
    """The strategy compiled for measurement only: an orders ring with room for ``events`` events (and,
    where the header allows it, ``max_symbols`` symbols), its own maps configured like the bench engine."""

    bpf: Any  # the BCC object
    fd: int
    maps: EngineMaps
    rings: Rings
    ring_pages: int
    max_symbols: int

    @classmethod
    def load(
        cls, feed_port: int, events: int, max_symbols: int | None = None, *, feed: str = "hft1", tape_events: int = 0
    ) -> MeasuredCopy:
        """``events``: order events a run or step may write; ``tape_events``: tape events (rejects,
        sampled updates) likewise, when more than the engine's tape ring holds."""
        pages = ring_pages_for(events + 1)
        cflags = [f"-DHFT_RINGBUF_PAGES={pages}"]
        if tape_events > ring_capacity(C["HFT_TAPE_PAGES"]):
            cflags.append(f"-DHFT_TAPE_PAGES={ring_pages_for(tape_events + 1)}")
        if max_symbols and max_symbols_overridable():
            cflags.append(f"-D{MAX_SYMBOLS_DEFINE}={max_symbols}")
        try:
            b, fd = load_strategy(feed, cflags=tuple(cflags))
        except EngineError as exc:
            raise BenchError(f"the measured copy of the strategy ({feed}): {exc}") from None
        maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
        cfg = workload.config(feed_port)
        maps.write_global(cfg.engine, deadman_ms=0, version=1)
        for name, params in cfg.symbols.items():
            maps.write_symbol(name, params)
        held = libbpf.map_info(maps.fds["symbol_config"]).max_entries
        return cls(b, fd, maps, Rings(maps), pages, held)

    def close(self) -> None:
        self.rings.close()
        self.bpf.cleanup()


class _Harness:
    """testrun_harness.c and the trivial program: frames through them, checked against the counters."""

    def __init__(self, lab, feed_port: int) -> None:
        import bcc

        p = workload.config(feed_port).symbols[workload.TEST_RUN_SYMBOL]
        self.frames = frames(lab, feed_port, p)
        self.length, off = len(self.frames["trade"][0]), self.frames["trade"][1]
        if any(len(f) != self.length or o != off for f, o in self.frames.values()):
            raise BenchError("test-run frames differ in length")
        self.bpf = bcc.BPF(
            src_file=HARNESS_SOURCE.encode(),
            cflags=[f"-I{EBPF_DIR}", f"-DHARNESS_FRAME_LEN={self.length}", f"-DHARNESS_PAYLOAD_OFF={off}"],
        )
        self.trivial = bcc.BPF(text=PASS_PROGRAM)
        self.fd = self.bpf.load_func(b"xdp_harness", bcc.BPF.XDP).fd
        self.trivial_fd = self.trivial.load_func(b"xdp_pass", bcc.BPF.XDP).fd
        self.prog_ids = [libbpf.prog_info(self.fd).id, libbpf.prog_info(self.trivial_fd).id]
        self._template = self.bpf.get_table(b"harness_template")
        self._target = self.bpf.get_table(b"harness_target")
        self._nsym = self.bpf.get_table(b"harness_symbol_count")
        self._symbols = self.bpf.get_table(b"harness_symbols")
        self.strategies: dict[int, tuple[Rings, EngineMaps]] = {}  # the caller's, emptied before each run
        self.no_drops = {CTR_RINGBUF_DROPS: 0, **({CTR_TAPE_DROPS: 0} if CTR_TAPE_DROPS is not None else {})}

    def set_symbols(self, names: list[str]) -> None:
        if len(names) > self._symbols.max_entries:
            raise BenchError(f"{len(names)} symbols; the harness holds {self._symbols.max_entries}")
        for i, name in enumerate(names):
            sym = self._symbols.Leaf()
            sym.name = name.encode().ljust(SYMBOL_LEN)
            self._symbols[ctypes.c_uint32(i)] = sym
        self._nsym[ctypes.c_uint32(0)] = ctypes.c_uint32(len(names))

    def run(self, prog_fd: int, raw: bytes, n: int) -> tuple[int, float, list[int]]:
        """(action, ns per run, counter changes: empty for a program that is not a strategy)."""
        self._template[ctypes.c_int(0)] = self._template.Leaf((ctypes.c_uint8 * self.length).from_buffer_copy(raw))
        self._target[ctypes.c_int(0)] = ctypes.c_int(prog_fd)
        if prog_fd not in self.strategies:
            action, _out, ns = libbpf.test_run(self.fd, raw, n)
            return action, ns, []
        rings, m = self.strategies[prog_fd]
        rings.discard()  # room for this run's events
        before = m.counters()
        action, _out, ns = libbpf.test_run(self.fd, raw, n)
        return action, ns, _delta(before, m.counters())

    def check(self, name: str, action: int, d: list[int], n: int) -> None:
        want = {
            "trade": (XDP_TX, {CTR_UPDATES: n, CTR_ORDERS: n, **self.no_drops}),
            "no_trade": (XDP_PASS, {CTR_UPDATES: n, CTR_ORDERS: 0, **self.no_drops}),
            "unknown": (XDP_PASS, {CTR_UPDATES: n, CTR_ORDERS: 0, CTR_UNKNOWN: n, **self.no_drops}),
            "non_feed": (XDP_PASS, {CTR_PASSED: n, CTR_UPDATES: 0, **self.no_drops}),
        }[name]
        rejects = sum(d[CTR_REJECT_BASE:NUM_COUNTERS]) - d[CTR_UNKNOWN] * (name == "unknown")
        if action != want[0] or any(d[k] != v for k, v in want[1].items()) or rejects:
            raise BenchError(
                f"test run '{name}' did not take its path on every iteration, or an event "
                f"was dropped (action {action}, counter changes {d})"
            )

    def close(self) -> None:
        self.bpf.cleanup()
        self.trivial.cleanup()


def _delta(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after)]


def measure(copy: MeasuredCopy, strategy_fd: int, maps, lab, feed_port: int, repeat: int) -> dict:
    """The test-run figures.  ``strategy_fd``/``maps`` are the bench's engine: only
    ``trade_events_written`` runs it; the others run ``copy``, whose ring holds every event."""
    h = _Harness(lab, feed_port)
    deployed_rings = Rings(maps)
    try:
        h.strategies = {copy.fd: (copy.rings, copy.maps), strategy_fd: (deployed_rings, maps)}
        out: dict = {"repeat": repeat, "runs": RUNS}
        runs: dict[str, list[float]] = {}
        drops = tape_drops = 0
        fit = max(1, min(repeat, ring_capacity() * 9 // 10))
        for _ in range(RUNS):
            for name, (raw, _) in h.frames.items():
                action, ns, d = h.run(copy.fd, raw, repeat)
                h.check(name, action, d, repeat)
                runs.setdefault(name, []).append(ns)
                drops += d[CTR_RINGBUF_DROPS]
                if CTR_TAPE_DROPS is not None:
                    tape_drops += d[CTR_TAPE_DROPS]
            trade_raw = h.frames["trade"][0]
            action, ns, _ = h.run(h.trivial_fd, trade_raw, repeat)
            if action != XDP_PASS:
                raise BenchError(f"trivial program returned {action}")
            runs.setdefault("trivial", []).append(ns)
            # Without the harness: only frames the program leaves unchanged.
            runs.setdefault("direct_trivial", []).append(libbpf.test_run(h.trivial_fd, trade_raw, repeat)[2])
            runs.setdefault("direct_non_feed", []).append(libbpf.test_run(copy.fd, h.frames["non_feed"][0], repeat)[2])
            # The deployed program with its own ring, in a trading run short enough to fit it.
            action, ns, d = h.run(strategy_fd, trade_raw, fit)
            h.check("trade", action, d, fit)
            runs.setdefault("trade_events_written", []).append(ns)
        for name in (*FRAMES, "trivial"):
            out[name] = statistics.median(runs[name])
        out["direct"] = {
            "trivial": statistics.median(runs["direct_trivial"]),
            "non_feed": statistics.median(runs["direct_non_feed"]),
        }
        out["harness_overhead"] = out["trivial"] - out["direct"]["trivial"]
        out["trade_events_written"] = statistics.median(runs["trade_events_written"])
        out["trade_events_written_repeat"] = fit
        out["all_runs"] = runs
        out["ringbuf_drops"] = drops
        out["tape_drops"] = tape_drops
        out["test_run_ring_pages"] = copy.ring_pages
        out["method"] = (
            "BPF_PROG_TEST_RUN, repeat per run, median of runs; every figure through the "
            "harness (frame restored from a template, fresh seq, tail call), which "
            "harness_overhead measures. The strategy figures run a copy of the strategy "
            "compiled only for measurement: the same source with an orders ring of "
            f"{copy.ring_pages} pages, big enough that every order event of a run is written "
            "(nobody drains a ring during a run; the engine's own ring would be full after "
            f"{ring_capacity()} trades and later events would fail fast). Every run is checked: "
            "each iteration took its path and no event was dropped (ringbuf_drops, tape_drops: "
            "0). trade_events_written is the deployed program with its own ring, in a trading "
            "run short enough to fit it"
        )
        out["_prog_ids"] = h.prog_ids
        return out
    finally:
        deployed_rings.close()
        h.close()


def measure_symbols(copy: MeasuredCopy, lab, feed_port: int, repeat: int, counts: list[int]) -> list[dict]:
    """ns per trade with the updates cycling through N configured symbols, the map holding only those
    (every one trading), for each N of ``counts`` the copy can hold; the others say why not."""
    h = _Harness(lab, feed_port)
    m = copy.maps
    kept = m.symbol_names()
    p = workload.config(feed_port).symbols[workload.TEST_RUN_SYMBOL]
    out: list[dict] = []
    try:
        h.strategies = {copy.fd: (copy.rings, m)}
        for name in kept:
            m.remove_symbol(name)
        trade_raw = h.frames["trade"][0]
        for n in counts:
            if n > copy.max_symbols:
                out.append({"symbols": n, "ns": None, "why": f"the engine holds at most {copy.max_symbols} symbols"})
                continue
            names = workload.scaling_symbols(n)
            for sym in names:
                m.write_symbol(Symbol(sym), p)
            h.set_symbols(names)
            runs = []
            for _ in range(RUNS):
                action, ns, d = h.run(copy.fd, trade_raw, repeat)
                h.check("trade", action, d, repeat)
                runs.append(ns)
            out.append({"symbols": n, "ns": statistics.median(runs), "all_runs": runs})
            for sym in names:
                m.remove_symbol(Symbol(sym))
        h.set_symbols([])
        return out
    finally:
        for name in kept:
            m.write_symbol(name, workload.config(feed_port).symbols[name])
        h.close()
