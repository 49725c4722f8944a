"""The demo's config, configs/demo.toml: the one place the demo's symbols are written.

Tests and the lab session need the same symbols under other engine-wide
settings (no token bucket, every update sampled, ...): they write their own
``[engine]`` table and take the ``[symbols.NAME]`` tables from here.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal

from .. import paths


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r} here")


def demo_symbols() -> dict[str, dict]:
    """name -> the demo's ``[symbols.NAME]`` table, values as written in configs/demo.toml."""
    with open(paths.DEMO_CONFIG, "rb") as f:
        return tomllib.load(f, parse_float=Decimal).get("symbols", {})


def demo_symbols_toml(names: tuple[str, ...] | None = None) -> str:
    """The demo's ``[symbols.NAME]`` tables as TOML text (all of them, or ``names`` in that order)."""
    tables = demo_symbols()
    chosen = names if names is not None else tuple(tables)
    unknown = [n for n in chosen if n not in tables]
    if unknown:
        raise KeyError(f"{paths.DEMO_CONFIG} has no symbol {unknown[0]}")
    out = []
    for name in chosen:
        out.append(f"[symbols.{name}]")
        out.extend(f"{key} = {_toml_value(value)}" for key, value in tables[name].items())
        out.append("")
    return "\n".join(out)


def demo_config_for_feed(feed: str, gateway_toml: str) -> str:
    """configs/demo.toml read as ``feed`` (iex, itch), its orders to the lab's gateway
    (``gateway_toml``: lab.Gateway.toml()): ``hft-tui --demo --format``."""
    with open(paths.DEMO_CONFIG, "rb") as f:
        engine = tomllib.load(f, parse_float=Decimal).get("engine", {})
    engine = {**engine, "feed": feed}
    lines = ["[engine]", *(f"{key} = {_toml_value(value)}" for key, value in engine.items()), ""]
    return "\n".join(lines) + "\n" + demo_symbols_toml() + "\n" + gateway_toml + "\n"
