"""The engine's maps, refused whole and with nothing kept open: another
version's maps, a symbol past what the engine holds, an engine closed.

Real programs and maps (BCC builds, pins in a bpffs directory of the test's
own); a file descriptor left open is counted in /proc/self/fd.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest
from capture_files import config as capture_config

from hft_tui import libbpf
from hft_tui.backtest.engine import BacktestEngine
from hft_tui.config import parse_config
from hft_tui.errors import MapsError
from hft_tui.maps import MAP_VALUES, EngineMaps
from hft_tui.program import bcc_map_fds, load_strategy
from hft_tui.rings import RingDrain

FEWER_COUNTERS = "BPF_PERCPU_ARRAY(counters, u64, 3);"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def strategy():
    b, _fd = load_strategy()
    yield bcc_map_fds(b)
    b.cleanup()


@pytest.fixture(scope="module")
def other_counters():
    """A counters map of another version: 3 per-CPU counters."""
    import bcc

    b = bcc.BPF(text=FEWER_COUNTERS.encode())
    yield b.get_table(b"counters").map_fd
    b.cleanup()


@pytest.fixture
def pin_dir():
    d = Path("/sys/fs/bpf") / f"hft_tui_test_{uuid.uuid4().hex[:8]}"
    os.mkdir(d, 0o700)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def test_counters_of_another_number_are_another_version(strategy, other_counters):
    with pytest.raises(MapsError, match=r"map counters holds 3 counters, this hft-tui expects \d+: .*another version"):
        EngineMaps({**strategy, "counters": other_counters}, owns_fds=False)


def test_pinned_maps_of_another_version_are_refused_and_none_kept_open(strategy, other_counters, pin_dir):
    for name in MAP_VALUES:
        libbpf.pin(other_counters if name == "counters" else strategy[name], str(pin_dir / name))
    before = open_fds()
    for _ in range(3):
        with pytest.raises(MapsError, match="another version"):
            EngineMaps.open_pinned(pin_dir)
    assert open_fds() == before
    # The same pins with this version's counters open, and close whole.
    (pin_dir / "counters").unlink()
    libbpf.pin(strategy["counters"], str(pin_dir / "counters"))
    maps = EngineMaps.open_pinned(pin_dir)
    maps.close()
    assert open_fds() == before


def test_a_symbol_past_what_the_engine_holds_is_refused_in_one_line_and_the_rest_kept():
    b, _fd = load_strategy(cflags=("-DHFT_MAX_SYMBOLS=4",))
    maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
    try:
        cfg = parse_config({"symbols": {name: {"buy_target": "10.00"} for name in ("A", "B", "C", "D", "E")}})
        for name in ("A", "B", "C", "D"):
            maps.write_symbol(name, cfg.symbols[name])
        with pytest.raises(MapsError, match=r"^symbol E: the engine holds at most 4 symbols$"):
            maps.write_symbol("E", cfg.symbols["E"])
        assert maps.symbol_names() == ["A", "B", "C", "D"]
        assert maps.read_symbol_state("E") is None
    finally:
        maps.close()
        b.cleanup()


def test_a_backtest_engine_closed_keeps_nothing_open():
    _text, cfg = capture_config("iex")
    with contextlib.ExitStack() as stack:
        stack.enter_context(BacktestEngine(cfg))  # warm: BCC's own first-use files stay open
    before = open_fds()
    kept = []
    for _ in range(3):
        with BacktestEngine(cfg) as e:
            kept.append(e)  # still referenced after close, as a caller's name or a traceback's frame keeps it
    assert open_fds() == before


def test_a_map_that_is_no_ring_is_refused_and_its_descriptor_closed(other_counters):
    fd = os.dup(other_counters)  # a per-CPU array: no ring to map
    with pytest.raises(OSError):
        RingDrain(fd, owns_fd=True)
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: the drain owned it
