"""Bad input in every field: a clear message beside the field, nothing written (lab 36).

Every symbol parameter and every engine-wide setting gets letters, a
negative number, too many decimals and an overflow; the sell target gets a
value below the buy target.  After each, the kernel's maps are byte for byte
what they were and the config version did not move.
"""

from __future__ import annotations

import time

import pytest
from textual.coordinate import Coordinate

from hft_tui.app.app import HftApp
from hft_tui.app.session import EngineSession
from hft_tui.config import ENGINE_KEYS, SYMBOL_KEYS
from hft_tui.demo.lab_session import LabEngine

SIZE = (160, 48)
# Few ticks: each key press waits for the app to be idle, and these tests type a lot.
POLL_HZ = 2
BAD_VALUES = {
    "letters": "abc",
    "negative": "-5",
    "too many decimals": "1.00001",
    "overflow": "99999999999999999999999",
}


@pytest.fixture(scope="module")
def lab36():
    with LabEngine(36) as le:
        yield le


def kernel_bytes(le: LabEngine) -> tuple[bytes, int, bytes]:
    """The AAPL config, the config version and the engine-wide config, as raw bytes."""
    with le.handle() as h:
        cfg, _ = h.maps.read_symbol("AAPL")
        g = h.maps.read_global()
        return bytes(cfg), g.config_version, bytes(g)


async def supervised_app(le: LabEngine, pilot, app) -> None:
    deadline = time.monotonic() + 20
    while not (app.view is not None and app.session.poller is not None and app.session.poller.ticks > 1):
        assert time.monotonic() < deadline, "no supervision"
        await pilot.pause(0.05)


def message_beside_field(app) -> tuple[str, set[str]]:
    msg = app.params_pane.editor.query_one("#edit-message")
    return str(msg.render()), set(msg.classes)


