"""Parameter sweeps: one capture backtested with every combination of values.

    hft-tui backtest day.pcap --config cfg.toml \\
        --set TQQQ.buy_target=35.66,35.68,35.70 --set TQQQ.base_qty=100,200 --jobs 2

``--set SYMBOL.key=v1,v2,...`` varies a symbol's key (a symbol name may
hold dots: the key is after the last one), ``--set key=v1,...`` or
``--set engine.key=v1,...`` an engine-wide key that changes live.  Every
variant is made and checked by the config's own rules (config.symbol_params,
config.engine_params) before anything runs, so a bad key or value is the
config's one-line error and nothing is compiled.  Each variant is a fresh
backtest (its own program, its own maps) in a process of its own, at most
``jobs`` at a time; the capture is read by each.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from dataclasses import dataclass, replace

from ..config import ENGINE_KEYS, Config, engine_params, symbol_params
from ..errors import ConfigError, HftError
from ..symbol import Symbol
from . import loop
from .report import money
from .runner import run_backtest
from .window import TimeBound

ENGINE_PREFIX = "engine"


@dataclass(frozen=True)
class SweepAxis:
    """One ``--set``: a symbol's key (``symbol`` None: an engine key) and its values as typed."""

    symbol: Symbol | None
    key: str
    values: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.symbol}.{self.key}" if self.symbol is not None else self.key


def parse_axis(text: str, config: Config) -> SweepAxis:
    """``SYM.key=v1,v2`` / ``key=v1,v2`` / ``engine.key=v1,v2``, checked against the config."""
    lhs, sep, rhs = text.partition("=")
    if not sep or not lhs.strip():
        raise ConfigError(f"--set {text!r}: expected SYMBOL.key=v1,v2,... or key=v1,v2,... (an engine key)")
    values = tuple(v.strip() for v in rhs.split(","))
    if not rhs.strip() or any(not v for v in values):
        raise ConfigError(f"--set {text!r}: give one or more values, separated by commas")
    where, dot, key = lhs.strip().rpartition(".")
    if not dot or where == ENGINE_PREFIX:
        if key not in ENGINE_KEYS:
            known = ", ".join(k for k in ENGINE_KEYS if k != "mode")
            raise ConfigError(f"--set {lhs.strip()}: not an engine key that changes live (known: {known})")
        return SweepAxis(None, key, values)
    name = Symbol(where)
    if name not in config.symbols:
        raise ConfigError(f"--set {lhs.strip()}: symbol {name} is not in the config")
    return SweepAxis(name, key, values)


@dataclass(frozen=True)
class Variant:
    values: tuple[tuple[str, str], ...]  # (axis name, value as typed), in --set order
    config: Config

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values)


def variants(config: Config, axes: list[SweepAxis]) -> list[Variant]:
    """Every combination, each a whole config checked by the config's rules."""
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"--set {dup} is given twice: give its values in one --set")
    out = []
    for combo in itertools.product(*(a.values for a in axes)):
        engine_values: dict[str, str] = {}
        symbol_values: dict[Symbol, dict[str, str]] = {}
        for axis, value in zip(axes, combo):
            if axis.symbol is None:
                engine_values[axis.key] = value
            else:
                symbol_values.setdefault(axis.symbol, {})[axis.key] = value
        cfg = config
        if engine_values:
            cfg = replace(cfg, engine=engine_params(engine_values, base=cfg.engine))
        if symbol_values:
            symbols = dict(cfg.symbols)
            for name, values in symbol_values.items():
                symbols[name] = symbol_params(name, values, base=symbols[name])
            cfg = replace(cfg, symbols=symbols)
        out.append(Variant(tuple(zip(names, combo)), cfg))
    return out


@dataclass(frozen=True)
class VariantResult:
    values: tuple[tuple[str, str], ...]
    orders: int
    pnl: int  # 1e-4 units
    max_position: int
    rejects: int
    reject_reasons: dict[str, int]
    frames: int
    elapsed_s: float

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values)

    def as_dict(self) -> dict[str, object]:
        return {
            "set": dict(self.values),
            "orders": self.orders,
            "pnl": money(self.pnl),
            "max_position": self.max_position,
            "rejects": self.rejects,
            "reject_reasons": {k: v for k, v in self.reject_reasons.items() if v},
            "elapsed_s": round(self.elapsed_s, 6),
        }


@dataclass(frozen=True)
class _Job:
    path: str
    variant: Variant
    start: TimeBound | None
    end: TimeBound | None


def _run(job: _Job) -> VariantResult | str:
    """One variant in a worker process; an error comes back as its line."""
    try:
        r = run_backtest(job.path, job.variant.config, start=job.start, end=job.end)
    except HftError as exc:
        return str(exc)
    return VariantResult(
        job.variant.values,
        len(r.orders),
        r.pnl,
        r.max_position,
        r.reject_total,
        dict(r.rejects),
        r.frames,
        r.elapsed_s,
    )


def default_jobs() -> int:
    return len(os.sched_getaffinity(0))


def run_sweep(
    path: str,
    config: Config,
    axes: list[SweepAxis],
    *,
    jobs: int | None = None,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
) -> list[VariantResult]:
    """Every variant backtested (module doc), sorted by PnL, best first."""
    todo = variants(config, axes)  # every value checked before anything runs
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give 1 or more")
    jobs = min(jobs or default_jobs(), len(todo))
    loop.prepare()  # built once, inherited by every worker
    work = [_Job(path, v, start, end) for v in todo]
    results: list[VariantResult | str]
    if jobs == 1:
        results = [_run(j) for j in work]
    else:
        with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=1) as pool:
            results = list(pool.imap(_run, work))
    for r in results:
        if isinstance(r, str):
            raise SweepError(r)
    done = [r for r in results if isinstance(r, VariantResult)]
    return sorted(done, key=lambda r: (-r.pnl, r.rejects, r.label))


class SweepError(HftError):
    """A variant's backtest failed (its one line)."""


def sweep_table(results: list[VariantResult]) -> str:
    rows = [("#", "variant", "orders", "PnL", "max position", "rejects")]
    for i, r in enumerate(results, 1):
        rows.append((str(i), r.label, f"{r.orders:,}", money(r.pnl), f"{r.max_position:,}", f"{r.rejects:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {0, 2, 3, 4, 5}
    return "\n".join(
        "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()
        for row in rows
    )
