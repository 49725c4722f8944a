"""The program on two CPUs at once, through BPF_PROG_TEST_RUN.

Two threads, each pinned to its own CPU, run the real program at the same
time (ctypes releases the GIL for the syscall).  The spin-locked phases must
keep position within max_position, make bought the sum of the orders, give
out order ids that are unique and gap-free, and never let a reader see half
of a symbol config that a writer replaces whole with BPF_F_LOCK.  With
engine-wide limits, whatever phase 2 refuses, another CPU's reservation must
never push the position past max_position, below zero, or past a notional cap
(run back to back in the kernel through a feeder program, see below).  A
config the program reads without its lock (its per-CPU copy, while the
published stamp is the copy's) must be whole and never older than a write
that had completed before the packet came, against a writer replacing the
symbol config or the engine config as fast as it can.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import struct
import threading
import time
from collections import Counter

import pytest
from frames import ETH_LEN, IP_LEN, UDP_LEN, Harness, P, XdpAction, check_order, update_frame

from hft_tui import libbpf
from hft_tui.config import engine_params, symbol_params
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
        return self.opts.retval, self.dout.raw[: self.opts.data_size_out]


def run_pinned(cpus: list[int], work) -> list:
    """work(cpu) in one thread per CPU, each pinned to its CPU; their results."""
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(cpus))

    def body(cpu: int) -> None:
        try:
            os.sched_setaffinity(0, {cpu})  # this thread only
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

CONTENDED = {
    "buy_target": "100.00",
    "sell_target": "101.00",
    "base_qty": 300,
    "max_order_qty": 300,
    "max_position": MAX_POSITION,
    "collar_bps": 10000,
}


def test_two_cpus_trading_one_symbol_keep_position_fills_and_ids_exact(h, cpus):
    h.reset(symbols={"AAPL": CONTENDED})
    feed = Feed(
        {
            "buy": Update("AAPL", 0, P("99.00"), 100, P("99.50"), 10_000),
            "sell": Update("AAPL", 0, P("101.00"), 250, P("101.50"), 100),
        }
    )
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
VARIANT_A = {
    "buy_target": "100.00",
    "sell_target": "0",
    "base_qty": 100,
    "scale_qty": 0,
    "tick_size": "0.50",
    "max_order_qty": 1000,
    "max_position": 4_000_000_000,
    "collar_bps": 10000,
}
VARIANT_B = {
    "buy_target": "105.00",
    "sell_target": "0",
    "base_qty": 300,
    "scale_qty": 10,
    "tick_size": "1.00",
    "max_order_qty": 2000,
    "max_position": 4_000_000_000,
    "collar_bps": 10000,
}
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


# -- reservations in flight: engine-wide limits refuse in phase 2 ---------------------------

# With engine-wide limits, phase 1 (symbol lock) reserves an order, phase 2
# (global lock) may refuse it and phase 3 (symbol lock) commits what was filled.
# In between, the other CPU decides on the same symbol: a reserved buy must not
# be sellable, a reserved sell must not free buy room, two reserved buys must
# not both fit the same room.  That window is a few hundred ns, far shorter
# than a Python round trip, so here the program runs back to back in the
# kernel: a feeder program, run with a large repeat, restores a buy or a sell
# update, writes the next seq of one engine-wide counter and tail-calls the
# strategy.  It alternates buys and sells every `period` runs of its CPU (the
# byte after the frame): 1 on one CPU, 3 on the other, so the CPUs buy against
# buys, sell against sells and buy against sells.  (With repeat > 1 the kernel
# re-registers the XDP dispatcher around every run, some ms each, hence few
# long runs rather than many short ones.)  Everything is checked from the
# kernel's own record: the symbol state, the counters and every order and
# reject event (the program's rings are large and drained between rounds).
FEEDER = r"""
#include <uapi/linux/bpf.h>
#include "hft_protocol.h"

struct frame_template { __u8 bytes[FRAME_LEN]; };

BPF_PROG_ARRAY(feeder_target, 1);
BPF_ARRAY(feeder_templates, struct frame_template, 2);
BPF_ARRAY(feeder_seq, __u64, 1);
BPF_PERCPU_ARRAY(feeder_runs, __u64, 1);

