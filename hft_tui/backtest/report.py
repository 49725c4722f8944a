"""A backtest's result as JSON (the contract of issue 12 §2), as text, as CSV.

Prices and money are exact decimals written as strings ("190.2500"): a JSON
float cannot hold every 1e-4 amount a session's money reaches.  Times are
integers: nanoseconds since the epoch for the capture, and for an order the
timestamp it carries (the feed's own: IEX ns since the epoch, ITCH ns since
midnight, hft1 what the update said).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from ..constants import PRICE_SCALE
from ..protocol import PRICE_DECIMALS, price_to_str
from .runner import BacktestResult

CSV_COLUMNS = ("id", "side", "symbol", "price", "qty", "seq", "ts", "frame", "capture_ts")


def money(units: int) -> str:
    """1e-4 units as an exact decimal string, signed."""
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(units), PRICE_SCALE)
    return f"{sign}{q}.{r:0{PRICE_DECIMALS}d}"


def when(ns: int | None) -> str:
    """A capture time for people: UTC, to the nanosecond."""
    if ns is None:
        return "-"
    sec, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def result_dict(r: BacktestResult) -> dict[str, object]:
    """``backtest --json``: exactly the keys issue 12 §2 lists."""
    return {
        "capture": {
            "path": r.path,
            "frames": r.frames,
            "udp_frames": r.udp_frames,
            "first_ts": r.first_ts,
            "last_ts": r.last_ts,
        },
        "feed": r.feed,
        "orders": [o.as_dict() for o in r.orders],
        "symbols": {
            name: {
                "position": s.position,
                "bought": s.bought,
                "sold": s.sold,
                "capital_spent": money(s.capital_spent),
                "proceeds": money(s.proceeds),
                "pnl": money(s.pnl),
            }
            for name, s in r.symbols.items()
        },
        "rejects": r.rejects,
        "elapsed_s": round(r.elapsed_s, 6),
        "frames_per_s": round(r.frames_per_s, 1),
    }


def orders_csv(r: BacktestResult) -> str:
    """The orders, one a row (CSV_COLUMNS), in emission order."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for o in r.orders:
        w.writerow((o.id, o.side, o.symbol, price_to_str(o.price), o.qty, o.seq, o.ts, o.frame, o.capture_ts))
    return out.getvalue()


def _table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]


def summary_text(r: BacktestResult) -> str:
    """The readable form: a summary, then a table per symbol."""
    span = (r.last_ts - r.first_ts) / 1e9 if r.first_ts is not None and r.last_ts is not None else 0.0
    buys = sum(1 for o in r.orders if o.side == "B")
    f = r.feed
    lines = [
        f"backtest of {r.path} ({r.capture_format}): {r.frames:,} frames, {r.udp_frames:,} IPv4/UDP",
        f"  capture time {when(r.first_ts)} .. {when(r.last_ts)} ({span:,.3f} s)",
        f"  program: the {f['format']} engine, backtest build {r.program_hash[:12]}",
        f"  feed: {f['messages']:,} messages, {f['in_transition']:,} in transition, "
        f"{f['truncated_packets']:,} truncated packets",
    ]
    channels = f["channels"]
    assert isinstance(channels, list)
    for ch in channels:
        lines.append(
            f"    channel {ch['id']}: {ch['packets']:,} packets, next seq {ch['next_seq']:,}, "
            f"{ch['gaps']:,} gaps ({ch['gap_messages']:,} messages), {ch['dup_packets']:,} duplicate packets"
        )
    lines.append(f"  orders: {len(r.orders):,} ({buys:,} buys, {len(r.orders) - buys:,} sells), PnL {money(r.pnl)}")
    rejects = {k: v for k, v in r.rejects.items() if v}
    lines.append("  rejects: " + (", ".join(f"{k} {v:,}" for k, v in rejects.items()) or "none"))
    lines.append(f"  ran in {r.elapsed_s:.3f} s: {r.frames_per_s:,.0f} frames/s")
    lines.append("")
    rows: list[tuple[str, ...]] = [
        ("symbol", "orders", "bought", "sold", "position", "max pos", "capital spent", "proceeds", "PnL")
    ]
    for name, s in r.symbols.items():
        rows.append(
            (
                name,
                f"{s.buys + s.sells:,}",
                f"{s.bought:,}",
                f"{s.sold:,}",
                f"{s.position:,}",
                f"{s.max_position:,}",
                money(s.capital_spent),
                money(s.proceeds),
                money(s.pnl),
            )
        )
    lines.extend(_table(rows, set(range(1, 9))))
    return "\n".join(lines)
