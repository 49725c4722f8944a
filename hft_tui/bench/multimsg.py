"""Feed packets of many messages (IEX-TP DEEP): what a message costs, and how many a core reads.

Every packet is as large as a 1,500-byte MTU carries (a 1,472-byte UDP
payload: 44 price levels of 32 bytes with their length prefix, not the 67 a
packet could never hold), built with hft_tui.feeds from the layouts of
ebpf/feed_iex.h:

- ``skipped``: 67 messages of a type the engine walks past (19 and 20 bytes);
- ``unknown``: 44 offers of a symbol nobody configured;
- ``no_trade``: 44 offers of a configured symbol above its buy target;
- ``one_trade``: the same with the last offer below it: one order a packet;
- ``mixed`` (throughput only): a real DEEP packet's 67 messages, most of types
  the engine walks past: 58 skipped, 4 offers of an unknown symbol, 4 of a
  configured one above its target, and last one below it (one order).

Test runs (feed_harness.c: frame and length restored, first sequence
advanced by the packet's count, tail call) time each packet and a half-size
one (33 or 22 messages) on the engine built for IEX (a measured copy: rings
for every event); the trivial program through the same harness is taken out,
and ``marginal_ns_per_message`` (full minus half, over the messages between)
is what one more message costs, the packet's own work removed.

Throughput: the ``one_trade`` and ``mixed`` packets through the throughput
chain of throughput.py on one core: packets/s and messages/s with every
packet and every order accounted for.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from dataclasses import dataclass
from typing import Any

from .. import libbpf
from ..constants import IEX, C
from ..feeds import iex
from ..lab import PASS_PROGRAM, Lab
from ..maps import EngineMaps
from ..paths import EBPF_DIR
from . import BenchError, veth, workload
from .generator import Generator
from .testrun import MeasuredCopy, frame
from .wiretap import WireTap

HARNESS_SOURCE = __file__.rsplit("/", 1)[0] + "/feed_harness.c"
FEED = "iex"
UDP_PAYLOAD = 1472  # a 1,500-byte MTU less the IPv4 and UDP headers
SESSION, CHANNEL = 1, 1
SKIP_TYPE = b"T"  # a trade report: a type the engine walks past by its length
RUNS = 3
XDP_PASS, XDP_TX = 2, 3  # enum xdp_action (uapi/linux/bpf.h)
CTR_UPDATES, CTR_ORDERS = C["HFT_CTR_UPDATES"], C["HFT_CTR_ORDERS"]
CTR_RINGBUF_DROPS, CTR_TAPE_DROPS = C["HFT_CTR_RINGBUF_DROPS"], C["HFT_CTR_TAPE_DROPS"]
KINDS = ("skipped", "unknown", "no_trade", "one_trade")
RATE_KINDS = ("one_trade", "mixed")  # the packets whose messages a second are measured
MIXED_MESSAGES, MIXED_UNKNOWN, MIXED_QUIET = 67, 4, 4


@dataclass(frozen=True)
class Packet:
    kind: str
    payload: bytes  # the UDP payload: one IEX-TP segment
    messages: int
    orders: int  # orders it makes


def _skipped_messages(n: int, room: int) -> list[bytes]:
    """``n`` skipped messages whose blocks fill ``room`` bytes exactly (lengths differing by one at most)."""
    prefix = IEX["IEX_BLOCK_LEN_SIZE"]
    base, extra = divmod(room - n * prefix, n)
    return [SKIP_TYPE + bytes(base + (1 if i < extra else 0) - 1) for i in range(n)]


def packet(kind: str, half: bool = False) -> Packet:
    p = workload.config().symbols[workload.TEST_RUN_SYMBOL]
    room = UDP_PAYLOAD - iex.HDR_LEN
    level_block = iex.LEVEL_LEN + IEX["IEX_BLOCK_LEN_SIZE"]
    levels = room // level_block // (2 if half else 1)
    above, below = p.buy_target + p.tick_size, p.buy_target - p.tick_size
    orders = 0
    if kind == "skipped":
        n = 67 // (2 if half else 1)
        msgs = _skipped_messages(n, room // (2 if half else 1))
    elif kind == "unknown":
        msgs = [iex.encode_message(iex.PriceLevel("S", "NOSUCH", below, 100))] * levels
    elif kind in ("no_trade", "one_trade"):
        msgs = [iex.encode_message(iex.PriceLevel("S", workload.TEST_RUN_SYMBOL, above, 100))] * levels
        if kind == "one_trade":
            msgs[-1] = iex.encode_message(iex.PriceLevel("S", workload.TEST_RUN_SYMBOL, below, 100))
            orders = 1
    elif kind == "mixed" and not half:
        levels = MIXED_UNKNOWN + MIXED_QUIET + 1
        msgs = _skipped_messages(MIXED_MESSAGES - levels, room - levels * level_block)
        msgs += [iex.encode_message(iex.PriceLevel("S", "NOSUCH", below, 100))] * MIXED_UNKNOWN
        msgs += [iex.encode_message(iex.PriceLevel("S", workload.TEST_RUN_SYMBOL, above, 100))] * MIXED_QUIET
        msgs.append(iex.encode_message(iex.PriceLevel("S", workload.TEST_RUN_SYMBOL, below, 100)))
        orders = 1
    else:
        raise ValueError(kind)
    seg = iex.Segment(iex.PROTO_DEEP, CHANNEL, SESSION, 1, tuple(msgs))
    payload = iex.encode_segment(seg)
    if len(payload) > UDP_PAYLOAD:
        raise BenchError(f"the {kind} packet is {len(payload)} bytes, more than {UDP_PAYLOAD}")
    return Packet(kind, payload, len(msgs), orders)


def seq_offset(payload_offset: int) -> int:
    return payload_offset + IEX["IEX_OFF_FIRST_SEQ"]


class _FeedHarness:
    def __init__(self) -> None:
        import bcc

        self.bpf = bcc.BPF(src_file=HARNESS_SOURCE.encode(), cflags=[f"-I{EBPF_DIR}"])
        self.trivial = bcc.BPF(text=PASS_PROGRAM)
        self.fd = self.bpf.load_func(b"xdp_feed_harness", bcc.BPF.XDP).fd
        self.trivial_fd = self.trivial.load_func(b"xdp_pass", bcc.BPF.XDP).fd
        self.prog_ids = [libbpf.prog_info(self.fd).id, libbpf.prog_info(self.trivial_fd).id]
        self._template = self.bpf.get_table(b"feed_harness_template")
        self._target = self.bpf.get_table(b"feed_harness_target")
        seq = self.bpf.get_table(b"feed_harness_seq")
        seq[ctypes.c_uint32(0)] = ctypes.c_uint64(1)

    def run(self, prog_fd: int, raw: bytes, seq_off: int, step: int, n: int) -> tuple[int, float]:
        t = self._template.Leaf()
        t.len, t.seq_off, t.seq_step = len(raw), seq_off, step
        ctypes.memmove(t.bytes, raw, len(raw))
        self._template[ctypes.c_uint32(0)] = t
        self._target[ctypes.c_int(0)] = ctypes.c_int(prog_fd)
        action, _out, ns = libbpf.test_run(self.fd, raw, n)
        return action, ns

    def close(self) -> None:
        self.bpf.cleanup()
        self.trivial.cleanup()


def load_copy(feed_port: int, packets: int) -> MeasuredCopy:
    """The engine built for IEX, measured only: rings for every order and sampled message of a run."""
    longest = max(packet(k).messages for k in KINDS)
    sample = workload.config(feed_port).engine.update_sample or 1
    return MeasuredCopy.load(feed_port, packets, feed=FEED, tape_events=packets * longest // sample + 1)


def _check(kind: str, pk: Packet, action: int, d: list[int], feed_d: dict[str, int], n: int) -> None:
    want_orders = n * pk.orders
    ok = (
        action == (XDP_TX if pk.orders else XDP_PASS)
        and feed_d["packets"] == n
        and d[CTR_ORDERS] == want_orders
        and d[CTR_RINGBUF_DROPS] == 0
        and d[CTR_TAPE_DROPS] == 0
    )
    if not ok:
        raise BenchError(
            f"IEX test run '{kind}' did not take its path on every iteration, or an event was dropped "
            f"(action {action}, counter changes {d}, feed counters {feed_d})"
        )


def _feed_delta(before: Any, after: Any) -> dict[str, int]:
    return {k: getattr(after, k) - getattr(before, k) for k in ("packets", "messages", "dup_packets")}


def measure_cost(copy: MeasuredCopy, lab: Lab, feed_port: int, repeat: int) -> dict:
    """ns a packet and a message for each kind, on the engine built for IEX."""
    h = _FeedHarness()
    m: EngineMaps = copy.maps
    try:
        runs: dict[str, list[float]] = {}
        frames: dict[tuple[str, bool], tuple[Packet, bytes, int]] = {}
        for kind in KINDS:
            for half in (False, True):
                pk = packet(kind, half)
                raw, off = frame(lab, pk.payload, feed_port)
                frames[(kind, half)] = (pk, raw, seq_offset(off))
        for _ in range(RUNS):
            for (kind, half), (pk, raw, seq_off) in frames.items():
                copy.rings.discard()
                before, fb = m.counters(), m.feed_counts()
                action, ns = h.run(copy.fd, raw, seq_off, pk.messages, repeat)
                d = [a - b for a, b in zip(m.counters(), before)]
                _check(kind, pk, action, d, _feed_delta(fb, m.feed_counts()), repeat)
                runs.setdefault(f"{kind}{'_half' if half else ''}", []).append(ns)
            pk, raw, seq_off = frames[("no_trade", False)]
            runs.setdefault("trivial", []).append(h.run(h.trivial_fd, raw, seq_off, pk.messages, repeat)[1])
        trivial = statistics.median(runs["trivial"])
        out: dict[str, Any] = {"repeat": repeat, "runs": RUNS, "trivial": trivial}
        kinds = {}
        for kind in KINDS:
            full, small = frames[(kind, False)][0], frames[(kind, True)][0]
            ns, ns_half = statistics.median(runs[kind]), statistics.median(runs[f"{kind}_half"])
            kinds[kind] = {
                "frame_bytes": len(frames[(kind, False)][1]),
                "messages": full.messages,
                "packet_ns": ns,
                "half_messages": small.messages,
                "half_packet_ns": ns_half,
                "ns_per_message": round((ns - trivial) / full.messages, 2),
                "marginal_ns_per_message": round((ns - ns_half) / (full.messages - small.messages), 2),
            }
        out["kinds"] = kinds
        out["all_runs"] = runs
        out["_prog_ids"] = h.prog_ids
        return out
    finally:
        h.close()


def measure_rate(
    copy: MeasuredCopy, lab: Lab, generator_blast, tap: WireTap, attach, cpu: int, packets: int, kind: str = "one_trade"
) -> dict:
    """Packets and messages a second on one core, the ``kind`` packet (one order each: its last message),
    every packet and order accounted for."""
    pk = packet(kind)
    raw, off = frame(lab, pk.payload, workload.config().engine.feed_port)
    gen = Generator(lab, raw, seq_offset(off), off, generator_blast, seq_step=pk.messages, seq_le=True, park=1)
    m = copy.maps
    try:
        attach()
        packets = min(packets, tap.window // pk.messages - 1)
        # Where the test runs left the channel: an older sequence would be a duplicate (and stale).
        seq = max((c.next_seq for c in m.channels(FEED)), default=1)
        copy.rings.discard()
        before, fb, ids = m.counters(), m.feed_counts(), m.totals().order_seq
        vb = veth.xdp_stats(lab)
        last = seq + (pk.messages - 1)  # the seq of the trading (last) message of the first packet
        tap.count_from(last, ids + 1)
        sent = gen.send(packets, 0, [cpu], seq)
        time.sleep(0.05)
        t = tap.counts()
        tap.stop_counting()
        d = [a - b for a, b in zip(m.counters(), before)]
        fd = _feed_delta(fb, m.feed_counts())
        events = copy.rings.discard().get("events", 0)
        lost = {k: v for k, v in veth.delta(vb, veth.xdp_stats(lab)).items() if "err" in k}
        ids_after = m.totals().order_seq
        n = sent.frames
        why = []
        if not n == packets == fd["packets"] == d[CTR_ORDERS] == t.orders == events:
            why.append(
                f"sent {n} of {packets}, engine packets {fd['packets']}, orders {d[CTR_ORDERS]}, "
                f"orders arrived {t.orders}, events {events}"
            )
        if fd["messages"] != n * pk.messages:
            why.append(f"{fd['messages']} messages read of {n * pk.messages}")
        if t.dup_seqs or t.dup_ids or t.bad or (t.min_id, t.max_id) != (ids + 1, ids_after) or lost:
            why.append(f"answers {t}, order ids {ids + 1}..{ids_after}, veth lost {lost}")
        rate = sent.rate
        return {
            "cpu": cpu,
            "packet": pk.kind,
            "messages_per_packet": pk.messages,
            "packets": n,
            "packets_per_s": round(rate),
            "messages_per_s": round(rate * pk.messages),
            "ns_per_message": round(1e9 / (rate * pk.messages), 1) if rate else None,
            "engine_messages": fd["messages"],
            "orders": d[CTR_ORDERS],
            "answers": t.orders,
            "order_ids": [t.min_id, t.max_id],
            "ring_events": events,
            "veth_lost": lost,
            "exact": not why,
            "why": "; ".join(why) or None,
            "_prog_ids": gen.prog_ids,
        }
    finally:
        gen.close()
