"""How many updates a core turns into orders, with every one accounted for.

The chain, all in the lab: the generator (generator.c, run by blast.c
through BPF_PROG_TEST_RUN in live-frames mode) hands each update to the veth
as a NIC's receive ring hands frames to its driver; the program under test
runs in native XDP on the engine's end and sends its answer back with
XDP_TX; the wire tap's arrival program on the exchange's end (wiretap.c, in
counting mode) marks each answer's seq and order id in bitmaps, counts it
and drops it, so no socket limits the rate.

A step is exact when the generator's count = the updates the engine counted
= the orders it counted = the orders that arrived, every seq once, the order
ids exactly the engine's next ones with none twice, every order's event in
the ring (no drop) and nothing outside the window or malformed.  The bare
reflector's steps: every update echoed once.

One core: the sender, the engine's end and the tap's end share one CPU.  The
kernel flushes a test run's frames every 64 runs and veth's NAPI poll then
takes them through the program at once, so the sender can never be more
than a batch ahead: unpaced, the rate reached is the rate the core sustains
with nothing lost (each step is checked, and one that is not exact is tried
again paced below its rate).  The sender's own share of the core is measured
as its own variant, "sender alone": the same chain with a program that drops
every frame where the engine would run.  (Putting the sender on a CPU of its
own was tried: with veth's NAPI threaded and pinned to the other CPU, moving
frames and their pages between the CPUs cost more than the engine does, and
the sender itself fell below 2 Mpps; see the README.)

Two cores: the veth has one queue per CPU (veth hands a frame to the queue
of the CPU that sends it), a sender on each CPU with its own symbol (a feed
split over queues by channel), the engine running on both.

Symbols: the engine on one core with updates cycling through 10, 100, ...
configured symbols (every one trading), the symbol map holding only those.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..constants import C
from ..symbol import Symbol
from . import veth, workload
from .generator import Generator, Sent
from .wiretap import TapCounts, WireTap

if TYPE_CHECKING:
    from ..lab import Lab
    from ..maps import EngineMaps
    from .testrun import Rings

DROP_PROGRAM = b"int xdp_drop(struct xdp_md *ctx) { return XDP_DROP; }"  # the sender-alone variant
CTR_UPDATES = C["HFT_CTR_UPDATES"]
CTR_ORDERS = C["HFT_CTR_ORDERS"]
CTR_RINGBUF_DROPS = C["HFT_CTR_RINGBUF_DROPS"]
PACED_RETRIES = (0.9, 0.75, 0.5)  # fractions of the unpaced rate tried when an unpaced step was not exact
SETTLE_S = 0.05  # the last answers cross the veth after the sender's last run


@dataclasses.dataclass
class Rig:
    """What the throughput steps run on; made by the runner."""

    lab: Lab
    maps: EngineMaps  # the measured copy's
    rings: Rings  # its rings
    attach: Callable[[str], None]  # attaches "engine", "bare" or "sender_alone" to the engine's end
    generator: Generator
    tap: WireTap
    frames: int  # frames a step sends
    one_cpu: int
    cpus: list[int]
    max_symbols: int  # what the measured copy's symbol map holds


class _Steps:
    def __init__(self, rig: Rig, progress: Callable[[str], None]) -> None:
        self.rig = rig
        self.say = progress
        self.seq = 1
        self.steps: list[dict] = []

    def step(self, variant: str, cpus: list[int], rate: int = 0, symbols: int = 0) -> dict:
        rig = self.rig
        rig.rings.discard()
        before, ids_before = rig.maps.counters(), rig.maps.totals().order_seq
        veth_before = veth.xdp_stats(rig.lab)
        rig.tap.count_from(self.seq, ids_before + 1)
        sent = rig.generator.send(rig.frames, rate, cpus, self.seq)
        time.sleep(SETTLE_S)
        after, ids_after = rig.maps.counters(), rig.maps.totals().order_seq
        tap = rig.tap.counts()
        rig.tap.stop_counting()
        events = rig.rings.discard().get("events", 0)
        veth_change = veth.delta(veth_before, veth.xdp_stats(rig.lab))
        st = _judge(
            variant,
            sent,
            tap,
            updates=after[CTR_UPDATES] - before[CTR_UPDATES],
            orders=after[CTR_ORDERS] - before[CTR_ORDERS],
            ring_drops=after[CTR_RINGBUF_DROPS] - before[CTR_RINGBUF_DROPS],
            ring_events=events,
            ids=(ids_before, ids_after),
            veth_lost=_veth_losses(veth_change),
            veth_dropped=veth_change.get("engine.rx_drops", 0),
        )
        st.update({"cpus": cpus, "paced_rate": rate, "symbols": symbols})
        self.seq += rig.frames
        self.steps.append(st)
        self.say(
            f"throughput {variant} on CPU {','.join(map(str, cpus))}"
            + (f", {symbols} symbols" if symbols else "")
            + (f", paced at {rate}/s" if rate else "")
            + f": {st['rate']:,} updates/s{'' if st['exact'] else ' NOT EXACT: ' + st['why']}"
        )
        return st

    def held(self, variant: str, cpus: list[int], symbols: int = 0) -> dict:
        """The unpaced step; when it was not exact, paced steps below its rate until one is."""
        st = self.step(variant, cpus, symbols=symbols)
        first = st
        for frac in PACED_RETRIES if not st["exact"] else ():
            st = self.step(variant, cpus, rate=max(1000, int(first["rate"] * frac)), symbols=symbols)
            if st["exact"]:
                break
        return {**st, "unpaced": None if st is first else first}


def _veth_losses(d: dict[str, int]) -> dict[str, int]:
    """veth's counts of frames that did not fit a ring or could not be sent."""
    return {k: v for k, v in d.items() if "err" in k}


