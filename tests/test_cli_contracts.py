"""What outside tools read: the JSON of ``lab status`` and ``engine status``,
and that ``lab down`` leaves nothing behind.  Through the real CLI, lab 70.

The key sets are the ones the issues name (outside tools depend on them):
a missing key is a broken contract, an extra key is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns
from waiting import wait_for

from hft_tui import lab, paths
from hft_tui.constants import REJECT_REASONS

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
DEMO = str(paths.DEMO_CONFIG)
LAB_NUMBER = 70
L = lab.Lab.numbered(LAB_NUMBER)
BENCHMARKING_NET = ipaddress.ip_network("198.18.0.0/15")

LAB_STATUS_KEYS = {
    "namespace",
    "engine_iface",
    "engine_ip",
    "engine_mac",
    "exchange_iface",
    "exchange_ip",
    "exchange_mac",
}
ENGINE_STATUS_KEYS = {
    "iface",
    "attached",
    "mode",
    "prog_id",
    "kill",
    "feed_port",
    "orders_sent",
    "updates_seen",
    "passed",
    "rejects",
    "ringbuf_drops",
    "symbols",
    # issue 5: risk, dead-man, knowing what runs
    "risk",
    "deadman",
    "program_hash",
    "config_version",
    # issues 11 and 14: the feed, where orders go, who may send
    "feed",
    "gateway",
    "feed_sources",
    "open_feed",
}
FEED_KEYS = {"format", "port", "addr", "messages", "in_transition", "truncated_packets", "channels"}
SYMBOL_CONFIG_KEYS = {
    "enabled",
    "buy_target",
    "sell_target",
    "base_qty",
    "scale_qty",
    "tick_size",
    "max_order_qty",
    "max_position",
}
SYMBOL_STATS_KEYS = {
    "position",
    "bought",
    "sold",
    "capital_spent",
    "proceeds",
    "buy_orders",
    "sell_orders",
    "updates",
    "last_bid",
    "last_ask",
}
DEADMAN_KEYS = {"deadline_ms", "heartbeat_age_ms", "skipped"}
RISK_LIMITS = {"max_notional", "loss_limit", "rate_per_sec", "burst"}


def cli(*argv: str, rc: int = 0) -> subprocess.CompletedProcess:
    p = subprocess.run([HFT_TUI, *argv], capture_output=True, text=True, timeout=120)
    assert p.returncode == rc, (argv, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    return p


def cli_json(*argv: str) -> dict:
    return json.loads(cli(*argv).stdout)


@pytest.fixture
def lab70():
    lab.down(L, quiet=True)
    yield L
    lab.down(L, quiet=True)


def test_lab_status_json_names_both_ends_with_addresses_from_the_benchmarking_range(lab70):
    cli("lab", "up", "--lab", str(LAB_NUMBER))
    st = cli_json("lab", "status", "--lab", str(LAB_NUMBER), "--json")
    assert set(st) >= LAB_STATUS_KEYS
    assert (st["namespace"], st["engine_iface"], st["exchange_iface"]) == (
        L.namespace,
        L.engine_iface,
        L.exchange_iface,
    )
    for key in ("engine_ip", "exchange_ip"):
        assert ipaddress.ip_address(st[key]) in BENCHMARKING_NET
    for key in ("engine_mac", "exchange_mac"):
        assert st[key] and len(st[key].split(":")) == 6
    assert st["up"] is True and st["engine_attached"] is False


def test_engine_status_json_has_every_key_outside_tools_read(lab70):
    cli("lab", "up", "--lab", str(LAB_NUMBER))
    cli("engine", "attach", L.engine_iface, "--config", DEMO, "--deadman", "500")
    feed = cli_json("lab", "feed", "--lab", str(LAB_NUMBER), "--count", "2000", "--rate", "0", "--json")
    st = cli_json("engine", "status", L.engine_iface, "--json")
    assert set(st) >= ENGINE_STATUS_KEYS
    assert (st["iface"], st["attached"], st["mode"]) == (L.engine_iface, True, "native")
    assert isinstance(st["prog_id"], int) and st["kill"] is False and st["feed_port"] == 9000
    assert st["orders_sent"] == feed["orders_received"] > 0
    assert st["updates_seen"] == feed["updates_sent"] == 2000
    assert set(st["rejects"]) == set(REJECT_REASONS.values())
    assert all(isinstance(n, int) for n in st["rejects"].values())
    assert st["ringbuf_drops"] == 0
    assert len(st["program_hash"]) == 64 and st["config_version"] >= 1
    assert set(st["deadman"]) >= DEADMAN_KEYS and st["deadman"]["deadline_ms"] == 500
    assert set(st["risk"]) >= RISK_LIMITS
    assert set(st["feed"]) >= FEED_KEYS
    assert (st["feed"]["format"], st["feed"]["port"], st["feed"]["addr"]) == ("hft1", 9000, None)
    assert st["feed"]["channels"] == []  # hft1 has none: its updates carry their own sequence
    assert all(isinstance(st["feed"][k], int) for k in ("messages", "in_transition", "truncated_packets"))
    assert st["gateway"] is None  # the demo's orders go back to the simulator
    assert st["open_feed"] is (st["feed_sources"] is None)
    assert st["feed_sources"] is None or all("/" in cidr for cidr in st["feed_sources"])
    assert set(st["symbols"]) == {"AAPL", "MSFT", "NVDA", "SPY"}
    for name, sym in st["symbols"].items():
        assert set(sym["config"]) >= SYMBOL_CONFIG_KEYS, name
        assert set(sym["stats"]) >= SYMBOL_STATS_KEYS, name
        # prices are decimal numbers, not kernel units
        assert isinstance(sym["config"]["buy_target"], float) and sym["config"]["buy_target"] < 10_000
    assert (
        sum(s["stats"]["buy_orders"] + s["stats"]["sell_orders"] for s in st["symbols"].values()) == st["orders_sent"]
    )


def test_lab_down_leaves_no_namespace_link_pin_state_or_process(lab70):
    cli("lab", "up", "--lab", str(LAB_NUMBER))
    cli("engine", "attach", L.engine_iface, "--config", DEMO)
    # A simulator running in the lab when it goes down.
    feed = subprocess.Popen(
        [HFT_TUI, "lab", "feed", "--lab", str(LAB_NUMBER), "--count", "0", "--rate", "500"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: feed.pid in lab.lab_pids(L), 30, "the simulator to enter the lab")
        out = cli("lab", "down", "--lab", str(LAB_NUMBER)).stdout
        assert feed.wait(timeout=10) is not None
    finally:
        if feed.poll() is None:
            feed.kill()
            feed.wait()
    assert "stopped 1 lab process(es)" in out and f"removed namespace {L.namespace}" in out
    assert L.namespace not in netns.listnetns()
    with IPRoute() as ipr:
        assert not ipr.link_lookup(ifname=L.engine_iface)
    assert not paths.pin_dir(L.engine_iface).exists()
    assert not paths.state_file(L.engine_iface).exists()
    assert not (paths.RUN_DIR / f"{L.engine_iface}.lock").exists()
    st = cli_json("lab", "status", "--lab", str(LAB_NUMBER), "--json")
    assert st["up"] is False and st["engine_attached"] is False
    # Down again: nothing to do, said so, still exit 0.
    assert "the lab was not up" in cli("lab", "down", "--lab", str(LAB_NUMBER)).stdout


def test_lab_feed_without_root_is_one_line_that_says_so(lab70):
    cli("lab", "up", "--lab", str(LAB_NUMBER))
    p = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            HFT_TUI,
            "lab",
            "feed",
            "--lab",
            str(LAB_NUMBER),
            "--count",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("hft-tui: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "root" in p.stderr


def test_the_journal_records_a_command_line_attach_and_changes_made_with_no_controller(lab70):
    from hft_tui import engine, journal

    jpath = journal.journal_path(L.engine_iface)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{jpath}{suffix}").unlink(missing_ok=True)
    cli("lab", "up", "--lab", str(LAB_NUMBER))
    cli("engine", "attach", L.engine_iface, "--config", DEMO)
    cli("engine", "set", "AAPL", "buy_target=190.30", "--iface", L.engine_iface)
    cli("engine", "kill", L.engine_iface)
    cli("engine", "resume", L.engine_iface)
    with journal.Journal(jpath, readonly=True) as j:
        got = [(r["kind"], r["config_version"], r["program_hash"]) for r in j.rows("control")]
        detail = json.loads(j.rows("control")[1]["detail"])
    h = engine.program_hash()
    assert got == [("attach", 1, h), ("symbol_config", 2, h), ("kill", 2, h), ("resume", 3, h)]
    assert detail == {"by": "cli", "symbol": "AAPL", "buy_target": "190.30"}


def test_an_engine_whose_state_file_is_lost_is_still_known_as_ours_by_its_pinned_program(lab70):
    from hft_tui import netlink

    cli("lab", "up", "--lab", str(LAB_NUMBER))
    cli("engine", "attach", L.engine_iface, "--config", DEMO)
    paths.state_file(L.engine_iface).unlink()
    # A second attach must not unpin it (its kill switch would be out of reach) ...
    p = cli("engine", "attach", L.engine_iface, "--config", DEMO, rc=1)
    assert f"an hft-tui engine is already attached to {L.engine_iface}" in p.stderr
    assert (paths.pin_dir(L.engine_iface) / "kill_switch").exists()
    # ... and detach takes it off the interface, not only its pins.
    out = cli("engine", "detach", L.engine_iface).stdout
    assert f"detached from {L.engine_iface} (native)" in out
    with IPRoute() as ipr:
        assert netlink.xdp_state(ipr, L.engine_iface).mode is None
    assert not paths.pin_dir(L.engine_iface).exists()
