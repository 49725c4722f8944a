"""One run of the exchange: the walk packed, sent, and every order checked.

With ``rate`` 0 a batch is MAX_BATCH updates; with a rate, a batch is
whatever is due, so at low rates every update leaves on its own.  Orders are
drained after every batch and while waiting for the next one, and for
GRACE_S after the last update.  The sender timestamp is time.time_ns()
taken after the batch is packed, just before it goes out.
"""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import asdict
from typing import Literal

from .. import lab as lab_mod
from ..config import Config
from ..errors import SimulatorError
from ..maps import Gateway
from ..order_frames import ExpectedRoute
from ..packet_io import mark_foreign_macs
from ..symbol import Symbol
from ..wire import UDP_HLEN, Route, mac_bytes
from . import hft1
from .checker import SENT_LOG_SLOTS, FeedLog, OrderChecker, SentLog, SymbolCounts
from .engine_start import EngineStart, config_warnings, engine_feed_delta
from .frame_path import FeedCounts, FramePlan, FrameRun, sink_socket
from .mix import FeedSource
from .options import ENGINE_FEED, TS_MODULO, FeedOptions, feed_format
from .receiver import OrderReceiver
from .sender import MAX_BATCH, BatchSender, current_cpu, exchange_socket, pin_thread
from .stats import FeedSummary, RttRecorder, read_udp_snmp
from .walk import MarketWalk

GRACE_S = 0.2  # wait this long after the last update for its order


