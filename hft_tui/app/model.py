"""What the screen shows, computed from what the kernel says.

The worker turns each controller tick into an immutable :class:`EngineView`;
widgets only render views.  Nothing here keeps state the kernel maps hold:
the only memory is what the kernel does not have (rates need the previous
counters, charts need a bounded history, the tape needs the newest events).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from ..config import EngineParams, SymbolParams, engine_params
from ..constants import KILL_OFF, KILL_STATES, NO_TRADE_ACTIONS
from ..events import EngineEvent
from ..maps import Snapshot, symbol_params_from_map
from ..replay_status import replay_note
from .feed_model import FeedSetup, FeedView, feed_view

# How much of the ring buffer's output reaches the tape per tick: at 10 Hz
# this is at most 120 lines a second, which a reader can still follow; the
# rest is counted in a summary line (the journal has every event).
TAPE_ORDERS_PER_TICK = 8
TAPE_UPDATES_PER_SYMBOL_PER_TICK = 1
TAPE_REJECT_LINES_PER_TICK = 3
# Seconds of PnL history kept for the chart, and points per sparkline.
CHART_SECONDS = 300.0
CHART_POINT_EVERY_S = 0.5
SPARK_POINTS = 60
SPARK_SECONDS = SPARK_POINTS * CHART_POINT_EVERY_S  # what a sparkline spans
# Operational states (/sys/class/net/IFACE/operstate) in which frames move;
# "unknown" is what drivers without carrier reporting (tun, loopback) say.
LINK_UP_STATES = ("up", "unknown")
# Rates are averaged over this window so the figure does not flicker.
RATE_WINDOW_S = 1.0
# A reject reason that keeps firing is repeated in the alert log this often.
ALERT_EVERY_S = 3.0


@dataclass(frozen=True)
class SymbolView:
    name: str
    params: SymbolParams
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int
    age_ms: float | None  # since the kernel's last update of the book; None: never
    position: int
    bought: int
    sold: int
    capital_spent: int  # money in 1e-4 $
    proceeds: int
    realised: int
    unrealised: int  # marked to the last bid
    total: int
    buy_orders: int
    sell_orders: int
    updates: int
    rejects: int


@dataclass(frozen=True)
class TapeEntry:
    kind: str  # update, order, reject, kill, summary
    ts_ns: int
    symbol: str = ""
    side: str = ""
    price: int = 0
    qty: int = 0
    order_id: int = 0
    reason: str = ""
    bid: int = 0
    bid_qty: int = 0
    ask: int = 0
    ask_qty: int = 0
    count: int = 1  # rejects aggregated into this line
    text: str = ""  # for summary lines


@dataclass(frozen=True)
class EngineView:
    iface: str
    present: bool  # the interface exists
    attached: bool  # our program is the one attached to it
    mode: str | None
    prog_id: int | None
    program_hash: str | None
    config_version: int
    kill_state: str  # off, operator, loss_limit
    deadman_ms: int  # 0: not armed
    heartbeat_age_ms: float | None
    updates: int
    orders: int
    passed: int
    ringbuf_drops: int  # orders the events ring had no room for
    tape_drops: int  # rejects/updates the tape ring had no room for
    updates_per_s: float
    orders_per_s: float
    rejects: dict[str, int]
    pnl: int
    open_cost: int
    engine: EngineParams
    symbols: tuple[SymbolView, ...]
    tape: tuple[TapeEntry, ...] = ()
    alerts: tuple[str, ...] = ()
    pnl_history: tuple[tuple[float, float], ...] = ()
    sparklines: dict[str, tuple[float, ...]] = field(default_factory=dict)
    journal_gaps: int = 0
    journal_failures: int = 0
    events_not_kept: int = 0  # events the controller did not hand over this tick
    taken_ns: int = 0
    operstate: str | None = None  # the interface's operational state; None: not read
    feed: FeedView | None = None  # None: an engine without real-feed support
    replay: str | None = None  # a capture feeding the interface (hft-tui --demo --replay): where it is

    @property
    def killed(self) -> bool:
        return self.kill_state != KILL_STATES[KILL_OFF]

    @property
    def link_down(self) -> bool:
        """The interface exists but moves no frames: no update arrives, no order leaves."""
        return self.present and self.operstate is not None and self.operstate not in LINK_UP_STATES

    def symbol(self, name: str) -> SymbolView | None:
        return next((s for s in self.symbols if s.name == name), None)


def engine_params_from_snapshot(snap: Snapshot, mode: str | None, deadman_ms: int | None) -> EngineParams:
    """The running engine-wide settings, as config.EngineParams, from one snapshot.
    Values are shown as the kernel holds them, not validated again."""
    g = snap.global_config
    base = engine_params(
        {
            "feed_port": g.feed_port,
            "on_no_trade": NO_TRADE_ACTIONS.get(g.on_no_trade, "pass"),
            "update_sample": g.update_sample,
            "rate_per_sec": g.rate_per_sec,
            "burst": g.burst,
            **({"mode": mode} if mode in ("native", "generic") else {}),
        }
    )
    return EngineParams(
        **{
            **base.__dict__,
            "max_notional": g.max_notional,
            "loss_limit": g.loss_limit,
            "deadman_ms": deadman_ms or base.deadman_ms,
        }
    )


def symbol_view(name: str, cfg, st, now_ns: int) -> SymbolView:
    held = st.bought - st.sold
    realised = st.proceeds - (st.capital_spent - st.open_cost)
    unrealised = held * st.mark - st.open_cost
    return SymbolView(
        name=name,
        params=symbol_params_from_map(cfg),
        bid=st.last_bid,
        bid_qty=st.last_bid_qty,
        ask=st.last_ask,
        ask_qty=st.last_ask_qty,
        age_ms=((now_ns - st.last_update_ns) / 1e6 if st.last_update_ns else None),
        position=st.position,
        bought=st.bought,
        sold=st.sold,
        capital_spent=st.capital_spent,
        proceeds=st.proceeds,
        realised=realised,
        unrealised=unrealised,
        total=realised + unrealised,
        buy_orders=st.buy_orders,
        sell_orders=st.sell_orders,
        updates=st.updates,
        rejects=st.rejects,
    )


class RateMeter:
    """Counts per second from successive counter readings, over a short window."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_ns = int(window_s * 1e9)
        self._samples: deque[tuple[int, int]] = deque()

    def add(self, now_ns: int, count: int) -> float:
        self._samples.append((now_ns, count))
        while len(self._samples) > 2 and now_ns - self._samples[1][0] >= self.window_ns:
            self._samples.popleft()
        t0, c0 = self._samples[0]
        if now_ns <= t0:
            return 0.0
        return max(0, count - c0) * 1e9 / (now_ns - t0)


