"""The engine's events, decoded: ring-buffer records and the alerts they raise.

One process should own the drain of an engine's ring buffer (records are
consumed once); the controller (TUI or ``engine run``) owns it, writes the
journal and fans the events out.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

from . import libbpf
from .constants import EVENT_KINDS, KILL_STATES, REJECT_REASONS
from .layout import Event, key_name

_EVENT_SIZE = ctypes.sizeof(Event)


@dataclass(frozen=True)
class EngineEvent:
    """A decoded ring-buffer record; prices in 1e-4 units, times in ns."""

    kind: str  # update, order, reject, kill
    ts_ns: int  # kernel CLOCK_MONOTONIC
    sender_ts: int
    seq: int
    symbol: str
    side: str  # "B", "S" or ""
    price: int
    qty: int
    order_id: int
    reason: str  # reject reason, kill state, or ""
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int
    position: int
    pnl: int

    @classmethod
    def from_record(cls, raw: bytes) -> EngineEvent:
        ev = Event.from_buffer_copy(raw[:_EVENT_SIZE])
        kind = EVENT_KINDS.get(ev.kind, str(ev.kind))
        if kind == "reject":
            reason = REJECT_REASONS.get(ev.reason, str(ev.reason))
        elif kind == "kill":
            reason = KILL_STATES.get(ev.reason, str(ev.reason))
        else:
            reason = ""
        return cls(
            kind=kind,
            ts_ns=ev.ts_ns,
            sender_ts=ev.sender_ts,
            seq=ev.seq,
            symbol=key_name(ev.symbol),
            side=chr(ev.side) if ev.side else "",
            price=ev.price,
            qty=ev.qty,
            order_id=ev.order_id,
            reason=reason,
            bid=ev.bid,
            bid_qty=ev.bid_qty,
            ask=ev.ask,
            ask_qty=ev.ask_qty,
            position=ev.position,
            pnl=ev.pnl,
        )


@dataclass(frozen=True)
class Alert:
    """Something an operator must see: a reject reason firing, drops, a kill."""

    kind: str  # "reject", "ringbuf_drops", "tape_drops", "kill", "journal_gap", "journal", "journal_size", "engine"
    reason: str  # reject reason, kill state, ...
    count: int  # how many since the previous tick
    symbol: str = ""  # when one symbol caused it
    message: str = ""

    def text(self) -> str:
        where = f" {self.symbol}" if self.symbol else ""
        return self.message or f"{self.kind} {self.reason}{where}: {self.count}"


class EventReader:
    """Drains an engine's two rings (orders+kills, and the tape) in batches.

    ``poll(timeout_ms)`` returns every record available (waiting up to
    ``timeout_ms`` for the first), decoded, in kernel time order.
    """

    def __init__(self, events_fd: int, tape_fd: int | None = None, *, owns_fds: bool = False) -> None:
        self._fds = [events_fd] + ([tape_fd] if tape_fd is not None else [])
        self._owns = owns_fds
        self._batch: list[bytes] = []
        self._rb = libbpf.RingBuffer(events_fd, self._batch.append, *self._fds[1:])

    @classmethod
    def open_pinned(cls, pin_dir: Path) -> EventReader:
        events_fd = libbpf.obj_get(str(pin_dir / "events"))
        try:
            tape_fd = libbpf.obj_get(str(pin_dir / "tape_events"))
        except OSError:
            os.close(events_fd)
            raise
        return cls(events_fd, tape_fd, owns_fds=True)

    def poll_raw(self, timeout_ms: int = 0) -> list[bytes]:
        """Undecoded records (ring by ring), for consumers that only count."""
        self._rb.poll(timeout_ms)
        raw, self._batch[:] = list(self._batch), []
        return raw

    def poll(self, timeout_ms: int = 0) -> list[EngineEvent]:
        events = [EngineEvent.from_record(r) for r in self.poll_raw(timeout_ms)]
        events.sort(key=lambda e: e.ts_ns)  # the two rings interleave in time
        return events

    def close(self) -> None:
        self._rb.close()
        if self._owns:
            for fd in self._fds:
                os.close(fd)
