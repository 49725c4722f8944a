"""Operator actions that must fail safe, through the real CLI and kernel, lab 71.

- a resume the loss limit would undo at the next update is refused, saying what to do;
- the kill switch needs only its own pin (an engine of another hft-tui version can be killed);
- a dead-man deadline read from the state file is checked like any input before it is armed;
- an engine whose state file is lost keeps its own identity in the journal;
- a controller without a journal leaves the orders in the ring for the next journal;
- a change whose state file cannot be saved is refused with nothing written;
- two attaches at once: the loser refuses and leaves the winner's pins; an attach whose state
  file cannot be saved leaves nothing attached; a write through a handle opened before a detach
  is refused;
- the app's supervisor drains a burst before a ring fills, whatever its poll rate (lab 72).
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from engine_configs import UNTHROTTLED
from waiting import wait_for

from hft_tui import engine, journal, lab, paths
from hft_tui.config import DEFAULT_DEADMAN_MS, load_config
from hft_tui.constants import KILL_OFF, KILL_STATES
from hft_tui.controller import Controller
from hft_tui.errors import EngineError
from hft_tui.protocol import Update, encode_update, parse_price
from hft_tui.symbol import Symbol

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
DEMO = paths.DEMO_CONFIG
L = lab.Lab.numbered(71)


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([HFT_TUI, *argv], capture_output=True, text=True, timeout=120)


@pytest.fixture
def attached():
    lab.down(L, quiet=True)
    lab.up(L)
    engine.attach(L.engine_iface, load_config(DEMO))
    try:
        with engine.open_engine(L.engine_iface) as h:
            yield h
    finally:
        lab.down(L, quiet=True)


def send_update(u: Update) -> None:
    with lab.lab_socket(L) as sock:
        sock.sendto(encode_update(u), (L.engine_ip, 9000))


def test_a_resume_the_loss_limit_would_undo_is_refused_until_the_limit_is_raised(attached):
    h = attached
    assert cli("engine", "set-engine", "loss_limit=0.0001", "--iface", h.iface).returncode == 0
    # A buy at the ask 190.00, marked at the bid 189.00: a loss of a dollar a share, far past the limit.
    send_update(Update("AAPL", 1, parse_price("189.00"), 100, parse_price("190.00"), 100))
    wait_for(lambda: h.maps.kill() != KILL_OFF, 5, "the loss limit to latch the kill switch")
    assert KILL_STATES[h.maps.kill()] == "loss_limit"
    pnl = h.maps.totals().pnl
    assert pnl < -1
    p = cli("engine", "resume", h.iface)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "is below the loss limit" in p.stderr and "loss_limit=" in p.stderr and p.stderr.count("\n") == 1
    assert KILL_STATES[h.maps.kill()] == "loss_limit"  # unchanged
    # Raised above the loss: the resume goes through.
    assert cli("engine", "set-engine", f"loss_limit={(-pnl) // 10000 + 1}", "--iface", h.iface).returncode == 0
    p = cli("engine", "resume", h.iface)
    assert p.returncode == 0, p.stderr
    assert h.maps.kill() == KILL_OFF


def test_the_kill_switch_needs_only_its_own_pin(attached):
    """An engine of another hft-tui version has maps this one cannot read; its
    kill switch (a u64 in its own map) must still be reachable."""
    iface = attached.iface
    (paths.pin_dir(iface) / "symbol_state").unlink()  # a map this version would refuse to open
    assert "cannot open the engine's maps" in cli("engine", "status", iface).stderr
    p = cli("engine", "kill", iface)
    assert p.returncode == 0, p.stderr
    assert f"KILLED: {iface}" in p.stdout
    assert attached.maps.kill() != KILL_OFF


@pytest.mark.parametrize("stored", [1, 99, 0, 2**40])
def test_a_deadline_from_the_state_file_is_checked_before_it_is_armed(attached, stored):
    rec = engine.EngineRecord.load(attached.iface)
    rec.deadman_ms = stored  # an older hft-tui, or a hand, wrote it
    rec.save()
    with engine.EngineHandle(attached.iface) as h:
        ctl = Controller(h)
        ctl.start()
        try:
            armed = h.maps.read_global().deadman_ms
        finally:
            ctl.stop(detach=False)
    assert armed == DEFAULT_DEADMAN_MS


def test_an_engine_without_its_state_file_keeps_its_own_identity_in_the_journal(attached, tmp_path):
    iface = attached.iface
    prog_id = engine.EngineRecord.load(iface).prog_id
    paths.state_file(iface).unlink()
    with engine.EngineHandle(iface) as h, journal.Journal(tmp_path / "j.sqlite") as j:
        assert h.identity()[0] == prog_id
        ctl = Controller(h, journal=j)
        ctl.start()
        ctl.stop(detach=False)
        engines = j.engines()
    assert [e["prog_id"] for e in engines] == [prog_id]
    assert engines[0]["attached_at"] > 0
    p = cli("engine", "status", iface, "--json")
    assert json.loads(p.stdout)["attached"] is True  # still known as ours, by its pinned program


def test_a_controller_without_a_journal_leaves_the_orders_in_the_ring_for_the_next_journal(attached, tmp_path):
    """The app supervises without a journal when it cannot open one (the kill latched): the
    orders already in the ring are not consumed unjournaled, so the next journal has every id."""
    h = attached
    for seq in (1, 2, 3):
        send_update(Update("AAPL", seq, parse_price("190.00"), 100, parse_price("190.01"), 100))
    wait_for(lambda: h.maps.totals().order_seq == 3, 5, "three orders")
    send_update(Update("AAPL", 3, parse_price("190.00"), 100, parse_price("190.01"), 100))  # stale: a reject
    wait_for(lambda: h.maps.snapshot().rejects.get("stale") == 1, 5, "the stale reject")
    ctl = Controller(h)  # no journal
    ctl.start()
    try:
        seen = [e for _ in range(3) for e in ctl.tick().events]
    finally:
        ctl.stop(detach=False)
    assert [(e.kind, e.reason) for e in seen] == [("reject", "stale")]  # the tape drained, no order read
    with journal.Journal(tmp_path / "j.sqlite") as j:
        ctl = Controller(h, journal=j)
        ctl.start()
        try:
            ctl.tick()
        finally:
            ctl.stop(detach=False)
        v = j.verify()
    assert (v["ok"], v["rows"], v["first_order_id"], v["last_order_id"], v["gaps"]) == (True, 3, 1, 3, 0), v


def no_space_in_run(_record) -> None:
    """EngineRecord.save on a full /run."""
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_deadline_whose_state_file_cannot_be_saved_is_refused_with_nothing_written(attached, monkeypatch):
    """A full /run: the change is refused before the kernel holds any of it."""
    h = attached
    before = (h.maps.read_global(), engine.EngineRecord.load(h.iface))

    monkeypatch.setattr(engine.EngineRecord, "save", no_space_in_run)
    with pytest.raises(OSError, match="No space left"):
        h.set_engine({"deadman_ms": before[1].deadman_ms + 250, "loss_limit": "12345"})
    monkeypatch.undo()
    g = h.maps.read_global()
    assert (g.deadman_ms, g.config_version, g.loss_limit) == (
        before[0].deadman_ms,
        before[0].config_version,
        before[0].loss_limit,
    )
    assert h.record.deadman_ms == before[1].deadman_ms  # the record in memory too
    assert engine.EngineRecord.load(h.iface) == before[1]
    # Saved, the same change goes through whole.
    h.set_engine({"deadman_ms": before[1].deadman_ms + 250})
    assert engine.EngineRecord.load(h.iface).deadman_ms == before[1].deadman_ms + 250


@pytest.fixture
def lab_up():
    """Lab 71 up, nothing attached."""
    lab.down(L, quiet=True)
    lab.up(L)
    try:
        yield L.engine_iface
    finally:
        lab.down(L, quiet=True)


def test_a_second_attach_that_loses_the_race_refuses_and_leaves_the_winners_pins(lab_up, monkeypatch):
    """B looks first, A attaches meanwhile (a real CLI process), then B goes on: B must see A
    under the control lock, not take A's fresh pins for a dead engine's and remove them."""
    iface = lab_up
    real = engine.netlink.xdp_state
    raced = []

    def then_a_attaches(ipr, name):
        state = real(ipr, name)
        if not raced:
            raced.append(cli("engine", "attach", iface, "--config", str(DEMO), "--mode", "generic"))
        return state

    monkeypatch.setattr(engine.netlink, "xdp_state", then_a_attaches)
    with pytest.raises(EngineError, match="already attached"):
        engine.attach(iface, load_config(DEMO), mode="generic")
    monkeypatch.undo()
    assert raced[0].returncode == 0, raced[0].stderr
    assert engine.kill_pinned(iface) != KILL_OFF  # A's kill switch is still reachable
    with engine.EngineHandle(iface) as h:
        assert h.attached()


def test_an_attach_whose_state_file_cannot_be_saved_leaves_nothing_attached(lab_up, monkeypatch):
    iface = lab_up

    monkeypatch.setattr(engine.EngineRecord, "save", no_space_in_run)
    with pytest.raises(OSError, match="No space left"):
        engine.attach(iface, load_config(DEMO), mode="generic")
    monkeypatch.undo()
    with engine.IPRoute() as ipr:
        assert engine.netlink.xdp_state(ipr, iface).mode is None  # not trading with nothing to say so
    assert not paths.pin_dir(iface).exists() and not paths.state_file(iface).exists()


@pytest.mark.parametrize("reattached", [False, True], ids=["detached", "detached and attached again"])
def test_a_write_through_a_handle_opened_before_a_detach_is_refused(attached, reattached):
    h = attached  # opened before the detach, as a CLI command waiting on the lock or the app's session
    engine.detach(h.iface)
    if reattached:
        engine.attach(h.iface, load_config(DEMO))
    for write in (
        lambda: h.set_symbol(Symbol("AAPL"), {"buy_target": "1.23"}),
        lambda: h.set_engine({"loss_limit": "5"}),
        lambda: h.resume(),
    ):
        with pytest.raises(EngineError, match="detached or replaced since it was opened here: nothing written"):
            write()
    if reattached:
        with engine.EngineHandle(h.iface) as fresh:
            assert fresh.symbol(Symbol("AAPL")).buy_target != parse_price("1.23")


def test_a_deadline_without_a_state_file_is_refused_not_dropped(attached):
    paths.state_file(attached.iface).unlink()
    with engine.EngineHandle(attached.iface) as h:
        before = h.maps.read_global()
        with pytest.raises(EngineError, match="no state file to keep the dead-man deadline in"):
            h.set_engine({"deadman_ms": 2000})
        assert h.maps.read_global().config_version == before.config_version


class _Views:
    """Stands in for the app: collects what the supervisor process posts."""

    def __init__(self) -> None:
        self.messages = []

    def post_message(self, message) -> bool:
        self.messages.append(message)
        return True


def test_the_apps_supervisor_drains_a_burst_before_a_ring_fills_even_at_one_poll_a_second(tmp_path):
    """At --poll-hz 1 a tick drains at most a batch (8,192 records) a ring:
    more orders than the orders ring holds plus a batch a second would be
    dropped if it drained only at the poll rate.  It drains whenever a ring
    holds a batch, so the kernel drops nothing and the journal has every order."""
    from hft_tui.app.worker import EnginePoller
    from hft_tui.controller import Controller
    from hft_tui.simulator import Simulator

    L72 = lab.Lab.numbered(72)
    lab.down(L72, quiet=True)
    lab.up(L72)
    poller = None
    try:
        config = tmp_path / "unthrottled.toml"
        config.write_text(UNTHROTTLED)
        engine.attach(L72.engine_iface, load_config(config))
        jpath = journal.journal_path(L72.engine_iface)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{jpath}{suffix}").unlink(missing_ok=True)
        views = _Views()
        poller = EnginePoller(views, L72.engine_iface, poll_hz=1)
        poller.start()
        wait_for(lambda: views.messages, 30, "the supervisor to start")
        sent = Simulator(L72, load_config(config), seed=2).run(800_000, 0)
        with engine.EngineHandle(L72.engine_iface) as h:
            snap = h.snapshot()
        assert sent.orders_received == snap.totals.order_seq > 43_690 + 8 * Controller.MAX_BATCH
        assert snap.counters["ringbuf_drops"] == 0

        def journaled():
            with journal.Journal(jpath, readonly=True) as j:
                return j.verify()["rows"] == snap.totals.order_seq

        wait_for(journaled, 30, "the journal to have every order")
        poller.stop(detach=True)
        poller = None
        with journal.Journal(jpath, readonly=True) as j:
            v = j.verify()
        assert (v["rows"], v["gaps"], v["drops"], v["ok"]) == (sent.orders_received, 0, 0, True)
    finally:
        if poller is not None:
            poller.stop(detach=True)
        lab.down(L72, quiet=True)