class Simulator:
    """The exchange of one lab, usable from the root namespace (tests) or from
    inside the lab (the CLI): its socket is made in the lab namespace."""

    def __init__(
        self,
        lab: lab_mod.Lab,
        config: Config,
        *,
        seed: int = 1,
        symbols: list[str] | None = None,
        port: int | None = None,
        first_seq: int | None = None,
        start: EngineStart | Literal["auto"] | None = "auto",
        cpu: int | Literal["auto"] | None = "auto",
        grace_s: float = GRACE_S,
        feed: FeedOptions | None = None,
    ) -> None:
        self.lab = lab
        self.config = config
        self.names = [Symbol(s) for s in (symbols or list(config.symbols))]
        if not self.names:
            raise SimulatorError("no symbols to trade: the config has none and --symbols gave none")
        if len(set(self.names)) != len(self.names):
            raise SimulatorError("a symbol is listed twice")
        self.seed = seed
        self.port = port or config.engine.feed_port
        self.first_seq = first_seq
        self.start_mode = start
        self.cpu = cpu
        self.grace_s = grace_s
        self.order_frames = 0
        self.engine_feed: dict | None = None
        self.engine_route: Gateway | None = None
        self.feed = feed or FeedOptions()
        self.feed.validate()
        self.gateway = config.gateway  # [engine.gateway], when the config has one
        self.engine_mac = lab_mod.engine_mac(lab)

    @property
    def fast(self) -> bool:
        """hft1 as plain UDP datagrams with sendmmsg (the simulator's top rate)."""
        return self.feed.plain_hft1 and self.gateway is None

    def run(self, count: int = 10_000, rate: float = 1000, *, duration: float | None = None, stop=None) -> FeedSummary:
        """Sends ``count`` updates (0: until ``stop()`` or ``duration``) at
        ``rate`` updates/s (0: as fast as it goes) and checks the orders."""
        if count < 0 or rate < 0 or (duration is not None and duration <= 0):
            raise SimulatorError("count and rate must be >= 0 and duration > 0")
        if count == 0 and duration is None and stop is None:
            raise SimulatorError("count 0 runs until stopped: give a duration or a stop function")
        warnings = []
        engine_feed = ENGINE_FEED[self.feed.format]
        channel = feed_format(self.feed.format).channel  # as the engine names it (maps.FeedChannel.id)
        start: EngineStart | None
        if isinstance(self.start_mode, str):  # "auto"
            start = EngineStart.read(self.lab.engine_iface, engine_feed)
            if start is None:
                warnings.append(f"no engine is pinned on {self.lab.engine_iface}: expect no orders")
        else:
            start = self.start_mode
        warnings += config_warnings(self.config, start, self.names, self.port)
        warnings += self._feed_warnings(engine_feed)
        first_seq = self.first_seq or (start.next_seq(channel) if start else 1)
        self.engine_route = start.route if start else None
        slots = SENT_LOG_SLOTS if count == 0 else min(SENT_LOG_SLOTS, max(count, 1))
        log = SentLog(first_seq, slots)
        checker = OrderChecker(self.config, log, start)
        rtts = RttRecorder(seed=self.seed)
        walk = MarketWalk(self.names, self.config, self.seed)
        sock = exchange_socket(self.lab)
        cpu = current_cpu() if self.cpu == "auto" else self.cpu
        feed_counts = None
        try:
            old_affinity = pin_thread(cpu)
            try:
                before = lab_mod.in_namespace(read_udp_snmp, self.lab)
                if self.fast:
                    mark_foreign_macs(sock, mac_bytes(self.engine_mac), UDP_HLEN)
                    receiver = OrderReceiver(sock, (self.lab.engine_ip, self.port), checker, rtts)
                    sent, elapsed = self._loop(sock, walk, log, checker, receiver, count, rate, duration, stop)
                else:
                    run = self._frame_run(sock, checker, rtts, warnings)
                    try:
                        source = FeedSource(run.plan.fmt, walk, self.seed, first_seq, self.feed.batch)
                        sent, elapsed = run.run(source, count, rate, duration, stop, self.grace_s)
                    finally:
                        run.close()
                    feed_counts = run.counts
                    self.order_frames = run.collector.order_frames
                after = lab_mod.in_namespace(read_udp_snmp, self.lab)
                if self.start_mode == "auto" and channel is not None:
                    end = EngineStart.read(self.lab.engine_iface, engine_feed)
                    self.engine_feed = engine_feed_delta(start, end, channel)
            finally:
                if old_affinity is not None:
                    os.sched_setaffinity(0, old_affinity)
        finally:
            sock.close()
        csum = after.get("InCsumErrors", 0) - before.get("InCsumErrors", 0)
        if csum:
            checker.invalid += csum
            checker.reasons["bad udp checksum"] = csum
        totals = SymbolCounts()
        for c in checker.counts.values():
            totals.buys += c.buys
            totals.sells += c.sells
            totals.bought += c.bought
            totals.sold += c.sold
        return FeedSummary(
            updates_sent=sent,
            orders_received=checker.orders,
            invalid_orders=checker.invalid,
            invalid_reasons=dict(sorted(checker.reasons.items())),
            buys=totals.buys,
            sells=totals.sells,
            first_order_id=checker.first_id,
            last_order_id=checker.last_id,
            rtt_us=rtts.summary_us(),
            rate=round(sent / elapsed, 1) if elapsed > 0 else 0.0,
            duration_s=round(elapsed, 6),
            udp_csum_errors=csum,
            udp_rcvbuf_errors=after.get("RcvbufErrors", 0) - before.get("RcvbufErrors", 0),
            bought=totals.bought,
            sold=totals.sold,
            first_seq=first_seq,
            last_seq=first_seq + sent - 1,
            symbols={n: asdict(c) for n, c in sorted(checker.counts.items())},
            invalid_examples=checker.examples,
            warnings=warnings,
            **self._feed_keys(feed_counts, sent),
        )

    def _feed_keys(self, counts: FeedCounts | None, sent: int) -> dict:
        """The summary's feed counters (the fast path: one update a packet)."""
        f = self.feed
        c = counts or FeedCounts(packets=sent, messages=sent, frames_out=sent)
        return {
            "format": f.format,
            "batch": f.batch,
            "packets_sent": c.packets,
            "messages_sent": c.messages,
            "dup_packets_sent": c.dup_packets,
            "gaps_made": c.gaps,
            "gap_messages_made": c.gap_messages,
            "frames_sent": c.frames_out,
            "order_frames": self.order_frames,
            "group": f.group,
            "vlan": f.vlan,
            "gateway": None if self.gateway is None else self._gateway_dict(),
            "pcap_out": f.pcap_out,
            "engine_feed": self.engine_feed,
        }

    def _feed_warnings(self, engine_feed: str) -> list[str]:
        """Where this run's feed is not the one the config has the engine read."""
        out = []
        want = self.config.feed
        if want.feed != engine_feed:
            out.append(f"the config's feed is {want.feed}: an engine built for it does not read {self.feed.format}")
        to = self.feed.group or self.lab.engine_ip
        if want.feed_addr is not None and str(want.feed_addr) != to:
            out.append(f"the engine reads the feed at {want.feed_addr} only; this run sends to {to}")
        return out

    def _gateway_dict(self) -> dict:
        r = self._gateway_route().route
        return {"ip": r.dst_ip, "port": r.dst_port, "mac": r.dst_mac}

    def _gateway_route(self, lab_gateway_mac: str | None = None) -> ExpectedRoute:
        """Where the engine's config sends the orders; a gateway without a MAC
        is resolved by the engine, which in the lab finds the exchange
        interface's (``lab_gateway_mac``) for the lab's gateway address."""
        g, lab = self.gateway, self.lab
        assert g is not None
        return ExpectedRoute.gateway(
            self.engine_mac,
            str(g.src_ip or lab.engine_ip),
            g.src_port or self.port,
            g.mac or (self.engine_route.mac if self.engine_route else None) or lab_gateway_mac or lab.exchange_mac,
            str(g.ip),
            g.port,
            self.feed.vlan,
        )

    def _frame_run(self, sock, checker: OrderChecker, rtts: RttRecorder, warnings: list[str]) -> FrameRun:
        f = self.feed
        plan = FramePlan(
            feed_format(f.format),
            f.batch,
            self.port,
            group=f.group,
            vlan=f.vlan,
            ab=f.ab,
            gap_rate=f.gap_rate,
            pcap_out=f.pcap_out,
            ts_modulo=TS_MODULO.get(f.format),
        )
        psock = lab_mod.packet_socket(self.lab)
        sink: socket.socket | None = None
        try:
            if self.gateway is not None:
                expected = self._gateway_route(psock.mac)
                sink = sink_socket(self.lab, expected.route.dst_ip, expected.route.dst_port)
                if sink is None:
                    warnings.append(f"the gateway {expected.route.dst_ip} is not in lab {self.lab.namespace}")
            else:
                lab = self.lab
                exchange_port = sock.getsockname()[1]
                update = Route(psock.mac, self.engine_mac, lab.exchange_ip, lab.engine_ip, exchange_port, self.port)
                expected = ExpectedRoute.reflection(update, self.engine_mac, f.vlan)
                sink = sock  # reflected orders land on the exchange's own socket
                if f.group:
                    warnings.append(
                        "a multicast feed without a gateway cannot be answered (no_route): expect no orders"
                    )
            # hft1 answers one update with one order; the feeds answer a packet with up to the cap.
            max_orders = 1 if f.format == "hft1" else self.config.engine.max_orders_per_packet
            log = FeedLog(SENT_LOG_SLOTS)
            return FrameRun(
                self.lab, plan, expected, max_orders, psock, self.engine_mac, sock, sink, checker, log, rtts, self.seed
            )
        except BaseException:  # nothing of the run's sockets outlives its failure
            psock.close()
            if sink is not None and sink is not sock:
                sink.close()
            raise

    def _loop(self, sock, walk, log, checker, receiver, count, rate, duration, stop):
        sender = BatchSender(sock, self.lab.engine_ip, self.port, hft1.MESSAGE_LEN)
        view = sender.view
        pack, stamp, drain = hft1.pack_batch, hft1.stamp_batch, receiver.drain
        # Names whose collar reference the model still has to see taken.
        pending = {n for n in walk.names if checker.model.wants_market_data(n)}
        seq = log.next_seq
        sent = 0

        t0 = time.monotonic()
        end = t0 + duration if duration else None
        while count == 0 or sent < count:
            if stop is not None and stop():
                break
            now = time.monotonic()
            if end is not None and now >= end:
                break
            if rate:
                n = min(int((now - t0) * rate) + 1 - sent, MAX_BATCH)
                if n <= 0:
                    wait = (sent / rate) - (now - t0)
                    if end is not None:
                        wait = min(wait, end - now)
                    if select.select([sock], [], [], max(wait, 0))[0]:
                        drain()
                    continue
            else:
                n = MAX_BATCH
            if count:
                n = min(n, count - sent)
            pack(view, walk, seq, n)
            if pending:
                for u in hft1.unpack_batch(view, n):
                    if u.symbol in pending:
                        checker.sent(u)
                        if not checker.model.wants_market_data(u.symbol):
                            pending.discard(u.symbol)
            # The timestamp goes in last, as close to the send as Python gets.
            stamp(view, n, time.time_ns())
            sender.send(n)
            log.add(view, n)
            seq += n
            sent += n
            drain()
        elapsed = time.monotonic() - t0
        deadline = time.monotonic() + self.grace_s
        while (left := deadline - time.monotonic()) > 0:
            if select.select([sock], [], [], left)[0]:
                drain()
        return sent, elapsed
