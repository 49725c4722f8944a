"""The controller: what supervises a running engine.

A controller (the TUI's worker, or ``hft-tui engine run``) is the one
process that
 - beats the heartbeat, which arms the kernel's dead-man switch: if the
   controller dies, the kernel sends no order once the heartbeat is older
   than the deadline;
 - owns the drain of the engine's two ring buffers (a ring buffer has one
   consumer position: two drains would split the events), writes every order
   and reject to the journal and fans the events out to its caller;
 - turns counter changes into alerts within one tick (MiFID II RTS 6 asks
   for alerts within five seconds);
 - journals every change of the config version and of the kill switch,
   whoever made it (TUI, CLI), with the program hash;
 - notices the interface disappearing or the engine being detached under it.

Restart rule: a controller that finds the switch armed and the heartbeat
already expired (its predecessor died) latches the kill switch before its
first heartbeat, so trading resumes only when an operator resumes it.

Lossless drain: the rings are read in place (mmap) and the consumer position
moves only after the journal has committed the records, so a controller
killed at any instant loses nothing; its successor reads the uncommitted
records again and the journal ignores the ones it already has.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import MIN_DEADMAN_MS, money_to_str
from .constants import KILL_OFF, KILL_OPERATOR, KILL_STATES, NO_TRADE_ACTIONS
from .engine import EngineHandle
from .engine import detach as detach_engine
from .errors import EngineError, JournalError
from .events import Alert, EngineEvent
from .feedwatch import FeedAlert, FeedWatch
from .layout import as_dict
from .locks import acquire_controller_lock, release_controller_lock
from .maps import Snapshot, symbol_params_from_map
from .rings import EngineRings, event_from_tuple


@dataclass
class Tick:
    """One controller step: what the kernel holds now and what happened since."""

    snapshot: Snapshot
    events: list[EngineEvent] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dropped_events: int = 0  # events not kept in memory (the journal still has them)
    ended: str | None = None  # supervision is over: "interface_gone" or "detached"
    backlog: bool = False  # records still wait in a ring: tick again without waiting


# The config as journaled: "engine" and each symbol -> key -> value as the TOML writes it.
ConfigView = dict[str, Mapping[str, object]]


def _config_view(snap: Snapshot) -> ConfigView:
    """The config as an operator reads it, for journaling what changed."""
    kernel = snap.global_config
    g: dict[str, object] = dict(as_dict(kernel))
    g.pop("config_version", None)
    for key in ("max_notional", "loss_limit"):  # dollars, as the TOML and the CLI write them
        g[key] = money_to_str(getattr(kernel, key))
    g["on_no_trade"] = NO_TRADE_ACTIONS.get(kernel.on_no_trade, kernel.on_no_trade)
    view: ConfigView = {"engine": g}
    for name, (cfg, _st) in snap.symbols.items():
        # seq_epoch is no parameter, but its change is an operator's reset-seq: journaled too.
        view[name] = {**symbol_params_from_map(cfg).to_toml_values(), "seq_epoch": cfg.seq_epoch}
    return view


def _sequence_resets(diff: dict[str, object]) -> list[str]:
    """The symbols whose only change is a new seq_epoch (``engine reset-seq``)."""
    return [name for name, changed in diff.items() if isinstance(changed, dict) and set(changed) == {"seq_epoch"}]


def _config_diff(old: ConfigView, new: ConfigView) -> dict[str, object]:
    diff: dict[str, object] = {}
    for name in sorted(set(old) | set(new)):
        if name not in new:
            diff[name] = "removed"
        elif name not in old:
            diff[name] = {"added": new[name]}
        else:
            changed = {k: [old[name].get(k), v] for k, v in new[name].items() if old[name].get(k) != v}
            if changed:
                diff[name] = changed
    return diff


class Controller:
    """Supervises one engine by its pins.  Not thread-safe: one thread ticks."""

    #: keep at most this many events per tick in memory for the caller;
    #: the journal records all of them, the UI only needs the newest.
    MAX_EVENTS_PER_TICK = 2000
    #: records read per ring per tick: bounds a tick's work (2 x 8192 records
    #: at ~5 us is < 0.1 s), so ticks stay >= 10 Hz and the heartbeat fresh
    #: even when both rings are full.
    MAX_BATCH = 8192
    #: how often the controller asks netlink whether the engine is still attached
    ATTACH_CHECK_S = 1.0
    #: a controller beats at least this many times per dead-man deadline ...
    BEATS_PER_DEADLINE = 5
    #: ... and never less often than this, so that a deadline shortened live
    #: (even to the shortest the config accepts) is met from the next beat on
    MAX_BEAT_INTERVAL_S = MIN_DEADMAN_MS / 2 / 1000

    def __init__(
        self, handle: EngineHandle, *, journal=None, deadman_ms: int | None = None, supervise: bool = True
    ) -> None:
        self.handle = handle
        self.journal = journal
        self.deadman_ms = deadman_ms
        self.supervise = supervise
        # No journal: the orders ring is left for a controller that has one (no order is
        # consumed unjournaled); the tape is drained as ever.
        self.rings = EngineRings(handle.pin_dir, keep_orders=journal is None)
        self._last: Snapshot | None = None
        self._config: ConfigView = {}
        self._version = 0
        self._kernel_seen: tuple | None = None
        self._lock_fd: int | None = None
        self._next_attach_check = 0.0
        self._journal_failed = False
        self._drained = 0
        self._feed_watch = FeedWatch()
        self.tripped_on_start = False
        self.deadline_ms: int | None = None
        self.ended: str | None = None

    @property
    def program_hash(self) -> str | None:
        return self.handle.record.program_hash if self.handle.record else None

    @property
    def config_version(self) -> int:
        """The config version last seen (and journaled)."""
        return self._version

    # -- life cycle ----------------------------------------------------------
    def start(self) -> Snapshot:
        """Takes over the engine: latches the kill if the last controller died, then arms."""
        self._lock_fd = acquire_controller_lock(self.handle.iface)
        try:
            return self._start()
        except BaseException:
            self._release()
            raise

    def _start(self) -> Snapshot:
        snap = self.handle.snapshot()
        g = snap.global_config
        if self.supervise:
            # The kernel's rule: a heartbeat further than the deadline from now, either way, is stale.
            expired = g.deadman_ms and (
                not snap.heartbeat_ns or abs(time.monotonic_ns() - snap.heartbeat_ns) > g.deadman_ms * 1_000_000
            )
            if expired and snap.kill == KILL_OFF:
                self.handle.maps.set_kill(KILL_OPERATOR)
                self.tripped_on_start = True
            self.deadline_ms = self.handle.arm_deadman(self.deadman_ms)
        snap = self.handle.snapshot()
        if self.journal is not None:
            prog_id, attached_at = self.handle.identity()
            self.journal.begin_engine(
                iface=self.handle.iface, prog_id=prog_id, attached_at=attached_at, program_hash=self.program_hash
            )
            self.journal.record_control(
                "controller_start",
                program_hash=self.program_hash,
                config_version=snap.global_config.config_version,
                detail={
                    "pid": os.getpid(),
                    "tripped_on_start": self.tripped_on_start,
                    "deadman_ms": self.deadline_ms,
                    "config": _config_view(snap),
                    # the feed, its senders and the gateway: the app attaches without an attach row
                    "attached": self.handle.record.attach_detail() if self.handle.record else None,
                },
            )
            if self.tripped_on_start:
                self.journal.record_control(
                    "kill",
                    program_hash=self.program_hash,
                    config_version=snap.global_config.config_version,
                    detail={
                        "state": KILL_STATES[KILL_OPERATOR],
                        "why": "the previous controller died: its heartbeat had expired",
                    },
                )
        self._last = snap
        self._config = _config_view(snap)
        self._version = snap.global_config.config_version
        # The baseline: old gaps are no news.
        self._feed_watch.check(snap.channels, time.monotonic(), snap.feed.channels_full if snap.feed else 0)
        return snap

    def beat(self) -> None:
        if self.supervise and not self.ended:
            self.handle.maps.beat()

    def beat_interval_s(self, deadman_ms: int | None = None) -> float:
        """The longest this controller may wait before its next beat: a fifth of
        the dead-man deadline the kernel holds now (``deadman_ms`` when the
        caller has just read it, else read here: a deadline edited live, in the
        app or with ``engine set-engine``, applies from the next beat), and at
        most MAX_BEAT_INTERVAL_S."""
        if deadman_ms is None:
            deadman_ms = self.handle.maps.read_global().deadman_ms
        if not deadman_ms:
            return self.MAX_BEAT_INTERVAL_S
        return min(deadman_ms / 1000 / self.BEATS_PER_DEADLINE, self.MAX_BEAT_INTERVAL_S)

    def tick(self, timeout_ms: int = 0) -> Tick:
        """Heartbeat, drain, journal, alerts.  Between two calls the caller waits
        at most :meth:`beat_interval_s` (or calls :meth:`beat` meanwhile)."""
        if self.ended:
            assert self._last is not None, "tick() on a controller stopped before start(): it never saw the engine"
            return Tick(snapshot=self._last, ended=self.ended)
        self.beat()
        self.rings.wait(timeout_ms)
        events, alerts = self._drain(self.MAX_BATCH, timeout_ms)
        self.beat()  # a full batch takes a while
        snap = self.handle.snapshot()
        alerts.extend(self._alerts(snap, events))
        feed_alerts = self._feed_watch.check(
            snap.channels, time.monotonic(), snap.feed.channels_full if snap.feed else 0
        )
        alerts.extend(f.alert for f in feed_alerts)
        if self.journal is not None:
            alerts.extend(self._journal_changes(snap))
            alerts.extend(self._journal_feed_alerts(feed_alerts))
            alerts.extend(self.journal.take_alerts())
        alerts.extend(self._watch_interface())
        dropped = max(0, self._drained - len(events))
        self._last = snap
        backlog = not self.ended and self.rings.pending()
        return Tick(
            snapshot=snap, events=events, alerts=alerts, dropped_events=dropped, ended=self.ended, backlog=backlog
        )

    def _drain(self, max_records: int, timeout_ms: int = 0) -> tuple[list[EngineEvent], list[Alert]]:
        """One batch from each ring into the journal; the rings move only
        after the commit.  Returns the newest events (decoded) for the caller."""
        self._drained = 0
        records, runs, commit = self.rings.read(max_records, timeout_ms)
        if self.journal is not None and (records or runs):
            try:
                if self.rings.reader is None:
                    self.journal.record_raw(records, runs)
                else:
                    self.journal.record_events(records)
            except JournalError as exc:
                # Nothing is committed: the records stay in the ring for the next try (the in-place
                # reader; libbpf's has consumed them already: docs/JOURNAL.md).
                return [], self._journal_failure(exc)
            self._journal_failed = False
        commit()
        self._drained = len(records) + sum(r.n for r in runs)
        if self.rings.reader is not None:
            return records[-self.MAX_EVENTS_PER_TICK :], []
        # Only the newest events are decoded: the caller shows them, the journal has all.
        keep = self.MAX_EVENTS_PER_TICK
        for run in runs:
            records = records + run.tuples(max(0, run.n - keep))
        newest = sorted(records, key=lambda r: r[1][0])[-keep:]
        return [event_from_tuple(t) for _pos, t in newest], []

    def _journal_failure(self, exc: Exception) -> list[Alert]:
        """An order that cannot be journaled must not be sent: the kill latches."""
        if self._journal_failed:
            return []
        self._journal_failed = True
        if self.handle.maps.kill() == KILL_OFF:
            self.handle.maps.set_kill(KILL_OPERATOR)
        return [
            Alert(
                "journal",
                "write_failed",
                1,
                message=(f"JOURNAL WRITE FAILED ({exc}): kill switch latched; events stay in the ring buffer"),
            )
        ]

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
        if self.journal is None:  # with a journal, it reports drops (and records them)
            for key, what in (("ringbuf_drops", "order(s)"), ("tape_drops", "reject(s)/update(s)")):
                drops = snap.counters.get(key, 0) - prev.counters.get(key, 0)
                if drops > 0:
                    alerts.append(Alert(key, key, drops, message=f"ring buffer full: {drops} {what} lost"))
        if snap.kill != prev.kill:
            state = KILL_STATES.get(snap.kill, str(snap.kill))
            alerts.append(
                Alert(
                    "kill",
                    state,
                    1,
                    message=("KILL SWITCH: " + state if snap.kill != KILL_OFF else "kill switch cleared: trading"),
                )
            )
        return alerts

    def _journal_changes(self, snap: Snapshot, *, final: bool = False) -> list[Alert]:
        """Kernel counts, config versions and kill changes, whoever made them."""
        j = self.journal
        counts = (snap.totals.order_seq, snap.counters.get("ringbuf_drops", 0), snap.counters.get("tape_drops", 0))
        try:
            if counts != self._kernel_seen or final:
                j.record_kernel(orders_sent=counts[0], ringbuf_drops=counts[1], tape_drops=counts[2], final=final)
                self._kernel_seen = counts
            version = snap.global_config.config_version
            kill_changed = self._last is not None and snap.kill != self._last.kill
            if version != self._version:
                new = _config_view(snap)
                diff = _config_diff(self._config, new)
                resets = _sequence_resets(diff)
                if resets and len(resets) == len(diff):
                    self._record_config(snap, "reset_seq", {"symbols": resets})
                elif diff or not kill_changed:
                    self._record_config(snap, "config_change", {})
                else:  # a resume bumps the version: its own row below carries it
                    self._config, self._version = new, version
            if kill_changed:
                j.record_control(
                    "kill" if snap.kill != KILL_OFF else "resume",
                    program_hash=self.program_hash,
                    config_version=version,
                    detail={"state": KILL_STATES.get(snap.kill, str(snap.kill))},
                )
        except JournalError as exc:  # a journal failure must not stop supervision
            return self._journal_failure(exc)
        return []

    def _journal_feed_alerts(self, feed_alerts: list[FeedAlert]) -> list[Alert]:
        """A feed alert (a gap, unusual duplicates, a sequence jump refused, a channel reset, the
        channels map full) as a control row, like the other alerts journaled."""
        try:
            for f in feed_alerts:
                self.journal.record_control(
                    f"feed_{f.alert.reason}",
                    program_hash=self.program_hash,
                    config_version=self._version,
                    detail=f.detail,
                )
        except JournalError as exc:
            return self._journal_failure(exc)
        return []

    def _record_config(self, snap: Snapshot, what: str, detail: dict) -> None:
        new = _config_view(snap)
        self.journal.record_control(
            what,
            program_hash=self.program_hash,
            config_version=snap.global_config.config_version,
            detail={**detail, "from_version": self._version, "changed": _config_diff(self._config, new)},
        )
        self._config = new
        self._version = snap.global_config.config_version

    def record_change(self, what: str, detail: dict) -> None:
        """Journals an operator's change (config, kill, resume) with the version it made."""
        if self.journal is not None:
            self._record_config(self.handle.snapshot(), what, detail)

    # -- the interface and the attachment --------------------------------------
    def _watch_interface(self) -> list[Alert]:
        rec = self.handle.record
        try:
            idx = socket.if_nametoindex(self.handle.iface)
        except OSError:
            idx = None
        if idx is None or (rec is not None and idx != rec.ifindex):
            what = "is gone" if idx is None else "was replaced by a new interface of the same name"
            return self._end("interface_gone", f"INTERFACE {self.handle.iface} {what}: its engine went with it")
        now = time.monotonic()
        if now >= self._next_attach_check:
            self._next_attach_check = now + self.ATTACH_CHECK_S
            st = self.handle.xdp()
            if st is None:
                return self._end("interface_gone", f"INTERFACE {self.handle.iface} is gone: its engine went with it")
            if not self.handle.attached_as(st):
                return self._end(
                    "detached",
                    f"ENGINE DETACHED: {self.handle.iface} no longer runs this engine "
                    "(detached or replaced by another program)",
                )
        return []

    def _end(self, why: str, message: str) -> list[Alert]:
        """The engine is gone: journal what is left, clean the pins, stop supervising."""
        alerts = [Alert("engine", why, 1, message=message)]
        alerts.extend(self._final_drain())
        if self.journal is not None:
            alerts.extend(self._journal_changes(self.handle.snapshot(), final=True))
            with contextlib.suppress(Exception):
                self.journal.record_control(
                    why, program_hash=self.program_hash, config_version=self._version, detail={"message": message}
                )
            alerts.extend(self.journal.take_alerts())
        with contextlib.suppress(EngineError):
            for line in detach_engine(self.handle.iface):
                alerts.append(Alert("engine", "cleanup", 1, message=line))
        self.ended = why
        self.rings.close()
        self._release()
        return alerts

    def _final_drain(self) -> list[Alert]:
        alerts = []
        while True:
            events, more = self._drain(self.MAX_BATCH)
            alerts.extend(more)
            if more or not events or not self.rings.pending():
                return alerts

    # -- stop ------------------------------------------------------------------
    def stop(self, *, detach: bool) -> list[str]:
        """Ends supervision; returns what it did.

        detach=True detaches the engine first (no packet is processed after
        it), then drains the rings into the journal and records the kernel's
        final counts.  detach=False drains and leaves the switch armed: with
        no heartbeat the kernel stops trading after the deadline, so the
        engine is never left trading unsupervised.
        """
        if self.ended:
            return []
        lines: list[str] = []
        try:
            if detach:
                lines = detach_engine(self.handle.iface)
            self._final_drain()
            if self.journal is not None:
                self._journal_changes(self.handle.snapshot(), final=detach)
                self.journal.record_control(
                    "controller_stop",
                    program_hash=self.program_hash,
                    config_version=self._version,
                    detail={"detach": detach, "pid": os.getpid()},
                )
        finally:
            self.ended = "detached" if detach else "stopped"
            self.rings.close()
            self._release()
        if not detach:
            lines.append(
                f"left {self.handle.iface} attached with the dead-man switch armed: "
                "without a controller it stops trading after the deadline"
            )
        return lines

    def _release(self) -> None:
        if self._lock_fd is not None:
            release_controller_lock(self.handle.iface, self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self._release()
