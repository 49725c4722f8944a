"""The program itself, timed with BPF_PROG_TEST_RUN.

With repeat > 1 the kernel runs the program again and again on one buffer
and keeps what the program wrote: after the first run a trading update has
become an order.  So every measurement goes through testrun_harness.c,
which restores the frame from a template, writes a fresh increasing seq and
tail-calls the program under test (the strategy, or the trivial XDP_PASS
program).  The four figures are therefore measured the same way and each
includes the harness; ``harness_overhead`` (trivial through the harness
minus trivial alone) says how much that is.

Each figure is the median of a few runs of ``repeat`` iterations, and each
run is checked against the engine's counters: a trading update that did not
trade on every iteration is an error, not a number.

Nobody drains the ring buffer during a run, and the engine's 4 MiB orders ring
holds about 40,000 order events: in a run of a million trades the rest would
fail fast and make a trade look cheaper than it is.  So the strategy figures
are taken on a copy of the strategy compiled only for this measurement, the
same source with a larger orders ring (HFT_RINGBUF_PAGES, big enough for
every event of a run) and its own maps configured like the engine's; a run
that drops an event is an error.  ``trade_events_written`` is the deployed
program itself, with its own ring, in a trading run short enough to fit it:
the two agree when the ring size costs nothing per event.
"""

from __future__ import annotations

import ctypes
import os
import statistics
from dataclasses import replace

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from .. import libbpf
from ..constants import CTR_REJECT_BASE, NUM_COUNTERS, C
from ..errors import EngineError
from ..lab import PASS_PROGRAM
from ..layout import Event
from ..maps import EngineMaps
from ..paths import EBPF_DIR
from ..program import bcc_map_fds, load_strategy
from ..protocol import Update, encode_update
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
    return {
        "trade": frame(lab, encode_update(trade), feed_port),
        "no_trade": frame(lab, encode_update(no_trade), feed_port),
        "non_feed": frame(lab, encode_update(trade), NON_FEED_PORT),
    }


RECORD = (ctypes.sizeof(Event) + RINGBUF_RECORD_HEADER + 7) // 8 * 8  # bytes an event takes in a ring


def ring_capacity(pages: int = C["HFT_RINGBUF_PAGES"]) -> int:
    """Order events a ring of ``pages`` (the engine's by default) holds before it is full."""
    return pages * os.sysconf("SC_PAGE_SIZE") // RECORD


def ring_pages_for(events: int) -> int:
    """The smallest ring (a power of two pages, never below the engine's) with room for ``events``."""
    pages = C["HFT_RINGBUF_PAGES"]
    while ring_capacity(pages) < events:
        pages *= 2
    return pages


def load_measured_copy(feed_port: int, repeat: int):
    """(BCC object, prog fd, EngineMaps): the strategy compiled for this measurement only, with an
    orders ring that holds every event of a run of ``repeat`` trades, configured like the bench engine."""
    pages = ring_pages_for(repeat + 1)
    try:
        b, fd = load_strategy(cflags=(f"-DHFT_RINGBUF_PAGES={pages}",))
    except EngineError as exc:
        raise BenchError(f"the test-run copy of the strategy: {exc}") from None
    maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
    cfg = workload.config(feed_port)
    maps.write_global(cfg.engine, deadman_ms=0, version=1)
    for name, params in cfg.symbols.items():
        maps.write_symbol(name, params)
    return b, fd, maps, pages


class Rings:
    """Every ring buffer of the engine (orders, and the tape where it has one), drained and discarded:
    the bench is the only reader, and a ring left full would make emitting cheaper than it is."""

    NAMES = ("events", "tape_events")

    def __init__(self, maps) -> None:
        self._rings = [libbpf.RingBuffer(maps.fds[n], lambda _rec: None) for n in self.NAMES if n in maps.fds]

    def consume(self) -> None:
        for r in self._rings:
            r.consume()

    def close(self) -> None:
        for r in self._rings:
            r.close()
        self._rings = []


def _delta(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after)]