@pytest.mark.parametrize("kind", list(BAD_VALUES))
async def test_bad_symbol_values_are_refused_beside_the_field_and_never_written(lab36, kind):
    bad = BAD_VALUES[kind]
    app = HftApp(EngineSession(poll_hz=POLL_HZ), iface=lab36.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervised_app(lab36, pilot, app)
        await pilot.press("2")
        table = app.main.query_one("#symbol-params")
        row = [str(k.value) for k in table.rows].index("AAPL")
        for col, key in enumerate(SYMBOL_KEYS, start=1):
            before = kernel_bytes(lab36)
            table.focus()
            table.cursor_coordinate = Coordinate(row, col)
            await pilot.press("enter")
            editor = app.params_pane.editor
            assert editor.key == key
            await pilot.press(*bad)  # replaces the selected current value
            assert editor.input.value == bad
            text, classes = message_beside_field(app)
            assert "-error" in classes, f"{key}={bad!r} was not flagged as typed: {text}"
            assert key in text and "AAPL" in text, text
            await pilot.press("enter")
            text, classes = message_beside_field(app)
            assert "-error" in classes and "nothing written" in text, f"{key}={bad!r}: {text}"
            assert kernel_bytes(lab36) == before, f"{key}={bad!r} reached the kernel"
            await pilot.press("escape")


async def test_a_sell_target_below_the_buy_target_is_refused(lab36):
    app = HftApp(EngineSession(poll_hz=POLL_HZ), iface=lab36.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervised_app(lab36, pilot, app)
        await pilot.press("2")
        table = app.main.query_one("#symbol-params")
        row = [str(k.value) for k in table.rows].index("AAPL")
        before = kernel_bytes(lab36)
        table.cursor_coordinate = Coordinate(row, list(SYMBOL_KEYS).index("sell_target") + 1)
        await pilot.press("enter", *"190.0000")
        text, classes = message_beside_field(app)
        assert "-error" in classes and "must be above buy_target 190.2500" in text, text
        await pilot.press("enter")
        assert kernel_bytes(lab36) == before


@pytest.mark.parametrize("kind", list(BAD_VALUES))
async def test_bad_engine_settings_are_refused_beside_the_field_and_never_written(lab36, kind):
    bad = BAD_VALUES[kind]
    app = HftApp(EngineSession(poll_hz=POLL_HZ), iface=lab36.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervised_app(lab36, pilot, app)
        await pilot.press("2")
        table = app.main.query_one("#engine-params")
        for row, key in enumerate(ENGINE_KEYS):
            before = kernel_bytes(lab36)
            table.focus()
            table.cursor_coordinate = Coordinate(row, 0)
            await pilot.press("enter")
            editor = app.params_pane.editor
            assert editor.key == key and editor.symbol is None
            await pilot.press(*bad, "enter")
            text, classes = message_beside_field(app)
            assert "-error" in classes and key in text and "nothing written" in text, f"{key}={bad!r}: {text}"
            assert kernel_bytes(lab36) == before, f"engine {key}={bad!r} reached the kernel"
            await pilot.press("escape")


async def test_a_valid_value_after_a_bad_one_is_written(lab36):
    app = HftApp(EngineSession(poll_hz=POLL_HZ), iface=lab36.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervised_app(lab36, pilot, app)
        await pilot.press("2")
        table = app.main.query_one("#symbol-params")
        row = [str(k.value) for k in table.rows].index("AAPL")
        table.cursor_coordinate = Coordinate(row, list(SYMBOL_KEYS).index("max_position") + 1)
        await pilot.press("enter", *"12x", "enter")
        assert "-error" in message_beside_field(app)[1]
        await pilot.press("backspace", "enter")
        with lab36.handle() as h:
            assert h.symbol("AAPL").max_position == 12
        text, classes = message_beside_field(app)
        assert "-ok" in classes and "max_position = 12" in text


# -- the Add-symbol dialog (lab 66) --------------------------------------------------


@pytest.fixture(scope="module")
def lab66():
    with LabEngine(66) as le:
        yield le


# case -> (name typed, {field: value typed}, the field refused, what its message says)
BAD_NEW_SYMBOLS = {
    "letters": ("NEWX", {"buy_target": "abc"}, "buy_target", "buy_target: 'abc' is not a number"),
    "negative": ("NEWX", {"base_qty": "-5"}, "base_qty", "base_qty: -5 is below 0"),
    "too many decimals": (
        "NEWX",
        {"buy_target": "1.00001"},
        "buy_target",
        "buy_target: 1.00001 has more than 4 decimal places",
    ),
    "overflow": (
        "NEWX",
        {"max_position": "99999999999999999999999"},
        "max_position",
        "max_position: 99999999999999999999999 is above 4294967295",
    ),
    "sell below buy": (
        "NEWX",
        {"buy_target": "250", "sell_target": "249"},
        "sell_target",
        "sell_target 249.0000 must be above buy_target 250.0000",
    ),
    "bad symbol name": ("TOO-LONG-NAME", {"buy_target": "250"}, "name", "invalid symbol 'TOO-LONG-NAME'"),
    "no symbol name": ("", {"buy_target": "250"}, "name", "give the symbol a name"),
}


def kernel_symbols(le: LabEngine) -> tuple[list[str], int]:
    with le.handle() as h:
        return sorted(h.maps.symbol_names()), h.maps.read_global().config_version


@pytest.mark.parametrize("case", list(BAD_NEW_SYMBOLS))
async def test_the_add_symbol_dialog_refuses_bad_input_beside_the_field_and_writes_nothing(lab66, case):
    from hft_tui.app.dialogs import AddSymbolScreen

    name, values, field, says = BAD_NEW_SYMBOLS[case]
    app = HftApp(EngineSession(poll_hz=POLL_HZ), iface=lab66.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervised_app(lab66, pilot, app)
        before = kernel_symbols(lab66)
        await pilot.press("2", "n")
        dialog = app.screen
        assert isinstance(dialog, AddSymbolScreen)
        await pilot.press(*name)  # the name field has the focus
        for key, value in values.items():
            dialog.query_one(f"#new-{key}").focus()
            await pilot.press(*value)  # replaces the default shown
            assert dialog.query_one(f"#new-{key}").value == value
        await pilot.press("enter")
        assert app.screen is dialog  # still open: nothing to add
        assert says in dialog.problem(field), dialog.problem(field)
        assert dialog.query_one(f"#new-{field}").has_class("-invalid")
        others = [f for f in ("name", *values) if f != field]
        assert all(not dialog.problem(f) for f in others), [dialog.problem(f) for f in others]
        message = str(dialog.query_one("#add-message").render())
        assert says in message and message.endswith("(nothing written)")
        assert kernel_symbols(lab66) == before
        await pilot.press("escape")
        assert not isinstance(app.screen, AddSymbolScreen)
    assert kernel_symbols(lab66) == before
