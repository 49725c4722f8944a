"""hft_tui.config: every bad value is one clear ConfigError and reaches no map.

The last tests go through a real attached engine (lab 20): a refused
``set_symbol``/``set_engine`` leaves the kernel's maps byte-for-byte as
they were.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from hft_tui import engine, lab
from hft_tui.config import (
    ENGINE_KEYS,
    SYMBOL_KEYS,
    ConfigError,
    engine_params,
    load_config,
    parse_assignments,
    parse_config,
    symbol_params,
)
from hft_tui.constants import DEFAULT_FEED_PORT, MAX_SYMBOLS
from hft_tui.paths import DEMO_CONFIG
from hft_tui.protocol import parse_price

pytestmark = pytest.mark.pure  # no root, no kernel, but for the tests marked kernel at the end

# -- symbol values ------------------------------------------------------------

GOOD_SYMBOL_VALUES = [
    ("buy_target", "190.25", 1902500),
    ("buy_target", Decimal("190.25"), 1902500),
    ("buy_target", 190, 1900000),
    ("sell_target", "0", 0),
    ("tick_size", "0.01", 100),
    ("tick_size", "0.0001", 1),
    ("reference_price", "415.1", 4151000),
    ("base_qty", "250", 250),
    ("base_qty", 0, 0),
    ("max_position", 4294967295, 4294967295),
    ("collar_bps", "1", 1),
    ("collar_bps", 10000, 10000),
    ("rate_per_sec", "1000000", 1000000),
    ("max_notional", "1000000", 10_000_000_000),
    ("max_notional", Decimal("0.0001"), 1),
    ("enabled", False, 0),
    ("enabled", "off", 0),
    ("enabled", "yes", 1),
]


@pytest.mark.parametrize("key,value,units", GOOD_SYMBOL_VALUES, ids=[f"{k}={v!r}" for k, v, _ in GOOD_SYMBOL_VALUES])
def test_symbol_value_parses_to_kernel_units(key, value, units):
    values = {key: value}
    if key == "buy_target":
        values["sell_target"] = "0"
    assert getattr(symbol_params("AAPL", values), key) == units


BAD_SYMBOL_VALUES = [
    # prices
    ({"buy_target": "abc"}, "buy_target: 'abc' is not a number"),
    ({"buy_target": "-1"}, "buy_target: -1 is negative"),
    ({"buy_target": "190.00001"}, "more than 4 decimal places"),
    ({"buy_target": "429496.7296"}, "above the largest price"),
    ({"buy_target": 190.25}, "not float"),
    ({"sell_target": "1O0"}, "sell_target: '1O0' is not a number"),
    ({"reference_price": "-5"}, "reference_price: -5 is negative"),
    ({"tick_size": "0"}, "tick_size must be at least 0.0001"),
    ({"tick_size": "0.00001"}, "more than 4 decimal places"),
    ({"tick_size": "x"}, "tick_size: 'x' is not a number"),
    ({"buy_target": "1_0"}, "buy_target: '1_0' is not a number"),  # Decimal() takes it as 10
    ({"buy_target": "\u0661\u0662\u0663"}, "is not a number"),  # Arabic-Indic digits: Decimal() takes 123
    # quantities
    ({"base_qty": "ten"}, "base_qty: 'ten' is not a whole number"),
    ({"base_qty": "-5"}, "base_qty: -5 is below 0"),
    ({"base_qty": "1.5"}, "base_qty: '1.5' is not a whole number"),
    ({"base_qty": Decimal("1.5")}, "is not a whole number"),
    ({"base_qty": 1.0}, "is not a whole number"),
    ({"base_qty": True}, "is not a whole number"),
    ({"base_qty": "1_000"}, "base_qty: '1_000' is not a whole number"),  # int() takes it
    ({"max_position": "\u0661\u0660"}, "is not a whole number"),
    ({"scale_qty": -1}, "scale_qty: -1 is below 0"),
    ({"max_order_qty": 2**32}, "max_order_qty: 4294967296 is above 4294967295"),
    ({"max_position": "99999999999"}, "max_position: 99999999999 is above 4294967295"),
    # risk
    ({"collar_bps": 0}, "collar_bps: 0 is below 1"),
    ({"collar_bps": "10001"}, "collar_bps: 10001 is above 10000"),
    ({"collar_bps": "wide"}, "collar_bps: 'wide' is not a whole number"),
    ({"rate_per_sec": -1}, "rate_per_sec: -1 is below 0"),
    ({"rate_per_sec": 1_000_001}, "rate_per_sec: 1000001 is above 1000000"),
    ({"burst": "lots"}, "burst: 'lots' is not a whole number"),
    ({"max_notional": "-1"}, "max_notional: -1 must be a number >= 0"),
    ({"max_notional": "1.00001"}, "max_notional: 1.00001 has more than 4 decimal places"),
    ({"max_notional": "abc"}, "max_notional: 'abc' is not a number"),
    ({"max_notional": "5_0"}, "max_notional: '5_0' is not a number"),
    ({"max_notional": 1.5}, "max_notional: give a decimal number"),
    ({"max_notional": "1e30"}, "max_notional: 1e30 is too large"),
    ({"enabled": "maybe"}, "enabled: 'maybe' is not true or false"),
    # rules between values
    ({"buy_target": "190.25", "sell_target": "190.00"}, "sell_target 190.0000 must be above buy_target 190.2500"),
    ({"buy_target": "190.25", "sell_target": "190.25"}, "sell_target 190.2500 must be above buy_target 190.2500"),
    # keys
    ({"buy_targte": "1"}, "unknown key 'buy_targte'"),
    ({"mode": "native"}, "unknown key 'mode'"),
]


@pytest.mark.parametrize("values,message", BAD_SYMBOL_VALUES, ids=[repr(v) for v, _ in BAD_SYMBOL_VALUES])
def test_bad_symbol_value_is_one_clear_config_error(values, message):
    with pytest.raises(ConfigError) as exc:
        symbol_params("AAPL", values)
    text = str(exc.value)
    assert text.startswith("symbol AAPL: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("name", ["", "TOOLONGNAME", "AA PL", "A/B"])
def test_bad_symbol_name_is_a_config_error(name):
    with pytest.raises(ConfigError, match="invalid symbol"):
        symbol_params(name, {})


def test_symbol_defaults_cover_every_key():
    p = symbol_params("AAPL", {})
    assert set(vars(p)) == set(SYMBOL_KEYS)
    assert (p.enabled, p.tick_size, p.collar_bps) == (1, parse_price("0.01"), 1000)


def test_symbol_values_change_only_what_they_name_over_a_base():
    base = symbol_params("AAPL", {"buy_target": "100", "sell_target": "101", "base_qty": 7})
    p = symbol_params("AAPL", {"base_qty": 9}, base=base)
    assert (p.buy_target, p.sell_target, p.base_qty) == (1000000, 1010000, 9)


def test_a_rate_without_a_burst_gets_a_one_second_burst():
    assert symbol_params("AAPL", {"rate_per_sec": 50}).burst == 50
    assert symbol_params("AAPL", {"rate_per_sec": 50, "burst": 5}).burst == 5
    assert engine_params({"rate_per_sec": 70}).burst == 70


def test_the_rules_apply_over_a_base_too():
    base = symbol_params("AAPL", {"buy_target": "100", "sell_target": "101"})
    with pytest.raises(ConfigError, match="must be above buy_target"):
        symbol_params("AAPL", {"buy_target": "102"}, base=base)


# -- engine values -------------------------------------------------------------

GOOD_ENGINE_VALUES = [
    ("feed_port", "9001", 9001),
    ("feed_port", 65535, 65535),
    ("mode", "generic", "generic"),
    ("on_no_trade", "drop", "drop"),
    ("update_sample", 0, 0),
    ("deadman_ms", "100", 100),
    ("deadman_ms", "3600000", 3_600_000),
    ("max_notional", "5000000", 50_000_000_000),
    ("loss_limit", Decimal("250000.5"), 2_500_005_000),
    ("loss_limit", "922337203685477.5807", 2**63 - 1),  # the largest the kernel's signed compare takes
]


@pytest.mark.parametrize("key,value,parsed", GOOD_ENGINE_VALUES, ids=[f"{k}={v!r}" for k, v, _ in GOOD_ENGINE_VALUES])
def test_engine_value_parses(key, value, parsed):
    assert getattr(engine_params({key: value}), key) == parsed


BAD_ENGINE_VALUES = [
    ({"feed_port": 0}, "feed_port: 0 is below 1"),
    ({"feed_port": 65536}, "feed_port: 65536 is above 65535"),
    ({"feed_port": "http"}, "feed_port: 'http' is not a whole number"),
    ({"feed_port": "-9000"}, "feed_port: -9000 is below 1"),
    ({"mode": "turbo"}, "mode: 'turbo' is not one of native, generic"),
    ({"mode": 1}, "mode: 1 is not one of native, generic"),
    ({"on_no_trade": "reject"}, "on_no_trade: 'reject' is not one of pass, drop"),
    ({"update_sample": -1}, "update_sample: -1 is below 0"),
    ({"deadman_ms": 0}, "deadman_ms: 0 is below 100"),
    ({"deadman_ms": 99}, "deadman_ms: 99 is below 100"),
    ({"deadman_ms": 3_600_001}, "deadman_ms: 3600001 is above 3600000"),
    ({"deadman_ms": "soon"}, "deadman_ms: 'soon' is not a whole number"),
    ({"rate_per_sec": "1.5"}, "rate_per_sec: '1.5' is not a whole number"),
    ({"burst": -2}, "burst: -2 is below 0"),
    ({"max_notional": "-0.0001"}, "max_notional: -0.0001 must be a number >= 0"),
    ({"loss_limit": "1.23456"}, "loss_limit: 1.23456 has more than 4 decimal places"),
    ({"loss_limit": "lots"}, "loss_limit: 'lots' is not a number"),
    # 2^63 units would turn negative in the kernel's signed compare
    ({"loss_limit": "922337203685477.5808"}, "loss_limit: 922337203685477.5808 is too large"),
    ({"loss_limit": "1844674407370955.1615"}, "loss_limit: 1844674407370955.1615 is too large"),
    ({"kill": "on"}, "unknown key 'kill'"),
]


@pytest.mark.parametrize("values,message", BAD_ENGINE_VALUES, ids=[repr(v) for v, _ in BAD_ENGINE_VALUES])
def test_bad_engine_value_is_one_clear_config_error(values, message):
    with pytest.raises(ConfigError) as exc:
        engine_params(values)
    text = str(exc.value)
    assert text.startswith("engine: ")
    assert message in text
    assert "\n" not in text


def test_engine_defaults_cover_every_key():
    p = engine_params({})
    assert set(vars(p)) == set(ENGINE_KEYS)
    assert (p.feed_port, p.mode, p.on_no_trade) == (DEFAULT_FEED_PORT, "native", "pass")


# -- whole configs -------------------------------------------------------------

BAD_CONFIGS = [
    ({"risk": {}}, "unknown section [risk]"),
    ({"symbols": "AAPL"}, "[symbols] must be a table"),
    ({"symbols": {"AAPL": 5}}, "symbols.AAPL must be a table"),
    ({"symbols": {"TOO LONG": {}}}, "invalid symbol 'TOO LONG'"),
    ({"symbols": {"AAPL": {"base_qty": "x"}}}, "symbol AAPL: base_qty: 'x' is not a whole number"),
    ({"engine": {"feed_port": 0}}, "engine: feed_port: 0 is below 1"),
    ({"engine": 5}, "[engine] must be a table"),
    ({"engine": "x"}, "[engine] must be a table"),
    ({"symbols": {f"S{i}": {} for i in range(MAX_SYMBOLS + 1)}}, f"the engine holds at most {MAX_SYMBOLS}"),
]


@pytest.mark.parametrize("data,message", BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_bad_config_is_one_clear_config_error(data, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_max_symbols_fit():
    assert len(parse_config({"symbols": {f"S{i}": {} for i in range(MAX_SYMBOLS)}}).symbols) == MAX_SYMBOLS


def test_demo_config_loads():
    cfg = load_config(DEMO_CONFIG)
    assert sorted(cfg.symbols) == ["AAPL", "MSFT", "NVDA", "SPY"]
    assert cfg.symbols["AAPL"].buy_target == parse_price("190.25")
    for name, p in cfg.symbols.items():
        assert p.sell_target > p.buy_target, name
    assert cfg.engine.feed_port == DEFAULT_FEED_PORT


BAD_TOML = [
    ("[symbols.AAPL]\nbuy_target = 190.123456\n", "buy_target: 190.123456 has more than 4 decimal places"),
    ("[symbols.AAPL]\nbase_qty = 1.5\n", "is not a whole number"),
    ("[symbols.AAPL]\nbuy_target = -3\n", "buy_target: -3 is negative"),
    ("[symbols.AAPL]\nenabled = 3\n", "enabled: 3 is not true or false"),
    ('[engine]\non_no_trade = "bounce"\n', "on_no_trade: 'bounce' is not one of pass, drop"),
    ("[symbols.AAPL\n", "Expected ']'"),
    ("[symbols.AAPL]\nbuy_target = \n", "Invalid value"),
    ("[risk]\nx = 1\n", "unknown section [risk]"),
    ("engine = 5\n", "[engine] must be a table"),
]


def test_a_config_file_that_is_not_utf8_is_one_clear_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[symbols.AAPL]\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize("text,message", BAD_TOML, ids=[m for _, m in BAD_TOML])
def test_bad_toml_file_is_one_clear_config_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("line", ["base_qty = 1.5", "collar_bps = 2.5", "max_order_qty = 10.25"])
def test_toml_number_is_quoted_as_written_not_as_a_python_repr(tmp_path, line):
    path = tmp_path / "frac.toml"
    path.write_text(f"[symbols.AAPL]\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "Decimal(" not in str(exc.value)
    assert line.split(" = ")[1] in str(exc.value)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "words,parsed",
    [
        (["buy_target=190.25"], {"buy_target": "190.25"}),
        ([" base_qty = 5 ", "enabled=off"], {"base_qty": "5", "enabled": "off"}),
        (["reference_price="], {"reference_price": ""}),
    ],
)
def test_assignments_parse(words, parsed):
    assert parse_assignments(words) == parsed


@pytest.mark.parametrize("word", ["buy_target", "=5", " =5"])
def test_bad_assignment_is_a_config_error(word):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_assignments([word])


# -- through a real engine: a refused change leaves the kernel maps alone --------

LAB_NUMBER = 20
ATTACHED_CONFIG = {
    "engine": {"feed_port": 9000},
    "symbols": {"AAPL": {"buy_target": "190.25", "sell_target": "190.75", "base_qty": 100}},
}


@pytest.fixture(scope="module")
def attached():
    """An engine attached to lab 20's veth; detached and the lab removed after."""
    L = lab.Lab.numbered(LAB_NUMBER)
    lab.down(L, quiet=True)
    lab.up(L)
    try:
        engine.attach(L.engine_iface, parse_config(ATTACHED_CONFIG), mode="native")
        handle = engine.open_engine(L.engine_iface)
        yield handle
        handle.close()
    finally:
        lab.down(L, quiet=True)