def sample_tape(events: list[EngineEvent], not_kept: int = 0) -> tuple[TapeEntry, ...]:
    """The few lines of one tick's events worth showing, oldest first.

    Orders first (the newest TAPE_ORDERS_PER_TICK), then rejects aggregated
    by reason and symbol, then the newest update per symbol; everything else
    is counted in one summary line, so the tape never falls behind the feed.
    """
    orders, updates, kills = [], {}, []
    rejects: dict[tuple[str, str], list] = {}
    n_orders = n_updates = 0
    for ev in events:
        if ev.kind == "order":
            n_orders += 1
            orders.append(ev)
        elif ev.kind == "update":
            n_updates += 1
            updates[ev.symbol] = ev
        elif ev.kind == "reject":
            slot = rejects.setdefault((ev.reason, ev.symbol), [ev, 0])
            slot[0] = ev
            slot[1] += 1
        elif ev.kind == "kill":
            kills.append(ev)
    shown_orders = orders[-TAPE_ORDERS_PER_TICK:]
    reject_items = sorted(rejects.items(), key=lambda kv: -kv[1][1])
    shown_rejects = reject_items[:TAPE_REJECT_LINES_PER_TICK]
    lines = [_entry(ev) for ev in shown_orders]
    lines += [_entry(ev, count=n) for (_, _), (ev, n) in shown_rejects]
    lines += [_entry(ev) for ev in list(updates.values())]
    lines += [_entry(ev) for ev in kills]
    lines.sort(key=lambda e: e.ts_ns)
    hidden_orders = n_orders - len(shown_orders)
    hidden_rejects = sum(n for _, (_, n) in reject_items[TAPE_REJECT_LINES_PER_TICK:])
    parts = []
    # Updates are sampled already (by the kernel and here): only orders and
    # rejects that did not fit are worth a line.
    if hidden_orders:
        parts.append(f"{hidden_orders:,} orders")
    if hidden_rejects:
        parts.append(f"{hidden_rejects:,} rejects")
    if not_kept:
        parts.append(f"{not_kept:,} events past the screen's limit")
    if parts:
        ts = lines[-1].ts_ns if lines else 0
        hidden = hidden_orders + hidden_rejects + not_kept
        lines.append(
            TapeEntry("summary", ts, count=hidden, text="… " + ", ".join(parts) + " not shown (journal has all)")
        )
    return tuple(lines)


