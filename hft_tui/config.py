"""Engine configuration: TOML in, validated kernel-ready integers out.

Every value is checked here before anything is written to a map, so a bad
value gets one clear error and the kernel never sees it.  The TOML keys and
units are the ones traders type: prices and money as decimals (at most 4
places), quantities as whole shares.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeAlias

from .constants import DEFAULT_FEED_PORT, MAX_FEED_SOURCES, MAX_ORDERS_CAP, MAX_SOURCE_MACS, MAX_SYMBOLS
from .errors import ConfigError, PathError, ProtocolError, SymbolError
from .netaddr import parse_feed_address, parse_mac, parse_source_network, parse_unicast
from .protocol import U32_MAX, U64_MAX, decimal_to_units, parse_price, plain_number_text, price_to_str
from .safefile import read_regular_file
from .symbol import Symbol

MODES = ("native", "generic")
S64_MAX = 2**63 - 1
# The controller beats several times per deadline; below this a scheduling
# hiccup of the controller would already stop trading.
MIN_DEADMAN_MS = 100
DEFAULT_DEADMAN_MS = 500
MAX_DEADMAN_MS = 3_600_000
NO_TRADE = ("pass", "drop")
MAX_RATE = 1_000_000
#: a config is a few kilobytes; anything larger (or endless: /dev/zero) is not one
MAX_CONFIG_BYTES = 1 << 20
FEEDS = ("hft1", "iex", "itch")
DEFAULT_MAX_ORDERS_PER_PACKET = 8
DEFAULT_MAX_SEQ_JUMP = 1_000_000
# The kernel's bounds (ebpf/hft_structs.h), by the names the config's keys use.
MAX_ORDERS_PER_PACKET = MAX_ORDERS_CAP
MAX_FEED_SOURCE_MACS = MAX_SOURCE_MACS
MAX_JOURNAL_MB = 1 << 20  # a terabyte

# A value as it arrives (a TOML value, a command-line word, an editor's text)
# and the key it was given for -> the value in kernel units, or ConfigError.
KeyParser: TypeAlias = Callable[[object, str], int]
# The two engine keys that are a choice among words stay words (mode, on_no_trade).
EngineKeyParser: TypeAlias = Callable[[object, str], int | str]
# A TOML value in the file's own units (bool, int, Decimal, str).
TomlValue: TypeAlias = object
# The feed's and the gateway's keys: a word, an address, a tuple of networks or MACs, or None.
AnyParser: TypeAlias = Callable[[Any, str], Any]


def _shown(value: object) -> str:
    """A value as the user wrote it: TOML numbers arrive as Decimal, not repr."""
    return str(value) if isinstance(value, (Decimal, int)) and not isinstance(value, bool) else repr(value)


def _parse_bool(value: object, key: str) -> int:
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return 1
    if text in ("false", "0", "no", "off"):
        return 0
    raise ConfigError(f"{key}: {_shown(value)} is not true or false")


def _parse_int(value: object, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {_shown(value)} is not a whole number")
    if isinstance(value, int):
        n = value
    elif isinstance(value, (str, Decimal)):
        text = str(value).strip()
        try:
            if not plain_number_text(text):
                raise ValueError
            n = int(text, 10)
        except ValueError:
            raise ConfigError(f"{key}: {_shown(value)} is not a whole number") from None
    else:
        raise ConfigError(f"{key}: {_shown(value)} is not a whole number")
    if n < lo:
        raise ConfigError(f"{key}: {n} is below {lo}")
    if n > hi:
        raise ConfigError(f"{key}: {n} is above {hi}")
    return n


def _parse_price(value: object, key: str) -> int:
    try:
        return parse_price(value, key)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from None


def _parse_money(value: object, key: str, limit: int = U64_MAX) -> int:
    """Dollars with at most 4 decimals, to price units no larger than ``limit``."""
    if isinstance(value, (bool, float)):
        raise ConfigError(f"{key}: give a decimal number")
    text = str(value).strip()
    try:
        if not plain_number_text(text):
            raise ValueError
        dec = Decimal(text)
    except Exception:
        raise ConfigError(f"{key}: {_shown(value)} is not a number") from None
    if not dec.is_finite() or dec < 0:
        raise ConfigError(f"{key}: {value} must be a number >= 0")
    if dec > Decimal(limit).scaleb(-4):
        raise ConfigError(f"{key}: {value} is too large (at most {Decimal(limit).scaleb(-4)})")
    try:
        return decimal_to_units(dec, key)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from None


def money_to_str(units: int) -> str:
    sign = "-" if units < 0 else ""
    return sign + price_to_str(abs(units)) if abs(units) <= U32_MAX else f"{sign}{Decimal(abs(units)).scaleb(-4)}"


# key -> (parser, default in TOML units)
_QTY: KeyParser = lambda v, k: _parse_int(v, k, 0, U32_MAX)
SYMBOL_KEYS: dict[str, tuple[KeyParser, TomlValue]] = {
    "enabled": (_parse_bool, True),
    "buy_target": (_parse_price, "0"),
    "sell_target": (_parse_price, "0"),
    "base_qty": (_QTY, 100),
    "scale_qty": (_QTY, 0),
    "tick_size": (_parse_price, "0.01"),
    "max_order_qty": (_QTY, 1000),
    "max_position": (_QTY, 5000),
    "collar_bps": (lambda v, k: _parse_int(v, k, 1, 10000), 1000),
    "reference_price": (_parse_price, "0"),
    "rate_per_sec": (lambda v, k: _parse_int(v, k, 0, MAX_RATE), 0),
    "burst": (lambda v, k: _parse_int(v, k, 0, MAX_RATE), 0),
    "max_notional": (_parse_money, "0"),
}
PRICE_KEYS = ("buy_target", "sell_target", "tick_size", "reference_price")
MONEY_KEYS = ("max_notional", "loss_limit")


@dataclass(frozen=True)
class SymbolParams:
    """One symbol's parameters in kernel units (prices in 1e-4)."""

    enabled: int
    buy_target: int
    sell_target: int
    base_qty: int
    scale_qty: int
    tick_size: int
    max_order_qty: int
    max_position: int
    collar_bps: int
    reference_price: int
    rate_per_sec: int
    burst: int
    max_notional: int

    def to_toml_values(self) -> dict[str, bool | int | str]:
        """Values in the TOML's units (prices and money as decimal strings)."""
        out: dict[str, bool | int | str] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "enabled":
                out[f.name] = bool(v)
            elif f.name in PRICE_KEYS:
                out[f.name] = price_to_str(v)
            elif f.name in MONEY_KEYS:
                out[f.name] = money_to_str(v)
            else:
                out[f.name] = v
        return out


