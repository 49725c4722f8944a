"""The order journal, fed by the real program's ring buffers.

Events come from the real XDP program run with BPF_PROG_TEST_RUN on a loaded
(unattached) engine, are read in place from its two real ring buffers by the
controller's RingDrain, and are journaled by hft_tui.journal.  The checks are
the journal's rules (docs/JOURNAL.md): every order and reject exactly once,
whatever instant a writer dies at; a missing order id is a gap, reported
exactly; the kernel's ring-buffer drops are counted exactly; the CLI verbs
print what the file holds and refuse bad input with one line.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from frames import update_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from hft_tui import libbpf
from hft_tui.config import engine_params, symbol_params
from hft_tui.constants import BPF_F_LOCK, KILL_OFF, MSG_LEN, NUM_COUNTERS, OFFSETS
from hft_tui.errors import JournalError
from hft_tui.journal import Journal, capacity
from hft_tui.journal.chain import verify_journal
from hft_tui.journal.records import SCHEMA_VERSION
from hft_tui.journal.store import _GapTracker
from hft_tui.journal_cli import CSV_COLUMNS
from hft_tui.layout import GlobalState, Totals
from hft_tui.protocol import Update, parse_price
from hft_tui.rings import EVENT_FIELDS, RECORD_STRIDE, RecordRun, RingDrain, event_from_tuple

HFT_TUI = [str(Path(sys.executable).with_name("hft-tui"))]
SYMBOL = "TEST"
# Buys at or below 100.00, sells at or above 101.00, never runs out of room:
# each update below trades 10 shares, so every update is one order.
TRADING = {
    "buy_target": "100.00",
    "sell_target": "101.00",
    "base_qty": 10,
    "max_order_qty": 10,
    "max_position": 4294967295,
    "collar_bps": 10000,
}
BUY = Update(SYMBOL, 0, parse_price("99.00"), 100, parse_price("99.99"), 100)
SELL = Update(SYMBOL, 0, parse_price("101.01"), 100, parse_price("102.00"), 100)
QUIET = Update(SYMBOL, 0, parse_price("100.10"), 100, parse_price("100.20"), 100)  # between the targets
SEQ_AT = -MSG_LEN + OFFSETS["seq"]  # the payload ends the frame
K = {name: i for i, name in enumerate(EVENT_FIELDS)}


class Rig:
    """The loaded program, reset between tests, driven frame by frame."""

    def __init__(self, prog_fd: int, maps) -> None:
        self.prog_fd, self.maps = prog_fd, maps
        # UDP checksum 0 (none): the seq can be patched in place.
        self.frames = [bytearray(update_frame(u, udp_fields={"chksum": 0})) for u in (BUY, SELL)]
        self.seq = 0

    def reset(self, **engine) -> None:
        m = self.maps
        for name in m.symbol_names():
            m.remove_symbol(name)
        m.write_global(engine_params({"update_sample": 0, **engine}), deadman_ms=0, version=1)
        m.set_kill(KILL_OFF)
        zero = ctypes.c_uint32(0)
        libbpf.update(m.fds["totals"], zero, Totals())  # order ids start at 1 again
        libbpf.update(m.fds["global_state"], zero, GlobalState(), BPF_F_LOCK)
        ncpu = libbpf.num_possible_cpus()
        for idx in range(NUM_COUNTERS):
            libbpf.update(m.fds["counters"], ctypes.c_uint32(idx), (ctypes.c_uint64 * ncpu)())
        m.write_symbol(SYMBOL, symbol_params(SYMBOL, TRADING))
        for ring in ("events", "tape_events"):  # what earlier tests left behind
            d = self.drain(ring)
            while True:
                recs, end = d.read(1 << 20)
                d.commit(end)
                if not recs:
                    break
            d.close()
        self.seq = 0

    def run(self, frame: bytearray, seq: int) -> int:
        frame[SEQ_AT : SEQ_AT + 8] = seq.to_bytes(8, "big")
        return libbpf.test_run(self.prog_fd, bytes(frame))[0]

    def trade(self, n: int) -> None:
        """n updates, each one order (buy, sell, buy, ...)."""
        for _ in range(n):
            self.seq += 1
            self.run(self.frames[self.seq % 2 == 0], self.seq)

    def stale(self, n: int) -> None:
        """n updates that repeat an old sequence number: n 'stale' rejects."""
        for _ in range(n):
            self.run(self.frames[0], 1)

    def drain(self, ring: str) -> RingDrain:
        return RingDrain(self.maps.fds[ring])

    def read_all(self) -> tuple[list, dict]:
        """Every record of both rings (uncommitted) and where each ring ends."""
        records, ends = [], {}
        for ring in ("events", "tape_events"):
            d = self.drain(ring)
            recs, ends[ring] = d.read(1 << 20)
            records.extend(recs)
            d.close()
        return records, ends

    def read_as_controller(self) -> tuple[list, list, dict]:
        """What the controller reads: the orders ring as event tuples, the
        tape ring as one run of records kept as bytes (RecordRun)."""
        d = self.drain("events")
        records, end = d.read(1 << 20)
        d.close()
        d = self.drain("tape_events")
        run = d.read_run(1 << 20)
        d.close()
        ends = {"events": end}
        if run is not None:
            ends["tape_events"] = run.end
        return records, [run] if run is not None else [], ends

    def commit(self, ends: dict) -> None:
        for ring, end in ends.items():
            d = self.drain(ring)
            d.commit(end)
            d.close()

    def kernel(self) -> dict:
        snap = self.maps.snapshot()
        return {
            "orders_sent": snap.totals.order_seq,
            "ringbuf_drops": snap.counters["ringbuf_drops"],
            "tape_drops": snap.counters["tape_drops"],
        }


@pytest.fixture(scope="module")
def rig(strategy_program):
    _, prog_fd, maps = strategy_program
    return Rig(prog_fd, maps)


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "test.journal.sqlite")
    j.begin_engine(iface="hft48", prog_id=1, attached_at=1.0, program_hash="test")
    yield j
    j.close()


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HFT_TUI, *argv], capture_output=True, text=True, timeout=120)


def assert_one_line_error(p: subprocess.CompletedProcess, words: str) -> None:
    assert p.returncode == 1, p
    assert "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("hft-tui: error: "), p.stderr
    assert words in p.stderr, p.stderr


# -- exactly once -----------------------------------------------------------------


def test_every_order_and_reject_reaches_the_journal_once(rig, journal):
    rig.reset()
    rig.trade(500)
    rig.stale(100)
    records, ends = rig.read_all()
    assert journal.record_raw(records) == 600
    rig.commit(ends)
    journal.record_kernel(**rig.kernel(), final=True)

    v = journal.verify()
    assert (v["rows"], v["rejects"], v["gaps"], v["drops"]) == (500, 100, 0, 0)
    assert (v["first_order_id"], v["last_order_id"], v["ok"]) == (1, 500, True)
    assert v["engines"][0]["kernel_orders"] == rig.kernel()["orders_sent"] == 500
    # The rows hold what the kernel wrote, field by field.
    kernel_orders = {t[K["order_id"]]: event_from_tuple(t) for _, t in records if t[K["kind"]] == 2}
    for row in journal.rows("orders"):
        ev = kernel_orders[row["order_id"]]
        assert (row["symbol"], row["side"], row["price"], row["qty"], row["seq"], row["ts_ns"]) == (
            ev.symbol,
            ev.side,
            ev.price,
            ev.qty,
            ev.seq,
            ev.ts_ns,
        )
    assert {r["reason"] for r in journal.rows("rejects")} == {"stale"}


def test_the_eventengine_api_writes_the_same_rows_as_the_raw_path(rig, tmp_path):
    """record_events (EngineEvents, for the TUI and the libbpf reader) == record_raw."""
    rig.reset()
    rig.trade(50)
    rig.stale(5)
    records, ends = rig.read_all()
    rig.commit(ends)
    with Journal(tmp_path / "raw.sqlite") as a, Journal(tmp_path / "events.sqlite") as b:
        a.record_raw(records)
        b.record_events([event_from_tuple(t) for _, t in records], [pos for pos, _ in records])
        for table in ("orders", "rejects"):
            strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_ns"} for r in rows]
            assert strip(a.rows(table)) == strip(b.rows(table))


def test_rejects_kept_as_the_kernel_wrote_them_read_back_as_the_same_rows(rig, tmp_path):
    """The controller's path (the tape ring's records kept as bytes, a block
    per batch) and the decoded path give the same journal, row for row, and
    sampled updates in the tape ring never become rows."""
    rig.reset(update_sample=3)  # every 3rd update that neither trades nor is refused is sampled
    quiet = bytearray(update_frame(QUIET, udp_fields={"chksum": 0}))
    rig.trade(60)
    rig.stale(20)
    for _ in range(30):
        rig.seq += 1
        rig.run(quiet, rig.seq)
    rig.trade(30)
    rig.stale(7)
    records, runs, ends = rig.read_as_controller()
    assert len(runs) == 1 and runs[0].n > 27  # rejects and sampled updates, in one run
    decoded, _ = rig.read_all()
    rig.commit(ends)
    with Journal(tmp_path / "runs.sqlite") as a, Journal(tmp_path / "tuples.sqlite") as b:
        assert a.record_raw(records, runs) == b.record_raw(decoded) == 90 + 27
        for table in ("orders", "rejects"):
            strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_ns"} for r in rows]
            assert strip(a.rows(table)) == strip(b.rows(table))
        assert [r["seq"] for r in a.rows("rejects")] == [1] * 27
        assert {r["reason"] for r in a.rows("rejects")} == {"stale"}
        assert a.verify()["rejects"] == 27
        # The newest few, and those after a journal position, come out of the blocks the same way.
        every = a.entries()
        assert a.entries(last=5) == every[-5:]
        assert a.entries(after=every[40]["jseq"]) == every[41:]


@pytest.mark.parametrize("crash_point", ["before_the_journal_commit", "after_the_commit_before_the_ring_moves"])
def test_a_controller_dying_at_any_instant_journals_every_reject_once(rig, journal, crash_point):
    """The same rule on the controller's path: a reject block read again
    after a crash is never journaled twice, and the rejects that came
    meanwhile are journaled."""
    rig.reset()
    rig.trade(100)
    rig.stale(40)
    records, runs, _ends = rig.read_as_controller()
    if crash_point == "after_the_commit_before_the_ring_moves":
        journal.record_raw(records, runs)
    # ... the controller dies here: the rings' consumer positions did not move.
    rig.stale(15)
    rig.trade(10)
    records, runs, ends = rig.read_as_controller()
    assert runs[0].n == 55  # read again from the start, and the newer ones
    journal.record_raw(records, runs)
    rig.commit(ends)
    journal.record_kernel(**rig.kernel(), final=True)
    v = journal.verify()
    assert (v["rows"], v["rejects"], v["gaps"], v["ok"]) == (110, 55, 0, True)
    # A writer started afresh on the same file knows what is journaled.
    with Journal(journal.path) as again:
        again.begin_engine(iface="hft48", prog_id=1, attached_at=1.0, program_hash="test")
        assert again.record_raw(records, runs) == 0
        assert again.verify()["rejects"] == 55


@pytest.mark.parametrize("crash_point", ["before_the_journal_commit", "after_the_commit_before_the_ring_moves"])
def test_a_writer_dying_at_any_instant_loses_and_duplicates_nothing(rig, journal, crash_point):
    """The ring's consumer position moves only after the commit: the next
    writer reads the uncommitted records again and the journal ignores the
    ones it has (orders by id, rejects and kills by ring position)."""
    rig.reset()
    rig.trade(300)
    rig.stale(30)
    first, _ends = rig.read_all()
    if crash_point == "after_the_commit_before_the_ring_moves":
        journal.record_raw(first)
    # ... the writer dies here: the ring's consumer positions did not move.
    rig.trade(200)
    again, ends = rig.read_all()  # the next writer
    assert len(again) == len(first) + 200  # the first batch was never committed: read again
    journal.record_raw(again)
    rig.commit(ends)
    journal.record_kernel(**rig.kernel(), final=True)
    v = journal.verify()
    assert (v["rows"], v["rejects"], v["gaps"], v["ok"]) == (500, 30, 0, True)


def _drain_in_child(fd: int, stop, out) -> None:
    """The reader, in its own process on another CPU: it only reads and commits."""
    os.sched_setaffinity(0, {0})
    d = RingDrain(fd)
    ids: list[int] = []
    while not stop.is_set() or d.pending():
        recs, end = d.read(16384)
        d.commit(end)
        ids.extend(t[K["order_id"]] for _, t in recs)
    d.close()
    out.send(ids)


def test_a_reader_that_keeps_up_never_makes_the_kernel_drop(rig):
    """The kernel refuses an event when (new producer position - consumer
    position) exceeds the ring, reading the consumer position the reader
    writes.  A transient wrong value there (CPython's Struct.pack_into
    zero-fills before it writes) made the kernel drop events with the ring
    nearly empty: 12 in 400,000.  Here the ring wraps ~5 times while a reader
    on the other CPU commits as often as it can."""
    import multiprocessing

    rig.reset()
    n = 5 * (rig.drain("events").size // RECORD_STRIDE)
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    mine, theirs = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_drain_in_child, args=(rig.maps.fds["events"], stop, theirs))
    child.start()
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})  # the producer (BPF_PROG_TEST_RUN) on the other CPU
    try:
        rig.trade(n)
    finally:
        os.sched_setaffinity(0, affinity)
        stop.set()
    ids = mine.recv()
    child.join(timeout=60)
    kernel = rig.kernel()
    assert (kernel["orders_sent"], kernel["ringbuf_drops"]) == (n, 0)
    assert ids == list(range(1, n + 1))


# -- gaps and drops ---------------------------------------------------------------


@pytest.mark.parametrize(
    "lost, ranges",
    [
        ({7}, [[7, 7]]),
        ({20, 21, 22}, [[20, 22]]),
        ({1, 2}, [[1, 2]]),  # ids start at 1: a missing start is a loss
        ({3, 10, 11, 40}, [[3, 3], [10, 11], [40, 40]]),
    ],
)
def test_a_missing_order_id_is_a_gap_reported_exactly(rig, journal, lost, ranges):
    rig.reset()
    rig.trade(50)
    records, ends = rig.read_all()
    kept = [r for r in records if r[1][K["order_id"]] not in lost]
    journal.record_raw(kept)
    rig.commit(ends)
    journal.record_kernel(**rig.kernel(), final=True)
    v = journal.verify()
    assert (v["gaps"], v["gap_ranges"], v["ok"]) == (len(lost), ranges, False)
    assert v["unexplained_gaps"] == len(lost)  # the kernel dropped nothing: lost after it
    # Online: after one tick of grace, each range is alerted once.
    alerts = journal.take_alerts() + journal.take_alerts() + journal.take_alerts()
    gaps = [a for a in alerts if a.kind == "journal_gap"]
    assert sorted(a.count for a in gaps) == sorted(b - a + 1 for a, b in ranges)


def test_orders_the_kernel_counted_after_the_last_row_are_gaps_once_the_engine_is_closed(rig, journal):
    rig.reset()
    rig.trade(20)
    records, ends = rig.read_all()
    journal.record_raw([r for r in records if r[1][K["order_id"]] <= 15])
    rig.commit(ends)
    journal.record_kernel(**rig.kernel(), final=False)
    assert journal.verify()["gaps"] == 0  # still running: 16..20 may be on their way
    journal.record_kernel(**rig.kernel(), final=True)
    v = journal.verify()
    assert (v["gaps"], v["gap_ranges"]) == (5, [[16, 20]])


def test_a_full_orders_ring_drops_are_counted_exactly_and_match_the_gaps(rig, journal):
    """Nobody drains: the orders ring (4 MiB) fills and the kernel counts
    every order it had no room for.  The journal then holds exactly the
    orders that fit, reports the drop count and the same number of gaps."""
    rig.reset()
    capacity = rig.drain("events").size // RECORD_STRIDE
    sent = capacity + 1500
    rig.trade(sent)
    kernel = rig.kernel()
    assert kernel["orders_sent"] == sent
    assert kernel["ringbuf_drops"] > 0
    records, ends = rig.read_all()
    journal.record_raw(records)
    rig.commit(ends)
    journal.record_kernel(**kernel, final=True)
    v = journal.verify()
    drops = kernel["ringbuf_drops"]
    assert (v["rows"], v["drops"], v["order_drops"], v["gaps"]) == (sent - drops, drops, drops, drops)
    assert v["unexplained_gaps"] == 0 and v["ok"] is False
    assert v["gap_ranges"] == [[sent - drops + 1, sent]]  # the ring was full: the newest were lost
    alerts = journal.take_alerts()
    assert [(a.kind, a.count) for a in alerts if a.kind == "ringbuf_drops"] == [("ringbuf_drops", drops)]


def test_a_kernel_kill_is_journaled_once_even_when_read_twice(rig, journal):
    rig.reset(loss_limit="5")
    rig.trade(1)  # bought 10 at 99.99, marked at the bid 99.00: -9.90 < -5.00
    records, _ = rig.read_all()
    kinds = sorted(t[K["kind"]] for _, t in records)
    assert kinds == [2, 4], "an order and the kernel's kill event"
    journal.record_raw(records)
    journal.record_raw(records)  # read again after a crash
    kills = [r for r in journal.rows("control") if r["kind"] == "kernel_kill"]
    assert len(kills) == 1 and json.loads(kills[0]["detail"])["state"] == "loss_limit"


# -- the online gap detector -------------------------------------------------------


@pytest.mark.pure
@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 120), data=st.data())
def test_the_online_detector_reports_each_lost_id_once_and_never_a_reordered_one(n, data):
    """Ids 1..n arrive with neighbours swapped (two CPUs) across arbitrary
    tick boundaries; some are lost.  Every lost id below the last one
    received is reported exactly once; no id that arrives is."""
    lost = data.draw(st.sets(st.integers(1, n - 1)))
    ids = [i for i in range(1, n + 1) if i not in lost]
    swapped: set[int] = set()
    for i in sorted(data.draw(st.sets(st.integers(0, max(len(ids) - 2, 0))))):
        if i + 1 < len(ids) and i not in swapped and i - 1 not in swapped:
            ids[i], ids[i + 1] = ids[i + 1], ids[i]  # each id moves one place at most
            swapped.add(i)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(ids) - 1, 1)))))
    t = _GapTracker()
    reported = []
    start = 0
    for cut in [*cuts, len(ids)]:
        for order_id in ids[start:cut]:
            t.see(order_id)
        start = cut
        reported += t.end_batch()
    reported += t.end_batch() + t.end_batch()  # the ticks after trading stopped
    flat = [i for a, b in reported for i in range(a, b + 1)]
    assert sorted(flat) == sorted(lost)


# -- the CLI ----------------------------------------------------------------------


@pytest.fixture
def filled(rig, tmp_path) -> tuple[Path, dict]:
    """A journal file of 40 orders, 8 rejects and 2 control rows."""
    path = tmp_path / "cli.journal.sqlite"
    rig.reset()
    rig.trade(40)
    rig.stale(8)
    with Journal(path) as j:
        j.begin_engine(iface="hft48", prog_id=7, attached_at=2.0, program_hash="abc123")
        j.record_control("attach", program_hash="abc123", config_version=1, detail={"mode": "native"})
        records, ends = rig.read_all()
        j.record_raw(records)
        rig.commit(ends)
        j.record_kernel(**rig.kernel(), final=True)
    return path, {"orders": 40, "rejects": 8}


def test_verify_json_prints_rows_gaps_drops_and_the_order_id_range(filled):
    path, n = filled
    p = cli("journal", "verify", "--journal", str(path), "--json")
    assert p.returncode == 0, p.stderr
    v = json.loads(p.stdout)
    assert {k: v[k] for k in ("rows", "gaps", "drops", "first_order_id", "last_order_id", "ok")} == {
        "rows": n["orders"],
        "gaps": 0,
        "drops": 0,
        "first_order_id": 1,
        "last_order_id": 40,
        "ok": True,
    }


def test_verify_exits_1_when_the_journal_proves_a_loss(rig, tmp_path):
    path = tmp_path / "lossy.journal.sqlite"
    rig.reset()
    rig.trade(10)
    records, ends = rig.read_all()
    with Journal(path) as j:
        j.record_raw([r for r in records if r[1][K["order_id"]] != 4])
    rig.commit(ends)
    p = cli("journal", "verify", "--journal", str(path))
    assert p.returncode == 1
    assert p.stdout.startswith("LOSS:") and "missing order id 4" in p.stdout


def test_tail_prints_the_last_n_entries_in_journal_order(filled):
    path, _ = filled
    p = cli("journal", "tail", "--journal", str(path), "-n", "3")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 3 and all(" REJECT stale " in line for line in lines)
    p = cli("journal", "tail", "--journal", str(path), "-n", "100")
    kinds = [line.split()[1] for line in p.stdout.splitlines()]
    assert kinds.count("ORDER") == 40 and kinds.count("REJECT") == 8 and kinds[0] == "ATTACH"
    assert "#40 " in [line for line in p.stdout.splitlines() if " ORDER " in line][-1]


def test_export_csv_writes_every_row_with_decimal_prices_to_a_root_only_file(filled, tmp_path):
    path, n = filled
    out = tmp_path / "export.csv"
    p = cli("journal", "export", "--csv", "--journal", str(path), "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert [r["kind"] for r in body].count("order") == n["orders"]
    assert [r["kind"] for r in body].count("reject") == n["rejects"]
    first_buy = next(r for r in body if r["kind"] == "order")
    assert (first_buy["order_id"], first_buy["side"], first_buy["price"], first_buy["qty"]) == (
        "1",
        "B",
        "99.9900",
        "10",
    )
    assert [int(r["jseq"]) for r in body] == sorted(int(r["jseq"]) for r in body)


def test_export_to_stdout_survives_a_closed_pipe(rig, tmp_path):
    path = tmp_path / "big.journal.sqlite"
    rig.reset()
    rig.trade(3000)  # far more CSV than a pipe holds
    records, ends = rig.read_all()
    with Journal(path) as j:
        j.record_raw(records)
    rig.commit(ends)
    p = subprocess.run(
        f"{HFT_TUI[0]} journal export --journal {path} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.stdout.startswith("jseq,kind") and p.stderr == ""


@pytest.mark.parametrize(
    "argv, words",
    [
        (["journal", "verify", "--journal", "/nonexistent/x.journal.sqlite"], "no journal at"),
        (["journal", "tail", "--iface", "../etc"], "invalid interface name"),
        (["journal", "tail", "--iface", "a;reboot"], "invalid interface name"),
        (["journal", "tail", "--journal", "{path}", "-n", "0"], "-n 0"),
        (["journal", "verify", "--journal", "{junk}"], "not an hft-tui journal"),
        (["journal", "export", "--journal", "{path}", "--out", "/nonexistent/dir/x.csv"], "cannot write"),
    ],
)
def test_bad_input_gets_one_line_and_changes_nothing(filled, tmp_path, argv, words):
    path, _ = filled
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    p = cli(*[a.format(path=path, junk=junk) for a in argv])
    assert_one_line_error(p, words)
    assert path.read_bytes() == before


def test_a_schema_1_journal_is_read_as_it_is_and_upgraded_by_a_writer_row_for_row(rig, tmp_path):
    """Schema 1 kept a row per reject.  Readers read such a file as it is; a
    writer turns its rejects into blocks in place, each reject keeping its
    journal number and fields."""
    import sqlite3

    path = tmp_path / "old.journal.sqlite"
    rig.reset()
    rig.trade(20)
    rig.stale(6)
    rig.trade(5)
    rig.stale(3)
    with Journal(path) as j:
        j.begin_engine(iface="hft48", prog_id=7, attached_at=2.0, program_hash="abc")
        records, (run,), ends = rig.read_as_controller()
        assert run.n == 9
        stride = len(run.data) // run.n
        first = RecordRun(run.pos, run.data[: 6 * stride], 6)
        rest = RecordRun(run.pos + 6 * stride, run.data[6 * stride :], 3)
        j.record_raw(records[:20], [first])  # two batches: two runs of journal numbers
        j.record_raw(records[20:], [rest])
        rig.commit(ends)
        want = {t: j.rows(t) for t in ("orders", "rejects", "control")}
        verified = j.verify()
    # The same journal as schema 1 wrote it.
    db = sqlite3.connect(path)
    cols = "ring_pos, ts_ns, sender_ts, seq, symbol, side, price, qty, position, pnl, bid, bid_qty, ask, ask_qty"
    db.executescript(
        f"CREATE TABLE rejects (jseq INTEGER PRIMARY KEY, engine INTEGER NOT NULL, reason TEXT NOT NULL,"
        f" {cols}, UNIQUE (engine, ring_pos)); DROP TABLE reject_blocks;"
        " UPDATE meta SET value='1' WHERE key='schema_version';"
    )
    # Schema 1 kept each reject's own ring position (all 9 tape records are rejects here).
    positions = [run.pos + i * stride for i in range(run.n)]
    db.executemany(
        f"INSERT INTO rejects (jseq, engine, reason, {cols}) VALUES ({', '.join('?' * 17)})",
        [
            tuple({**r, "ring_pos": pos}[k] for k in ("jseq", "engine", "reason", *cols.split(", ")))
            for r, pos in zip(want["rejects"], positions)
        ],
    )
    db.commit()
    db.close()

    def same(got, expected):
        drop = ("wall_ns", "ring_pos")
        return [{k: v for k, v in r.items() if k not in drop} for r in got] == [
            {k: v for k, v in r.items() if k not in drop} for r in expected
        ]

    with Journal(path, readonly=True) as old:
        assert old.schema == 1
        assert all(same(old.rows(t), want[t]) for t in want)
        assert old.verify()["rejects"] == 9
    with Journal(path) as upgraded:
        assert upgraded.schema == SCHEMA_VERSION == 3  # 1 -> 2 (blocks), and the tables of 3 (counts, parts)
        assert all(same(upgraded.rows(t), want[t]) for t in want)
        v = upgraded.verify()
        assert {k: v[k] for k in ("rows", "rejects", "gaps", "ok")} == {
            k: verified[k] for k in ("rows", "rejects", "gaps", "ok")
        }
        assert upgraded._db.execute("SELECT count(*) FROM reject_blocks").fetchone()[0] == 2
        # The upgraded blocks know how far the tape ring is journaled: read again, nothing is new.
        upgraded.begin_engine(iface="hft48", prog_id=7, attached_at=2.0, program_hash="abc")
        assert upgraded.record_raw(records, [run]) == 0
        assert upgraded.verify()["rejects"] == 9


@pytest.mark.pure
@pytest.mark.parametrize(
    "reason, code",
    [
        ("stale", 10),  # a name the kernel's header gives
        ("kill", 0),
        ("13", 13),  # a code this hft-tui had no name for was kept as its number
    ],
)
def test_a_reject_reason_goes_back_to_its_own_kernel_code(reason, code):
    from hft_tui.journal.records import reason_code as _reason_code

    assert _reason_code(reason) == code


@pytest.mark.pure
def test_a_reject_reason_with_no_kernel_code_is_refused_not_made_a_kill():
    from hft_tui.journal.records import reason_code as _reason_code

    with pytest.raises(JournalError, match="has no kernel code"):
        _reason_code("bogus")


# -- what verify and the writer refuse ------------------------------------------------


def test_an_order_renumbered_out_of_the_ids_is_a_gap(filled):
    path, n = filled
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE orders SET order_id = -5 WHERE order_id = 5")  # no order id can be -5
    v = verify_journal(path)
    assert (v["rows"], v["gaps"], v["gap_ranges"], v["ok"]) == (n["orders"] - 1, 1, [[5, 5]], False)


def test_a_journal_that_goes_on_in_a_part_not_here_is_broken(filled):
    path, _ = filled
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # its last row, as a writer moving to part 1 leaves it
        db.execute(
            "INSERT INTO control (jseq, engine, wall_ns, kind, detail) "
            "SELECT max(jseq) + 1, NULL, 0, 'journal_continued', ? FROM control",
            (json.dumps({"next": path.name + ".1"}),),
        )
    v = verify_journal(path)
    assert not v["ok"] and v["chain"] == f"{path.name} goes on in {path.name}.1, which is not here"


def test_a_database_of_something_else_is_never_written_into(tmp_path):
    path = tmp_path / "notes.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(JournalError, match=r"is not an hft-tui journal \(it holds table notes\)$"):
        Journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["notes"]


def test_a_disk_that_cannot_be_asked_is_a_journal_failure(rig, tmp_path, monkeypatch):
    # A JournalError latches the kill and supervision goes on (controller.py); any other error ends it.
    def unseen(directory):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(capacity, "free_bytes", unseen)
    rig.reset()
    rig.trade(3)
    records, _ = rig.read_all()
    with (
        Journal(tmp_path / "io.journal.sqlite", max_bytes=1 << 20) as j,
        pytest.raises(JournalError, match="cannot see the disk's free space"),
    ):
        j.record_raw(records)
