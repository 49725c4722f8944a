"""``hft-tui replay`` (issue 12 §4, §7): a capture played into the lab, the live
engine's orders collected at the lab's gateway, checked, and equal, order for
order, to the backtest of the same capture with the same config (--check).

Captures of every format: recorded in the lab by ``hft-tui lab feed
--pcap-out`` (hft1, iex-tops, iex-deep, itch; many messages a packet, VLAN,
multicast, A/B duplicates and gaps) and the real captures of
/work/shared/data/feeds (only the framing fields its README names
rewritten: addresses, ports, the zeroed MoldUDP64 sequence).  Each replay
goes to an engine attached fresh with the config, through real veths.
Labs 171-175.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capture_files import SYMBOL, write_capture

from hft_tui import engine, lab
from hft_tui.capture_reader import read_frames
from hft_tui.config import load_config
from hft_tui.feeds import itch
from hft_tui.wire import Route, parse_udp_frame, udp_frame

REAL = Path("/work/shared/data/feeds")
DEMO_SYMBOLS = {"AAPL": ("190.25", "190.75"), "MSFT": ("415.10", "415.60"), "NVDA": ("120.40", "120.90")}


def hft_tui(*argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "hft_tui", *argv], capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr + r.stdout
    return r


def config_text(
    the_lab: lab.Lab, feed: str, symbols: dict[str, tuple[str, str]], *, port: int = 9000, gateway: bool = True
) -> str:
    text = f'[engine]\nfeed = "{feed}"\nfeed_port = {port}\non_no_trade = "drop"\nmax_seq_jump = 0\n'
    if gateway:
        text += lab.gateway(the_lab).toml() + "\n"
    for name, (buy, sell) in symbols.items():
        text += SYMBOL.format(name=name, buy=buy, sell=sell, maxpos=5000, extra="", qty=100)
    return text


def fresh_engine(the_lab: lab.Lab, cfg: Path) -> None:
    iface = the_lab.engine_iface
    if iface in engine.attached_ifaces():
        engine.detach(iface)
    engine.attach(iface, load_config(cfg), config_path=str(cfg))


def replay_check(the_lab: lab.Lab, number: int, capture: Path, cfg: Path, *extra: str) -> dict:
    fresh_engine(the_lab, cfg)
    r = hft_tui("replay", str(capture), "--lab", str(number), "--max", "--check", str(cfg), "--json", *extra)
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    assert r.returncode == 0, r.stderr + json.dumps({k: v for k, v in out.items() if k != "orders"})
    return out


@pytest.fixture(scope="module")
def lab171():
    L = lab.Lab.numbered(171)
    lab.down(L, quiet=True)
    lab.up(L)
    yield L
    lab.down(L, quiet=True)


def record(the_lab: lab.Lab, number: int, path: Path, cfg: Path, fmt: str, *options: str, count: int = 4000) -> Path:
    """What the lab's exchange sends, recorded (no engine attached: nothing answers)."""
    if the_lab.engine_iface in engine.attached_ifaces():
        engine.detach(the_lab.engine_iface)
    hft_tui(
        "lab", "feed", "--lab", str(number), "--format", fmt, "--count", str(count), "--rate", "0",
        "--config", str(cfg), "--pcap-out", str(path), "--quiet", *options, check=True,
    )  # fmt: skip
    assert path.stat().st_size > 0
    return path


RECORDINGS = {
    # name: (format, engine feed, lab feed options, gateway)
    "hft1 reflected": ("hft1", "hft1", ("--batch", "1"), False),
    "iex-tops batch 20 gateway": ("iex-tops", "iex", ("--batch", "20"), True),
    "iex-deep batch 30 vlan": ("iex-deep", "iex", ("--batch", "30", "--vlan", "7"), True),
    "iex-deep multicast A/B": ("iex-deep", "iex", ("--batch", "25", "--group", "239.1.1.1", "--ab"), True),
    "itch batch 20 A/B and gaps": ("itch", "itch", ("--batch", "20", "--ab", "--gap-rate", "0.05"), True),
}


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_a_recording_replayed_live_equals_its_backtest(lab171, tmp_path, name):
    fmt, feed, options, gateway = RECORDINGS[name]
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(lab171, feed, DEMO_SYMBOLS, gateway=gateway))
    cap = record(lab171, 171, tmp_path / "rec.pcap", cfg, fmt, *options)
    out = replay_check(lab171, 171, cap, cfg)
    assert out["check"]["equal"], out["check"]
    assert out["invalid_orders"] == 0, out["invalid_examples"]
    assert out["orders_received"] > 0 and out["orders_received"] == out["check"]["backtest_orders"]
    assert out["frames_sent"] == out["capture"]["udp_frames"] == out["capture"]["frames"]
    if "--ab" not in options and feed != "hft1":
        assert out["model_checked"], out["warnings"]
    if "--vlan" in options:
        assert out["order_frames"] > 0  # tagged order frames were collected and checked (vlan kept)


def test_the_json_lists_the_orders_in_the_backtests_shape(lab171, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(lab171, "iex", DEMO_SYMBOLS))
    cap = record(lab171, 171, tmp_path / "d.pcap", cfg, "iex-deep", "--batch", "30", count=3000)
    out = replay_check(lab171, 171, cap, cfg)
    bt = json.loads(hft_tui("backtest", str(cap), "--config", str(cfg), "--json", check=True).stdout)
    assert out["orders"] == bt["orders"]