def _check_symbol_rules(name: str, p: SymbolParams) -> SymbolParams:
    where = f"symbol {name}"
    if p.tick_size < 1:
        raise ConfigError(f"{where}: tick_size must be at least 0.0001")
    if p.sell_target and p.sell_target <= p.buy_target:
        raise ConfigError(
            f"{where}: sell_target {price_to_str(p.sell_target)} must be above buy_target {price_to_str(p.buy_target)}"
        )
    if p.rate_per_sec and p.burst == 0:
        p = replace(p, burst=p.rate_per_sec)  # a bucket of one second unless told
    return p


def symbol_params(name: Symbol | str, values: Mapping[str, object], base: SymbolParams | None = None) -> SymbolParams:
    """Validates ``values`` (TOML units) over ``base`` (or the defaults).
    ``name`` is parsed here when it is not a Symbol yet (free when it is)."""
    name = Symbol(name)
    unknown = sorted(set(values) - set(SYMBOL_KEYS))
    if unknown:
        raise ConfigError(f"symbol {name}: unknown key {unknown[0]!r} (known: {', '.join(SYMBOL_KEYS)})")
    parsed: dict[str, int] = (
        asdict(base) if base else {k: parser(default, k) for k, (parser, default) in SYMBOL_KEYS.items()}
    )
    for key, value in values.items():
        parser, _ = SYMBOL_KEYS[key]
        try:
            parsed[key] = parser(value, key)
        except ConfigError as exc:
            raise ConfigError(f"symbol {name}: {exc}") from None
    return _check_symbol_rules(name, SymbolParams(**parsed))


