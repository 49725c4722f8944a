"""``hft-tui --demo --format FMT``: the demo on a real feed's format.

The demo stays on hft1 unless --format is given (issue 11 §6).  With it, the
engine reads that feed (configs/demo.toml's settings and symbols, ``feed``
set, orders to the lab's gateway) and the simulator sends it; a --config
given with it must name the same feed.  The pure tests check the config and
the refusals; the kernel test runs the demo on a terminal until the engine
has traded on the format's packets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from hft_tui import cli, lab, paths
from hft_tui.config import load_config
from hft_tui.demo import launch
from hft_tui.demo.configs import demo_config_for_feed, demo_symbols
from hft_tui.simulator.options import ENGINE_FEED

FORMATS = ("iex-tops", "iex-deep", "itch")


@pytest.mark.pure
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_demo_config_for_a_format_reads_that_feed_and_routes_to_the_labs_gateway(fmt, tmp_path):
    path = tmp_path / "demo.toml"
    path.write_text(demo_config_for_feed(ENGINE_FEED[fmt], lab.gateway(lab.DEFAULT_LAB).toml()))
    cfg, demo = load_config(path), load_config(paths.DEMO_CONFIG)
    assert cfg.feed.feed == ENGINE_FEED[fmt]
    assert cfg.gateway is not None and str(cfg.gateway.ip) == lab.DEFAULT_LAB.gateway_ip
    assert cfg.gateway.port == lab.GATEWAY_PORT
    assert cfg.feed.feed_sources == demo.feed.feed_sources  # the demo's senders, never an open feed
    assert cfg.engine == demo.engine and cfg.symbols == demo.symbols
    assert {str(s) for s in cfg.symbols} == set(demo_symbols())


@pytest.mark.pure
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_simulator_is_told_the_format_and_packs_several_messages_a_packet(fmt):
    argv = launch.feed_command("/x/demo.toml", fmt=fmt)
    assert argv[argv.index("--format") + 1] == fmt
    assert int(argv[argv.index("--batch") + 1]) > 1


@pytest.mark.pure
def test_the_demo_stays_on_hft1_without_format():
    assert "--format" not in launch.feed_command("/x/demo.toml")


@pytest.mark.pure
@pytest.mark.parametrize(
    "argv",
    [["--format", "itch"], ["--replay", "/nonexistent.pcap"]],
    ids=["format without demo", "replay without demo"],
)
def test_format_and_replay_without_demo_are_refused_in_one_line(argv, capsys):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "go with --demo" in err


@pytest.mark.pure
def test_a_format_and_a_config_of_another_feed_are_refused_before_anything_is_made(tmp_path):
    with pytest.raises(Exception, match="needs a config with feed = 'iex'"):
        launch.DemoFormat("iex-deep", str(paths.DEMO_CONFIG), lab.DEFAULT_LAB)


@pytest.mark.pure
def test_a_format_and_a_replay_together_are_refused_before_the_capture_is_read(capsys):
    assert cli.main(["--demo", "--format", "itch", "--replay", "/nonexistent.pcap"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a replay's feed is the capture's" in err


HFT_TUI = os.path.join(os.path.dirname(sys.executable), "hft-tui")


def engine_status(iface: str) -> dict:
    p = subprocess.run([HFT_TUI, "engine", "status", iface, "--json"], capture_output=True, timeout=30)
    return json.loads(p.stdout) if p.returncode == 0 else {}


def test_the_demo_on_itch_trades_from_its_packets_and_leaves_nothing_behind():
    from test_app_demo import DEMO_LAB, run_demo

    def trades_on_itch() -> None:
        status: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = engine_status(DEMO_LAB.engine_iface)
            if status.get("feed", {}).get("messages", 0) > 100 and status.get("orders_sent", 0) > 0:
                break
            time.sleep(0.5)
        feed = status.get("feed", {})
        assert feed.get("format") == "itch"
        assert feed["messages"] > feed["packets"] > 0  # several messages a packet
        assert status["gateway"]["ip"] == DEMO_LAB.gateway_ip
        assert status["orders_sent"] > 0, f"no order in 30 s: {status}"

    run_demo(["--demo", "--format", "itch"], trades_on_itch)
    assert not list(paths.RUN_DIR.glob("demo-itch-*.toml")), "the demo's config file was left behind"