int xdp_feeder(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct frame_template *t;
	__u32 zero = 0, which, period;
	__u64 *seq, *runs, be;

	if (data + FRAME_LEN + 1 > data_end)
		return XDP_ABORTED;
	period = *(__u8 *)(data + FRAME_LEN);
	runs = feeder_runs.lookup(&zero);
	seq = feeder_seq.lookup(&zero);
	if (!runs || !seq || !period)
		return XDP_ABORTED;
	which = (*runs)++ / period % 2;
	t = feeder_templates.lookup(&which);
	if (!t)
		return XDP_ABORTED;
	__builtin_memcpy(data, t->bytes, FRAME_LEN);
	be = __builtin_bswap64(__sync_fetch_and_add(seq, 1) + 1);
	__builtin_memcpy(data + PAYLOAD_OFF + HFT_OFF_SEQ, &be, sizeof(be));
#ifdef FEEDER_CLOCK
	be = __builtin_bswap64(bpf_ktime_get_ns());   /* before the program reads anything */
	__builtin_memcpy(data + PAYLOAD_OFF + HFT_OFF_TIMESTAMP, &be, sizeof(be));
#endif
	feeder_target.call(ctx, 0);
	return XDP_ABORTED;   /* the tail call failed */
}
"""
# Rings for every event of a round: 2 CPUs x REPEAT records of 96 bytes, each ring.
RING_PAGES = 8192
ROUNDS, REPEAT = 4, 100_000  # per thread: 4 runs of 100,000 updates
PERIODS = (1, 3)  # runs per side, on the first and the second CPU
BUY_ASK = P("99.50")
SIDE_UPDATES = [
    Update("AAPL", 0, P("99.00"), 100, BUY_ASK, 10_000),  # buys up to 300
    Update("AAPL", 0, P("101.00"), 10_000, P("101.50"), 100),  # sells up to 300 of what is held
]


@pytest.fixture(scope="module")
def strategy_program():
    """This module's own copy of the strategy, with rings large enough for a round."""
    from hft_tui import engine
    from hft_tui.maps import EngineMaps

    b, fd = engine.load_strategy(cflags=(f"-DHFT_RINGBUF_PAGES={RING_PAGES}", f"-DHFT_TAPE_PAGES={RING_PAGES}"))
    yield b, fd, EngineMaps(engine.bcc_map_fds(b), owns_fds=False)
    b.cleanup()


@pytest.fixture(scope="module")
def feeder(h):
    """feed(period, repeat) -> XDP action of the last run, through the feeder."""
    import bcc

    from hft_tui.paths import EBPF_DIR

    frames = [update_frame(u) for u in SIDE_UPDATES]
    length = len(frames[0])
    assert all(len(f) == length for f in frames)
    b = bcc.BPF(text=FEEDER.encode(), cflags=[f"-I{EBPF_DIR}", f"-DFRAME_LEN={length}", f"-DPAYLOAD_OFF={PAYLOAD_AT}"])
    try:
        fd = b.load_func(b"xdp_feeder", bcc.BPF.XDP).fd
        b[b"feeder_target"][ctypes.c_int(0)] = ctypes.c_int(h.prog_fd)
        templates = b[b"feeder_templates"]
        for i, f in enumerate(frames):
            templates[ctypes.c_int(i)] = templates.Leaf((ctypes.c_uint8 * length).from_buffer_copy(f))

        def feed(period: int, repeat: int) -> int:
            action, _, _ = libbpf.test_run(fd, frames[0] + bytes([period]), repeat)
            return action

        yield feed
    finally:
        b.cleanup()


