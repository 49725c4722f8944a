"""The backtest and replay verbs through the command line: every bad capture of
issue 12 §1 is one line on stderr and exit code 1 with nothing left behind (no
orders file, no temporary file, nothing sent); a good one prints the JSON of
§2 or the readable summary with its per-symbol table.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from capture_files import config, deep_packets, write_capture, write_config

FRAMES = deep_packets(30)


def hft_tui(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hft_tui", *argv], capture_output=True, text=True, timeout=300)


def pcap(frames: list[bytes], *, link: int = 1, wirelen: dict[int, int] | None = None) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1_706_279_400 + i, 0, len(f), (wirelen or {}).get(i, len(f))) + f
    return out


GOOD = pcap([f for _t, f in FRAMES])
BAD = {
    "not a capture": (b"PK\x03\x04" + bytes(100), "not a pcap or pcapng capture"),
    "gzip of text": (gzip.compress(b"hello world\n" * 20), "not a pcap or pcapng capture"),
    "truncated record": (GOOD[:-7], "frame 30 (offset"),
    "truncated header": (GOOD + b"\x01\x02\x03\x04\x05", "frame 31 (offset"),
    "truncated gzip": (gzip.compress(GOOD)[:-40], "cut short or corrupt"),
    "snap length": (pcap([f for _t, f in FRAMES], wirelen={4: 1514}), "frame 5 (offset"),
    "not ethernet": (pcap([f for _t, f in FRAMES], link=113), "link type 113 (LINUX_SLL) is not Ethernet"),
}


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory) -> Path:
    text, _cfg = config()
    return write_config(tmp_path_factory.mktemp("cfg") / "cfg.toml", text)


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_capture_is_one_line_and_leaves_nothing(tmp_path, cfg_path, case):
    data, words = BAD[case]
    cap = tmp_path / "bad.pcap"
    cap.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    r = hft_tui("backtest", str(cap), "--config", str(cfg_path), "--orders-csv", str(out / "orders.csv"), "--json")
    assert r.returncode == 1, r
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hft-tui: error: capture ") and words in lines[0], r.stderr
    assert list(out.iterdir()) == [], "nothing may be left behind"


def test_a_missing_capture_and_a_bad_config(tmp_path, cfg_path):
    r = hft_tui("backtest", str(tmp_path / "none.pcap"), "--config", str(cfg_path))
    assert r.returncode == 1 and "cannot open" in r.stderr and len(r.stderr.splitlines()) == 1
    bad = write_config(tmp_path / "bad.toml", '[engine]\nfeed = "nasdaq"\n')
    r = hft_tui("backtest", str(tmp_path / "none.pcap"), "--config", str(bad))
    assert r.returncode == 1 and "feed" in r.stderr and len(r.stderr.splitlines()) == 1


def test_json_text_and_the_orders_csv(tmp_path, cfg_path):
    cap = write_capture(tmp_path / "d.pcap", FRAMES)
    r = hft_tui("backtest", str(cap), "--config", str(cfg_path), "--json", "--orders-csv", str(tmp_path / "o.csv"))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["capture"]["frames"] == 30 and d["orders"]
    rows = (tmp_path / "o.csv").read_text().splitlines()
    assert rows[0] == "id,side,symbol,price,qty,seq,ts,frame,capture_ts" and len(rows) == len(d["orders"]) + 1
    assert (tmp_path / "o.csv").stat().st_mode & 0o777 == 0o600
    t = hft_tui("backtest", str(cap), "--config", str(cfg_path))
    assert t.returncode == 0
    assert "symbol" in t.stdout and "PnL" in t.stdout and "AAPL" in t.stdout and "frames/s" in t.stdout


def test_replay_refuses_a_bad_capture_before_it_looks_at_the_lab(tmp_path):
    cap = tmp_path / "bad.pcap"
    cap.write_bytes(BAD["snap length"][0])
    r = hft_tui("replay", str(cap), "--lab", "179", "--max")
    assert r.returncode == 1 and "snap length cut the frame" in r.stderr and len(r.stderr.splitlines()) == 1
