"""Failures, each against the real kernel: what breaks, what the user sees,
what is left behind.  Labs 44-47.

 - the engine goes away under its supervisor (interface deleted, or
   detached by someone else): reported, no crash, pins cleaned, journal whole;
 - the interface is deleted with no controller: the CLI reports it and
   cleans up;
 - another XDP program is attached: attach refuses unless forced;
 - bpffs is not mounted: it gets mounted, or a clear error says how;
 - a config write with a bad value: a clear error and the kernel map
   unchanged (read back);
 - the journal cannot be written: the kill switch latches, the events wait
   in the ring buffer.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyroute2 import IPRoute
from waiting import wait_for

from hft_tui import engine, journal, netlink, paths, preflight
from hft_tui.config import SYMBOL_KEYS, ConfigError, load_config, symbol_params
from hft_tui.constants import KILL_OFF
from hft_tui.controller import Controller
from hft_tui.errors import EngineError, JournalError
from hft_tui.lab import PASS_PROGRAM, Lab
from hft_tui.simulator import Simulator

PYTHON = sys.executable
HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
DEMO = paths.DEMO_CONFIG


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([HFT_TUI, *argv], capture_output=True, text=True, timeout=120)


def assert_one_line_error(p: subprocess.CompletedProcess, words: str) -> None:
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("hft-tui: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert words in p.stderr, p.stderr


def clear_journal(iface: str) -> Path:
    path = journal.journal_path(iface)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def xdp(iface: str):
    with IPRoute() as ipr:
        return netlink.xdp_state(ipr, iface)


def delete_link(iface: str) -> None:
    with IPRoute() as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=iface)[0])


# -- the engine goes away under its supervisor ---------------------------------------


def _delete_interface(L) -> None:
    delete_link(L.engine_iface)


def _detach_from_the_cli(L) -> None:
    p = cli("engine", "detach", L.engine_iface)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize(
    "go_away, message",
    [
        (_delete_interface, "INTERFACE {iface} is gone: its engine went with it"),
        (_detach_from_the_cli, "ENGINE DETACHED: {iface} no longer runs this engine"),
    ],
)
def test_the_supervisor_reports_an_engine_going_away_and_cleans_up(make_lab, tmp_path, go_away, message):
    L = make_lab(44)
    iface = L.engine_iface
    jpath = clear_journal(iface)
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [HFT_TUI, "engine", "run", iface, "--config", str(DEMO)], stdout=subprocess.DEVNULL, stderr=log.open("w")
    )
    try:
        wait_for(lambda: "supervising" in log.read_text() or proc.poll() is not None, 60, "the supervisor")
        summary = Simulator(L, load_config(DEMO), seed=3).run(0, 10_000, duration=1.0)
        assert summary.orders_received > 0
        go_away(L)
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = log.read_text()
    assert "Traceback" not in err
    assert message.format(iface=iface) in err and f"supervision of {iface} ended" in err
    assert not paths.pin_dir(iface).exists() and not paths.state_file(iface).exists()
    assert iface not in engine.attached_ifaces()
    # The journal kept every order the simulator received, and knows the engine is closed.
    with journal.Journal(jpath, readonly=True) as j:
        v = j.verify()
        kinds = [r["kind"] for r in j.rows("control")]
    assert (v["rows"], v["gaps"], v["drops"], v["ok"]) == (summary.orders_received, 0, 0, True)
    assert v["engines"][0]["closed"] and v["engines"][0]["kernel_orders"] == summary.orders_received
    assert kinds[-1] in ("interface_gone", "detached")


def test_an_interface_deleted_without_a_controller_is_reported_by_the_cli(make_lab):
    L = make_lab(45)
    iface = L.engine_iface
    assert cli("engine", "attach", iface, "--config", str(DEMO)).returncode == 0
    delete_link(iface)
    p = cli("engine", "status", iface, "--json")
    assert p.returncode == 0 and "Traceback" not in p.stderr
    st = json.loads(p.stdout)
    assert (st["interface_present"], st["attached"]) == (False, False)
    p = cli("engine", "status", iface)
    assert p.returncode == 0 and "INTERFACE GONE" in p.stdout
    p = cli("engine", "detach", iface)
    assert p.returncode == 0, p.stderr
    assert f"{iface} is gone; its engine went with it" in p.stdout
    assert not paths.pin_dir(iface).exists() and not paths.state_file(iface).exists()
    assert_one_line_error(cli("engine", "status", iface), f"no hft-tui engine on {iface}")


# -- another XDP program -------------------------------------------------------------


@pytest.fixture
def foreign_program(make_lab):
    """Lab 46 with someone else's XDP program (XDP_PASS) on the engine side."""
    L = make_lab(46)
    bcc = preflight.require_bcc()
    b = bcc.BPF(text=PASS_PROGRAM)
    fn = b.load_func(b"xdp_pass", bcc.BPF.XDP)
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=L.engine_iface)[0]
        ipr.link(
            "set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", fn.fd), ("IFLA_XDP_FLAGS", netlink.MODE_FLAGS["native"])]}
        )
    b.cleanup()  # the attachment holds the program
    return L, xdp(L.engine_iface)


