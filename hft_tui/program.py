"""The XDP program as source and as a loaded object: compile, hash, load.

BCC compiles ebpf/strategy.c at run time; everything that identifies what
runs (the SHA-256 of the sources and of the build: the feed's decoder and
the backtest clock) and every way the program is built (the live engine,
the tests' and the benchmark's BPF_PROG_TEST_RUN copies, the backtest) goes
through here, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import bccload, paths
from .errors import EngineError
from .maps import MAP_VALUES, OPTIONAL_MAP_VALUES
from .preflight import require_bcc

PROGRAM_NAME = "xdp_strategy"
# config `feed` -> the decoder's define (ebpf/feed.h); only that decoder is compiled in.
FEEDS = {"hft1": "HFT_FEED_HFT1", "iex": "HFT_FEED_IEX", "itch": "HFT_FEED_ITCH"}
DEFAULT_FEED = "hft1"
# The backtest build: its clock is a map the harness sets, and no dead-man switch.
BACKTEST_DEFINE = "HFT_BACKTEST"


def program_sources() -> list[Path]:
    return [paths.STRATEGY_SOURCE, *sorted(paths.EBPF_DIR.glob("*.h"))]


def build_defines(feed: str = DEFAULT_FEED, *, backtest: bool = False) -> tuple[str, ...]:
    """The -D flags that choose what the program is (its feed, its clock)."""
    if feed not in FEEDS:
        raise EngineError(f"unknown feed {feed!r} (known: {', '.join(FEEDS)})")
    return (f"-D{FEEDS[feed]}", *((f"-D{BACKTEST_DEFINE}",) if backtest else ()))


def program_hash(feed: str = DEFAULT_FEED, *, backtest: bool = False, cflags: tuple[str, ...] = ()) -> str:
    """SHA-256 of the C source and headers and of the build (feed, clock, any other flags):
    two programs with the same hash were built from the same sources with the same flags
    (the kernel headers and the compiler BCC brings are not in it)."""
    h = hashlib.sha256()
    for src in program_sources():
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    for flag in (*build_defines(feed, backtest=backtest), *cflags):
        h.update(b"\0flag\0" + flag.encode())
    return h.hexdigest()


def compile_program(source: Path = paths.STRATEGY_SOURCE, cflags: tuple[str, ...] = ()):
    """BCC object for ``source``; raises EngineError with the compiler's first error (or
    BCC's: a map it could not create).  What clang and BCC print goes nowhere else: a
    terminal the app draws on is never written over."""
    bcc = require_bcc()
    printed: list[str] = []
    try:
        with bccload.stderr_kept(printed):
            return bcc.BPF(src_file=str(source).encode(), cflags=[f"-I{paths.EBPF_DIR}", *cflags])
    except Exception as exc:
        said = bccload.first_error("".join(printed)) or str(exc)
        raise EngineError(f"cannot build {source.name}: {said}") from None


def load_strategy(feed: str = DEFAULT_FEED, cflags: tuple[str, ...] = (), *, backtest: bool = False):
    """(BCC object, program fd) of the engine for ``feed``: for attach, BPF_PROG_TEST_RUN
    and the backtest (``backtest=True``: the clock from the backtest_clock map)."""
    b, loaded = load_strategy_verbose(feed, cflags, backtest=backtest)
    return b, loaded.fd


def load_strategy_verbose(feed: str = DEFAULT_FEED, cflags: tuple[str, ...] = (), *, backtest: bool = False):
    """(BCC object, bccload.Loaded): with the verifier's statistics (the budget test)."""
    flags = (*build_defines(feed, backtest=backtest), *cflags)
    b = compile_program(cflags=flags)
    try:
        loaded = bccload.load_xdp(
            b,
            PROGRAM_NAME,
            source=paths.STRATEGY_SOURCE,
            include_dirs=[paths.EBPF_DIR],
            defines=dict(_define(f[2:]) for f in flags if f.startswith("-D")),
        )
    except BaseException:  # whatever stopped the load: nothing of the build stays open
        b.cleanup()
        raise
    if loaded.fd < 0:
        b.cleanup()
        why = os.strerror(-loaded.fd)
        if loaded.log.strip():
            raise EngineError(f"the verifier refused {PROGRAM_NAME} ({feed}, {why}): {loaded.complaint()}")
        raise EngineError(f"the kernel refused {PROGRAM_NAME} ({feed}): {why}, without a verifier log")
    return b, loaded


def _define(flag: str) -> tuple[str, str]:
    """-DNAME=VALUE -> (NAME, VALUE); -DNAME is NAME=1, as for the compiler."""
    name, sep, value = flag.partition("=")
    return name, value if sep else "1"


def bcc_map_fds(b) -> dict[str, int]:
    fds = {name: b.get_table(name.encode()).map_fd for name in MAP_VALUES}
    for name in OPTIONAL_MAP_VALUES:
        if _has_table(b, name):
            fds[name] = b.get_table(name.encode()).map_fd
    return fds


def _has_table(b, name: str) -> bool:
    try:
        b.get_table(name.encode())
    except KeyError:
        return False
    return True
