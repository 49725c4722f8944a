"""The controller: what supervises a running engine.

A controller (the TUI's worker, or ``hft-tui engine run``) is the one
process that
 - beats the heartbeat, which arms the kernel's dead-man switch: if the
   controller dies, the kernel sends no order once the heartbeat is older
   than the deadline;
 - owns the drain of the engine's ring buffer (a ring buffer has one consumer
   position: two drains would split the events), writes every order and
   reject to the journal and fans the events out to its caller;
 - turns counter changes into alerts within one tick (MiFID II RTS 6 asks
   for alerts within five seconds).

Restart rule: a controller that finds the switch armed and the heartbeat
already expired (its predecessor died) latches the kill switch before its
first heartbeat, so trading resumes only when an operator resumes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .constants import KILL_OFF, KILL_OPERATOR, KILL_STATES
from .engine import EngineHandle
from .events import EngineEvent, EventReader
from .maps import Snapshot


@dataclass(frozen=True)
class Alert:
    """Something an operator must see: a reject reason firing, drops, a kill."""

    kind: str            # "reject", "ringbuf_drops", "kill", "journal_gap", "engine"
    reason: str          # reject reason, kill state, ...
    count: int           # how many since the previous tick
    symbol: str = ""     # when one symbol caused it
    message: str = ""

    def text(self) -> str:
        where = f" {self.symbol}" if self.symbol else ""
        return self.message or f"{self.kind} {self.reason}{where}: {self.count}"


@dataclass
class Tick:
    """One controller step: what the kernel holds now and what happened since."""

    snapshot: Snapshot
    events: list[EngineEvent] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dropped_events: int = 0     # events not kept in memory (the journal still has them)


class Controller:
    """Supervises one engine by its pins.  Not thread-safe: one thread ticks."""

    #: keep at most this many events per tick in memory for the caller;
    #: the journal records all of them, the UI only needs the newest.
    MAX_EVENTS_PER_TICK = 2000

    def __init__(self, handle: EngineHandle, *, journal=None, deadman_ms: int | None = None,
                 supervise: bool = True) -> None:
        self.handle = handle
        self.journal = journal
        self.deadman_ms = deadman_ms
        self.supervise = supervise
        self.reader = EventReader.open_pinned(handle.pin_dir)
        self._last: Snapshot | None = None
        self.tripped_on_start = False

    def start(self) -> Snapshot:
        """Takes over the engine: latches the kill if the last controller died, then arms."""
        snap = self.handle.snapshot()
        g = snap.global_config
        if self.supervise:
            expired = g.deadman_ms and (
                not snap.heartbeat_ns or (time.monotonic_ns() - snap.heartbeat_ns) > g.deadman_ms * 1_000_000
            )
            if expired and snap.kill == KILL_OFF:
                self.handle.maps.set_kill(KILL_OPERATOR)
                self.tripped_on_start = True
            self.handle.arm_deadman(self.deadman_ms)
        if self.journal is not None:
            self.journal.record_control(
                "controller_start",
                program_hash=self.handle.record.program_hash if self.handle.record else None,
                config_version=g.config_version,
                detail={"tripped_on_start": self.tripped_on_start},
            )
        self._last = self.handle.snapshot()
        return self._last

    def beat(self) -> None:
        if self.supervise:
            self.handle.maps.beat()

    def tick(self, timeout_ms: int = 0) -> Tick:
        """Heartbeat, drain, journal, alerts: call at least a few times per deadline."""
        self.beat()
        events = self.reader.poll(timeout_ms)
        if self.journal is not None and events:
            self.journal.record_events(events)
        snap = self.handle.snapshot()
        alerts = self._alerts(snap, events)
        if self.journal is not None:
            alerts.extend(self.journal.take_alerts())
        dropped = max(0, len(events) - self.MAX_EVENTS_PER_TICK)
        kept = events[-self.MAX_EVENTS_PER_TICK:] if dropped else events
        self._last = snap
        return Tick(snapshot=snap, events=kept, alerts=alerts, dropped_events=dropped)

    def _alerts(self, snap: Snapshot, events: list[EngineEvent]) -> list[Alert]:
        prev = self._last
        if prev is None:
            return []
        alerts = []
        by_reason: dict[str, str] = {}
        for ev in events:
            if ev.kind == "reject" and ev.reason not in by_reason:
                by_reason[ev.reason] = ev.symbol
        for reason, count in snap.rejects.items():
            delta = count - prev.rejects.get(reason, 0)
            if delta > 0:
                alerts.append(Alert("reject", reason, delta, by_reason.get(reason, "")))
        drops = snap.counters["ringbuf_drops"] - prev.counters["ringbuf_drops"]
        if drops > 0:
            alerts.append(Alert("ringbuf_drops", "ringbuf_drops", drops,
                                message=f"ring buffer full: {drops} event(s) lost"))
        if snap.kill != prev.kill:
            state = KILL_STATES.get(snap.kill, str(snap.kill))
            alerts.append(Alert("kill", state, 1, message=(
                "KILL SWITCH: " + state if snap.kill != KILL_OFF else "kill switch cleared: trading")))
        return alerts

    def record_change(self, what: str, detail: dict) -> None:
        """Journals an operator's change (config, kill, resume) with the version it made."""
        if self.journal is not None:
            g = self.handle.maps.read_global()
            self.journal.record_control(
                what,
                program_hash=self.handle.record.program_hash if self.handle.record else None,
                config_version=g.config_version,
                detail=detail,
            )

    def stop(self, *, detach: bool) -> None:
        """Ends supervision.  Drains what is left into the journal first."""
        try:
            events = self.reader.poll(0)
            if self.journal is not None and events:
                self.journal.record_events(events)
        finally:
            self.reader.close()
        if self.journal is not None:
            self.journal.record_control("controller_stop", program_hash=None, config_version=None,
                                        detail={"detach": detach})
        if detach:
            from .engine import detach as detach_engine

            detach_engine(self.handle.iface)
        # Without detach the switch stays armed: with no heartbeat the kernel
        # stops trading after the deadline (the engine is not left unsupervised).
