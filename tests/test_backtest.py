"""``hft-tui backtest`` (issue 12 §2, §3): a capture through the live engine's
own program in private maps, with BPF_PROG_TEST_RUN, the clock the capture's.

Every test here loads the real program (the backtest build) and runs real
frames through the kernel; no lab is needed (nothing is attached).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from capture_files import (
    NS,
    T0,
    config,
    deep_packets,
    hft1_packets,
    itch_packets,
    write_capture,
    write_config,
)

from hft_tui.backtest import loop as loop_mod
from hft_tui.backtest.engine import NO_MAC, BacktestEngine
from hft_tui.backtest.report import orders_csv, result_dict
from hft_tui.backtest.runner import run_backtest
from hft_tui.backtest.sweep import parse_axis, run_sweep
from hft_tui.backtest.window import parse_time
from hft_tui.capture_reader import CaptureReader
from hft_tui.errors import ConfigError
from hft_tui.wire import parse_udp_frame

ARP = bytes.fromhex("ffffffffffff0200000000b00208060001080006040001") + bytes(37)


@pytest.fixture(scope="module")
def deep_capture(tmp_path_factory) -> Path:
    return write_capture(tmp_path_factory.mktemp("bt") / "deep.pcap", deep_packets(300))


def run(path: Path, feed: str = "iex", **kw):
    _text, cfg = config(feed, **kw)
    return run_backtest(path, cfg)


def test_orders_come_from_the_programs_frames_and_agree_with_its_maps(deep_capture):
    r = run(deep_capture)
    assert r.frames == r.udp_frames == 300
    assert r.orders, "the walk crosses the targets: the program must trade"
    assert [o.id for o in r.orders] == list(range(1, len(r.orders) + 1))
    assert {o.side for o in r.orders} == {"B", "S"}
    assert r.actions["tx"] + r.actions["drop"] + r.actions["pass"] == 300
    # the book from the orders agrees with the program's maps (checked inside), and is what the orders say
    for name, s in r.symbols.items():
        mine = [o for o in r.orders if o.symbol == name]
        assert s.bought == sum(o.qty for o in mine if o.side == "B")
        assert s.sold == sum(o.qty for o in mine if o.side == "S")
        assert s.capital_spent == sum(o.qty * o.price for o in mine if o.side == "B")
        assert s.position == s.bought - s.sold
    assert r.feed["format"] == "iex" and r.feed["messages"] == 300 * 20
    (ch,) = r.feed["channels"]
    assert ch["packets"] == 300 and ch["gaps"] == 0
    assert r.rejects["unknown_symbol"] == 300 * 5


def test_deterministic_byte_for_byte(deep_capture, tmp_path):
    """The same capture and config: the same orders, the same CSV, the same JSON but the run's time."""
    a, b = run(deep_capture), run(deep_capture)
    assert orders_csv(a) == orders_csv(b)
    da, db = result_dict(a), result_dict(b)
    for d in (da, db):
        del d["elapsed_s"], d["frames_per_s"]
    assert json.dumps(da) == json.dumps(db)


def test_the_json_has_exactly_the_issues_keys(deep_capture):
    d = result_dict(run(deep_capture))
    assert list(d) == ["capture", "feed", "orders", "symbols", "rejects", "elapsed_s", "frames_per_s"]
    assert list(d["capture"]) == ["path", "frames", "udp_frames", "first_ts", "last_ts"]
    assert d["capture"]["first_ts"] == T0 and d["capture"]["last_ts"] == T0 + 299 * 1_000_000
    assert list(d["feed"]) == ["format", "port", "addr", "messages", "in_transition", "truncated_packets", "channels"]
    assert list(d["orders"][0]) == ["id", "side", "symbol", "price", "qty", "seq", "ts"]
    assert list(d["symbols"]["AAPL"]) == ["position", "bought", "sold", "capital_spent", "proceeds", "pnl"]
    assert d["orders"][0]["price"].count(".") == 1 and isinstance(d["orders"][0]["qty"], int)