@pytest.mark.parametrize(
    "argv",
    [
        ["engine", "attach", "{iface}", "--config", str(DEMO)],
        ["engine", "attach", "{iface}", "--config", str(DEMO), "--mode", "generic"],
        ["engine", "run", "{iface}", "--config", str(DEMO)],
    ],
)
def test_another_xdp_program_makes_attach_refuse_and_change_nothing(foreign_program, argv):
    L, theirs = foreign_program
    jpath = clear_journal(L.engine_iface)
    p = cli(*[a.format(iface=L.engine_iface) for a in argv])
    assert_one_line_error(p, f"{L.engine_iface} already has an XDP program (id {theirs.prog_id}, native mode)")
    assert "--force" in p.stderr
    assert xdp(L.engine_iface) == theirs
    assert not paths.pin_dir(L.engine_iface).exists() and not paths.state_file(L.engine_iface).exists()
    assert not jpath.exists()  # a refused 'engine run' leaves no journal behind


def test_attach_force_replaces_another_xdp_program_from_the_api(foreign_program):
    L, theirs = foreign_program
    rec = engine.attach(L.engine_iface, load_config(DEMO), force=True)
    now = xdp(L.engine_iface)
    assert now.prog_id == rec.prog_id != theirs.prog_id and now.mode == "native"


def test_attach_force_replaces_another_xdp_program_from_the_cli(foreign_program):
    L, theirs = foreign_program
    p = cli("engine", "attach", L.engine_iface, "--config", str(DEMO), "--force")
    assert p.returncode == 0, p.stderr
    now = xdp(L.engine_iface)
    assert now.prog_id != theirs.prog_id
    with engine.open_engine(L.engine_iface) as h:
        assert h.attached()


# -- bpffs ---------------------------------------------------------------------------

# Runs in a private mount namespace (unshare --mount --propagation private), so
# unmounting /sys/fs/bpf there leaves everyone else's pins alone.
UNMOUNT_BPFFS = textwrap.dedent("""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    def bpffs_mounts():
        return [l for l in open("/proc/mounts") if l.split()[1] == "/sys/fs/bpf"]
    while bpffs_mounts():
        if libc.umount2(b"/sys/fs/bpf", 0) != 0:
            sys.exit("umount: " + os.strerror(ctypes.get_errno()))
    os.execvp(sys.argv[1], sys.argv[1:])
""")


