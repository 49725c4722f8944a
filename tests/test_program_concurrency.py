"""The program on two CPUs at once, through BPF_PROG_TEST_RUN.

Two threads, each pinned to its own CPU, run the real program at the same
time (ctypes releases the GIL for the syscall).  The spin-locked phases must
keep position within max_position, make bought the sum of the orders, give
out order ids that are unique and gap-free, and never let a reader see half
of a symbol config that a writer replaces whole with BPF_F_LOCK.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import struct
import threading
from collections import Counter

import pytest

from frames import ETH_LEN, IP_LEN, UDP_LEN, Harness, P, XdpAction, check_order, update_frame
from hft_tui import libbpf
from hft_tui.config import symbol_params
from hft_tui.constants import COUNTERS, OFFSETS
from hft_tui.protocol import Update

PER_THREAD = 5_000
MAX_POSITION = 1000


@pytest.fixture(scope="module")
def cpus() -> list[int]:
    allowed = sorted(os.sched_getaffinity(0))
    assert len(allowed) >= 2, f"these tests need two CPUs, this process may use {allowed}"
    return allowed[:2]


# Where the message starts in a plain (untagged, no options) update frame.
PAYLOAD_AT = ETH_LEN + IP_LEN + UDP_LEN


class Feed:
    """Update frames built once with scapy; each run patches in a fresh seq
    from one engine-wide counter (next() on itertools.count is atomic), so
    the two threads' updates are in seq order when they are taken."""

    def __init__(self, updates: dict[str, Update]) -> None:
        self.frames = {name: update_frame(u) for name, u in updates.items()}
        self._seq = itertools.count(1)

    def frame(self, name: str) -> bytes:
        f = bytearray(self.frames[name])
        struct.pack_into("!Q", f, PAYLOAD_AT + OFFSETS["seq"], next(self._seq))
        return bytes(f)


def seq_of(frame: bytes) -> int:
    return struct.unpack_from("!Q", frame, PAYLOAD_AT + OFFSETS["seq"])[0]


class Runner:
    """BPF_PROG_TEST_RUN with its buffers made once per thread, so a thread
    spends its time in the kernel (GIL released) rather than in Python
    building ctypes objects; otherwise the two threads mostly take turns.
    Same call as hft_tui.libbpf.test_run, repeat 1."""

    def __init__(self, prog_fd: int, size: int) -> None:
        self.prog_fd = prog_fd
        self.din = ctypes.create_string_buffer(size)
        self.dout = ctypes.create_string_buffer(size + 256)
        self.opts = libbpf.BpfTestRunOpts(
            sz=ctypes.sizeof(libbpf.BpfTestRunOpts),
            data_in=ctypes.cast(self.din, ctypes.c_void_p),
            data_out=ctypes.cast(self.dout, ctypes.c_void_p),
            repeat=1,
        )
        self._ref = ctypes.byref(self.opts)
        self._call = libbpf.lib().bpf_prog_test_run_opts

    def run(self, frame: bytes) -> tuple[int, bytes]:
        ctypes.memmove(self.din, frame, len(frame))
        self.opts.data_size_in = len(frame)
        self.opts.data_size_out = len(self.dout)
        rc = self._call(self.prog_fd, self._ref)
        assert rc == 0, f"BPF_PROG_TEST_RUN failed: {os.strerror(-rc)}"
        return self.opts.retval, self.dout.raw[:self.opts.data_size_out]


def run_pinned(cpus: list[int], work) -> list:
    """work(cpu) in one thread per CPU, each pinned to its CPU; their results."""
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(cpus))

    def body(cpu: int) -> None:
        try:
            os.sched_setaffinity(0, {cpu})           # this thread only
            assert os.sched_getaffinity(0) == {cpu}
            start.wait()
            results[cpu] = work(cpu)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(cpu,)) for cpu in cpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [results[cpu] for cpu in cpus]


def per_cpu_counter(h: Harness, name: str) -> list[int]:
    idx = {v: k for k, v in COUNTERS.items()}[name]
    buf = (ctypes.c_uint64 * libbpf.num_possible_cpus())()
    libbpf.lookup(h.maps.fds["counters"], ctypes.c_uint32(idx), buf)
    return list(buf)


# -- position, fills and order ids under contention ----------------------------------

CONTENDED = {"buy_target": "100.00", "sell_target": "101.00", "base_qty": 300, "max_order_qty": 300,
             "max_position": MAX_POSITION, "collar_bps": 10000}


