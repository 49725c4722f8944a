"""The program's cost to the verifier, and why it is loaded the way it is.

The verifier gives up at 1,000,000 processed instructions.  The message loop
is a bpf_loop callback, checked until its states converge, so the count does
not grow with the messages a packet may hold; but it grows with every branch
and every value the callback keeps exact.  A budget far below the limit
shows a regression long before a build stops loading.
"""

from __future__ import annotations

import pytest

from hft_tui import bccload, paths
from hft_tui.maps import MAP_VALUES, OPTIONAL_MAP_VALUES
from hft_tui.program import FEEDS, build_defines, compile_program, load_strategy_verbose

# Measured at 23k (hft1), 41k (itch) and 43k (iex) processed instructions.
BUDGET = 200_000


@pytest.mark.parametrize("backtest", [False, True], ids=["live", "backtest"])
@pytest.mark.parametrize("feed", list(FEEDS))
def test_the_verifier_processes_each_build_well_within_a_budget(feed, backtest):
    b, loaded = load_strategy_verbose(feed, backtest=backtest)
    try:
        assert loaded.fd >= 0
        assert loaded.processed is not None, loaded.log
        assert loaded.processed < BUDGET, f"{feed}: {loaded.processed:,} instructions processed, budget {BUDGET:,}"
    finally:
        b.cleanup()


def test_stock_bcc_cannot_load_the_message_loop():
    # Why hft_tui/bccload.py exists: when this fails, BCC loads bpf_loop callbacks
    # itself and the loader can go.
    import bcc

    b = compile_program(cflags=build_defines("iex"))
    try:
        with pytest.raises(Exception, match="Failed to load BPF program"):
            b.load_func(b"xdp_strategy", bcc.BPF.XDP)
    finally:
        b.cleanup()


@pytest.mark.parametrize("backtest", [False, True], ids=["live", "backtest"])
def test_the_loader_finds_every_map_in_declaration_order(backtest):
    defines = {"HFT_FEED_IEX", *(["HFT_BACKTEST"] if backtest else [])}
    names = bccload.declared_maps(paths.STRATEGY_SOURCE, [paths.EBPF_DIR], defines)
    assert sorted(names) == sorted([*MAP_VALUES, *(OPTIONAL_MAP_VALUES if backtest else [])])
    assert names[:2] == ["symbol_config", "symbol_state"]
