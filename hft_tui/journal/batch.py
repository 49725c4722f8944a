"""One drained batch as the journal's rows: orders, rejects, kernel kills.

The controller hands the journal what it read from the rings, either event
tuples straight from the ring records (the fast path) or decoded
EngineEvents (the libbpf reader, the TUI); both become the same three lists
here, and store.py writes them in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..constants import EVENT_KILL, EVENT_ORDER, EVENT_REJECT, EVENT_UPDATE, KILL_STATES
from ..events import EngineEvent
from ..layout import key_name
from .records import RawField, event_columns, event_tuple, kill_detail


@dataclass
class Batch:
    orders: list[tuple] = field(default_factory=list)  # (order id, ring position, the EVENT_COLUMNS after it)
    rejects: list[tuple[int | None, tuple]] = field(default_factory=list)  # (ring position, event tuple)
    kills: list[tuple[int | None, str]] = field(default_factory=list)  # (ring position, detail JSON)


def batch_of_events(events: Iterable[EngineEvent], positions: list[int] | None = None) -> Batch:
    """Decoded events; ``positions`` their ring positions (None: unknown)."""
    b = Batch()
    for i, ev in enumerate(events):
        pos = positions[i] if positions is not None else None
        row = (
            pos,
            ev.ts_ns,
            ev.sender_ts,
            ev.seq,
            ev.symbol,
            ev.side,
            ev.price,
            ev.qty,
            ev.position,
            ev.pnl,
            ev.bid,
            ev.bid_qty,
            ev.ask,
            ev.ask_qty,
        )
        if ev.kind == "order":
            b.orders.append((ev.order_id, *row))
        elif ev.kind == "reject":
            b.rejects.append((pos, event_tuple(ev)))
        elif ev.kind == "kill":
            b.kills.append((pos, kill_detail(ev.reason, ev.pnl, ev.symbol, ev.seq, ev.ts_ns)))
    return b


def batch_of_records(records: Iterable[tuple[int, tuple]], names: dict[bytes, str]) -> Batch:
    """(ring position, event tuple in layout.Event order) as read from the
    rings; ``names`` caches decoded symbols (they repeat: each decoded once)."""
    f = RawField
    b = Batch()
    for pos, t in records:
        kind = t[f.kind]
        if kind == EVENT_UPDATE:
            continue
        if kind == EVENT_ORDER:
            raw_symbol = t[f.symbol]
            symbol = names.get(raw_symbol)
            if symbol is None:
                symbol = names[raw_symbol] = key_name(raw_symbol)
            b.orders.append((t[f.order_id], pos, *event_columns(t, symbol)))
        elif kind == EVENT_REJECT:  # kept as the ring's record: the journal stores rejects in blocks
            b.rejects.append((pos, t))
        elif kind == EVENT_KILL:
            state = KILL_STATES.get(t[f.reason], str(t[f.reason]))
            b.kills.append((pos, kill_detail(state, t[f.pnl], key_name(t[f.symbol]), t[f.seq], t[f.ts_ns])))
    return b