def test_two_cpus_trading_one_symbol_keep_position_fills_and_ids_exact(h, cpus):
    h.reset(symbols={"AAPL": CONTENDED})
    feed = Feed({
        "buy": Update("AAPL", 0, P("99.00"), 100, P("99.50"), 10_000),
        "sell": Update("AAPL", 0, P("101.00"), 250, P("101.50"), 100),
    })
    updates_before = per_cpu_counter(h, "updates")

    def work(cpu: int):
        runner, out = Runner(h.prog_fd, len(feed.frames["buy"])), []
        for i in range(PER_THREAD):
            # Three buys for two sells: the position presses on max_position.
            frame = feed.frame("buy" if (i + cpu) % 5 < 3 else "sell")
            action, result = runner.run(frame)
            out.append((action, frame, result))
        return out

    runs = run_pinned(cpus, work)

    orders = []
    for run in runs:
        for action, frame, result in run:
            if action == XdpAction.TX:
                orders.append(check_order(frame, result))
            else:
                assert (action, result) == (XdpAction.PASS, frame)
    st = h.state("AAPL")
    ids = sorted(o.order_id for o in orders)
    assert ids == list(range(1, len(orders) + 1)), "order ids not unique and gap-free"
    assert h.maps.totals().order_seq == len(orders) == h.counters()["orders"]
    assert st.bought == sum(o.qty for o in orders if o.side == "B")
    assert st.sold == sum(o.qty for o in orders if o.side == "S")
    assert st.capital_spent == sum(o.qty * o.price for o in orders if o.side == "B")
    assert st.position == st.bought - st.sold <= MAX_POSITION
    events = h.drain()
    assert all(e.position <= MAX_POSITION for e in events), "position above max_position"
    assert sorted(e.order_id for e in events if e.kind == "order") == ids
    # Both CPUs ran the program, and they ran at the same time.
    moved = [a - b for a, b in zip(per_cpu_counter(h, "updates"), updates_before)]
    assert [moved[c] for c in cpus] == [PER_THREAD, PER_THREAD]
    spans = []
    for run in runs:
        seqs = {seq_of(f) for _, f, _ in run}
        ts = [e.ts_ns for e in events if e.seq in seqs]
        spans.append((min(ts), max(ts)))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], "the threads never overlapped"
    assert Counter(o.side for o in orders).keys() == {"B", "S"}
    assert any(e.reason == "position_limit" for e in events), "max_position was never reached"


# -- config atomicity: a reader sees one whole config, never a mix ---------------------

# Two self-consistent configs that differ in every field the buy decision reads.
VARIANT_A = {"buy_target": "100.00", "sell_target": "0", "base_qty": 100, "scale_qty": 0, "tick_size": "0.50",
             "max_order_qty": 1000, "max_position": 4_000_000_000, "collar_bps": 10000}
VARIANT_B = {"buy_target": "105.00", "sell_target": "0", "base_qty": 300, "scale_qty": 10, "tick_size": "1.00",
             "max_order_qty": 2000, "max_position": 4_000_000_000, "collar_bps": 10000}
# ask -> the quantity each variant buys there (None: that variant does not buy)
ASKS = {
    P("99.00"): {"A": 100, "B": 300 + 10 * 6},
    P("102.00"): {"A": None, "B": 300 + 10 * 3},
}


def test_config_writes_are_atomic_for_readers_on_two_cpus(h, cpus):
    h.reset(symbols={"AAPL": VARIANT_A})
    variants = [symbol_params("AAPL", VARIANT_A), symbol_params("AAPL", VARIANT_B)]
    feed = Feed({str(ask): Update("AAPL", 0, 0, 0, ask, 1_000_000) for ask in ASKS})
    done = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        for i in itertools.count():
            if done.is_set():
                return
            h.maps.write_symbol("AAPL", variants[i % 2])
            writes += 1

    def work(cpu: int):
        runner, out = Runner(h.prog_fd, len(feed.frames[str(P("99.00"))])), []
        for i in range(PER_THREAD):
            ask = list(ASKS)[i % len(ASKS)]
            frame = feed.frame(str(ask))
            action, result = runner.run(frame)
            out.append((ask, action, frame, result))
        return out

    w = threading.Thread(target=writer)
    w.start()
    try:
        runs = run_pinned(cpus, work)
    finally:
        done.set()
        w.join()

    seen = Counter()
    for run in runs:
        for ask, action, frame, result in run:
            if action != XdpAction.TX:
                continue
            order = check_order(frame, result)
            allowed = {v: q for v, q in ASKS[ask].items() if q is not None}
            matches = [v for v, q in allowed.items() if q == order.qty]
            assert matches, f"ask {ask}: qty {order.qty} is no variant's ({allowed}): a torn config"
            seen[(ask, matches[0])] += 1
    # The writer really alternated while the readers ran: both variants traded.
    assert writes > 100
    assert seen[(P("99.00"), "A")] and seen[(P("99.00"), "B")] and seen[(P("102.00"), "B")], seen
    events = h.drain()
    assert sum(1 for e in events if e.kind == "order") == sum(seen.values())