def _entry(ev: EngineEvent, count: int = 1) -> TapeEntry:
    return TapeEntry(
        kind=ev.kind,
        ts_ns=ev.ts_ns,
        symbol=ev.symbol,
        side=ev.side,
        price=ev.price,
        qty=ev.qty,
        order_id=ev.order_id,
        reason=ev.reason,
        bid=ev.bid,
        bid_qty=ev.bid_qty,
        ask=ev.ask,
        ask_qty=ev.ask_qty,
        count=count,
    )


class AlertDigest:
    """Lets the first alert of a kind through at once, then one summary per key every few seconds.

    A reject reason that fires on every update would otherwise scroll the
    alert log at the tick rate; this way each reason is visible within one
    tick of its first occurrence and again within ``every_s`` with a count.
    """

    def __init__(self, every_s: float = ALERT_EVERY_S) -> None:
        self.every_s = every_s
        self._last_shown: dict[tuple, float] = {}
        self._pending: dict[tuple, list] = {}  # key -> [alert, count]

    #: alerts that can fire every tick: the first shows at once, then a sum every few seconds
    DIGESTED = ("reject", "feed")

    def add(self, alerts, now: float) -> list[str]:
        out = []
        for a in alerts:
            key = (a.kind, a.reason, a.symbol)
            if a.kind not in self.DIGESTED or now - self._last_shown.get(key, -1e9) >= self.every_s:
                self._last_shown[key] = now
                out.append(a.text())
            else:
                slot = self._pending.setdefault(key, [a, 0])
                slot[1] += a.count
        for key, (a, count) in list(self._pending.items()):
            if now - self._last_shown[key] >= self.every_s:
                del self._pending[key]
                self._last_shown[key] = now
                if a.kind == "feed" and a.reason == "gap":
                    out.append(f"FEED GAP: {count:,} more messages missed in {self.every_s:.0f} s")
                    continue
                where = f" {a.symbol}" if a.symbol else ""
                out.append(f"{a.kind} {a.reason}{where}: {count:,} more in {self.every_s:.0f} s")
        return out


class History:
    """Bounded PnL history for the chart (total) and the sparklines (per symbol).

    ``on_change_only`` (snapshot mode) records a point only when a value
    changed, so a static engine always draws the same picture.
    """

    def __init__(self, *, on_change_only: bool = False) -> None:
        self.on_change_only = on_change_only
        self.total: deque[tuple[float, float]] = deque(maxlen=int(CHART_SECONDS / CHART_POINT_EVERY_S))
        self.per_symbol: dict[str, deque[float]] = {}
        self._t0 = time.monotonic()
        self._last_t = -1e9
        self._n = 0

    def add(self, pnl: int, symbols: tuple[SymbolView, ...]) -> None:
        now = time.monotonic() - self._t0
        value = pnl / 1e4
        if self.on_change_only:
            if self.total and self.total[-1][1] == value:
                return
            now = float(self._n)
            self._n += 1
        elif now - self._last_t < CHART_POINT_EVERY_S:
            return
        self._last_t = now
        self.total.append((now, value))
        names = {s.name for s in symbols}
        for gone in set(self.per_symbol) - names:
            del self.per_symbol[gone]
        for s in symbols:
            self.per_symbol.setdefault(s.name, deque(maxlen=SPARK_POINTS)).append(s.total / 1e4)

    def chart(self) -> tuple[tuple[float, float], ...]:
        """(seconds relative to now, or point index in snapshot mode; PnL in $)."""
        if not self.total:
            return ()
        if self.on_change_only:
            return tuple(self.total)
        last = self.total[-1][0]
        return tuple((t - last, v) for t, v in self.total)

    def sparklines(self) -> dict[str, tuple[float, ...]]:
        return {name: tuple(points) for name, points in self.per_symbol.items()}


@dataclass
class LinkState:
    """The interface's XDP state, refreshed now and then (netlink costs more than a map read)."""

    present: bool = True
    attached: bool = False
    mode: str | None = None
    prog_id: int | None = None
    operstate: str | None = None  # up, down, lowerlayerdown, ...; None: not read