def _raw_maps(handle) -> tuple[bytes, ...]:
    cfg, st = handle.maps.read_symbol("AAPL")
    return bytes(cfg), bytes(st), bytes(handle.maps.read_global()), tuple(handle.maps.symbol_names())


REFUSED_SET_SYMBOL = [
    ("AAPL", {"buy_target": "abc"}),
    ("AAPL", {"buy_target": "-1"}),
    ("AAPL", {"buy_target": "190.123456"}),
    ("AAPL", {"max_position": str(2**32)}),
    ("AAPL", {"sell_target": "190.00"}),  # below the running buy_target
    ("AAPL", {"tick_size": "0"}),
    ("AAPL", {"collar_bps": "0"}),
    ("AAPL", {"base_qty": "5", "bogus": "1"}),  # one bad key spoils the whole change
    ("AAPL", {"base_qty": "5", "enabled": "perhaps"}),
    ("TOO LONG", {"base_qty": "5"}),
    ("NEW", {"buy_target": "x"}),  # a refused new symbol is not added
]


@pytest.mark.kernel
@pytest.mark.parametrize("name,values", REFUSED_SET_SYMBOL, ids=[f"{n}:{v}" for n, v in REFUSED_SET_SYMBOL])
def test_refused_set_symbol_leaves_the_kernel_maps_unchanged(attached, name, values):
    before = _raw_maps(attached)
    with pytest.raises(ConfigError) as exc:
        attached.set_symbol(name, values)
    assert "\n" not in str(exc.value)
    assert _raw_maps(attached) == before