def in_private_mount_ns(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", PYTHON, "-c", UNMOUNT_BPFFS, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bpffs_not_mounted_gets_mounted_by_attach(make_lab):
    L = make_lab(47)
    script = textwrap.dedent("""
        import json, sys
        from hft_tui import cli, engine
        iface, config = sys.argv[1:3]
        before = [l for l in open("/proc/mounts") if l.split()[1] == "/sys/fs/bpf"]
        rc = cli.main(["engine", "attach", iface, "--config", config])
        after = [l.split()[2] for l in open("/proc/mounts") if l.split()[1] == "/sys/fs/bpf"]
        with engine.open_engine(iface) as h:
            attached = h.attached()
        detached = cli.main(["engine", "detach", iface])
        print(json.dumps({"before": before, "rc": rc, "after": after, "attached": attached, "detached": detached}))
    """)
    p = in_private_mount_ns(PYTHON, "-c", script, L.engine_iface, str(DEMO))
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    assert got == {"before": [], "rc": 0, "after": ["bpf"], "attached": True, "detached": 0}
    assert xdp(L.engine_iface).mode is None


def test_bpffs_that_cannot_be_mounted_gets_an_error_that_says_how(make_lab):
    L = make_lab(47)
    # Without CAP_SYS_ADMIN (dropped for good: inheritable and bounding sets) mount(2) fails.
    p = in_private_mount_ns(
        "setpriv",
        "--inh-caps=-sys_admin",
        "--bounding-set=-sys_admin",
        HFT_TUI,
        "engine",
        "attach",
        L.engine_iface,
        "--config",
        str(DEMO),
    )
    assert_one_line_error(p, "bpffs is not mounted on /sys/fs/bpf and mounting it failed (Operation not permitted)")
    assert "mount -t bpf bpf /sys/fs/bpf" in p.stderr
    assert xdp(L.engine_iface).mode is None and not paths.state_file(L.engine_iface).exists()


# -- bad config writes ----------------------------------------------------------------


@pytest.fixture
def attached(make_lab):
    L = make_lab(47)
    engine.attach(L.engine_iface, load_config(DEMO))
    with engine.open_engine(L.engine_iface) as h:
        yield h


def kernel_config(h) -> tuple:
    """Every config byte the kernel holds, read back from the maps."""
    symbols = {name: bytes(h.maps.read_symbol(name)[0]) for name in h.maps.symbol_names()}
    return bytes(h.maps.read_global()), symbols, h.maps.kill()


@pytest.mark.parametrize(
    "argv, words",
    [
        # negative
        (["set", "AAPL", "base_qty=-1"], "base_qty: -1 is below 0"),
        (["set", "AAPL", "buy_target=-190.25"], "buy_target: -190.25 is negative"),
        (["set", "AAPL", "max_notional=-5"], "max_notional: -5 must be a number >= 0"),
        (["set-engine", "rate_per_sec=-3"], "rate_per_sec: -3 is below 0"),
        (["set-engine", "loss_limit=-1"], "loss_limit: -1 must be a number >= 0"),
        # overflow
        (["set", "AAPL", "max_position=4294967296"], "max_position: 4294967296 is above 4294967295"),
        (["set", "AAPL", "buy_target=429496.7296"], "above the largest price"),
        (["set", "AAPL", "buy_target=1E+999999"], "buy_target"),
        (["set", "AAPL", "max_notional=1844674407370956.1616"], "too large"),
        (["set-engine", "feed_port=65536"], "feed_port: 65536 is above 65535"),
        (["set-engine", "update_sample=99999999999"], "is above 4294967295"),
        # sell below buy
        (["set", "AAPL", "sell_target=190.00"], "sell_target 190.0000 must be above buy_target 190.2500"),
        (["set", "AAPL", "sell_target=190.25"], "must be above buy_target"),
        # a collar of 0 bps
        (["set", "AAPL", "collar_bps=0"], "collar_bps: 0 is below 1"),
        # unknown key
        (["set", "AAPL", "colour=red"], "unknown key 'colour'"),
        (["set-engine", "speed=11"], "unknown key 'speed'"),
        # not numbers, too precise, not key=value, not changeable, not a symbol
        (["set", "AAPL", "buy_target=abc"], "is not a number"),
        (["set", "AAPL", "buy_target=190.12345"], "more than 4 decimal places"),
        (["set", "AAPL", "base_qty=1.5"], "is not a whole number"),
        (["set", "AAPL", "base_qty"], "expected key=value"),
        (["set-engine", "mode=generic"], "mode cannot change while attached"),
        (["set-engine", "deadman_ms=0"], "deadman_ms: 0 is below 100"),
        (["set-engine", "loss_limit=922337203685477.5808"], "loss_limit: 922337203685477.5808 is too large"),
        (["set", "AA PL", "base_qty=1"], "invalid symbol"),
        (["set", "TOOLONGSYM", "base_qty=1"], "invalid symbol"),
    ],
)
def test_a_bad_config_write_is_refused_and_the_kernel_map_is_unchanged(attached, argv, words):
    before = kernel_config(attached)
    p = cli("engine", *argv, "--iface", attached.iface)
    assert_one_line_error(p, words)
    assert kernel_config(attached) == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from([*sorted(SYMBOL_KEYS), "bogus"]),
    value=st.one_of(
        st.integers(-(2**70), 2**70),
        st.text(max_size=12),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.booleans(),
        # exponent notation, with exponents up to and past Decimal's limits
        st.builds(
            "{}E{}".format, st.integers(-999, 999), st.sampled_from([-(10**7), -999_999, -5, 0, 3, 5, 999_999, 10**7])
        ),
    ),
)
def test_any_symbol_write_is_either_applied_exactly_or_refused_with_the_map_unchanged(attached, key, value):
    before = kernel_config(attached)
    base = attached.symbol("AAPL")
    try:
        expected = symbol_params("AAPL", {key: value}, base=base)
    except ConfigError:
        expected = None
    try:
        got = attached.set_symbol("AAPL", {key: value})
    except ConfigError as exc:
        assert expected is None and "\n" not in str(exc)
        assert kernel_config(attached) == before
        return
    assert expected is not None and got == expected == attached.symbol("AAPL")


# -- the journal cannot be written ------------------------------------------------------


