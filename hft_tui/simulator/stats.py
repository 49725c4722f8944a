"""What a run measured: round trips, percentiles, the lab's UDP counters and
the summary ``hft-tui lab feed`` prints (its JSON keys are a contract).
"""

from __future__ import annotations

import array
import math
import random
from dataclasses import asdict, dataclass, field
from fractions import Fraction

from ..errors import SimulatorError

RTT_SAMPLES = 1 << 21  # beyond this, a seeded reservoir keeps the percentiles honest


def percentile(sorted_values, q: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not sorted_values:
        return 0
    # Fraction(str(q)): 99.9 / 100 * 1000 is 999.0000000000001 in floats.
    rank = max(1, math.ceil(Fraction(str(q)) * len(sorted_values) / 100))
    return sorted_values[rank - 1]


class RttRecorder:
    """Round trips in ns; a seeded reservoir beyond RTT_SAMPLES of them."""

    def __init__(self, limit: int = RTT_SAMPLES, seed: int = 1) -> None:
        self.values = array.array("q")
        self.limit = limit
        self.seen = 0
        self.max = 0
        self.rng = random.Random(seed)

    def add(self, ns: int) -> None:
        self.seen += 1
        if ns > self.max:
            self.max = ns
        if len(self.values) < self.limit:
            self.values.append(ns)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.limit:
                self.values[j] = ns

    def summary_us(self) -> dict[str, float]:
        ordered = sorted(self.values)
        out = {name: round(percentile(ordered, q) / 1000, 3) for name, q in (("p50", 50), ("p99", 99), ("p999", 99.9))}
        out["max"] = round(self.max / 1000, 3)
        return out


def read_udp_snmp() -> dict[str, int]:
    """The Udp: counters of /proc/net/snmp for the calling thread's namespace
    (lab.in_namespace(read_udp_snmp, lab) reads the lab's)."""
    with open("/proc/thread-self/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    if len(rows) < 2:
        raise SimulatorError("/proc/net/snmp has no Udp counters")
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


@dataclass
class FeedSummary:
    updates_sent: int
    orders_received: int
    invalid_orders: int
    invalid_reasons: dict[str, int]
    buys: int
    sells: int
    first_order_id: int
    last_order_id: int
    rtt_us: dict[str, float]
    rate: float
    duration_s: float
    udp_csum_errors: int
    udp_rcvbuf_errors: int = 0
    bought: int = 0
    sold: int = 0
    first_seq: int = 0
    last_seq: int = 0
    symbols: dict[str, dict] = field(default_factory=dict)
    invalid_examples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The feed (added keys): what went out, and what the engine counted of it.
    format: str = "hft1"
    batch: int = 1
    packets_sent: int = 0
    messages_sent: int = 0
    dup_packets_sent: int = 0  # packets sent twice (--ab: the B line's copies)
    gaps_made: int = 0  # runs of packets not sent (--gap-rate) that a later packet shows
    gap_messages_made: int = 0
    frames_sent: int = 0
    order_frames: int = 0  # frames collected as orders (the frame path)
    group: str | None = None
    vlan: int | None = None
    gateway: dict | None = None  # where the orders were expected: {ip, port, mac}
    pcap_out: str | None = None
    engine_feed: dict | None = None  # the engine's own feed counters over the run, when it is readable

    def as_dict(self) -> dict:
        return asdict(self)

    def _feed_line(self) -> str:
        where = f" to {self.group}" if self.group else ""
        where += f" vlan {self.vlan}" if self.vlan is not None else ""
        line = (
            f"feed             {self.format}{where}: {self.packets_sent} packets of up to {self.batch}, "
            f"{self.messages_sent} messages, {self.dup_packets_sent} sent twice, "
            f"{self.gaps_made} gaps ({self.gap_messages_made} messages)"
        )
        e = self.engine_feed
        if e:
            line += (
                f"; the engine counted {e.get('dup_packets', 0)} duplicates, "
                f"{e.get('gaps', 0)} gaps ({e.get('gap_messages', 0)} messages)"
            )
        return line

    def text(self) -> str:
        r = self.rtt_us
        lines = [
            f"updates sent     {self.updates_sent} (seq {self.first_seq}..{self.last_seq}) in "
            f"{self.duration_s:.3f} s = {self.rate:,.0f}/s",
            f"orders received  {self.orders_received}: {self.buys} buys ({self.bought} shares), "
            f"{self.sells} sells ({self.sold} shares), ids {self.first_order_id}..{self.last_order_id}",
            f"round trip us    p50 {r['p50']}  p99 {r['p99']}  p99.9 {r['p999']}  max {r['max']}",
            f"udp errors       checksum {self.udp_csum_errors}, receive buffer {self.udp_rcvbuf_errors}",
            f"invalid orders   {self.invalid_orders}"
            + (
                ""
                if not self.invalid_reasons
                else " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.invalid_reasons.items())) + ")"
            ),
        ]
        if self.format != "hft1" or self.frames_sent != self.packets_sent or self.order_frames:
            lines.insert(1, self._feed_line())
        lines += [f"  {e}" for e in self.invalid_examples]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)
