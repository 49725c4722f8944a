"""The latency rounds: every variant, interleaved, ping-pong and paced, timed twice.

``rounds`` rounds; in each, every variant in turn (A B C ... A B C ...) gets
a warm-up, then its share of ping-pong trips, then its share of paced trips.
The i-th measured update is the same for every variant; only the seq grows,
because an update with an old seq never trades.  Every answer is checked
against the client's model of the strategy.

Each measured trip is timed twice: the round trip the client sees (the
echoed send time against the kernel's receive stamp of the order), and
tick-to-trade on the wire (the wire taps' departure stamp of the update
against their arrival stamp of the order, both bpf_ktime_get_ns on the
exchange's end of the veth: see wiretap.py).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .. import netlink
from ..errors import ProtocolError
from ..protocol import decode_order, encode_update
from . import BenchError, workload
from .client import _U64, OFF_TIMESTAMP, Client, NoAnswer
from .options import BOT_NAMES, VARIANTS, Options, Variant
from .wiretap import WireTap

PATTERNS = ("pingpong", "paced")


@dataclass
class Samples:
    ns: list[int] = field(default_factory=list)  # round trips
    wire: list[int] = field(default_factory=list)  # tick-to-trade on the wire, same trips
    wire_missing: int = 0  # measured trips the taps did not stamp both ways
    lost: int = 0
    invalid: int = 0
    late: int = 0


class Rounds:
    def __init__(self, opts: Options, say: Callable[[str], None], *, lab, maps, client: Client, tap: WireTap) -> None:
        self.o = opts
        self.say = say
        assert opts.sim_cpu is not None and opts.bot_cpu is not None, "Options.check() first: it picks the CPUs"
        self.sim_cpu: int = opts.sim_cpu
        self.bot_cpu: int = opts.bot_cpu
        self.lab = lab
        self.maps = maps
        self.client = client
        self.tap = tap
        self.p = workload.params(workload.config(opts.feed_port))
        self.updates = [workload.update(i, 0, self.p) for i in range(max(opts.count, opts.warmup))]
        self.seq = 0
        self.bots: dict = {}
        self.strategy_fd = self.reflector_fd = -1
        self.last_id: dict[str, int] = {}  # actor -> last order id seen
        self.gap_ok: set[str] = set()  # actors that may skip ids (after a lost answer)
        self.errors: list[str] = []
        self.samples = {v.name: {pat: Samples() for pat in PATTERNS} for v in VARIANTS}

    def placement(self, v: Variant) -> str:
        if v.kind == "xdp":
            return f"XDP {v.mode}, softirq on CPU {self.sim_cpu} (the simulator's)"
        cpu = self.bot_cpu if v.own_core else self.sim_cpu
        how = "busy poll" if v.bot == "c-busy" else "blocking receive"
        return f"{BOT_NAMES[v.bot]}, {how}, CPU {cpu} ({'own core' if v.own_core else 'shared with the simulator'})"

    def activate(self, v: Variant, ipr) -> None:
        iface = self.lab.engine_iface
        if v.kind == "xdp":
            for b in self.bots.values():
                b.pause()
            fd = self.strategy_fd if v.program == "strategy" else self.reflector_fd
            netlink.attach_xdp(ipr, iface, fd, v.mode, force=True)
            self.client.target(self.o.feed_port)
            return
        st = netlink.xdp_state(ipr, iface)
        if st.mode:
            netlink.detach_xdp(ipr, iface, st.mode)
        for name, b in self.bots.items():
            if name != v.bot:
                b.pause()
        b = self.bots[v.bot]
        b.pin(self.bot_cpu if v.own_core else self.sim_cpu)
        b.resume()
        b.check()
        self.client.target(b.port)

    def trips(self, v: Variant, indices: list[int], pace_ns: int, into: Samples | None) -> None:
        """Round trips for ``indices``; lost ones are sent again (fresh seqs) so ``into`` gets them all."""
        pending = list(indices)
        measured: list[int] = []  # seqs of the valid measured trips
        for _attempt in range(3):
            if not pending:
                break
            payloads, ups = [], []
            for i in pending:
                self.seq += 1
                u = replace(self.updates[i], seq=self.seq)
                payloads.append((bytearray(encode_update(u)), self.seq))
                ups.append(u)
            if v.actor == "engine":
                self.last_id["engine"] = self.maps.totals().order_seq
            try:
                res = self.client.run(payloads, pace_ns=pace_ns, timeout_s=self.o.timeout_s)
            except NoAnswer as exc:
                raise BenchError(f"{v.name}: {exc}") from None
            retry = []
            for i, (buf, _seq), u, trip in zip(pending, payloads, ups, res.trips):
                if not trip.rx_ns:
                    self.gap_ok.add(v.actor)  # its order (if any) took an id we never saw
                    retry.append(i)
                    if into:
                        into.lost += 1
                    continue
                rtt = self.check(v, buf, u, trip)
                if rtt is None:
                    if into:
                        into.invalid += 1
                elif into:
                    into.ns.append(rtt)
                    measured.append(u.seq)
            if into:
                into.late += res.late + res.unstamped
            pending = retry
            if pending:
                self.client.drain()
        if pending:
            raise BenchError(f"{v.name}: {len(pending)} update(s) got no order in 3 attempts of {self.o.timeout_s} s")
        if into:
            wire, missing = self.tap.wire_ns(measured)
            into.wire += wire
            into.wire_missing += missing

    def check(self, v: Variant, buf: bytearray, u, trip) -> int | None:
        """The round trip in ns when the answer is right; None (and a note) when it is not."""

        def bad(why: str) -> None:
            if len(self.errors) < 20:
                self.errors.append(f"{v.name}: seq {u.seq}: {why}")

        if v.program == "reflector":
            if trip.payload != bytes(buf):
                bad("the reflected frame is not the update sent")
                return None
            return trip.rx_ns - _U64.unpack_from(trip.payload, OFF_TIMESTAMP)[0]
        try:
            o = decode_order(trip.payload)
        except ProtocolError as exc:
            bad(str(exc))
            return None
        why = workload.check_order(o, u, trip.sent_ns, self.p)
        last = self.last_id.get(v.actor, 0)
        if why is None and not (o.order_id == last + 1 or (v.actor in self.gap_ok and o.order_id > last)):
            why = f"order id {o.order_id} after {last}"
        self.last_id[v.actor] = o.order_id
        self.gap_ok.discard(v.actor)
        if why:
            bad(why)
            return None
        return trip.rx_ns - o.timestamp

    def run(self, ipr, discard_rings: Callable[[], object]) -> None:
        o = self.o
        rounds = min(o.rounds, o.count)
        shares = [o.count // rounds + (1 if r < o.count % rounds else 0) for r in range(rounds)]
        pace_ns = 1_000_000_000 // o.paced_rate
        start = 0
        gc.collect()
        gc.disable()
        try:
            for r, share in enumerate(shares):
                self.say(f"latency round {r + 1}/{rounds} ({share} trips per variant and pattern)")
                idx = list(range(start, start + share))
                for v in VARIANTS:
                    self.activate(v, ipr)
                    self.trips(v, list(range(o.warmup)), 0, None)
                    self.trips(v, idx, 0, self.samples[v.name]["pingpong"])
                    self.trips(v, idx, pace_ns, self.samples[v.name]["paced"])
                    discard_rings()
                start += share
        finally:
            gc.enable()
        for b in self.bots.values():
            b.check()
            b.pause()