def test_a_journal_that_cannot_be_written_latches_the_kill_and_keeps_the_events(make_lab, tmp_path):
    L = make_lab(44)
    engine.attach(L.engine_iface, load_config(DEMO))
    with engine.open_engine(L.engine_iface) as h:
        j = journal.Journal(tmp_path / "j.sqlite")
        ctl = Controller(h, journal=j)
        ctl.start()
        summary = Simulator(L, load_config(DEMO), seed=5).run(2000, 0)
        assert summary.orders_received > 0
        j._db.close()  # the journal's storage fails under the controller
        tick = ctl.tick(0)
        failures = [a for a in tick.alerts if a.kind == "journal"]
        assert len(failures) == 1 and "JOURNAL WRITE FAILED" in failures[0].message
        assert h.maps.kill() != KILL_OFF
        assert ctl.rings.pending()  # nothing was committed: the orders wait in the ring
        assert Simulator(L, load_config(DEMO), seed=6).run(2000, 0).orders_received == 0
        with pytest.raises(JournalError):  # it cannot even journal its stop
            ctl.stop(detach=False)
        # A working journal on the next controller gets every order.
        with journal.Journal(tmp_path / "j2.sqlite") as j2:
            ctl2 = Controller(h, journal=j2)
            ctl2.start()
            ctl2.stop(detach=True)
            v = j2.verify()
    assert (v["rows"], v["gaps"], v["drops"]) == (summary.orders_received, 0, 0)


# -- a dead-man deadline given on the command line ---------------------------------------


@pytest.mark.parametrize(
    "value, words",
    [
        ("-5", "-5 is below 100"),  # would wrap to ~49 days in the kernel's u32
        ("5000000000", "5000000000 is above 3600000"),  # would wrap to 705032704 ms
        ("0", "0 is below 100"),  # "armed" with no deadline
        ("50", "50 is below 100"),
        ("soon", "'soon' is not a whole number"),
    ],
)
def test_a_bad_deadman_deadline_is_refused_before_anything_is_attached(make_lab, value, words):
    L = make_lab(44)
    p = cli("engine", "attach", L.engine_iface, "--config", str(DEMO), "--deadman", value)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"argument --deadman: dead-man deadline (ms): {words}" in p.stderr
    assert xdp(L.engine_iface).mode is None and not paths.pin_dir(L.engine_iface).exists()
    with pytest.raises(ConfigError, match=words):
        engine.attach(
            L.engine_iface, load_config(DEMO), deadman_ms=int(value) if value.lstrip("-").isdigit() else value
        )
    assert xdp(L.engine_iface).mode is None


# -- removing a symbol ------------------------------------------------------------------


def test_a_symbol_holding_shares_cannot_be_removed_and_keeps_trading_state(attached):
    L = Lab.numbered(47)  # the lab the fixture attached to
    demo = load_config(DEMO)
    # Buys only: the walk crosses AAPL's buy target, and no sell target flattens it.
    config = dataclasses.replace(
        demo, symbols={**demo.symbols, "AAPL": dataclasses.replace(demo.symbols["AAPL"], sell_target=0)}
    )
    attached.set_symbol("AAPL", {"sell_target": "0"})
    assert Simulator(L, config, seed=4).run(3000, 0).orders_received > 0
    held = attached.maps.read_symbol("AAPL")[1].position
    assert held > 0
    before = kernel_config(attached)
    p = cli("engine", "remove", "AAPL", "--iface", attached.iface)
    assert_one_line_error(p, f"symbol AAPL holds {held:,} shares: removing it would forget the position")
    assert "enabled=false" in p.stderr
    assert kernel_config(attached) == before
    assert attached.maps.read_symbol("AAPL")[1].position == held
    # A flat symbol goes, config and state together.
    attached.set_symbol("ZZZZ", {"buy_target": "1.00"})
    assert attached.maps.read_symbol_state("ZZZZ").position == 0
    p = cli("engine", "remove", "ZZZZ", "--iface", attached.iface)
    assert p.returncode == 0, p.stderr
    assert attached.maps.read_symbol("ZZZZ") is None and attached.maps.read_symbol_state("ZZZZ") is None


def test_an_edit_of_a_symbol_removed_meanwhile_does_not_bring_it_back(attached):
    # The app's edit line (new=False) and its add dialog (new=True): each refused whole.
    before = kernel_config(attached)
    with pytest.raises(EngineError, match=r"symbol ZZZY is not configured \(removed meanwhile\?\)"):
        attached.set_symbol("ZZZY", {"buy_target": "1.00"}, new=False)
    with pytest.raises(EngineError, match="symbol AAPL is configured already: edit it instead"):
        attached.set_symbol("AAPL", {"buy_target": "1.00"}, new=True)
    assert kernel_config(attached) == before
    assert attached.maps.read_symbol("ZZZY") is None
