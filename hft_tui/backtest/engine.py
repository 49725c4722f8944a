"""The live engine's program, built for the backtest, in maps of its own.

:class:`BacktestEngine` compiles ebpf/strategy.c exactly as ``engine
attach`` does for the config's feed (program.load_strategy: the same source,
the same feed define) plus the backtest's one difference, ``-DHFT_BACKTEST``:
the program's clock is the ``backtest_clock`` map and the dead-man switch is
compiled out.  Its maps are the ones BCC made for this load: nothing is
attached, nothing is pinned, and everything is gone when the engine is
closed, so a backtest can run beside a live engine on the same machine.

The maps get what attach writes (engine.attach): the engine-wide keys, the
kill switch off, every symbol, then the route and the feed's sources.  What
attach resolves from the machine the backtest leaves as the config gives it
(issue 12 §2): a gateway without ``mac`` keeps a zero MAC (nothing is sent,
nothing is resolved); without ``src_ip`` the orders leave from 0.0.0.0, and
their source MAC is zero (the backtest has no interface).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ..config import Config
from ..constants import KILL_OFF
from ..maps import EngineMaps, FeedSources, Gateway
from ..program import bcc_map_fds, load_strategy, program_hash

NO_MAC = "00:00:00:00:00:00"
NO_ADDRESS = "0.0.0.0"


def backtest_route(config: Config) -> Gateway | None:
    """The route map's value: the config's gateway as given, None to reflect."""
    gw = config.gateway
    if gw is None:
        return None
    return Gateway(
        ip=str(gw.ip),
        port=gw.port,
        mac=gw.mac or NO_MAC,
        src_ip=str(gw.src_ip) if gw.src_ip else NO_ADDRESS,
        src_port=gw.src_port or config.engine.feed_port,
        src_mac=NO_MAC,
    )


def feed_sources(config: Config) -> FeedSources:
    f = config.feed
    return FeedSources(
        feed_addr=str(f.feed_addr) if f.feed_addr else None,
        sources=tuple(str(n) for n in f.feed_sources or ()),
        macs=tuple(f.feed_source_macs or ()),
    )


class BacktestEngine:
    """The program for ``config``'s feed, loaded for BPF_PROG_TEST_RUN (module doc)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.feed = config.feed.feed
        self.program_hash = program_hash(self.feed, backtest=True)
        self._bpf: Any
        self._bpf, self.prog_fd = load_strategy(self.feed, backtest=True)
        try:
            self.maps = EngineMaps(bcc_map_fds(self._bpf), owns_fds=False)
            self.route = backtest_route(config)
            self._configure()
        except BaseException:
            if getattr(self, "maps", None) is not None:
                self.maps.close()
            self._bpf.cleanup()
            raise

    def _configure(self) -> None:
        m, c = self.maps, self.config
        m.write_global(c.engine, deadman_ms=0, version=1)
        m.set_kill(KILL_OFF)
        for name, params in c.symbols.items():
            m.write_symbol(name, params)
        m.write_route(self.route)
        m.write_feed_sources(feed_sources(c))

    @property
    def clock_fd(self) -> int:
        return self.maps.fds["backtest_clock"]

    def close(self) -> None:
        if self._bpf is not None:
            self.maps.close()  # the config stamps' mmap holds a map reference of its own
            self._bpf.cleanup()  # closes the program and the maps: nothing of it stays
            self._bpf = None

    def __enter__(self) -> BacktestEngine:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
