"""The journal under a reject flood (issue 14: "The journal fills the disk").

The events come from the real XDP program run with BPF_PROG_TEST_RUN and are
read from its real ring buffers the way the controller reads them
(test_journal.Rig).  The rules:

- past ``journal_reject_rows_per_s`` in a second of kernel time, rejects are
  counted per reason and symbol instead of kept whole, orders are always
  kept whole, and the counts are exact: for each reason the kernel's counter
  equals the rows kept plus the rejects counted, also across a writer that
  dies and reads the ring again;
- a part of the journal never grows past ``journal_max_mb``: the journal
  continues in IFACE.journal.sqlite.1, .2, ...; an alert comes before the cap
  and at each new part; verify follows the parts (order ids gap-free and
  never twice across them), and so do tail and export;
- with less free disk than a part's cap, every reject is counted, none kept
  whole (a tmpfs of a few MiB stands for a full disk).
"""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from frames import update_frame
from test_journal import SEQ_AT, SYMBOL, TRADING, Rig

from hft_tui import libbpf
from hft_tui.config import symbol_params
from hft_tui.constants import EVENT_REJECT, REJECT_REASONS
from hft_tui.errors import JournalError
from hft_tui.journal import Journal, parts
from hft_tui.journal import budget as budget_mod
from hft_tui.journal import store as journal_store
from hft_tui.journal.budget import NS_PER_S, Counted, RejectBudget
from hft_tui.journal.capacity import part_bytes
from hft_tui.journal.chain import JournalChain
from hft_tui.journal.records import RawField, ring_record
from hft_tui.protocol import Update, parse_price
from hft_tui.rings import EVENT_FIELDS

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
OFF = "OFF"  # a second symbol, configured but disabled: its updates are rejects `disabled`
REASON = {name: code for code, name in REJECT_REASONS.items()}


# -- the budget, on records made here ----------------------------------------------------------


def record(ts_ns: int, symbol: bytes = b"AAPL\0\0\0\0", reason: int = 10) -> bytes:
    values = {"ts_ns": ts_ns, "symbol": symbol, "kind": EVENT_REJECT, "reason": reason}
    return ring_record(tuple(values.get(name, 0) for name in EVENT_FIELDS))


@pytest.mark.pure
def test_the_budget_keeps_the_first_rows_of_each_second_and_counts_the_rest():
    b = RejectBudget(3)
    second_5 = [record(5 * NS_PER_S + i, reason=10 if i % 2 else 1) for i in range(10)]
    second_6 = [record(6 * NS_PER_S + i) for i in range(2)]
    counts: dict = {}
    kept, n = b.split_records(b"".join(second_5 + second_6), counts)
    assert n == 5 and kept == b"".join(second_5[:3] + second_6)
    aapl = b"AAPL\0\0\0\0"
    assert counts == {
        (5, 1, aapl): Counted(3, 5 * NS_PER_S + 4, 5 * NS_PER_S + 8),
        (5, 10, aapl): Counted(4, 5 * NS_PER_S + 3, 5 * NS_PER_S + 9),
    }
    # The budget of a second is spent across batches, not per batch.
    counts = {}
    kept, n = b.split_records(record(6 * NS_PER_S + 50) + record(6 * NS_PER_S + 51), counts)
    assert n == 1 and kept == record(6 * NS_PER_S + 50) and sum(c.count for c in counts.values()) == 1


@pytest.mark.pure
def test_the_budgets_limits_none_zero_and_a_low_disk():
    batch = b"".join(record(NS_PER_S + i) for i in range(4))
    assert RejectBudget(None).split_records(batch, {}) == (batch, 4)
    counts: dict = {}
    assert RejectBudget(0).split_records(batch, counts) == (b"", 0)
    assert sum(c.count for c in counts.values()) == 4
    low = RejectBudget(100)
    low.counting_only = True
    assert low.split_records(batch, {}) == (b"", 0)
    # The tuple path decides the same.
    rows = [(None, tuple({"ts_ns": NS_PER_S, "reason": 10, "symbol": b"X"}.get(n, 0) for n in EVENT_FIELDS))]
    counts = {}
    f = (RawField.ts_ns, RawField.reason, RawField.symbol)
    assert RejectBudget(0).split_tuples(rows * 3, counts, f) == [] and counts[(1, 10, b"X")].count == 3


@pytest.mark.pure
def test_the_budget_reads_the_fields_where_the_c_struct_has_them():
    """(ts, symbol, reason) at layout.Event's offsets: one record decoded both ways agrees."""
    r = record(123_456_789_012, b"MSFT\0\0\0\0", 7)
    got = budget_mod._KEY.unpack(r)
    assert (got[budget_mod._TS], got[budget_mod._SYMBOL], got[budget_mod._REASON]) == (
        123_456_789_012,
        b"MSFT\0\0\0\0",
        7,
    )