def measure(strategy_fd: int, maps, lab, feed_port: int, repeat: int) -> dict:
    """The test-run figures.  ``strategy_fd``/``maps`` are the bench's engine: only
    ``trade_events_written`` runs it; the others run a copy with a ring for every event."""
    import bcc

    p = workload.config(feed_port).symbols[workload.TEST_RUN_SYMBOL]
    fr = frames(lab, feed_port, p)
    length, off = len(fr["trade"][0]), fr["trade"][1]
    if any(len(f) != length or o != off for f, o in fr.values()):
        raise BenchError("test-run frames differ in length")
    harness = bcc.BPF(
        src_file=HARNESS_SOURCE.encode(),
        cflags=[f"-I{EBPF_DIR}", f"-DHARNESS_FRAME_LEN={length}", f"-DHARNESS_PAYLOAD_OFF={off}"],
    )
    trivial = bcc.BPF(text=PASS_PROGRAM)
    copy = None
    rings: list[Rings] = []
    try:
        copy, copy_fd, copy_maps, copy_pages = load_measured_copy(feed_port, repeat)
        h_fd = harness.load_func(b"xdp_harness", bcc.BPF.XDP).fd
        t_fd = trivial.load_func(b"xdp_pass", bcc.BPF.XDP).fd
        prog_ids = [libbpf.prog_info(h_fd).id, libbpf.prog_info(t_fd).id, libbpf.prog_info(copy_fd).id]
        template = harness.get_table(b"harness_template")
        target = harness.get_table(b"harness_target")
        # (its rings, its maps) for each strategy program measured
        strategies = {copy_fd: (Rings(copy_maps), copy_maps), strategy_fd: (Rings(maps), maps)}
        rings += [r for r, _ in strategies.values()]
        no_drops = {CTR_RINGBUF_DROPS: 0, **({CTR_TAPE_DROPS: 0} if CTR_TAPE_DROPS is not None else {})}

        def through_harness(prog_fd: int, raw: bytes, n: int = repeat) -> tuple[int, int, list[int]]:
            """(action, ns per run, counter changes: empty for a program that is not the strategy)."""
            template[ctypes.c_int(0)] = template.Leaf((ctypes.c_uint8 * length).from_buffer_copy(raw))
            target[ctypes.c_int(0)] = ctypes.c_int(prog_fd)
            if prog_fd not in strategies:
                action, _out, ns = libbpf.test_run(h_fd, raw, n)
                return action, ns, []
            ring, m = strategies[prog_fd]
            ring.consume()  # room for this run's events
            before = m.counters()
            action, _out, ns = libbpf.test_run(h_fd, raw, n)
            return action, ns, _delta(before, m.counters())

        def check(name: str, action: int, d: list[int], n: int = repeat) -> None:
            want = {
                "trade": (XDP_TX, {CTR_UPDATES: n, CTR_ORDERS: n, **no_drops}),
                "no_trade": (XDP_PASS, {CTR_UPDATES: n, CTR_ORDERS: 0, **no_drops}),
                "non_feed": (XDP_PASS, {CTR_PASSED: n, CTR_UPDATES: 0, **no_drops}),
            }[name]
            rejects = sum(d[CTR_REJECT_BASE:NUM_COUNTERS])
            if action != want[0] or any(d[k] != v for k, v in want[1].items()) or rejects:
                raise BenchError(
                    f"test run '{name}' did not take its path on every iteration, or an event "
                    f"was dropped (action {action}, counter changes {d})"
                )

        out: dict = {"repeat": repeat, "runs": RUNS}
        runs: dict[str, list[int]] = {}
        drops = tape_drops = 0
        fit = max(1, min(repeat, ring_capacity() * 9 // 10))
        for _ in range(RUNS):
            for name, (raw, _) in fr.items():
                action, ns, d = through_harness(copy_fd, raw)
                check(name, action, d)
                runs.setdefault(name, []).append(ns)
                drops += d[CTR_RINGBUF_DROPS]
                if CTR_TAPE_DROPS is not None:
                    tape_drops += d[CTR_TAPE_DROPS]
            action, ns, _ = through_harness(t_fd, fr["trade"][0])
            if action != XDP_PASS:
                raise BenchError(f"trivial program returned {action}")
            runs.setdefault("trivial", []).append(ns)
            # Without the harness: only frames the program leaves unchanged.
            runs.setdefault("direct_trivial", []).append(libbpf.test_run(t_fd, fr["trade"][0], repeat)[2])
            runs.setdefault("direct_non_feed", []).append(libbpf.test_run(copy_fd, fr["non_feed"][0], repeat)[2])
            # The deployed program with its own ring, in a trading run short enough to fit it.
            action, ns, d = through_harness(strategy_fd, fr["trade"][0], fit)
            check("trade", action, d, fit)
            runs.setdefault("trade_events_written", []).append(ns)
        for name in ("trade", "no_trade", "non_feed", "trivial"):
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
        out["test_run_ring_pages"] = copy_pages
        out["method"] = (
            "BPF_PROG_TEST_RUN, repeat per run, median of runs; every figure through the "
            "harness (frame restored from a template, fresh seq, tail call), which "
            "harness_overhead measures. The strategy figures run a copy of the strategy "
            "compiled only for this test run: the same source with an orders ring of "
            f"{copy_pages} pages, big enough that every order event of a run is written "
            "(nobody drains a ring during a run; the engine's own ring would be full after "
            f"{ring_capacity()} trades and later events would fail fast). Every run is checked: "
            "each iteration took its path and no event was dropped (ringbuf_drops, tape_drops: "
            "0). trade_events_written is the deployed program with its own ring, in a trading "
            "run short enough to fit it"
        )
        out["_prog_ids"] = prog_ids
        return out
    finally:
        for r in rings:
            r.close()
        harness.cleanup()
        trivial.cleanup()
        if copy is not None:
            copy.cleanup()
