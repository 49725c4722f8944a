"""The dead-man switch and the foreground supervisor, on the real kernel.

Labs 40-43 and 68.  The kernel's rule: when the switch is armed (deadman_ms != 0)
no order leaves once now - heartbeat > deadman_ms, and every update it skips
for that is counted (reject "deadman").  The controller's rules: its first
heartbeat arms the switch; a controller that finds the heartbeat expired
(its predecessor died) latches the kill switch, so trading resumes only when
an operator resumes it.  A plain ``engine attach`` leaves the switch unarmed.

Timing: the SIGKILL test needs no margin for its main claim.  An order
event's ts_ns is the very bpf_ktime_get_ns the kernel compared with the
heartbeat, so "ts_ns <= last heartbeat + deadline" is exact, and the last
heartbeat was written before the supervisor was reaped (time.monotonic_ns is
the same CLOCK_MONOTONIC).  The waits around it (the simulator's phases) are
generous, so a loaded 2-core VM cannot make them flaky.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from engine_configs import UNTHROTTLED
from waiting import wait_for

from hft_tui import engine, journal, paths
from hft_tui.config import load_config
from hft_tui.controller import Controller
from hft_tui.locks import controller_pid
from hft_tui.simulator import Simulator

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
DEMO = paths.DEMO_CONFIG
DEADLINE_MS = load_config(DEMO).engine.deadman_ms  # 500, the config's deadline
NS = 1_000_000


def cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([HFT_TUI, *argv], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def status(iface: str) -> dict:
    return json.loads(cli("engine", "status", iface, "--json").stdout)


class Supervisor:
    """``hft-tui engine run IFACE`` as a child process, stderr in a file."""

    def __init__(self, iface: str, tmp: Path, *args: str) -> None:
        self.iface = iface
        self.log = tmp / f"run-{iface}-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [HFT_TUI, "engine", "run", iface, *args], stdout=subprocess.DEVNULL, stderr=self.log.open("w")
        )
        wait_for(lambda: "supervising" in self.text() or self.proc.poll() is not None, 60, "the supervisor")
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text()

    def kill9(self) -> int:
        """SIGKILL; returns CLOCK_MONOTONIC ns once the process is reaped."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return time.monotonic_ns()

    def term(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def supervisors():
    made: list[Supervisor] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def fresh_journal():
    """Journals of our labs' interfaces start empty."""

    def clear(iface: str) -> Path:
        path = journal.journal_path(iface)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return path

    return clear


class Feed:
    """The exchange simulator trading in a background thread until stopped."""

    def __init__(self, lab, rate: int = 20_000) -> None:
        self._stop = threading.Event()
        self.summary = None
        sim = Simulator(lab, load_config(DEMO), seed=7)

        def go():
            self.summary = sim.run(0, rate, stop=self._stop.is_set)

        self._thread = threading.Thread(target=go, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=60)
        assert self.summary is not None, "the simulator failed"
        return self.summary


def feed_for(lab, seconds: float, rate: int = 20_000):
    return Simulator(lab, load_config(DEMO), seed=11).run(0, rate, duration=seconds)


# -- arming -----------------------------------------------------------------------


def test_a_plain_attach_leaves_the_switch_unarmed_and_says_so(make_lab):
    L = make_lab(40)
    out = cli("engine", "attach", L.engine_iface, "--config", str(DEMO)).stdout
    assert "unsupervised (no dead-man switch)" in out
    st = status(L.engine_iface)
    assert (st["deadman"]["armed"], st["deadman"]["supervised"]) == (False, False)
    assert "UNSUPERVISED: no dead-man switch armed" in cli("engine", "status", L.engine_iface).stdout
    # Scripts keep working: no heartbeat ever, and the engine trades.
    summary = feed_for(L, 1.0)
    assert summary.orders_received > 0
    after = status(L.engine_iface)
    assert after["orders_sent"] == summary.orders_received
    assert after["deadman"]["skipped"] == 0


def test_attach_with_deadman_arms_it_and_a_stale_heartbeat_stops_every_order(make_lab):
    L = make_lab(41)
    cli("engine", "attach", L.engine_iface, "--config", str(DEMO), "--deadman", "300")
    st = status(L.engine_iface)
    assert st["deadman"]["armed"] and st["deadman"]["deadline_ms"] == 300
    time.sleep(0.5)  # nobody beats: the heartbeat the attach wrote is now stale
    skipped_before = status(L.engine_iface)["deadman"]["skipped"]
    summary = feed_for(L, 1.0)
    st = status(L.engine_iface)
    assert summary.updates_sent > 0 and summary.orders_received == 0 and st["orders_sent"] == 0
    # Every update of a known symbol was skipped for the dead-man switch, and counted.
    assert st["deadman"]["skipped"] - skipped_before == summary.updates_sent
    assert st["kill_state"] == "off"  # the kernel does not latch: a fresh heartbeat trades again
    with engine.open_engine(L.engine_iface) as h:
        stop = threading.Event()

        def beat():
            while not stop.is_set():
                h.maps.beat()
                time.sleep(0.05)

        t = threading.Thread(target=beat, daemon=True)
        t.start()
        try:
            assert feed_for(L, 1.0).orders_received > 0
        finally:
            stop.set()
            t.join()


# -- SIGKILL mid-trading ------------------------------------------------------------


def test_sigkill_of_the_supervisor_stops_orders_within_the_deadline_and_restart_needs_a_resume(
    make_lab, supervisors, fresh_journal, tmp_path
):
    L = make_lab(42)
    iface = L.engine_iface
    jpath = fresh_journal(iface)
    run = Supervisor(iface, tmp_path, "--config", str(DEMO))
    supervisors.append(run)
    st = status(iface)
    assert st["deadman"]["armed"] and st["deadman"]["deadline_ms"] == DEADLINE_MS
    assert (st["deadman"]["supervised"], st["deadman"]["controller_pid"]) == (True, run.proc.pid)
    assert f"supervised by pid {run.proc.pid}: dead-man {DEADLINE_MS} ms" in cli("engine", "status", iface).stdout

    # Phase A: the simulator trades; the supervisor is killed in the middle.
    feed = Feed(L)
    wait_for(lambda: status(iface)["orders_sent"] > 200, 30, "orders to flow")
    t_dead = run.kill9()
    time.sleep((DEADLINE_MS + 300) / 1000)  # the simulator keeps sending past the deadline
    phase_a = feed.stop()
    kernel_a = status(iface)
    assert phase_a.orders_received == kernel_a["orders_sent"] > 200

    # Phase B: the heartbeat is long stale; the simulator's count shows no order.
    phase_b = feed_for(L, 1.0)
    kernel_b = status(iface)
    assert phase_b.updates_sent > 1000 and phase_b.orders_received == 0
    assert kernel_b["orders_sent"] == kernel_a["orders_sent"]
    assert kernel_b["deadman"]["skipped"] - kernel_a["deadman"]["skipped"] == phase_b.updates_sent
    # Armed but orphaned: status says so, not "supervised".
    assert (kernel_b["deadman"]["armed"], kernel_b["deadman"]["supervised"]) == (True, False)
    assert kernel_b["deadman"]["controller_pid"] is None
    assert "NOT SUPERVISED" in cli("engine", "status", iface).stdout

    # The controller starts again: it takes the pinned engine over, journals
    # the orders the ring kept, and latches the kill switch.
    run2 = Supervisor(iface, tmp_path)
    supervisors.append(run2)
    wait_for(lambda: "KILL SWITCH LATCHED" in run2.text(), 10, "the latch to be reported")
    assert "taken over" in run2.text()
    assert status(iface)["kill_state"] == "operator"

    def journaled():
        with journal.Journal(jpath, readonly=True) as j:
            return j.verify()["rows"] == kernel_b["orders_sent"]

    wait_for(journaled, 30, "the journal to catch up")
    with journal.Journal(jpath, readonly=True) as j:
        ts = [r["ts_ns"] for r in j.rows("orders")]
    # The claim, exactly: the kernel sent nothing after last heartbeat + deadline.
    assert max(ts) <= t_dead + DEADLINE_MS * NS
    # ... and the engine was trading up to the kill (else the test proves nothing).
    assert max(ts) >= t_dead - 1000 * NS

    # Phase C: killed until an operator resumes.
    phase_c = feed_for(L, 1.0)
    assert phase_c.updates_sent > 1000 and phase_c.orders_received == 0
    assert status(iface)["rejects"]["kill"] > 0
    cli("engine", "resume", iface)
    phase_d = feed_for(L, 1.0)
    assert phase_d.orders_received > 0

    # SIGTERM: drained, detached, and the journal proves nothing was lost.
    total = status(iface)["orders_sent"]
    assert run2.term() == 0
    assert iface not in engine.attached_ifaces()
    v = json.loads(cli("journal", "verify", "--iface", iface, "--json").stdout)
    assert (v["rows"], v["gaps"], v["drops"], v["first_order_id"], v["last_order_id"], v["ok"]) == (
        total,
        0,
        0,
        1,
        total,
        True,
    )
    assert total == phase_a.orders_received + phase_d.orders_received
    with journal.Journal(jpath, readonly=True) as j:
        kinds = [r["kind"] for r in j.rows("control")]
    assert kinds[:2] == ["attach", "controller_start"]
    assert kinds.count("controller_start") == 2 and "resume" in kinds and kinds[-1] == "controller_stop"


# -- controllers --------------------------------------------------------------------


def test_a_controller_stopping_without_detach_leaves_the_switch_armed(make_lab, fresh_journal):
    L = make_lab(43)
    iface = L.engine_iface
    cli("engine", "attach", iface, "--config", str(DEMO))
    with engine.open_engine(iface) as h, journal.Journal(fresh_journal(iface)) as j:
        ctl = Controller(h, journal=j)
        ctl.start()
        ctl.tick(0)
        lines = ctl.stop(detach=False)
        assert "dead-man switch armed" in lines[-1]
    assert iface in engine.attached_ifaces()
    st = status(iface)
    assert st["deadman"]["armed"] and st["attached"]
    time.sleep((DEADLINE_MS + 200) / 1000)
    summary = feed_for(L, 0.5)
    assert summary.updates_sent > 0 and summary.orders_received == 0
    # The next controller finds the heartbeat expired: the kill latches.
    with engine.open_engine(iface) as h:
        ctl = Controller(h)
        ctl.start()
        assert ctl.tripped_on_start and h.maps.kill() != 0
        ctl.stop(detach=True)
    assert iface not in engine.attached_ifaces()


def test_a_backlog_is_drained_in_bounded_ticks_that_say_so(make_lab, fresh_journal, tmp_path):
    """A controller that fell behind catches up MAX_BATCH records per ring per
    tick (so each tick stays short and the heartbeat fresh), and says when
    records still wait; the journal ends with every order."""
    L = make_lab(41)
    iface = L.engine_iface
    config = tmp_path / "unthrottled.toml"
    config.write_text(UNTHROTTLED)
    cli("engine", "attach", iface, "--config", str(config))  # unarmed: no heartbeat needed
    with engine.open_engine(iface) as h, journal.Journal(fresh_journal(iface)) as j:
        ctl = Controller(h, journal=j, supervise=False)
        ctl.start()
        sent = Simulator(L, load_config(config), seed=2).run(120_000, 0)  # nobody drains meanwhile
        st = status(iface)
        orders, rejects = st["orders_sent"], sum(st["rejects"].values())
        assert sent.orders_received == orders > 2 * Controller.MAX_BATCH
        ticks = [ctl.tick(0)]
        while ticks[-1].backlog:
            ticks.append(ctl.tick(0))
            assert len(ticks) < 100
        assert ticks[0].backlog and len(ticks) >= 3
        assert all(len(t.events) <= Controller.MAX_EVENTS_PER_TICK for t in ticks)
        # The caller gets the newest events; every record is either shown or counted as not shown.
        assert len(ticks[0].events) == Controller.MAX_EVENTS_PER_TICK
        assert ticks[0].dropped_events + len(ticks[0].events) >= Controller.MAX_BATCH
        assert sum(len(t.events) + t.dropped_events for t in ticks) == orders + rejects
        ctl.stop(detach=True)
        v = j.verify()
    assert (v["rows"], v["gaps"], v["drops"], v["ok"]) == (orders, 0, 0, True)


def test_one_controller_per_engine(make_lab, supervisors, fresh_journal, tmp_path):
    """A ring buffer has one consumer position: a second drain would split the events."""
    L = make_lab(43)
    iface = L.engine_iface
    fresh_journal(iface)
    run = Supervisor(iface, tmp_path, "--config", str(DEMO))
    supervisors.append(run)
    p = cli("engine", "run", iface, check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip() == (
        f"hft-tui: error: {iface} already has a controller (pid {run.proc.pid}): "
        "one process drains the events and writes the journal; stop it first"
    )
    with engine.open_engine(iface) as h, pytest.raises(engine.EngineError, match="already has a controller"):
        Controller(h).start()
    assert run.proc.poll() is None
    assert run.term() == 0
    # A stopped controller leaves no lock file behind, and the next one takes over.
    assert not (paths.RUN_DIR / f"{iface}.controller").exists()
    engine.attach(iface, load_config(DEMO))  # the supervisor detached on SIGTERM
    with engine.open_engine(iface) as h:
        ctl = Controller(h)
        ctl.start()
        assert controller_pid(iface) == os.getpid()
        ctl.stop(detach=False)
    assert controller_pid(iface) is None
    assert not (paths.RUN_DIR / f"{iface}.controller").exists()


def test_the_journal_records_program_hash_and_config_version_at_attach_and_every_change(
    make_lab, supervisors, fresh_journal, tmp_path
):
    L = make_lab(40)
    iface = L.engine_iface
    jpath = fresh_journal(iface)
    run = Supervisor(iface, tmp_path, "--config", str(DEMO))
    supervisors.append(run)
    st = status(iface)
    assert st["program_hash"] == engine.program_hash() and st["config_version"] == 1
    cli("engine", "set", "AAPL", "buy_target=190.30", "--iface", iface)
    cli("engine", "kill", iface)
    cli("engine", "resume", iface)
    cli("engine", "set-engine", "loss_limit=100000", "--iface", iface)

    def rows():
        with journal.Journal(jpath, readonly=True) as j:
            got = [r for r in j.rows("control") if r["kind"] not in ("controller_start",)]
        return got if [r["kind"] for r in got][-1:] == ["config_change"] and len(got) >= 5 else None

    got = wait_for(rows, 10, "the changes to be journaled")
    kinds = [(r["kind"], r["config_version"]) for r in got]
    assert kinds == [("attach", 1), ("config_change", 2), ("kill", 2), ("resume", 3), ("config_change", 4)]
    assert all(r["program_hash"] == engine.program_hash() for r in got)
    change = json.loads(got[1]["detail"])["changed"]
    assert change == {"AAPL": {"buy_target": ["190.2500", "190.3000"]}}
    assert json.loads(got[4]["detail"])["changed"] == {"engine": {"loss_limit": ["250000.0000", "100000.0000"]}}
    assert status(iface)["config_version"] == 4
    assert run.term() == 0


# -- the heartbeat's cadence, and starting while others look (lab 68) --------------------


def test_engine_run_beats_five_times_per_deadline_even_one_shortened_live(
    make_lab, supervisors, fresh_journal, tmp_path
):
    L = make_lab(68)
    iface = L.engine_iface
    fresh_journal(iface)
    run = Supervisor(iface, tmp_path, "--config", str(DEMO), "--deadman", "100")
    supervisors.append(run)
    assert status(iface)["deadman"]["deadline_ms"] == 100
    skipped = status(iface)["deadman"]["skipped"]
    summary = feed_for(L, 3.0)
    assert summary.orders_received > 0
    assert status(iface)["deadman"]["skipped"] == skipped  # no update refused for the heartbeat

    # 500 ms -> 100 ms while it runs: met from the next beat on.
    cli("engine", "set-engine", "deadman_ms=500", "--iface", iface)
    assert status(iface)["deadman"]["deadline_ms"] == 500
    feed = Feed(L)
    wait_for(lambda: status(iface)["orders_sent"] > 100, 30, "orders to flow")
    cli("engine", "set-engine", "deadman_ms=100", "--iface", iface)
    time.sleep(2.0)  # trading on under the short deadline
    summary = feed.stop()
    st = status(iface)
    assert st["deadman"]["deadline_ms"] == 100 and summary.orders_received > 0
    assert st["deadman"]["skipped"] == skipped
    assert run.term() == 0


def hold_shared(iface: str) -> int:
    """A shared lock on the controller's lock file, as a status reader of an
    older hft-tui took for a moment."""
    paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(paths.RUN_DIR / f"{iface}.controller", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    return fd


def test_a_reader_holding_the_controller_lock_for_a_moment_does_not_refuse_a_controller(make_lab):
    L = make_lab(68)
    iface = L.engine_iface
    cli("engine", "attach", iface, "--config", str(DEMO))
    fd = hold_shared(iface)
    assert controller_pid(iface) is None  # a reader is not a controller
    threading.Timer(0.2, os.close, args=(fd,)).start()  # ... and lets go soon
    with engine.open_engine(iface) as h:
        ctl = Controller(h)
        ctl.start()
        try:
            assert controller_pid(iface) == os.getpid()
        finally:
            ctl.stop(detach=True)


def test_a_controller_starts_while_its_status_is_read_again_and_again(make_lab):
    """Reading the status takes no lock, so a controller starting at that instant never refuses."""
    L = make_lab(68)
    iface = L.engine_iface
    cli("engine", "attach", iface, "--config", str(DEMO))
    stop = threading.Event()
    seen = []

    def read_status():
        while not stop.is_set():
            seen.append(controller_pid(iface))

    reader = threading.Thread(target=read_status, daemon=True)
    reader.start()
    try:
        with engine.open_engine(iface) as h:
            for _ in range(30):
                ctl = Controller(h, supervise=False)
                ctl.start()
                # A status read happens while this controller holds its lock (on a loaded
                # machine the reader thread could otherwise miss every short life).
                reads = len(seen)
                wait_for(lambda n=reads: len(seen) > n + 1, 10, "a status read during the controller's life")
                ctl.stop(detach=False)
    finally:
        stop.set()
        reader.join()
    assert os.getpid() in seen and set(seen) <= {None, os.getpid()}


def test_engine_run_refuses_a_deadline_below_the_minimum_before_arming_anything(make_lab):
    L = make_lab(68)
    iface = L.engine_iface
    cli("engine", "attach", iface, "--config", str(DEMO))  # attached, unarmed: run would take it over
    p = cli("engine", "run", iface, "--deadman", "50", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == "hft-tui: error: dead-man deadline (ms): 50 is below 100"
    assert status(iface)["deadman"]["armed"] is False