# -- the kernel's flood --------------------------------------------------------------------------


class FloodRig(Rig):
    """The test_journal rig with a second, disabled symbol: two reasons, two symbols."""

    def reset(self, **engine) -> None:
        super().reset(**engine)
        self.maps.write_symbol(OFF, symbol_params(OFF, {**TRADING, "enabled": False}))
        off = Update(OFF, 0, parse_price("99.00"), 100, parse_price("99.99"), 100)
        self.off_frame = bytearray(update_frame(off, udp_fields={"chksum": 0}))

    def disabled(self, n: int) -> None:
        for i in range(n):
            self.off_frame[SEQ_AT : SEQ_AT + 8] = (i + 1).to_bytes(8, "big")
            libbpf.test_run(self.prog_fd, bytes(self.off_frame))

    def flood(self, n: int) -> None:
        """n rejects: stale ones of SYMBOL and disabled ones of OFF, 3:1."""
        self.stale(n - n // 4)
        self.disabled(n // 4)

    def drain_into(self, journal: Journal, *, commit: bool = True) -> None:
        records, runs, ends = self.read_as_controller()
        journal.record_raw(records, runs)
        if commit:
            self.commit(ends)

    def kernel_rejects(self) -> dict[str, int]:
        return {k: v for k, v in self.maps.snapshot().rejects.items() if v}


@pytest.fixture(scope="module")
def flood_rig(strategy_program):
    _, prog_fd, maps = strategy_program
    return FloodRig(prog_fd, maps)


def journaled(journal_base: Path) -> dict:
    """Rejects per (reason, symbol), kept whole and counted, read back from every part."""
    whole: Counter = Counter()
    counted: Counter = Counter()
    per_second: Counter = Counter()
    for path in parts(journal_base):
        with Journal(path, readonly=True) as j:
            for r in j.rows("rejects"):
                whole[(r["reason"], r["symbol"])] += 1
                per_second[r["ts_ns"] // NS_PER_S] += 1
            for r in j.rows("reject_counts"):
                counted[(r["reason"], r["symbol"])] += r["count"]
    return {"whole": whole, "counted": counted, "per_second": per_second}


def assert_counts_exact(rig: FloodRig, base: Path) -> dict:
    got = journaled(base)
    kernel = rig.kernel_rejects()
    by_reason: Counter = Counter()
    for (reason, _symbol), n in (got["whole"] + got["counted"]).items():
        by_reason[reason] += n
    assert dict(by_reason) == kernel, (dict(by_reason), kernel)
    return got


def test_a_flood_keeps_the_rows_per_second_and_counts_the_rest_exactly(flood_rig, tmp_path):
    rig = flood_rig
    rig.reset()
    base = tmp_path / "flood.journal.sqlite"
    with Journal(base, reject_rows_per_s=1000) as j:
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
        for _ in range(4):
            rig.flood(8000)
            rig.trade(50)
            rig.drain_into(j)
        j.record_kernel(**rig.kernel(), final=True)
        v = j.verify()
    got = assert_counts_exact(rig, base)
    kernel = rig.kernel_rejects()
    # (The very first repeated update after a reset may trade instead: it is not yet stale.)
    assert kernel["disabled"] == 8_000 and kernel["stale"] + rig.kernel()["orders_sent"] - 200 == 24_000
    assert set(got["counted"]) == {("stale", SYMBOL), ("disabled", OFF)}
    assert max(got["per_second"].values()) <= 1000  # never more whole rows in a second than the rate
    assert sum(got["whole"].values()) <= 1000 * len(got["per_second"])
    assert (v["ok"], v["rows"], v["gaps"]) == (True, rig.kernel()["orders_sent"], 0)
    assert v["rejects"] == sum(kernel.values())
    assert v["reject_rows"] == sum(got["whole"].values()) and v["rejects_counted"] == sum(got["counted"].values())
    assert v["rejects_counted"] > 25_000  # the flood was counted, not written a row each


def test_counts_stay_exact_when_a_writer_dies_and_the_next_reads_the_ring_again(flood_rig, tmp_path):
    rig = flood_rig
    rig.reset()
    base = tmp_path / "crash.journal.sqlite"
    with Journal(base, reject_rows_per_s=500) as j:
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
        rig.flood(6000)
        rig.drain_into(j, commit=False)  # ... dies after its commit, before the ring moved
    rig.flood(2000)
    with Journal(base, reject_rows_per_s=500) as j:  # the next writer reads it all again
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
        rig.drain_into(j)
    assert_counts_exact(rig, base)


def test_parts_never_pass_the_cap_and_verify_follows_them(flood_rig, tmp_path):
    rig = flood_rig
    rig.reset()
    base = tmp_path / "hft140.journal.sqlite"
    cap = 256 * 1024
    sizes, alerts = [], []
    with Journal(base, max_bytes=cap, reject_rows_per_s=100_000) as j:
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
        # Batches well under an eighth of the cap, as the controller's are under the real one
        # (a tick drains at most 8,192 records a ring: ~1.6 MB, against 1024 MB by default).
        for round_ in range(150):
            rig.flood(100)
            rig.trade(20)
            rig.drain_into(j, commit=round_ != 70)  # one writer "dies" before the ring moved ...
            if round_ == 70:
                j.close()
                j = Journal(base, max_bytes=cap, reject_rows_per_s=100_000)  # ... the next reads it again
                j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
                rig.drain_into(j)
            sizes += [part_bytes(p) for p in parts(base)]
            alerts += j.take_alerts()
        j.record_kernel(**rig.kernel(), final=True)
        v = j.verify()
        j.close()
    files = parts(base)
    assert len(files) >= 4 and files[1].name == "hft140.journal.sqlite.1"
    assert max(sizes) <= cap, max(sizes)
    assert (v["ok"], v["chain"], v["gaps"], v["duplicates"]) == (True, "ok", 0, 0)
    orders = rig.kernel()["orders_sent"]
    assert (v["rows"], v["first_order_id"], v["last_order_id"]) == (orders, 1, orders) and orders >= 3000
    assert v["rejects"] == sum(rig.kernel_rejects().values()) == 15_000 - (orders - 3000)
    assert_counts_exact(rig, base)
    kinds = Counter(a.reason for a in alerts if a.kind == "journal_size")
    assert kinds["rotated"] == len(files) - 1 and kinds["near_cap"] >= 1
    # The command line reads the parts as one journal.
    p = subprocess.run([HFT_TUI, "journal", "verify", "--journal", str(base)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("OK:") and f"{len(files)} part(s)" in p.stdout, p
    p = subprocess.run([HFT_TUI, "journal", "export", "--journal", str(base)], capture_output=True, text=True)
    body = list(csv.DictReader(io.StringIO(p.stdout)))
    assert Counter(r["kind"] for r in body)["order"] == orders
    jseqs = [int(r["jseq"]) for r in body]
    assert jseqs == sorted(jseqs) and len(set(jseqs)) == len(jseqs)
    assert sum(int(r["count"] or 1) for r in body if r["kind"] in ("reject", "reject_count")) == v["rejects"]
    p = subprocess.run(
        [HFT_TUI, "journal", "tail", "--journal", str(base), "-n", "5000"], capture_output=True, text=True
    )
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 5000  # more than the newest part holds


def test_verify_says_when_a_part_is_missing(flood_rig, tmp_path):
    rig = flood_rig
    rig.reset()
    base = tmp_path / "gone.journal.sqlite"
    with Journal(base, max_bytes=128 * 1024) as j:
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
        for _ in range(6):
            rig.trade(400)
            rig.drain_into(j)
    files = parts(base)
    assert len(files) >= 3
    files[1].unlink()  # a part removed by hand
    p = subprocess.run([HFT_TUI, "journal", "verify", "--journal", str(base)], capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout.startswith("LOSS:"), p
    assert "(a part missing?)" in p.stdout and "missing order ids" in p.stdout


class Died(BaseException):
    """The writer killed at this instant: nothing of it runs after (not an error it could handle)."""


def die(*_args, **_kwargs):
    raise Died


def die_on_call(n: int, then):
    """``then`` until its n-th call, which dies."""
    calls = []

    def maybe(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise Died
        return then(*args, **kwargs)

    return maybe


# Where a writer may die while it closes a full part and begins the next: (what dies, made
# afresh for each test; the parts a reader then finds).
DEATHS = {
    "after_it_closed_the_full_part": (lambda: (Journal, "_make_part", die), 1),
    "while_it_wrote_the_next_part": (lambda: (journal_store.capacity, "write_carry", die), 1),
    "before_the_next_part_was_linked_into_place": (lambda: (journal_store.os, "link", die), 1),
    # (its calls: at the writer's open, before the part is made, once it is in place)
    "before_the_making_name_was_removed": (
        lambda: (journal_store, "remove_making", die_on_call(3, journal_store.remove_making)),
        2,
    ),
}


SMALL_PART = 128 * 1024  # a few hundred orders a part


def begun(base: Path) -> Journal:
    """A writer of ``base`` in parts of SMALL_PART, its engine begun."""
    j = Journal(base, max_bytes=SMALL_PART)
    j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
    return j


def feed(j: Journal, rig: FloodRig, *, until_parts: int | None = None, rounds: int = 100) -> None:
    """Orders traded and drained into ``j`` until the journal has ``until_parts`` parts, or
    for ``rounds`` rounds (a test that waits for a raise).  A batch whose write raises is
    never committed: it stays in the ring."""
    for _ in range(rounds):
        if until_parts is not None and len(parts(j.base)) >= until_parts:
            return
        rig.trade(200)
        rig.drain_into(j)
    assert until_parts is None, f"{until_parts} parts not reached in {rounds} rounds"


def finish(base: Path, rig: FloodRig, j: Journal | None = None) -> tuple[dict, list]:
    """The next writer (or ``j`` going on) drains what is left, trades on, and verifies."""
    alerts = []
    j = j or Journal(base, max_bytes=SMALL_PART)
    with j:
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
        for _ in range(4):
            rig.drain_into(j)
            alerts += j.take_alerts()
            rig.trade(200)
        rig.drain_into(j)
        alerts += j.take_alerts()
        j.record_kernel(**rig.kernel(), final=True)
        v = j.verify()
    assert not [a for a in alerts if a.kind == "journal_gap"], alerts
    orders = rig.kernel()["orders_sent"]
    assert (v["ok"], v["chain"], v["gaps"], v["duplicates"], v["rows"]) == (True, "ok", 0, 0, orders), v
    assert not list(base.parent.glob("*.making*"))
    return v, alerts


@pytest.mark.parametrize("death", DEATHS)
def test_a_writer_dying_as_it_begins_a_part_leaves_only_whole_parts_and_the_next_writer_finishes_it(
    flood_rig, tmp_path, monkeypatch, death
):
    """A reader never opens a part half made, and the next writer makes the part the dead
    one was making: no false gap alert, verify whole, every order once."""
    rig = flood_rig
    rig.reset()
    base = tmp_path / "die.journal.sqlite"
    dies, found = DEATHS[death]
    monkeypatch.setattr(*dies())
    with pytest.raises(Died):
        feed(begun(base), rig)
    monkeypatch.undo()
    assert len(parts(base)) == found
    with JournalChain(base) as chain:  # a reader: whole parts only
        chain_said = chain.verify()["chain"]
    assert chain_said.endswith("which is not here") if found == 1 else chain_said == "ok"
    v, _ = finish(base, rig)  # the next writer finishes the move, journals what the dead one had read
    assert [Path(p["path"]).name for p in v["parts"]][:2] == [base.name, base.name + ".1"]


def test_a_reader_never_sees_a_part_being_made(flood_rig, tmp_path, monkeypatch):
    """While the writer makes the next part, the parts a reader lists are the whole ones only."""
    rig = flood_rig
    rig.reset()
    base = tmp_path / "seen.journal.sqlite"
    seen: list[list[str]] = []
    write_carry = journal_store.capacity.write_carry

    def look_then_write(db, carry):
        seen.append([p.name for p in parts(base)])
        with JournalChain(base) as chain:  # every part listed opens as a journal
            seen.append([Path(p["path"]).name for p in chain.verify()["parts"]])
        write_carry(db, carry)

    monkeypatch.setattr(journal_store.capacity, "write_carry", look_then_write)
    with begun(base) as j:
        feed(j, rig, until_parts=3)
    assert seen == [[base.name], [base.name], [base.name, base.name + ".1"], [base.name, base.name + ".1"]]


def test_a_journal_in_a_sticky_shared_directory_goes_on_in_new_parts(flood_rig, tmp_path):
    """In a directory like /tmp root writes only names that do not exist yet: a part it made
    itself is still opened after it is linked in place."""
    rig = flood_rig
    rig.reset()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    base = shared / "tmp.journal.sqlite"
    j = begun(base)
    feed(j, rig, until_parts=3)
    finish(base, rig, j)


@pytest.mark.parametrize("failure", ["the disk is full", "a directory holds the making name"])
def test_a_part_that_cannot_be_made_leaves_the_writer_on_the_closed_part_to_try_again(
    flood_rig, tmp_path, monkeypatch, failure
):
    """One line (a JournalError: the kill latches), nothing lost, the full part closed once,
    and the next write makes the part once the cause is gone."""
    rig = flood_rig
    rig.reset()
    base = tmp_path / "full.journal.sqlite"
    planted = Path(str(base) + ".1.making")
    if failure == "the disk is full":

        def full(db, carry):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(journal_store.capacity, "write_carry", full)
    else:
        planted.mkdir()
    j = begun(base)
    with pytest.raises(JournalError, match=r"full\.journal\.sqlite\.1"):
        feed(j, rig)
    with pytest.raises(JournalError, match=r"full\.journal\.sqlite\.1"):
        rig.drain_into(j)  # the next write tries again
    monkeypatch.undo()
    if planted.is_dir():
        planted.rmdir()
    v, _ = finish(base, rig, j)  # the same writer goes on
    assert len(v["parts"]) >= 2
    db = sqlite3.connect(base)
    try:
        assert db.execute("SELECT count(*) FROM control WHERE kind='journal_continued'").fetchone()[0] == 1
    finally:
        db.close()


@pytest.fixture
def small_disk():
    """A 4 MiB tmpfs: a disk with less free space than one part's cap."""
    d = Path(tempfile.mkdtemp(prefix="hft140-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)
        shutil.rmtree(d)


def test_on_a_disk_running_low_every_reject_is_counted_and_an_alert_says_so(flood_rig, small_disk):
    rig = flood_rig
    rig.reset()
    base = small_disk / "low.journal.sqlite"
    with Journal(base, max_bytes=16 << 20, reject_rows_per_s=100_000) as j:
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash="t")
        rig.flood(4000)
        rig.trade(100)
        rig.drain_into(j)
        alerts = j.take_alerts()
        v = j.verify()
    assert any(a.reason == "low_disk" and a.message.startswith("LOW DISK") for a in alerts)
    assert (v["rows"], v["reject_rows"], v["rejects_counted"]) == (100, 0, 4000)
    assert_counts_exact(rig, base)


def test_the_kernel_counters_and_the_rings_agree_before_the_journal_is_judged(flood_rig):
    """The premise of the exact counts: every reject of a traded symbol makes
    one tape record (none dropped here), so kernel counter == records."""
    rig = flood_rig
    rig.reset()
    rig.flood(2000)
    _records, runs, ends = rig.read_as_controller()
    kinds = Counter(k for run in runs for k in run.kinds())
    rig.commit(ends)
    assert kinds[EVENT_REJECT] == sum(rig.kernel_rejects().values()) == 2000 - rig.kernel()["orders_sent"]
    assert rig.kernel()["tape_drops"] == 0


# -- end to end: the lab, `engine run`, a feed of rejects -----------------------------------------


def test_engine_run_under_a_lab_flood_of_rejects_keeps_the_rate_and_exact_counts(make_lab, tmp_path):
    """Lab 141: every symbol disabled, so each of 100,000 updates sent as fast
    as the simulator can is a reject `disabled`; `engine run` journals them
    through the real controller with the default budget (5,000 rows a second)."""
    import json
    import os
    import signal
    import time

    from hft_tui import paths as hft_paths

    lab_ = make_lab(141)
    config = tmp_path / "disabled.toml"
    config.write_text(hft_paths.DEMO_CONFIG.read_text().replace("enabled = true", "enabled = false"))
    journal = tmp_path / "hft141.journal.sqlite"
    run = subprocess.Popen(
        [HFT_TUI, "engine", "run", lab_.engine_iface, "--config", str(config), "--journal", str(journal)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = run.stderr.readline()
        assert "supervising" in line, line
        feed = subprocess.run(
            [HFT_TUI, "lab", "feed", "--lab", "141", "--config", str(config), "--rate", "0", "--count", "100000",
             "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert feed.returncode == 0, feed.stderr
        time.sleep(1.0)  # a few ticks: the rings drained
        status = subprocess.run(
            [HFT_TUI, "engine", "status", lab_.engine_iface, "--json"], capture_output=True, text=True, check=True
        )
        kernel = {k: v for k, v in json.loads(status.stdout)["rejects"].items() if v}
    finally:
        os.kill(run.pid, signal.SIGTERM)
        _out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert set(kernel) == {"disabled"} and kernel["disabled"] >= 99_000  # a few updates may be dropped on the veth
    v = json.loads(
        subprocess.run(
            [HFT_TUI, "journal", "verify", "--journal", str(journal), "--json"], capture_output=True, text=True
        ).stdout
    )
    assert v["ok"] and v["rejects"] == kernel["disabled"]
    assert v["rejects_counted"] > 0 and v["reject_rows"] + v["rejects_counted"] == kernel["disabled"]
    got = journaled(journal)
    assert max(got["per_second"].values()) <= 5000
