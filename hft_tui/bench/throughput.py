"""The highest update rate the lab answers with exact accounting.

With the engine attached (native), blast.c sends updates that all trade at
a rising rate (then as fast as its core allows) from the simulator's CPU
and counts the orders on another CPU.  A step holds when nothing is lost:
updates sent == updates the engine counted == orders it counted == orders
received, every order once, ids gap-free.  The reported rate is the highest
achieved rate of a step that held, and ``limit`` says what stopped the
ladder: a lost order (then two bisection steps narrow it down), or the
sender's core running out (the rate asked for was not reached; then one
unpaced step with full batches shows the most the core can send).  The
sender and the engine share a core, as they do in the latency runs: the
engine runs in the softirq of the send.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .. import lab as lab_mod
from ..constants import C
from . import BenchError, workload

RATES = (25_000, 50_000, 100_000, 200_000, 400_000, 800_000, 1_600_000)
FLAT_OUT_RATE = 1_000_000  # sizes the unpaced step
BISECT_STEPS = 2
CTR_UPDATES = C["HFT_CTR_UPDATES"]
CTR_ORDERS = C["HFT_CTR_ORDERS"]
CTR_RINGBUF_DROPS = C["HFT_CTR_RINGBUF_DROPS"]


def _step(
    binary: Path, lab, maps, *, rate: int, count: int, seq_start: int, feed_port: int, send_cpu: int, recv_cpu: int, p
) -> dict:
    ask = p.buy_target - p.tick_size
    argv = [
        str(binary),
        "--src",
        lab.exchange_ip,
        "--dst",
        lab.engine_ip,
        "--port",
        str(feed_port),
        "--count",
        str(count),
        "--rate",
        str(rate),
        "--seq-start",
        str(seq_start),
        "--symbol",
        workload.THROUGHPUT_SYMBOL,
        "--bid",
        str(ask - p.tick_size),
        "--bid-qty",
        "1",
        "--ask",
        str(ask),
        "--ask-qty",
        "1",
        "--send-cpu",
        str(send_cpu),
        "--recv-cpu",
        str(recv_cpu),
        "--idle-ms",
        "300",
    ]
    before, ids_before = maps.counters(), maps.totals().order_seq
    try:
        res = subprocess.run(lab_mod.nsenter_argv(argv, lab), capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise BenchError("the throughput sender did not finish within 120 s") from None
    if res.returncode != 0:
        raise BenchError(f"the throughput sender failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
    after, ids_after = maps.counters(), maps.totals().order_seq
    got = json.loads(res.stdout.strip().splitlines()[-1])
    updates = after[CTR_UPDATES] - before[CTR_UPDATES]
    orders = after[CTR_ORDERS] - before[CTR_ORDERS]
    exact = (
        got["sent"] == count == updates == orders == got["received"]
        and got["bad"] == 0
        and got["duplicates"] == 0
        and got["min_id"] == ids_before + 1
        and got["max_id"] == ids_after
        and got["max_id"] - got["min_id"] + 1 == got["received"]
    )
    achieved = got["sent"] / (got["elapsed_ns"] / 1e9) if got["elapsed_ns"] else 0.0
    return {
        "target_rate": rate or "unpaced",
        "achieved_rate": round(achieved),
        "sent": got["sent"],
        "engine_updates": updates,
        "engine_orders": orders,
        "received": got["received"],
        "bad": got["bad"],
        "duplicates": got["duplicates"],
        "order_ids": [got["min_id"], got["max_id"]],
        "ringbuf_drops": after[CTR_RINGBUF_DROPS] - before[CTR_RINGBUF_DROPS],
        "exact": exact,
    }


def measure(
    binary: Path,
    lab,
    maps,
    *,
    feed_port: int,
    send_cpu: int,
    recv_cpu: int,
    step_s: float,
    seq_start: int,
    progress=None,
) -> dict:
    p = workload.config(feed_port).symbols[workload.THROUGHPUT_SYMBOL]
    steps = []
    seq = seq_start

    def step(rate: int) -> dict:
        nonlocal seq
        count = max(1000, int((rate or FLAT_OUT_RATE) * step_s))
        st = _step(
            binary,
            lab,
            maps,
            rate=rate,
            count=count,
            seq_start=seq,
            feed_port=feed_port,
            send_cpu=send_cpu,
            recv_cpu=recv_cpu,
            p=p,
        )
        seq += count
        steps.append(st)
        if progress:
            progress(
                f"throughput {st['target_rate']}/s: achieved {st['achieved_rate']}/s, "
                f"received {st['received']}/{st['sent']}{'' if st['exact'] else ' NOT EXACT'}"
            )
        return st

    limit = "the sender's core (the unpaced step held)"
    held_rate = 0
    for rate in (*RATES, 0):
        st = step(rate)
        if not st["exact"]:
            # Narrow down between the last rate that held and this one.
            lo, hi = held_rate, st["achieved_rate"]
            for _ in range(BISECT_STEPS):
                mid = (lo + hi) // 2
                if mid <= lo or not mid:
                    break
                if step(mid)["exact"]:
                    lo = mid
                else:
                    hi = mid
            limit = f"orders lost or miscounted above {lo} updates/s"
            break
        held_rate = rate
        if rate and st["achieved_rate"] < 0.9 * rate:
            # The sender's core is full: one unpaced step (bigger batches) says how full.
            flat = step(0)
            limit = (
                f"the sender's core is full: {rate}/s asked, {st['achieved_rate']}/s reached; "
                f"unpaced, {flat['achieved_rate']}/s" + ("" if flat["exact"] else " with orders lost")
            )
            break
    held = [s for s in steps if s["exact"]]
    return {
        "max_rate_held": max((s["achieved_rate"] for s in held), default=0),
        "limit": limit,
        "steps": steps,
        "send_cpu": send_cpu,
        "recv_cpu": recv_cpu,
        "next_seq": seq,
    }