def test_a_throttle_follows_capture_time(tmp_path):
    """rate_per_sec 1, burst 1: orders one capture second apart, however fast the backtest runs."""
    frames = deep_packets(40, per_packet=4, step_ns=NS // 4)  # 10 s of capture, a packet every 250 ms
    path = write_capture(tmp_path / "slow.pcap", frames)
    throttled = run(path, extra="rate_per_sec = 1\nburst = 1")
    free = run(path)
    assert len(free.orders) > len(throttled.orders) > 0
    for name in ("AAPL", "MSFT"):
        times = [o.ts for o in throttled.orders if o.symbol == name]
        assert all(b - a >= NS for a, b in itertools.pairwise(times)), f"{name}: two orders within a second"
    assert throttled.rejects["throttle"] > 0
    # the same packets a microsecond apart: one order a symbol, the rest throttled
    fast = write_capture(tmp_path / "fast.pcap", deep_packets(40, per_packet=4, step_ns=1_000))
    r = run(fast, extra="rate_per_sec = 1\nburst = 1")
    assert len({o.symbol for o in r.orders}) == len(r.orders) <= 2


def test_every_format_runs(tmp_path):
    hft1 = run(write_capture(tmp_path / "h.pcap", hft1_packets(200)), "hft1", gateway=None)
    itch_r = run(write_capture(tmp_path / "i.pcap", itch_packets(100)), "itch")
    vlan = run(write_capture(tmp_path / "v.pcap", deep_packets(100, vlan=42)))
    for r in (hft1, itch_r, vlan):
        assert r.orders and r.udp_frames == r.frames
    assert itch_r.feed["channels"][0]["id"] == "TESTSESS01"


def test_frames_not_ipv4_udp_are_counted_and_ignored(tmp_path):
    frames = deep_packets(50)
    mixed = [frames[0], (T0 + 1, ARP), *frames[1:], (frames[-1][0] + 1, ARP)]
    r = run(write_capture(tmp_path / "arp.pcap", mixed))
    assert (r.frames, r.udp_frames) == (52, 50)
    assert [o.key for o in r.orders] == [o.key for o in run(write_capture(tmp_path / "plain.pcap", frames)).orders]


def test_from_and_to_choose_the_frames_run(deep_capture):
    _t, cfg = config()
    whole = run_backtest(deep_capture, cfg)
    start, end = parse_time("+100ms", "--from"), parse_time("+199ms", "--to")
    part = run_backtest(deep_capture, cfg, start=start, end=end)
    assert part.frames == 100 and part.first_ts == T0 + 100 * 1_000_000 and part.last_ts == T0 + 199 * 1_000_000
    assert 0 < len(part.orders) < len(whole.orders)
    moment = run_backtest(deep_capture, cfg, start=parse_time("2024-01-26T14:30:00.250Z", "--from"))
    assert moment.frames == 50


def test_a_gateway_without_mac_is_not_resolved(deep_capture):
    """Its MAC stays zero: the order frames go to 00:00:00:00:00:00 (the checks expect exactly that)."""
    gw = '[engine.gateway]\nip = "10.9.9.9"\nport = 9100\n'
    _t, cfg = config(gateway=gw)
    with BacktestEngine(cfg) as e:
        route = e.maps.read_route()
        assert route is not None and route.mac == NO_MAC and route.src_ip == "0.0.0.0"
        tl = loop_mod.TestRunLoop(e.prog_fd, e.clock_fd, -(2**63), 2**63 - 1)
        with CaptureReader(deep_capture) as reader:
            sent = [s for b in reader.batches() for s in tl.run(b)]
    out = parse_udp_frame(sent[0].frame_out)
    assert out is not None and out.ok
    assert (out.route.dst_mac, out.route.dst_ip, out.route.dst_port) == (NO_MAC, "10.9.9.9", 9100)
    assert len(run_backtest(deep_capture, cfg).orders) > 0


def test_nothing_is_left_behind(deep_capture):
    """No descriptor of the program or its maps outlives the run; nothing is pinned."""
    fds = set(os.listdir("/proc/self/fd"))
    pins = set(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else set()
    run(deep_capture)
    assert set(os.listdir("/proc/self/fd")) <= fds
    assert (set(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else set()) == pins


# -- sweeps ----------------------------------------------------------------------


def test_a_sweeps_best_row_equals_a_plain_backtest_with_its_values(deep_capture, tmp_path):
    _text, cfg = config()
    axes = [parse_axis("AAPL.buy_target=99.00,99.50,100.00", cfg), parse_axis("AAPL.base_qty=10,30", cfg)]
    rows = run_sweep(str(deep_capture), cfg, axes, jobs=2)
    assert len(rows) == 6 and [r.pnl for r in rows] == sorted((r.pnl for r in rows), reverse=True)
    assert len({(r.orders, r.pnl) for r in rows}) > 1, "the values must make a difference"
    best = rows[0]
    values = dict(best.values)
    plain_text, _cfg = config(
        symbols={"AAPL": (values["AAPL.buy_target"], "101.00"), "MSFT": ("200.00", "201.00")},
        qty={"AAPL": int(values["AAPL.base_qty"])},
    )
    path = write_config(tmp_path / "best.toml", plain_text)
    out = subprocess.run(
        [sys.executable, "-m", "hft_tui", "backtest", str(deep_capture), "--config", str(path), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    plain = json.loads(out.stdout)
    assert len(plain["orders"]) == best.orders
    pnl = sum(int(s["pnl"].replace(".", "")) for s in plain["symbols"].values())
    assert pnl == best.pnl
    assert sum(plain["rejects"].values()) == best.rejects


@pytest.mark.parametrize(
    "axis,message",
    [
        ("AAPL.buy_target=100.00,abc", "AAPL"),
        ("AAPL.buy_target=101.00", "sell_target 101.0000 must be above buy_target"),
        ("AAPL.bogus=1", "unknown key 'bogus'"),
        ("NOPE.buy_target=1", "symbol NOPE is not in the config"),
        ("feed=iex", "not an engine key that changes live"),
        ("AAPL.base_qty=", "give one or more values"),
        ("AAPL.buy_target=100.00001", "decimal places"),
    ],
)
def test_a_bad_sweep_value_is_the_configs_error_before_anything_runs(deep_capture, axis, message):
    _t, cfg = config()
    with pytest.raises(ConfigError, match=message):
        run_sweep(str(deep_capture), cfg, [parse_axis(axis, cfg)])


def test_the_speed_figure_is_measured_the_bench_way():
    from hft_tui.backtest.bench import measure

    fig = measure(frames=5_000)
    assert fig["frames"] == 5_000 and fig["messages_per_frame"] == 67 and fig["payload_bytes"] <= 1472
    assert fig["frames_per_s"] > 0 and fig["met"] == (fig["frames_per_s"] >= fig["target_frames_per_s"])


def test_make_bench_writes_both_recorded_data_figures_with_the_machine(tmp_path, capsys):
    """`make bench`'s recorded-data step (bench/recorded_speed.py): the backtest's and
    the replay's speed in one file, every frame of the replay counted by the engine."""
    from hft_tui.bench import recorded_speed

    out = tmp_path / "recorded.json"
    recorded_speed.main(["--frames", "3000", "--lab", "178", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu_model"]
    assert result["backtest"]["frames"] == 3000 and result["backtest"]["frames_per_s"] > 0
    assert result["replay"]["frames_sent"] == 3000 == result["replay"]["engine_packets"]
    said = capsys.readouterr().out
    assert "backtest" in said and "replay" in said and "frames/s" in said
