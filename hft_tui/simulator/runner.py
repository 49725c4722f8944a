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
import time
from dataclasses import asdict
from typing import Literal

from .. import lab as lab_mod
from ..config import Config
from ..errors import SimulatorError
from ..symbol import Symbol
from . import hft1
from .checker import SENT_LOG_SLOTS, OrderChecker, SentLog, SymbolCounts
from .engine_start import EngineStart, config_warnings
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

    def run(self, count: int = 10_000, rate: float = 1000, *, duration: float | None = None, stop=None) -> FeedSummary:
        """Sends ``count`` updates (0: until ``stop()`` or ``duration``) at
        ``rate`` updates/s (0: as fast as it goes) and checks the orders."""
        if count < 0 or rate < 0 or (duration is not None and duration <= 0):
            raise SimulatorError("count and rate must be >= 0 and duration > 0")
        if count == 0 and duration is None and stop is None:
            raise SimulatorError("count 0 runs until stopped: give a duration or a stop function")
        warnings = []
        if self.start_mode == "auto":
            start = EngineStart.read(self.lab.engine_iface)
            if start is None:
                warnings.append(f"no engine is pinned on {self.lab.engine_iface}: expect no orders")
        else:
            start = self.start_mode
        warnings += config_warnings(self.config, start, self.names, self.port)
        first_seq = self.first_seq or (start.next_seq() if start else 1)
        log = SentLog(first_seq, SENT_LOG_SLOTS if count == 0 else min(SENT_LOG_SLOTS, max(count, 1)))
        checker = OrderChecker(self.config, log, start)
        rtts = RttRecorder(seed=self.seed)
        walk = MarketWalk(self.names, self.config, self.seed)
        sock = exchange_socket(self.lab)
        cpu = current_cpu() if self.cpu == "auto" else self.cpu
        try:
            old_affinity = pin_thread(cpu)
            try:
                before = lab_mod.in_namespace(read_udp_snmp, self.lab)
                receiver = OrderReceiver(sock, (self.lab.engine_ip, self.port), checker, rtts)
                sent, elapsed = self._loop(sock, walk, log, checker, receiver, count, rate, duration, stop)
                after = lab_mod.in_namespace(read_udp_snmp, self.lab)
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
        )

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
