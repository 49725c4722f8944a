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
from ..lab import PASS_PROGRAM
from ..layout import Event
from ..paths import EBPF_DIR
from ..protocol import Update, encode_update
from . import BenchError, workload

HARNESS_SOURCE = __file__.rsplit("/", 1)[0] + "/testrun_harness.c"
XDP_PASS, XDP_TX = 2, 3           # enum xdp_action (uapi/linux/bpf.h)
NON_FEED_PORT = 53                # a DNS datagram: well-formed UDP, not the feed
RUNS = 3
RINGBUF_RECORD_HEADER = 8         # BPF_RINGBUF_HDR_SZ; records are 8-byte aligned
CTR_UPDATES = C["HFT_CTR_UPDATES"]
CTR_PASSED = C["HFT_CTR_PASSED"]
CTR_ORDERS = C["HFT_CTR_ORDERS"]
CTR_RINGBUF_DROPS = C["HFT_CTR_RINGBUF_DROPS"]
CTR_TAPE_DROPS = C.get("HFT_CTR_TAPE_DROPS")    # engines with a separate tape ring


def frame(lab, payload: bytes, dport: int) -> tuple[bytes, int]:
    """An Ethernet frame from the exchange to the engine; (bytes, payload offset)."""
    pkt = (Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
           / IP(src=lab.exchange_ip, dst=lab.engine_ip)
           / UDP(sport=40000, dport=dport) / payload)
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


def ring_capacity() -> int:
    """Order events the engine's ring buffer holds before it is full."""
    record = (ctypes.sizeof(Event) + RINGBUF_RECORD_HEADER + 7) // 8 * 8
    return C["HFT_RINGBUF_PAGES"] * os.sysconf("SC_PAGE_SIZE") // record


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
    import bcc

    p = workload.config(feed_port).symbols[workload.TEST_RUN_SYMBOL]
    fr = frames(lab, feed_port, p)
    length, off = len(fr["trade"][0]), fr["trade"][1]
    if any(len(f) != length or o != off for f, o in fr.values()):
        raise BenchError("test-run frames differ in length")
    harness = bcc.BPF(src_file=HARNESS_SOURCE.encode(),
                      cflags=[f"-I{EBPF_DIR}", f"-DHARNESS_FRAME_LEN={length}", f"-DHARNESS_PAYLOAD_OFF={off}"])
    trivial = bcc.BPF(text=PASS_PROGRAM)
    ring = None
    try:
        h_fd = harness.load_func(b"xdp_harness", bcc.BPF.XDP).fd
        t_fd = trivial.load_func(b"xdp_pass", bcc.BPF.XDP).fd
        prog_ids = [libbpf.prog_info(h_fd).id, libbpf.prog_info(t_fd).id]
        template = harness.get_table(b"harness_template")
        target = harness.get_table(b"harness_target")
        ring = Rings(maps)

        def through_harness(prog_fd: int, raw: bytes, n: int = repeat) -> tuple[int, int, list[int]]:
            template[ctypes.c_int(0)] = template.Leaf((ctypes.c_uint8 * length).from_buffer_copy(raw))
            target[ctypes.c_int(0)] = ctypes.c_int(prog_fd)
            ring.consume()                    # room for this run's events
            before = maps.counters()
            action, _out, ns = libbpf.test_run(h_fd, raw, n)
            return action, ns, _delta(before, maps.counters())

        def check(name: str, action: int, d: list[int], n: int = repeat) -> None:
            want = {
                "trade": (XDP_TX, {CTR_UPDATES: n, CTR_ORDERS: n}),
                "no_trade": (XDP_PASS, {CTR_UPDATES: n, CTR_ORDERS: 0}),
                "non_feed": (XDP_PASS, {CTR_PASSED: n, CTR_UPDATES: 0}),
            }[name]
            rejects = sum(d[CTR_REJECT_BASE:NUM_COUNTERS])
            if action != want[0] or any(d[k] != v for k, v in want[1].items()) or rejects:
                raise BenchError(f"test run '{name}' did not take its path on every iteration "
                                 f"(action {action}, counter changes {d})")

        out: dict = {"repeat": repeat, "runs": RUNS}
        runs: dict[str, list[int]] = {}
        drops = tape_drops = 0
        for _ in range(RUNS):
            for name, (raw, _) in fr.items():
                action, ns, d = through_harness(strategy_fd, raw)
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
            runs.setdefault("direct_non_feed", []).append(libbpf.test_run(strategy_fd, fr["non_feed"][0], repeat)[2])
            # A trading run short enough that every order event is written to the ring.
            fit = max(1, min(repeat, ring_capacity() * 9 // 10))
            action, ns, d = through_harness(strategy_fd, fr["trade"][0], fit)
            check("trade", action, d, fit)
            if d[CTR_RINGBUF_DROPS]:
                raise BenchError(f"the ring buffer dropped {d[CTR_RINGBUF_DROPS]} events of a run sized to fit it")
            runs.setdefault("trade_events_written", []).append(ns)
        for name in ("trade", "no_trade", "non_feed", "trivial"):
            out[name] = statistics.median(runs[name])
        out["direct"] = {"trivial": statistics.median(runs["direct_trivial"]),
                         "non_feed": statistics.median(runs["direct_non_feed"])}
        out["harness_overhead"] = out["trivial"] - out["direct"]["trivial"]
        out["trade_events_written"] = statistics.median(runs["trade_events_written"])
        out["trade_events_written_repeat"] = fit
        out["all_runs"] = runs
        out["ringbuf_drops"] = drops
        out["tape_drops"] = tape_drops
        out["method"] = ("BPF_PROG_TEST_RUN, repeat per run, median of runs; every figure through the "
                         "harness (frame restored from a template, fresh seq, tail call), which "
                         "harness_overhead measures. In a run of 'repeat' trades the ring buffer fills (nobody "
                         "drains it during the run) and later order events fail fast (ringbuf_drops); "
                         "trade_events_written is a trading run short enough that every event is written")
        out["_prog_ids"] = prog_ids
        return out
    finally:
        if ring is not None:
            ring.close()
        harness.cleanup()
        trivial.cleanup()
