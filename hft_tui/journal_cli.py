"""``hft-tui journal tail|export|verify``: the journal as a person or a spreadsheet reads it."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from . import paths
from .config import money_to_str
from .errors import JournalError
from .journal import SUFFIX, Journal, journal_ifaces, journal_path
from .pins import attached_ifaces
from .preflight import require_root
from .protocol import price_to_str


def _when(wall_ns: int) -> str:
    return datetime.fromtimestamp(wall_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_entry(row: dict) -> str:
    when = _when(row["wall_ns"])
    if row["table"] == "orders":
        side = {"B": "BUY ", "S": "SELL"}.get(row["side"], row["side"])
        return (
            f"{when} ORDER  #{row['order_id']:<8} {side} {row['symbol']:<8} {row['qty']:>7} @ "
            f"{price_to_str(row['price'])}  seq {row['seq']}  pos {row['position']}"
        )
    if row["table"] == "rejects":
        side = f" {row['side']} @ {price_to_str(row['price'])}" if row["side"] else ""
        return (
            f"{when} REJECT {row['reason']:<15} {row['symbol']:<8}{side}  seq {row['seq']}  "
            f"bid {price_to_str(row['bid'])} ask {price_to_str(row['ask'])}"
        )
    extra = []
    if row.get("config_version") is not None:
        extra.append(f"config v{row['config_version']}")
    if row.get("program_hash"):
        extra.append(f"program {row['program_hash'][:12]}")
    detail = row.get("detail") or "{}"
    if detail != "{}":
        extra.append(detail)
    return f"{when} {row['kind'].upper():<6} " + "  ".join(extra)


CSV_COLUMNS = (
    "jseq",
    "kind",
    "engine",
    "time",
    "ts_ns",
    "sender_ts",
    "order_id",
    "seq",
    "symbol",
    "side",
    "price",
    "qty",
    "reason",
    "position",
    "pnl",
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
    "config_version",
    "program_hash",
    "detail",
)


def csv_row(row: dict) -> list:
    def price(key):
        return price_to_str(row[key]) if row.get(key) is not None else ""

    return [
        row["jseq"],
        row["kind"],
        row.get("engine") or "",
        _when(row["wall_ns"]),
        row.get("ts_ns", ""),
        row.get("sender_ts", ""),
        row.get("order_id", ""),
        row.get("seq", ""),
        row.get("symbol", ""),
        row.get("side", ""),
        price("price"),
        row.get("qty", ""),
        row.get("reason", ""),
        row.get("position", ""),
        money_to_str(row["pnl"]) if row.get("pnl") is not None else "",
        price("bid"),
        row.get("bid_qty", ""),
        price("ask"),
        row.get("ask_qty", ""),
        row.get("config_version") if row.get("config_version") is not None else "",
        row.get("program_hash") or "",
        row.get("detail") or "",
    ]


# -- CLI ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="jverb", metavar="VERB", required=True)

    def common(p):
        p.add_argument("--iface", "-i", help="the engine's interface (may be left out when only one journal exists)")
        p.add_argument("--journal", metavar="PATH", help=f"a journal file (default {paths.JOURNAL_DIR}/IFACE{SUFFIX})")

    p = sub.add_parser("tail", help="the last entries: orders, rejects, control")
    common(p)
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many entries (default 20)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new entries until Ctrl-C")
    p = sub.add_parser("export", help="the whole journal as CSV")
    common(p)
    p.add_argument("--csv", action="store_true", default=True, help="CSV with a header line (the only format)")
    p.add_argument("--out", "-o", metavar="FILE", help="write here (mode 0600) instead of stdout")
    p.add_argument("--table", choices=("all", "orders", "rejects", "control"), default="all")
    p = sub.add_parser("verify", help="count rows, gaps in order ids and ring-buffer drops")
    common(p)
    p.add_argument("--json", action="store_true", help="one JSON object")


def _resolve_path(args) -> Path:
    if getattr(args, "journal", None):
        return Path(args.journal)
    if args.iface:
        return journal_path(args.iface)
    found = journal_ifaces()
    if len(found) == 1:
        return journal_path(found[0])
    attached = attached_ifaces()
    if len(attached) == 1:
        return journal_path(attached[0])
    if not found:
        raise JournalError(f"no journal in {paths.JOURNAL_DIR} ('hft-tui engine run IFACE' writes one)")
    raise JournalError(f"several journals ({', '.join(found)}): name one with --iface")


def run(args) -> int:
    require_root()
    if args.jverb == "tail" and args.n < 1:
        raise JournalError(f"-n {args.n}: give a number of entries >= 1")
    try:
        with Journal(_resolve_path(args), readonly=True) as j:
            if args.jverb == "verify":
                return _cmd_verify(j, args)
            if args.jverb == "export":
                return _cmd_export(j, args)
            return _cmd_tail(j, args)
    except BrokenPipeError:
        # `journal export | head`: the reader left, which is not an error; stdout
        # goes to /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _cmd_verify(j: Journal, args) -> int:
    v = j.verify()
    if args.json:
        print(json.dumps(v, indent=2))
    else:
        state = "OK" if v["ok"] else "LOSS"
        print(
            f"{state}: {v['journal']}: {v['rows']} order(s), ids {v['first_order_id']}..{v['last_order_id']}, "
            f"{v['rejects']} reject(s), {v['gaps']} missing order id(s), {v['drops']} ring-buffer drop(s) "
            f"({v['order_drops']} order, {v['tape_drops']} tape), integrity {v['integrity']}"
        )
        for start, stop in v["gap_ranges"]:
            print(f"  missing order ids {start}..{stop}" if stop > start else f"  missing order id {start}")
    return 0 if v["ok"] else 1


def _cmd_export(j: Journal, args) -> int:
    tables = ("orders", "rejects", "control") if args.table == "all" else (args.table,)
    if args.out:
        out_path = Path(args.out)
        try:
            fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot write {out_path}: {exc.strerror}") from None
        f: TextIO = os.fdopen(fd, "w", newline="")
    else:
        f = sys.stdout
    n = 0
    try:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for batch in j.slices(tables):
            w.writerows(csv_row(row) for row in batch)
            n += len(batch)
    finally:
        if args.out:
            f.close()
        else:
            f.flush()
    if args.out:
        print(f"exported {n} row(s) to {args.out}", file=sys.stderr)
    return 0


def _cmd_tail(j: Journal, args) -> int:
    rows = j.entries(last=args.n)
    for row in rows:
        print(format_entry(row), flush=False)
    sys.stdout.flush()
    if not args.follow:
        return 0
    after = rows[-1]["jseq"] if rows else 0
    try:
        while True:
            time.sleep(0.2)
            for row in j.entries(after=after):
                print(format_entry(row))
                after = row["jseq"]
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
