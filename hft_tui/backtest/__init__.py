"""``hft-tui backtest``: a capture run through the live engine's own program.

    engine.py        the program built for the backtest (the config's feed, the
                     clock from a map), loaded into maps of its own
    testrun_loop.c   the inner loop: each frame's clock set, each frame run
                     (BPF_PROG_TEST_RUN), the XDP_TX frames kept
    loop.py          that loop built with gcc and called a batch at a time
    orders.py        the order frames checked, decoded and booked; the book held
                     against the program's maps
    window.py        --from / --to
    runner.py        one backtest: run_backtest(capture, config) -> BacktestResult
    report.py        the result as JSON, text, CSV
    sweep.py         --set: every combination of values, in parallel processes
    bench.py         the speed figure (hft-tui bench calls measure())
    cli.py           the verb

The capture is read by hft_tui.capture_reader.
"""

from __future__ import annotations