# Set, but too high to bind: the engine-wide path (three phases) is taken.
UNBOUND_NOTIONAL = "10000000"
THROTTLE = {"rate_per_sec": 100_000, "burst": 3, "max_notional": UNBOUND_NOTIONAL}
RESERVING = {
    "buy_target": "100.00",
    "sell_target": "101.00",
    "base_qty": 300,
    "max_order_qty": 300,
    "max_position": MAX_POSITION,
    "collar_bps": 10000,
}
# (name, engine-wide limits, symbol config over RESERVING, the (side, reason)
#  refusals phase 2 must have given, the most shares the limits allow at 99.50)
PHASE_2_CASES = [
    ("engine throttle refuses buys and sells", THROTTLE, {}, {("B", "throttle"), ("S", "throttle")}, MAX_POSITION),
    ("engine notional cap refuses buys", {"max_notional": "80000"}, {}, {("B", "notional")}, P("80000") // BUY_ASK),
    ("engine limits that never refuse", {"max_notional": UNBOUND_NOTIONAL}, {}, set(), MAX_POSITION),
    (
        "symbol notional cap, throttled",
        THROTTLE,
        {"max_notional": "50000"},
        {("B", "throttle"), ("S", "throttle")},
        P("50000") // BUY_ASK,
    ),
    (
        "symbol notional cap, never refused",
        {"max_notional": UNBOUND_NOTIONAL},
        {"max_notional": "50000"},
        set(),
        P("50000") // BUY_ASK,
    ),
]


@pytest.mark.parametrize("name,engine,symbol,refusals,most", PHASE_2_CASES, ids=[c[0] for c in PHASE_2_CASES])
def test_reservations_in_flight_keep_the_position_within_its_limits(
    h, cpus, feeder, name, engine, symbol, refusals, most
):
    h.reset(symbols={"AAPL": {**RESERVING, **symbol}}, engine=engine)
    counters_before = h.counters()
    updates_before = per_cpu_counter(h, "updates")
    events = []
    rounds = threading.Barrier(len(cpus), action=lambda: events.extend(h.drain()))  # rings emptied each round

    def work(cpu: int):
        period, actions, span = PERIODS[cpus.index(cpu)], Counter(), []
        for _ in range(ROUNDS):
            span.append(time.monotonic_ns())
            actions[feeder(period, REPEAT)] += 1
            span.append(time.monotonic_ns())
            rounds.wait()
        return actions, (min(span), max(span))

    runs = run_pinned(cpus, work)
    events += h.drain()

    total = len(cpus) * ROUNDS * REPEAT
    assert set().union(*(actions for actions, _ in runs)) <= {XdpAction.TX, XdpAction.PASS}
    counts = h.counters()
    assert counts["ringbuf_drops"] == counts["tape_drops"] == 0, "events lost: the checks below need every one"
    orders = [e for e in events if e.kind == "order"]
    rejects = [e for e in events if e.kind == "reject"]
    st = h.state("AAPL")
    bought = sum(e.qty for e in orders if e.side == "B")
    sold = sum(e.qty for e in orders if e.side == "S")
    # The position: what the orders add up to, never above the limits, never short.
    assert (st.bought, st.sold, st.capital_spent) == (bought, sold, bought * BUY_ASK)
    assert bought >= sold, f"sold {sold} shares of {bought} bought: the engine went short"
    assert st.position == bought - sold <= most
    off = [(e.side, e.qty, e.order_id, e.position) for e in orders if not 0 <= e.position <= most]
    assert not off, f"{len(off)} orders left a position outside 0..{most}, e.g. {off[:3]}"
    assert (st.pending_buy, st.pending_sell, st.pending_cost) == (0, 0, 0), "a reservation was never released"
    assert st.open_cost == h.maps.totals().open_cost <= most * BUY_ASK
    # Order ids gap-free; every update an order, a reject or no trade; the counters add up.
    ids = sorted(e.order_id for e in orders)
    assert ids == list(range(1, len(orders) + 1)), "order ids not unique and gap-free"
    assert h.maps.totals().order_seq == len(orders)
    moved = {k: v - counters_before[k] for k, v in counts.items() if v != counters_before[k]}
    assert moved == {"updates": total, "orders": len(orders), **Counter(e.reason for e in rejects)}
    assert (st.updates, st.buy_orders + st.sell_orders, st.rejects) == (total, len(orders), len(rejects))
    # The test did what it is about: both CPUs ran it at the same time, both sides
    # traded, and phase 2 refused orders that phase 1 had reserved.
    per_cpu = [b - a for a, b in zip(updates_before, per_cpu_counter(h, "updates"))]
    assert [per_cpu[c] for c in cpus] == [total // 2] * 2
    (_, (a0, a1)), (_, (b0, b1)) = runs
    assert a0 < b1 and b0 < a1, "the threads never overlapped"
    assert Counter(e.side for e in orders).keys() == {"B", "S"}
    phase_2 = {(e.side, e.reason) for e in rejects if e.side}
    assert refusals <= phase_2, f"phase 2 never refused {refusals - phase_2}"


# -- multi-message packets: every message against the position, on two CPUs -----------------

PACKETS_PER_THREAD = 2_000
MESSAGES_PER_PACKET = 10
IEX_SEQ_AT = PAYLOAD_AT + 24  # the segment header's first sequence (feed_iex.h: IEX_OFF_FIRST_SEQ)


@pytest.fixture(scope="module")
def iex_h():
    """The strategy built for IEX-TP, with rings large enough for every event of the test."""
    from feed_frames import feed_harness

    with feed_harness("iex", (f"-DHFT_RINGBUF_PAGES={RING_PAGES}", f"-DHFT_TAPE_PAGES={RING_PAGES}")) as h:
        yield h


def test_two_cpus_reading_multi_message_packets_keep_position_and_ids_exact(iex_h, cpus):
    from feed_frames import GATEWAY, bid, check_order_frame, iex_frame, offer

    from hft_tui.constants import IEX

    assert IEX["IEX_OFF_FIRST_SEQ"] == IEX_SEQ_AT - PAYLOAD_AT
    iex_h.reset({"AAPL": CONTENDED}, engine={"max_orders_per_packet": 8}, gateway=GATEWAY)
    # Mostly offers (the buy rule) with bids (the sell rule) between: one packet can both buy and sell.
    patterns = [
        iex_frame(
            [
                offer("AAPL", P("99.50"), 300) if (i + k) % 4 else bid("AAPL", P("101.00"), 250)
                for i in range(MESSAGES_PER_PACKET)
            ],
            0,
        )
        for k in range(4)
    ]
    blocks = itertools.count(1)  # one engine-wide sequence: each packet takes the next 10

    def work(cpu: int):
        runner, out = Runner(iex_h.prog_fd, len(patterns[0]) + 2048), []
        for i in range(PACKETS_PER_THREAD):
            frame = bytearray(patterns[(i + cpu) % 4])
            struct.pack_into("<Q", frame, IEX_SEQ_AT, next(blocks) * MESSAGES_PER_PACKET)
            action, result = runner.run(bytes(frame))
            out.append((action, bytes(frame), result))
        return out

    updates_before = per_cpu_counter(iex_h, "updates")
    runs = run_pinned(cpus, work)

    orders = []
    for run in runs:
        for action, frame, result in run:
            if action == XdpAction.TX:
                batch = check_order_frame(frame, result, GATEWAY)
                assert 1 <= len(batch) <= 8
                assert [o.seq for o in batch] == sorted({o.seq for o in batch}), "orders out of message order"
                assert [o.order_id for o in batch] == sorted({o.order_id for o in batch})
                orders += batch
            else:
                assert (action, result) == (XdpAction.PASS, frame)
    st = iex_h.state("AAPL")
    ids = sorted(o.order_id for o in orders)
    assert ids == list(range(1, len(orders) + 1)), "order ids not unique and gap-free"
    assert iex_h.maps.totals().order_seq == len(orders) == iex_h.counters()["orders"]
    assert st.bought == sum(o.qty for o in orders if o.side == "B")
    assert st.sold == sum(o.qty for o in orders if o.side == "S")
    assert st.position == st.bought - st.sold <= MAX_POSITION
    assert (st.pending_buy, st.pending_sell) == (0, 0)
    events = iex_h.drain()
    assert all(0 <= e.position <= MAX_POSITION for e in events), "position outside 0..max_position"
    assert sorted(e.order_id for e in events if e.kind == "order") == ids
    # Every packet reached the channel; both CPUs read messages; both sides traded.
    assert iex_h.channel().packets == len(cpus) * PACKETS_PER_THREAD
    moved = [a - b for a, b in zip(per_cpu_counter(iex_h, "updates"), updates_before)]
    assert all(moved[c] > 0 for c in cpus)
    spans = []
    for run in runs:
        firsts = {struct.unpack_from("<Q", f, IEX_SEQ_AT)[0] for _, f, _ in run}
        ts = [e.ts_ns for e in events if e.seq - e.seq % MESSAGES_PER_PACKET in firsts]
        spans.append((min(ts), max(ts)))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], "the threads never overlapped"
    assert Counter(o.side for o in orders).keys() == {"B", "S"}
    assert any(e.reason == "position_limit" for e in events), "max_position was never reached"


# -- configs read without their locks: whole, and never older than a completed write ----------------

# The program uses its per-CPU copy of a config without the config's lock while the
# config's published stamp is the one the copy was made for (ebpf/hft_structs.h: config
# stamps).  Proof, against a writer replacing a config as fast as it can: both CPUs read
# through the real program back to back in the kernel (the feeder above built with FEEDER_CLOCK, which
# also writes its clock into the update's timestamp just before the tail call), and every
# decision's outcome names the config it was made on.  Whole: that is one of the two
# configs written, never a mix.  Fresh: it is never older than the last write that had
# returned before the feeder's clock (the event's sender_ts), and never one begun after
# the program's own clock (the event's ts_ns, read after the config).
CONFIG_ASKS = (P("99.00"), P("102.00"))  # the two frames: ASKS' asks
PINNED_FLOOR = 50  # decisions where exactly one config is allowed, of each: the freshness check bites there


@pytest.fixture(scope="module")
def timed_feeder(h):
    """feed(period, repeat) through the timed feeder: frames of CONFIG_ASKS, alternating every
    `period` runs of a CPU."""
    import bcc

    from hft_tui.paths import EBPF_DIR

    frames = [update_frame(Update("AAPL", 0, 0, 0, ask, 1_000_000)) for ask in CONFIG_ASKS]
    length = len(frames[0])
    b = bcc.BPF(
        text=FEEDER.encode(),
        cflags=[f"-I{EBPF_DIR}", f"-DFRAME_LEN={length}", f"-DPAYLOAD_OFF={PAYLOAD_AT}", "-DFEEDER_CLOCK"],
    )
    try:
        fd = b.load_func(b"xdp_feeder", bcc.BPF.XDP).fd
        b[b"feeder_target"][ctypes.c_int(0)] = ctypes.c_int(h.prog_fd)
        templates = b[b"feeder_templates"]
        for i, f in enumerate(frames):
            templates[ctypes.c_int(i)] = templates.Leaf((ctypes.c_uint8 * length).from_buffer_copy(f))

        def feed(period: int, repeat: int) -> int:
            action, _, _ = libbpf.test_run(fd, frames[0] + bytes([period]), repeat)
            return action

        yield feed
    finally:
        b.cleanup()


class TimedWriter:
    """A thread writing config A, B, A, B, ... as fast as it can until stopped; every
    write's (start, return, variant) in CLOCK_MONOTONIC ns, the write before it first."""

    def __init__(self, write, first_returned: int) -> None:
        self.writes: list[tuple[int, int, str]] = [(0, first_returned, "A")]  # the reset wrote A
        self._write, self._stop = write, threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        for i in itertools.count(1):
            if self._stop.is_set():
                return
            variant = "AB"[i % 2]
            start = time.monotonic_ns()
            self._write(variant)
            self.writes.append((start, time.monotonic_ns(), variant))

    def __enter__(self) -> TimedWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_readers(h, cpus, feed) -> tuple[list, list]:
    """ROUNDS rounds of REPEAT runs of the timed feeder on each CPU (period 1 and 3); every
    event (the rings emptied between rounds) and each CPU's span."""
    events = []
    rounds = threading.Barrier(len(cpus), action=lambda: events.extend(h.drain()))

    def work(cpu: int):
        period, span = PERIODS[cpus.index(cpu)], []
        for _ in range(ROUNDS):
            span.append(time.monotonic_ns())
            assert feed(period, REPEAT) in (XdpAction.TX, XdpAction.PASS)
            span.append(time.monotonic_ns())
            rounds.wait()
        return min(span), max(span)

    spans = run_pinned(cpus, work)
    return events + h.drain(), spans


def check_whole_and_fresh(decisions: list[tuple[int, int, str | None]], writes: list[tuple[int, int, str]]) -> Counter:
    """decisions: (feeder clock, program clock, the variant its outcome names, None: a mix).
    Each must be a variant, one of the writes from the last returned before the feeder's
    clock to the last begun before the program's.  Counts what was decided how."""
    import bisect

    returned = [w[1] for w in writes]
    begun = [w[0] for w in writes]
    seen = Counter()
    for fed, decided, variant in decisions:
        assert variant is not None, "a decision on no variant: a torn config"
        last_done = bisect.bisect_left(returned, fed) - 1  # returned[last_done] < fed
        assert last_done >= 0, "a decision before the first write returned"
        begun_by = bisect.bisect_right(begun, decided)  # writes begun at or before the decision
        allowed = {w[2] for w in writes[last_done:begun_by]}
        assert variant in allowed, (
            f"decided on {variant} at {decided}: write {last_done} ({writes[last_done]}) had returned "
            f"at {fed}, and no write of {variant} had begun since: an older config than a completed write"
        )
        seen[(variant, "pinned" if len(allowed) == 1 else "racing")] += 1
    return seen


def test_a_symbol_config_replaced_as_fast_as_possible_is_read_whole_and_fresh(h, cpus, timed_feeder):
    h.reset(symbols={"AAPL": VARIANT_A}, engine={"update_sample": 1})  # every decision leaves an event
    variants = {"A": symbol_params("AAPL", VARIANT_A), "B": symbol_params("AAPL", VARIANT_B)}
    counters_before = h.counters()
    with TimedWriter(lambda v: h.maps.write_symbol("AAPL", variants[v]), time.monotonic_ns()) as w:
        events, spans = run_readers(h, cpus, timed_feeder)

    decisions, stale = [], 0
    for e in events:
        if e.kind == "reject" and e.reason == "stale":  # the other CPU's newer seq: names no config
            stale += 1
            continue
        qty = e.qty if e.kind == "order" else None if e.kind == "update" else -1
        # ASKS: the quantity each variant buys at the ask (None: no trade, the sampled update).
        named = [v for v, q in ASKS[e.ask].items() if q == qty]
        decisions.append((e.sender_ts, e.ts_ns, named[0] if len(named) == 1 else None))
    total = len(cpus) * ROUNDS * REPEAT
    assert len(decisions) + stale == total, "an update left no event"
    assert h.counters()["ringbuf_drops"] == h.counters()["tape_drops"] == 0
    seen = check_whole_and_fresh(decisions, w.writes)
    # The test did what it is about: the writer kept writing while both CPUs read at the
    # same time, and each variant was decided on many times where exactly one config is
    # allowed (between a write's return and the next write's start: there the freshness
    # check bites; a decision racing a write may be on either, both are whole).
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, "the threads never overlapped"
    during = [wr for wr in w.writes if a0 < wr[0] and wr[1] < a1]
    assert len(during) > 100, f"{len(during)} writes while the readers ran"
    assert min(seen[("A", "pinned")], seen[("B", "pinned")]) >= PINNED_FLOOR, seen
    assert h.counters()["updates"] - counters_before["updates"] == total


def test_the_engine_config_replaced_as_fast_as_possible_is_read_whole_and_fresh(h, cpus, timed_feeder):
    # A: no dead-man switch, every update that does not trade sampled.  B: the switch armed on a
    # heartbeat long dead (every update refused, deadman), no sampling.  One of A's fields with
    # B's other shows: A's switch with B's sampling leaves an update that does not trade
    # without any event.
    engine = {"A": (engine_params({"update_sample": 1}), 0), "B": (engine_params({"update_sample": 0}), 1000)}
    h.reset(symbols={"AAPL": VARIANT_A}, engine={"update_sample": 1})
    versions = itertools.count(2)

    def write(v: str) -> None:
        params, deadman_ms = engine[v]
        h.maps.write_global(params, deadman_ms=deadman_ms, version=next(versions))

    with TimedWriter(write, time.monotonic_ns()) as w:
        events, spans = run_readers(h, cpus, timed_feeder)

    # What each outcome names: B refuses every update (deadman) before the sequence is
    # read, so a stale reject is A's; A buys at 99.00 and samples the update at 102.00.
    outcomes = {
        ("reject", "deadman"): "B",
        ("reject", "stale"): "A",
        ("order", P("99.00"), ASKS[P("99.00")]["A"]): "A",
        ("update", P("102.00"), 0): "A",
    }
    decisions = []
    for e in events:
        outcome = (e.kind, e.reason) if e.kind == "reject" else (e.kind, e.ask, e.qty)
        decisions.append((e.sender_ts, e.ts_ns, outcomes.get(outcome)))
    assert len(decisions) == len(cpus) * ROUNDS * REPEAT, "an update left no event: a torn engine config"
    assert h.counters()["ringbuf_drops"] == h.counters()["tape_drops"] == 0
    seen = check_whole_and_fresh(decisions, w.writes)
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, "the threads never overlapped"
    during = [wr for wr in w.writes if a0 < wr[0] and wr[1] < a1]
    assert len(during) > 100, f"{len(during)} writes while the readers ran"
    assert min(seen[("A", "pinned")], seen[("B", "pinned")]) >= PINNED_FLOOR, seen
