"""Typed access to a running engine's maps, by file descriptor.

The same class serves the process that loaded the program (fds from BCC)
and any other process (fds from the pins under /sys/fs/bpf/hft_tui/IFACE).
Config values are written whole with BPF_F_LOCK and state is read with
BPF_F_LOCK, so neither side ever sees half of a value.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import libbpf
from .config import EngineParams, SymbolParams
from .constants import (
    BPF_ANY,
    BPF_F_LOCK,
    BPF_NOEXIST,
    COUNTERS,
    CTR_REJECT_BASE,
    NO_TRADE_ACTIONS,
    NUM_COUNTERS,
    REJECT_REASONS,
)
from .errors import MapsError
from .layout import (
    GlobalConfig,
    GlobalState,
    KernelGlobalParams,
    KernelSymbolParams,
    SymbolConfig,
    SymbolKey,
    SymbolState,
    Totals,
    key_name,
    symbol_key,
)
from .symbol import Symbol

# pin name -> value type (None: not read as a struct here)
MAP_VALUES = {
    "symbol_config": SymbolConfig,
    "symbol_state": SymbolState,
    "global_config": GlobalConfig,
    "global_state": GlobalState,
    "totals": Totals,
    "kill_switch": ctypes.c_uint64,
    "heartbeat": ctypes.c_uint64,
    "counters": ctypes.c_uint64,
    "events": None,
    "tape_events": None,
    "scratch_event": None,
}
_NO_TRADE_CODE = {name: code for code, name in NO_TRADE_ACTIONS.items()}


@dataclass
class Snapshot:
    """One read of everything the kernel holds, for status and the TUI."""

    taken_ns: int
    global_config: GlobalConfig
    kill: int
    heartbeat_ns: int
    totals: Totals
    counters: dict[str, int]
    rejects: dict[str, int]
    symbols: dict[Symbol, tuple[SymbolConfig, SymbolState]] = field(default_factory=dict)


class EngineMaps:
    def __init__(self, fds: dict[str, int], *, owns_fds: bool) -> None:
        missing = [n for n in MAP_VALUES if n not in fds]
        if missing:
            raise MapsError(f"engine maps missing: {', '.join(missing)}")
        self.fds = fds
        self._owns = owns_fds
        self._ncpus = libbpf.num_possible_cpus()
        for name, vtype in MAP_VALUES.items():
            if vtype is None or name == "counters":
                continue
            size = libbpf.map_info(fds[name]).value_size
            if size != ctypes.sizeof(vtype):
                raise MapsError(
                    f"map {name} holds {size}-byte values, this hft-tui expects {ctypes.sizeof(vtype)}: "
                    "the running engine is another version; detach it and attach again"
                )

    @classmethod
    def open_pinned(cls, directory: Path) -> EngineMaps:
        fds = {}
        try:
            for name in MAP_VALUES:
                fds[name] = libbpf.obj_get(str(directory / name))
        except OSError as exc:
            for fd in fds.values():
                os.close(fd)
            raise MapsError(f"cannot open the engine's maps in {directory}: {exc.strerror}") from None
        return cls(fds, owns_fds=True)

    def close(self) -> None:
        if self._owns:
            for fd in self.fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.fds = {}

    # -- engine-wide ----------------------------------------------------
    def read_global(self) -> GlobalConfig:
        value = GlobalConfig()
        libbpf.lookup(self.fds["global_config"], ctypes.c_uint32(0), value, lock=True)
        return value

    def write_global(self, params: EngineParams, *, deadman_ms: int, version: int) -> None:
        value = GlobalConfig(p=global_params_to_map(params, deadman_ms=deadman_ms), config_version=version)
        libbpf.update(self.fds["global_config"], ctypes.c_uint32(0), value, BPF_F_LOCK)

    def set_deadman(self, deadman_ms: int) -> None:
        g = self.read_global()
        g.deadman_ms = deadman_ms
        libbpf.update(self.fds["global_config"], ctypes.c_uint32(0), g, BPF_F_LOCK)

    def bump_version(self) -> int:
        g = self.read_global()
        g.config_version += 1
        libbpf.update(self.fds["global_config"], ctypes.c_uint32(0), g, BPF_F_LOCK)
        return g.config_version

    def kill(self) -> int:
        value = ctypes.c_uint64()
        libbpf.lookup(self.fds["kill_switch"], ctypes.c_uint32(0), value)
        return value.value

    def set_kill(self, state: int) -> None:
        libbpf.update(self.fds["kill_switch"], ctypes.c_uint32(0), ctypes.c_uint64(state), BPF_ANY)

    def heartbeat(self) -> int:
        value = ctypes.c_uint64()
        libbpf.lookup(self.fds["heartbeat"], ctypes.c_uint32(0), value)
        return value.value

    def beat(self, now_ns: int | None = None) -> None:
        """The controller's heartbeat: CLOCK_MONOTONIC, as bpf_ktime_get_ns."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        libbpf.update(self.fds["heartbeat"], ctypes.c_uint32(0), ctypes.c_uint64(now), BPF_ANY)

    def totals(self) -> Totals:
        value = Totals()
        libbpf.lookup(self.fds["totals"], ctypes.c_uint32(0), value)
        return value

    def counters(self) -> list[int]:
        """Per-CPU counters summed over the possible CPUs."""
        buf = (ctypes.c_uint64 * self._ncpus)()
        out = []
        for idx in range(NUM_COUNTERS):
            libbpf.lookup(self.fds["counters"], ctypes.c_uint32(idx), buf)
            out.append(sum(buf))
        return out

    # -- symbols --------------------------------------------------------
    def symbol_names(self) -> list[Symbol]:
        return sorted(Symbol(key_name(k.name)) for k in libbpf.keys(self.fds["symbol_config"], SymbolKey))

    def read_symbol(self, name: Symbol) -> tuple[SymbolConfig, SymbolState] | None:
        key = symbol_key(name)
        cfg, st = SymbolConfig(), SymbolState()
        if not libbpf.lookup(self.fds["symbol_config"], key, cfg, lock=True):
            return None
        if not libbpf.lookup(self.fds["symbol_state"], key, st, lock=True):
            st = SymbolState()
        return cfg, st

    def write_symbol(self, name: Symbol, p: SymbolParams) -> None:
        """One whole-value update of the symbol's config (state created first)."""
        key = symbol_key(name)
        try:
            libbpf.update(self.fds["symbol_state"], key, SymbolState(), BPF_NOEXIST)
        except OSError as exc:
            if exc.errno != 17:  # EEXIST: the symbol trades already, keep its state
                raise
        cfg = SymbolConfig(p=symbol_params_to_map(p))
        libbpf.update(self.fds["symbol_config"], key, cfg, BPF_F_LOCK)

    def read_symbol_state(self, name: Symbol) -> SymbolState | None:
        st = SymbolState()
        return st if libbpf.lookup(self.fds["symbol_state"], symbol_key(name), st, lock=True) else None

    def delete_symbol_config(self, name: Symbol) -> bool:
        """The kernel stops deciding for the symbol (it becomes unknown); its state stays."""
        return libbpf.delete(self.fds["symbol_config"], symbol_key(name))

    def restore_symbol_config(self, name: Symbol, cfg: SymbolConfig) -> None:
        libbpf.update(self.fds["symbol_config"], symbol_key(name), cfg, BPF_F_LOCK)

    def remove_symbol(self, name: Symbol) -> bool:
        key = symbol_key(name)
        found = libbpf.delete(self.fds["symbol_config"], key)
        libbpf.delete(self.fds["symbol_state"], key)
        return found

    def snapshot(self) -> Snapshot:
        ctr = self.counters()
        symbols = {}
        for name in self.symbol_names():
            got = self.read_symbol(name)
            if got:
                symbols[name] = got
        return Snapshot(
            taken_ns=time.monotonic_ns(),
            global_config=self.read_global(),
            kill=self.kill(),
            heartbeat_ns=self.heartbeat(),
            totals=self.totals(),
            counters={name: ctr[idx] for idx, name in COUNTERS.items()},
            rejects={name: ctr[CTR_REJECT_BASE + idx] for idx, name in REJECT_REASONS.items()},
            symbols=symbols,
        )


def symbol_params_to_map(p: SymbolParams) -> KernelSymbolParams:
    """A symbol's validated parameters as the kernel holds them (the same fields, by name)."""
    return KernelSymbolParams(**asdict(p))


def symbol_params_from_map(cfg: SymbolConfig) -> SymbolParams:
    """The applied values, read back from the kernel."""
    return SymbolParams(**{f.name: getattr(cfg.p, f.name) for f in fields(SymbolParams)})


def global_params_to_map(params: EngineParams, *, deadman_ms: int) -> KernelGlobalParams:
    """The engine-wide parameters as the kernel holds them; the dead-man deadline is the
    controller's to arm, so it is given apart from the config's."""
    return KernelGlobalParams(
        feed_port=params.feed_port,
        on_no_trade=_NO_TRADE_CODE[params.on_no_trade],
        update_sample=params.update_sample,
        deadman_ms=deadman_ms,
        rate_per_sec=params.rate_per_sec,
        burst=params.burst,
        max_notional=params.max_notional,
        loss_limit=params.loss_limit,
    )