class ViewBuilder:
    """Turns controller ticks into views; owns the little memory views need.

    Every tick is noted (:meth:`note`: its events for the tape, its alerts,
    its journal counts); a view is built (:meth:`build`) only when one is
    sent, from the newest tick and what was noted since the last view."""

    def __init__(
        self,
        iface: str,
        record,
        *,
        deterministic: bool = False,
        events_kept: int = 256,
        feed: FeedSetup | None = None,
    ) -> None:
        self.iface = iface
        self.record = record
        self.feed = feed
        self.updates_rate = RateMeter()
        self.orders_rate = RateMeter()
        self.history = History(on_change_only=deterministic)
        self.journal_gaps = 0
        self.journal_failures = 0
        self.alerts = AlertDigest()
        self._link_down = False
        self._events: deque[EngineEvent] = deque(maxlen=events_kept)  # the newest, for the tape
        self._not_kept = 0  # events the tape will not see (the journal has them)
        self._pending_alerts: list[str] = []
        self._sent_kill: int | None = None

    def note(self, tick) -> None:
        """What a view must not miss from this tick, whether or not a view follows it."""
        overflow = max(0, len(self._events) + len(tick.events) - (self._events.maxlen or 0))
        self._not_kept += tick.dropped_events + overflow
        self._events.extend(tick.events)
        self.journal_gaps += sum(a.count for a in tick.alerts if a.kind == "journal_gap")
        self.journal_failures += sum(1 for a in tick.alerts if a.kind == "journal")
        self._pending_alerts += self.alerts.add(tick.alerts, time.monotonic())

    def urgent(self, tick, link: LinkState) -> bool:
        """A view must go now: an alert to show, the kill switch or the link changed, the end."""
        down = link.present and link.operstate is not None and link.operstate not in LINK_UP_STATES
        return bool(
            self._pending_alerts
            or tick.ended
            or tick.snapshot.kill != self._sent_kill
            or down != self._link_down
            or not link.present
        )

    def build(self, tick, link: LinkState) -> EngineView:
        snap: Snapshot = tick.snapshot
        now = snap.taken_ns
        symbols = tuple(symbol_view(name, cfg, st, now) for name, (cfg, st) in snap.symbols.items())
        updates = snap.counters["updates"]
        orders = snap.totals.order_seq
        self.history.add(snap.totals.pnl, symbols)
        rec = self.record
        alerts = self._pending_alerts + self._link_alerts(link)
        tape = sample_tape(list(self._events), self._not_kept)
        self._pending_alerts, self._not_kept = [], 0
        self._events.clear()
        self._sent_kill = snap.kill
        # The deadline is the kernel's (an edit in the app or the CLI shows at
        # once); the record's is what a controller arms when the switch is off.
        deadline = snap.global_config.deadman_ms or (rec.deadman_ms if rec else None)
        return EngineView(
            iface=self.iface,
            present=link.present,
            attached=link.attached,
            mode=link.mode,
            prog_id=link.prog_id,
            program_hash=rec.program_hash if rec else None,
            config_version=snap.global_config.config_version,
            kill_state=KILL_STATES.get(snap.kill, str(snap.kill)),
            deadman_ms=snap.global_config.deadman_ms,
            heartbeat_age_ms=((time.monotonic_ns() - snap.heartbeat_ns) / 1e6 if snap.heartbeat_ns else None),
            updates=updates,
            orders=orders,
            passed=snap.counters["passed"],
            ringbuf_drops=snap.counters["ringbuf_drops"],
            tape_drops=snap.counters.get("tape_drops", 0),
            updates_per_s=self.updates_rate.add(now, updates),
            orders_per_s=self.orders_rate.add(now, orders),
            rejects=dict(snap.rejects),
            pnl=snap.totals.pnl,
            open_cost=snap.totals.open_cost,
            engine=engine_params_from_snapshot(snap, link.mode or (rec.mode if rec else None), deadline),
            symbols=symbols,
            replay=replay_note(self.iface),  # read here, in the supervisor process, not by the UI
            tape=tape,
            alerts=tuple(alerts),
            pnl_history=self.history.chart(),
            sparklines=self.history.sparklines(),
            journal_gaps=self.journal_gaps,
            journal_failures=self.journal_failures,
            events_not_kept=tick.dropped_events,
            taken_ns=now,
            operstate=link.operstate if link.present else None,
            feed=feed_view(self.feed, snap),
        )

    def _link_alerts(self, link: LinkState) -> list[str]:
        """One alert when the interface stops moving frames, one when it moves them again."""
        down = link.present and link.operstate is not None and link.operstate not in LINK_UP_STATES
        if down == self._link_down:
            return []
        self._link_down = down
        if down:
            return [f"LINK DOWN: {self.iface} is {link.operstate}: no update arrives and no order leaves"]
        return [f"link {self.iface} is up again"]
