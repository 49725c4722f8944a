"""The TUI on a recorded day (issue 12 §6), without the TUI: what ``hft-tui
--demo --replay CAPTURE`` starts.  A config made from the capture (its most
active symbols, targets around their prices), the engine attached with it,
the feeder looping over the capture at its own pace with the engine's
sequences reset between loops, so every loop trades; the status bar's note
(capture, clock, progress, loop, "config from the capture") while it runs,
gone with it.  Lab 174.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from capture_files import config, deep_packets, write_capture

from hft_tui import engine, lab
from hft_tui.config import load_config
from hft_tui.replay.demo import DemoReplay
from hft_tui.replay_status import read_status, replay_note, status_path
from hft_tui.wire import Route


@pytest.fixture
def lab174():
    L = lab.Lab.numbered(174)
    lab.down(L, quiet=True)
    lab.up(L)
    yield L
    lab.down(L, quiet=True)


def test_the_demo_replay_loops_and_trades_every_loop(lab174, tmp_path):
    route = Route(lab174.exchange_mac, lab174.engine_mac, lab174.exchange_ip, lab174.engine_ip, 10377, 10377)
    frames = deep_packets(60, step_ns=5_000_000, route=route)  # 0.3 s of capture
    cap = write_capture(tmp_path / "day.pcap", frames)
    demo = DemoReplay(str(cap), None, lab174, lab_number=174)
    try:
        assert demo.auto_config and demo.symbols[:2] in (["AAPL", "MSFT"], ["MSFT", "AAPL"])
        made = demo.config_path
        assert os.stat(made).st_mode & 0o777 == 0o600
        cfg = load_config(made)
        assert cfg.feed.feed == "iex" and cfg.engine.feed_port == 10377
        engine.attach(lab174.engine_iface, cfg, config_path=made)
        feeder = subprocess.Popen(demo.feed_argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            orders_at_loop = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(orders_at_loop) < 3:
                st = read_status(lab174.engine_iface)
                if st is not None:
                    with engine.EngineHandle(lab174.engine_iface) as h:
                        orders_at_loop.setdefault(st.loop, h.snapshot().totals.order_seq)
                time.sleep(0.05)
            note = replay_note(lab174.engine_iface)
            assert note is not None and note.startswith("replay day.pcap 14:30:0") and "config from the capture" in note
        finally:
            feeder.send_signal(signal.SIGTERM)
            _out, err = feeder.communicate(timeout=10)
        assert feeder.returncode == 0, err
        loops = sorted(orders_at_loop)
        assert len(loops) >= 3, orders_at_loop
        counts = [orders_at_loop[k] for k in loops]
        assert counts == sorted(counts) and counts[-1] > counts[1] > 0, f"every loop must trade: {orders_at_loop}"
        assert not os.path.exists(status_path(lab174.engine_iface)) and replay_note(lab174.engine_iface) is None
    finally:
        demo.cleanup()
    assert not os.path.exists(made)


def test_with_a_config_the_demo_takes_it_as_it_is(lab174, tmp_path):
    text, _cfg = config()
    path = tmp_path / "mine.toml"
    path.write_text(text)
    cap = write_capture(tmp_path / "day.pcap", deep_packets(5))
    demo = DemoReplay(str(cap), str(path), lab174)
    assert demo.config_path == str(path) and not demo.auto_config
    assert "--auto-config" not in demo.feed_argv() and demo.feed_argv()[:4] == [
        sys.executable,
        "-I",  # isolated: python_child.py
        "-m",
        "hft_tui.replay.feeder",
    ]
    demo.cleanup()
    assert path.exists()