def _judge(
    variant: str,
    sent: Sent,
    tap: TapCounts,
    *,
    updates: int,
    orders: int,
    ring_drops: int,
    ring_events: int,
    ids: tuple[int, int],
    veth_lost: dict[str, int],
    veth_dropped: int,
) -> dict:
    n = sent.frames
    why = []
    if n != sent.asked:
        why.append(f"the generator sent {n} of {sent.asked}")
    if tap.bad or tap.outside or tap.dup_seqs or tap.dup_ids:
        why.append(
            f"answers: {tap.bad} malformed, {tap.outside} outside the window, "
            f"{tap.dup_seqs} seqs and {tap.dup_ids} ids twice"
        )
    if variant == "engine":
        if not n == updates == orders == tap.orders:
            why.append(f"sent {n}, engine updates {updates}, engine orders {orders}, orders arrived {tap.orders}")
        first, last = ids[0] + 1, ids[1]
        if tap.orders and (tap.min_id, tap.max_id) != (first, last):
            why.append(f"order ids {tap.min_id}..{tap.max_id}, the engine's were {first}..{last}")
        if ring_drops or ring_events != orders:
            why.append(f"{ring_events} order events in the ring for {orders} orders ({ring_drops} dropped)")
    elif variant == "bare":
        if tap.echoes != n:
            why.append(f"sent {n}, echoed {tap.echoes}")
    elif veth_dropped < n or tap.echoes or tap.orders:
        # >=: a stray frame of the lab (neighbour discovery) is dropped there too.
        why.append(f"sent {n}, dropped on arrival {veth_dropped}, answered {tap.echoes + tap.orders}")
    if veth_lost and not why:
        why.append(f"veth lost frames {veth_lost}")
    rate = round(sent.rate)
    return {
        "variant": variant,
        "frames": n,
        "rate": rate,
        "ns_per_update": round(1e9 / rate, 1) if rate else None,
        "sent": n,
        "engine_updates": updates,
        "engine_orders": orders,
        "answers": tap.orders if variant == "engine" else tap.echoes,
        "order_ids": [tap.min_id, tap.max_id],
        "ring_events": ring_events,
        "ringbuf_drops": ring_drops,
        "dup_seqs": tap.dup_seqs,
        "dup_ids": tap.dup_ids,
        "outside": tap.outside,
        "bad": tap.bad,
        "skipped": sent.skipped,
        "veth_lost": veth_lost,
        "exact": not why,
        "why": "; ".join(why) or None,
    }


def measure(rig: Rig, progress: Callable[[str], None] | None = None) -> dict:
    """The engine, the bare reflector and the sender alone on one core and on two; see the module's
    comment for what each is."""
    s = _Steps(rig, progress or (lambda _line: None))
    one, both = [rig.one_cpu], list(rig.cpus)
    per_cpu = dict(zip(both, workload.THROUGHPUT_SYMBOLS))
    one_core, two_cores = {}, {}
    for variant in ("engine", "bare", "sender_alone"):
        rig.attach(variant)
        rig.generator.set_symbols({one[0]: [per_cpu[one[0]]]})
        one_core[variant] = s.held(variant, one)
        rig.generator.set_symbols({cpu: [name] for cpu, name in per_cpu.items()})
        two_cores[variant] = s.held(variant, both)
    rig.generator.set_symbols({})

    def ratio(a: dict, b: dict) -> float | None:
        return round(a["rate"] / b["rate"], 2) if a["exact"] and b["exact"] and b["rate"] else None

    return {
        "frames_per_step": rig.frames,
        "one_cpu": rig.one_cpu,
        "cpus": both,
        "one_core": one_core,
        "two_cores": two_cores,
        "ratios": {
            "engine/bare, one core": ratio(one_core["engine"], one_core["bare"]),
            "engine, two cores/one": ratio(two_cores["engine"], one_core["engine"]),
            "bare, two cores/one": ratio(two_cores["bare"], one_core["bare"]),
            "sender alone/engine, one core": ratio(one_core["sender_alone"], one_core["engine"]),
        },
        "steps": s.steps,
    }


def measure_symbols(rig: Rig, symbol_counts: list[int], progress: Callable[[str], None] | None = None) -> list[dict]:
    """The engine on one core with updates cycling through N configured symbols, the symbol map holding
    only those (every one trading), for each N the engine of ``rig`` can hold; the others say why not."""
    s = _Steps(rig, progress or (lambda _line: None))
    one = [rig.one_cpu]
    rig.attach("engine")
    p = workload.config().symbols[Symbol(workload.THROUGHPUT_SYMBOL)]
    kept = rig.maps.symbol_names()
    for name in kept:
        rig.maps.remove_symbol(name)
    scaling: list[dict] = []
    try:
        for n in symbol_counts:
            if n > rig.max_symbols:
                why = f"the engine holds at most {rig.max_symbols} symbols"
                scaling.append({"symbols": n, "rate": None, "why": why})
                continue
            names = workload.scaling_symbols(n)
            for sym in names:
                rig.maps.write_symbol(Symbol(sym), p)
            rig.generator.set_symbols({one[0]: names})
            scaling.append(s.held("engine", one, symbols=n))
            for sym in names:
                rig.maps.remove_symbol(Symbol(sym))
    finally:
        for name in kept:
            rig.maps.write_symbol(name, workload.config().symbols[name])
        rig.generator.set_symbols({})
    return scaling