def _choice(options: tuple[str, ...]) -> Callable[[object, str], str]:
    def parse(value: object, key: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise ConfigError(f"{key}: {_shown(value)} is not one of {', '.join(options)}")
        return value

    return parse


ENGINE_KEYS: dict[str, tuple[EngineKeyParser, TomlValue]] = {
    "feed_port": (lambda v, k: _parse_int(v, k, 1, 65535), DEFAULT_FEED_PORT),
    "mode": (_choice(MODES), "native"),
    "on_no_trade": (_choice(NO_TRADE), "pass"),
    "update_sample": (lambda v, k: _parse_int(v, k, 0, U32_MAX), 64),
    "deadman_ms": (lambda v, k: _parse_int(v, k, MIN_DEADMAN_MS, MAX_DEADMAN_MS), DEFAULT_DEADMAN_MS),
    "rate_per_sec": (lambda v, k: _parse_int(v, k, 0, MAX_RATE), 0),
    "burst": (lambda v, k: _parse_int(v, k, 0, MAX_RATE), 0),
    "max_notional": (_parse_money, "0"),
    # The kernel compares the signed session PnL with -loss_limit: it must fit an s64.
    "loss_limit": (lambda v, k: _parse_money(v, k, S64_MAX), "0"),
    # One order frame holds at most this many orders; a further decision of the packet is batch_full.
    "max_orders_per_packet": (
        lambda v, k: _parse_int(v, k, 1, MAX_ORDERS_PER_PACKET),
        DEFAULT_MAX_ORDERS_PER_PACKET,
    ),
    # Per symbol (hft1) and per channel: a larger jump is rejected seq_jump (0: unlimited).
    "max_seq_jump": (lambda v, k: _parse_int(v, k, 0, U64_MAX), DEFAULT_MAX_SEQ_JUMP),
}


@dataclass(frozen=True)
class EngineParams:
    """The engine-wide settings that change live (``engine set-engine``), but ``mode``."""

    feed_port: int
    mode: str
    on_no_trade: str
    update_sample: int
    deadman_ms: int  # the deadline a controller arms
    rate_per_sec: int
    burst: int
    max_notional: int
    loss_limit: int
    # Defaults here too: views recorded before these keys existed still load.
    max_orders_per_packet: int = DEFAULT_MAX_ORDERS_PER_PACKET
    max_seq_jump: int = DEFAULT_MAX_SEQ_JUMP

    def to_toml_values(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in MONEY_KEYS:
            out[key] = money_to_str(getattr(self, key))
        return out


def _values_of(base: object) -> dict[str, Any]:
    """A dataclass's fields, one level deep (asdict would turn nested values into dicts)."""
    return {f.name: getattr(base, f.name) for f in fields(base)}  # type: ignore[arg-type]


def _parse_keys(
    where: str, keys: dict[str, tuple[Any, Any]], values: Mapping[str, object], base: object | None
) -> dict[str, Any]:
    """``values`` parsed over ``base`` (a dataclass of the same keys) or the defaults."""
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
    if base is not None:
        parsed = _values_of(base)
    else:
        parsed = {k: (None if default is None else parser(default, k)) for k, (parser, default) in keys.items()}
    for key, value in values.items():
        parser, _ = keys[key]
        try:
            parsed[key] = parser(value, key)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return parsed


def engine_params(values: Mapping[str, object], base: EngineParams | None = None) -> EngineParams:
    p = EngineParams(**_parse_keys("engine", ENGINE_KEYS, values, base))
    if p.rate_per_sec and p.burst == 0:
        p = replace(p, burst=p.rate_per_sec)
    return p


# -- the feed: fixed at attach --------------------------------------------------


def _parse_list(parse_one: AnyParser, most: int, empty: str) -> AnyParser:
    """A TOML list of at most ``most`` distinct values, each parsed by ``parse_one``."""

    def parse(value: object, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: give a list in brackets, e.g. {key} = [...], not {_shown(value)}")
        if not value:
            raise ConfigError(f"{key}: an empty list {empty}")
        if len(value) > most:
            raise ConfigError(f"{key}: {len(value)} entries, the engine holds at most {most}")
        out = tuple(parse_one(v, key) for v in value)
        seen: set[object] = set()
        for item in out:
            if item in seen:
                raise ConfigError(f"{key}: {item} is listed twice")
            seen.add(item)
        return out

    return parse


FEED_KEYS: dict[str, tuple[AnyParser, Any]] = {
    # The program is built for one feed (BCC compiles only its decoder).
    "feed": (_choice(FEEDS), "hft1"),
    # Only UDP to this address (a host's or a multicast group) and feed_port is the feed.
    "feed_addr": (parse_feed_address, None),
    # The senders allowed to send the feed, checked first in the kernel (foreign_source).
    "feed_sources": (
        _parse_list(parse_source_network, MAX_FEED_SOURCES, "lets no sender trade; leave feed_sources out instead"),
        None,
    ),
    # ... and their MACs: the sender's source MAC must be one of these too.
    "feed_source_macs": (
        _parse_list(parse_mac, MAX_FEED_SOURCE_MACS, "checks nothing; leave feed_source_macs out instead"),
        None,
    ),
}
#: [engine] keys that a running engine cannot change: it needs a re-attach
ATTACH_ONLY_KEYS = (*FEED_KEYS, "gateway")


@dataclass(frozen=True)
class FeedParams:
    """What the engine reads as its feed, and from whom.  Fixed at attach: the
    program is compiled for ``feed``, the address and the sources are written
    to the kernel before the program sees its first packet."""

    feed: str = "hft1"
    feed_addr: IPv4Address | None = None
    feed_sources: tuple[IPv4Network, ...] | None = None
    feed_source_macs: tuple[str, ...] | None = None

    @property
    def open_feed(self) -> bool:
        """No feed_sources: any sender can trade."""
        return self.feed_sources is None

    def to_toml_values(self) -> dict[str, object]:
        return {
            "feed": self.feed,
            "feed_addr": str(self.feed_addr) if self.feed_addr else None,
            "feed_sources": [str(n) for n in self.feed_sources] if self.feed_sources else None,
            "feed_source_macs": list(self.feed_source_macs) if self.feed_source_macs else None,
        }


def feed_params(values: Mapping[str, object]) -> FeedParams:
    return FeedParams(**_parse_keys("engine", FEED_KEYS, values, None))


def refuse_attach_only_keys(values: Mapping[str, object]) -> None:
    """A running engine's feed, sources and gateway change only with a re-attach: say so."""
    for key in values:
        if key in ATTACH_ONLY_KEYS or key.startswith("gateway."):
            raise ConfigError(
                f"engine: {key} is fixed at attach; changing it needs a re-attach "
                "(hft-tui engine detach, then engine attach with the new config)"
            )


# -- the order gateway: fixed at attach ------------------------------------------

_PORT: AnyParser = lambda v, k: _parse_int(v, k, 1, 65535)
GATEWAY_KEYS: dict[str, tuple[AnyParser, Any]] = {
    "ip": (parse_unicast, None),
    "port": (_PORT, None),
    "mac": (parse_mac, None),  # without it: resolved at attach (neighbour table, ARP)
    "src_ip": (parse_unicast, None),  # without it: the interface's address
    "src_port": (_PORT, None),  # without it: feed_port
}


@dataclass(frozen=True)
class Gateway:
    """Where every order frame goes.  What the config leaves out is resolved at attach."""

    ip: IPv4Address
    port: int
    mac: str | None = None
    src_ip: IPv4Address | None = None
    src_port: int | None = None

    @property
    def resolved(self) -> bool:
        return self.mac is not None and self.src_ip is not None and self.src_port is not None

    def as_dict(self) -> dict[str, object]:
        """As ``engine status --json`` shows it: {ip, port, mac, src_ip, src_port}."""
        return {
            "ip": str(self.ip),
            "port": self.port,
            "mac": self.mac,
            "src_ip": str(self.src_ip) if self.src_ip else None,
            "src_port": self.src_port,
        }


def gateway_params(table: object) -> Gateway:
    if not isinstance(table, dict):
        raise ConfigError("[engine.gateway] must be a table of key = value lines")
    parsed = _parse_keys("engine.gateway", GATEWAY_KEYS, table, None)
    for key in ("ip", "port"):
        if parsed[key] is None:
            raise ConfigError(f"engine.gateway: {key} is required (orders go to ip:port)")
    return Gateway(**parsed)


# -- the journal ------------------------------------------------------------------

JOURNAL_KEYS: dict[str, tuple[AnyParser, Any]] = {
    # The journal's size cap: it rotates to numbered files before it.
    "journal_max_mb": (lambda v, k: _parse_int(v, k, 1, MAX_JOURNAL_MB), 1024),
    # Above this rate rejects are kept as counts per reason and symbol per interval (orders always whole).
    "journal_reject_rows_per_s": (lambda v, k: _parse_int(v, k, 0, U32_MAX), 5000),
}


@dataclass(frozen=True)
class JournalParams:
    """How the controller keeps the journal (not the kernel's: no map holds them)."""

    journal_max_mb: int = 1024
    journal_reject_rows_per_s: int = 5000


def journal_params(values: Mapping[str, object], base: JournalParams | None = None) -> JournalParams:
    return JournalParams(**_parse_keys("engine", JOURNAL_KEYS, values, base))


# -- a whole config -----------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    engine: EngineParams
    symbols: dict[Symbol, SymbolParams]
    feed: FeedParams = field(default_factory=FeedParams)
    gateway: Gateway | None = None
    journal: JournalParams = field(default_factory=JournalParams)

    def params(self, name: str) -> SymbolParams | None:
        """A symbol's parameters by a name that need not be a Symbol yet (one
        read off the wire, say); None when the config has no such symbol,
        which is so of every name that is not a valid symbol."""
        try:
            return self.symbols.get(Symbol(name))
        except SymbolError:
            return None


def _engine_table(table: dict[str, Any]) -> tuple[EngineParams, FeedParams, Gateway | None, JournalParams]:
    """[engine] split by who holds each key: the kernel (live), the attach, the journal."""
    groups: tuple[dict[str, tuple[Any, Any]], ...] = (ENGINE_KEYS, FEED_KEYS, JOURNAL_KEYS)
    unknown = sorted(set(table) - {k for keys in groups for k in keys} - {"gateway"})
    if unknown:
        known = [*ENGINE_KEYS, *FEED_KEYS, *JOURNAL_KEYS, "[engine.gateway]"]
        raise ConfigError(f"engine: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    engine, feed, journal = (
        engine_params({k: v for k, v in table.items() if k in ENGINE_KEYS}),
        feed_params({k: v for k, v in table.items() if k in FEED_KEYS}),
        journal_params({k: v for k, v in table.items() if k in JOURNAL_KEYS}),
    )
    gateway = gateway_params(table["gateway"]) if "gateway" in table else None
    return engine, feed, gateway, journal


def parse_config(data: Mapping[str, object]) -> Config:
    unknown = sorted(set(data) - {"engine", "symbols"})
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (known: [engine], [engine.gateway], [symbols.NAME])")
    engine_table = data.get("engine", {})
    if not isinstance(engine_table, dict):
        raise ConfigError("[engine] must be a table of key = value lines")
    engine, feed, gateway, journal = _engine_table(engine_table)
    symbols_table = data.get("symbols", {})
    if not isinstance(symbols_table, dict):
        raise ConfigError("[symbols] must be a table of [symbols.NAME] tables")
    if len(symbols_table) > MAX_SYMBOLS:
        raise ConfigError(f"{len(symbols_table)} symbols; the engine holds at most {MAX_SYMBOLS}")
    symbols: dict[Symbol, SymbolParams] = {}
    for raw_name, values in symbols_table.items():
        if not isinstance(values, dict):
            raise ConfigError(f"symbols.{raw_name} must be a table")
        name = Symbol(raw_name)  # the edge: a config file's table name
        symbols[name] = symbol_params(name, values)
    return Config(engine=engine, symbols=symbols, feed=feed, gateway=gateway, journal=journal)


def load_config(path: str | Path) -> Config:
    """A config file: a regular file of at most MAX_CONFIG_BYTES (never a FIFO,
    a device or a directory: safefile.read_regular_file), parsed and checked."""
    path = Path(path)
    try:
        data = tomllib.loads(read_regular_file(path, MAX_CONFIG_BYTES).decode(), parse_float=Decimal)
    except PathError as exc:
        raise ConfigError(f"config file {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (a TOML file is UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def default_config() -> Config:
    return parse_config({})


def parse_deadman_ms(value: object) -> int:
    """A dead-man deadline given outside a config (``--deadman MS``)."""
    return _parse_int(value, "dead-man deadline (ms)", MIN_DEADMAN_MS, MAX_DEADMAN_MS)


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``key=value`` command-line words to a dict (values stay strings)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{pair!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out