REFUSED_SET_ENGINE = [
    {"feed_port": "0"},
    {"on_no_trade": "maybe"},
    {"loss_limit": "-1"},
    {"mode": "generic"},
    {"rate_per_sec": "10", "nope": "1"},
]


@pytest.mark.kernel
@pytest.mark.parametrize("values", REFUSED_SET_ENGINE, ids=repr)
def test_refused_set_engine_leaves_the_kernel_maps_unchanged(attached, values):
    before = _raw_maps(attached)
    with pytest.raises(ConfigError):
        attached.set_engine(values)
    assert _raw_maps(attached) == before


@pytest.mark.kernel
def test_accepted_set_symbol_writes_the_map_and_bumps_the_version(attached):
    version = attached.maps.read_global().config_version
    attached.set_symbol("AAPL", {"base_qty": "123"})
    cfg, _ = attached.maps.read_symbol("AAPL")
    assert cfg.base_qty == 123
    assert cfg.buy_target == parse_price("190.25")  # untouched keys keep their running values
    assert attached.maps.read_global().config_version == version + 1


@pytest.mark.kernel
def test_removing_an_unknown_symbol_is_an_engine_error_and_changes_nothing(attached):
    before = _raw_maps(attached)
    with pytest.raises(engine.EngineError, match="not configured"):
        attached.remove_symbol("ZZZZ")
    assert _raw_maps(attached) == before