def test_a_second_loop_trades_again(lab171, tmp_path):
    """Before each loop after the first the engine's sequences are reset: the capture trades again."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(lab171, "iex", DEMO_SYMBOLS))
    cap = record(lab171, 171, tmp_path / "d.pcap", cfg, "iex-deep", "--batch", "30", count=3000)
    fresh_engine(lab171, cfg)
    one = json.loads(hft_tui("replay", str(cap), "--lab", "171", "--max", "--json", check=True).stdout)
    fresh_engine(lab171, cfg)
    two = json.loads(hft_tui("replay", str(cap), "--lab", "171", "--max", "--loop", "2", "--json", check=True).stdout)
    assert two["loops"] == 2 and two["frames_sent"] == 2 * one["frames_sent"]
    assert two["orders_received"] > one["orders_received"] > 0
    assert two["invalid_orders"] == 0, two["invalid_examples"]


def test_paced_by_capture_time(lab171, tmp_path):
    """--speed X: the capture's time divided by X (a capture of ~0.5 s)."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(lab171, "iex", DEMO_SYMBOLS))
    cap = record(lab171, 171, tmp_path / "d.pcap", cfg, "iex-deep", "--batch", "10", "--rate", "2000", count=1000)
    frames = read_frames(cap)
    span = (frames[-1][0] - frames[0][0]) / 1e9
    assert span > 0.3
    fresh_engine(lab171, cfg)
    t0 = time.monotonic()
    real = json.loads(hft_tui("replay", str(cap), "--lab", "171", "--json", check=True).stdout)
    fast = json.loads(hft_tui("replay", str(cap), "--lab", "171", "--speed", "4", "--json", check=True).stdout)
    assert real["elapsed_s"] >= span * 0.95
    assert span / 4 * 0.95 <= fast["elapsed_s"] < real["elapsed_s"]
    assert time.monotonic() - t0 >= span


def test_a_capture_of_another_lab_is_readdressed_and_still_equal(lab171, tmp_path):
    """Recorded in lab 171, replayed into lab 172: the engine there has another MAC."""
    cfg171 = tmp_path / "a.toml"
    cfg171.write_text(config_text(lab171, "iex", DEMO_SYMBOLS))
    cap = record(lab171, 171, tmp_path / "d.pcap", cfg171, "iex-deep", "--batch", "30", count=3000)
    lab172 = lab.Lab.numbered(172)
    lab.down(lab172, quiet=True)
    lab.up(lab172)
    try:
        cfg = tmp_path / "b.toml"
        cfg.write_text(config_text(lab172, "iex", DEMO_SYMBOLS))
        out = replay_check(lab172, 172, cap, cfg)
        assert out["capture"]["readdressed"] == out["capture"]["udp_frames"]
        assert out["check"]["equal"] and out["orders_received"] > 0 and out["invalid_orders"] == 0
    finally:
        lab.down(lab172, quiet=True)


# -- the real captures -----------------------------------------------------------


def _rewrite(frames: list[tuple[int, bytes]], the_lab: lab.Lab, port: int, seq_from: int | None) -> list:
    """The framing the README says was zeroed, made real: addresses, ports, the MoldUDP64 sequence."""
    out = []
    for k, (ts, frame) in enumerate(frames):
        f = parse_udp_frame(frame)
        assert f is not None
        payload = f.payload
        if seq_from is not None:
            pkt = itch.decode_packet(payload)
            payload = itch.encode_packet(itch.MoldPacket("000010059B", seq_from + k, pkt.messages))
            assert payload[itch.HDR_LEN :] == f.payload[itch.HDR_LEN :], "the messages' bytes stay as they are"
        route = Route(f.route.src_mac, f.route.dst_mac, the_lab.exchange_ip, the_lab.engine_ip, port, port)
        out.append((ts, udp_frame(route, payload, vlan=f.vlan)))
    return out


REAL_GROUPS = {
    # name: (files, feed, port, symbols, rewrite)
    "IEX TOPS": ("iex-tops-*.pcap", "iex", 10377, {"ATSG": ("24.30", "0"), "JHMU": ("10.00", "0")}, False),
    "IEX DEEP": ("iex-deep-*.pcap", "iex", 32001, {"UNH": ("344.50", "0"), "V": ("100.00", "200.00")}, False),
    "ITCH": (
        "itch50-[aos]*[!g].pcap",
        "itch",
        26477,
        {"IVOO": ("87.00", "0"), "AMC": ("5.00", "0")},
        False,
    ),
    "ITCH zeroed framing": (
        "itch50-*-5-zeroed-framing.pcap",
        "itch",
        26477,
        {"RETL": ("7.20", "0"), "XLF": ("34.00", "0"), "T": ("14.20", "0"), "CASY": ("256.00", "0")},
        True,
    ),
}


@pytest.mark.parametrize("name", list(REAL_GROUPS))
def test_the_real_captures_replayed_live_equal_their_backtest(lab171, tmp_path, name):
    pattern, feed, port, symbols, rewrite = REAL_GROUPS[name]
    files = sorted(REAL.glob(pattern))
    assert files, pattern
    frames = [fr for p in files for fr in read_frames(p)]
    if rewrite:
        frames = _rewrite(frames, lab171, port, seq_from=1)
    frames.sort(key=lambda tf: tf[0])
    cap = write_capture(tmp_path / "real.pcap", frames)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(lab171, feed, symbols, port=port))
    out = replay_check(lab171, 171, cap, cfg)
    assert out["check"]["equal"], out["check"]
    assert out["invalid_orders"] == 0, out["invalid_examples"]
    assert out["frames_sent"] == len(frames)
    if name != "ITCH":  # its real add orders are bids (no buy); the others have offers to buy
        assert out["orders_received"] > 0
