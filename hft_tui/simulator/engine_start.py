"""What the engine held when the run began.

An engine that already traded holds a position, an open cost, a last order
id and per-symbol last sequence numbers.  When an engine is pinned on the
lab's engine interface the simulator reads these from its maps and continues
from them (sequence numbers then start after the engine's highest one, else
at 1).  Without an engine it assumes a fresh one.  It assumes it is the
engine's only feed and that the engine runs the config it was given (it
warns when the engine's maps say otherwise): a symbol changed while it runs
makes orders that the file does not predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import paths
from ..config import Config, SymbolParams
from ..errors import SimulatorError
from ..maps import EngineMaps, MapsError, symbol_params_from_map


@dataclass
class SymbolStart:
    position: int = 0
    updates: int = 0
    last_seq: int = 0
    session_ref: int = 0
    open_cost: int = 0


@dataclass
class EngineStart:
    """A running engine's state, read from its pins (see the module doc)."""

    last_order_id: int = 0
    open_cost: int = 0
    symbols: dict[str, SymbolStart] = field(default_factory=dict)
    params: dict[str, SymbolParams] = field(default_factory=dict)
    engine_max_notional: int = 0
    feed_port: int = 0

    @classmethod
    def read(cls, iface: str) -> EngineStart | None:
        """None when no engine is pinned on ``iface``."""
        directory = paths.pin_dir(iface)
        if not directory.is_dir():
            return None
        try:
            maps = EngineMaps.open_pinned(directory)
        except MapsError as exc:
            raise SimulatorError(f"cannot read the engine on {iface}: {exc}") from None
        try:
            snap = maps.snapshot()
        finally:
            maps.close()
        start = cls(
            last_order_id=snap.totals.order_seq,
            open_cost=snap.totals.open_cost,
            engine_max_notional=snap.global_config.max_notional,
            feed_port=snap.global_config.feed_port,
        )
        for name, (cfg, st) in snap.symbols.items():
            start.symbols[name] = SymbolStart(st.position, st.updates, st.last_seq, st.session_ref, st.open_cost)
            start.params[name] = symbol_params_from_map(cfg)
        return start

    def next_seq(self) -> int:
        return 1 + max((s.last_seq for s in self.symbols.values()), default=0)


def config_warnings(
    config: Config, start: EngineStart | None, names: Sequence[str], port: int | None = None
) -> list[str]:
    """Where the engine's maps disagree with the config the orders are checked against."""
    if start is None:
        return []
    out = []
    for name in names:
        mine, theirs = config.params(name), start.params.get(name)
        if mine == theirs:
            continue
        why = "not in the engine" if theirs is None else "not in the config" if mine is None else "other parameters"
        out.append(f"the engine's {name} differs from the config ({why})")
    if start.engine_max_notional != config.engine.max_notional:
        out.append("the engine's max_notional differs from the config")
    if port is not None and start.feed_port and start.feed_port != port:
        out.append(f"the engine's feed port is {start.feed_port}, updates go to {port}")
    return out
