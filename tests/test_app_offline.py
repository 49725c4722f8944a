"""The app without a kernel: recorded engine views played through a stand-in session.

The real app (screens, keys, panes, dialogs, validation, crash handling) runs
in process, as harlequin runs its snapshots; the engine is a stand-in
session that plays views a real supervisor sent (tests/data/engine_views.json,
see tests/recorded.py) and records what the app asked of it.  No root, no
BCC, no lab: these run as a normal user (the `pure` marker).  The same
keys against the real engine: test_app_pilot.py and the other test_app_*.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import signal
import tomllib
from decimal import Decimal

import pytest
from recorded import Recording, load, view_from_json
from stand_in import StandInSession, supervising
from textual.coordinate import Coordinate

from hft_tui import paths
from hft_tui.app import run_app
from hft_tui.app.app import HftApp
from hft_tui.app.dialogs import AddSymbolScreen, ConfirmScreen, QuitScreen
from hft_tui.app.screens.help import HelpScreen, key_name
from hft_tui.app.screens.main import TABS
from hft_tui.app.session import Session
from hft_tui.config import ENGINE_KEYS, SYMBOL_KEYS, load_config, parse_config
from hft_tui.errors import EngineError

pytestmark = pytest.mark.pure

SIZE = (160, 48)


@pytest.fixture(scope="module")
def recording() -> Recording:
    return load()


@pytest.fixture
def session(recording) -> StandInSession:
    return StandInSession(recording)


@pytest.fixture
def make_app(tmp_path):
    def make(session, **kwargs) -> HftApp:
        return HftApp(session, crash_log=tmp_path / "app-crash.log", **kwargs)

    return make


def text_of(app: HftApp, selector: str) -> str:
    return str(app.main.query_one(selector).render())


def alert_text(app: HftApp) -> str:
    return "\n".join(line.plain for line in app.main.query_one("#alerts").lines)


# -- the stand-in keeps the session's contract --------------------------------------


def test_the_stand_in_has_every_method_of_the_session_with_the_same_parameters():
    members = [name for name in vars(Session) if not name.startswith("_") and name != "deterministic"]
    assert members, "the Session protocol lists nothing"
    for name in members:
        ours, theirs = getattr(Session, name), getattr(StandInSession, name)
        if isinstance(ours, property):
            assert isinstance(theirs, property), name
        else:
            assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters), name


def test_the_recorded_views_are_a_real_engines_after_the_snapshot_feed(recording):
    assert len(recording.views) >= 2 and {v.iface for v in recording.views} == {recording.iface}
    last = recording.views[-1]
    assert last.attached and last.kill_state == "off" and last.orders > 0
    demo = load_config(paths.DEMO_CONFIG)
    assert [s.name for s in last.symbols] == list(demo.symbols)


# -- showing an engine ----------------------------------------------------------------


async def test_an_engine_taken_over_is_shown_from_its_views(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        assert session.calls[0] == ("take_over", recording.iface)
        last = recording.views[-1]
        assert app.view == last
        assert app.main.query_one("#tabs").active == "trading"
        headline = text_of(app, "#headline")
        assert "TRADING native" in headline and f"orders {last.orders:,}" in headline
        book = text_of(app, "#book")
        assert all(s.name in book for s in last.symbols)
        assert f"supervising the engine on {recording.iface}" in alert_text(app)
        assert not app.main.has_class("-killed")


async def test_each_tab_has_its_key_and_gives_the_keys_to_its_table(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        for tab in (*TABS[1:], TABS[0]):
            await pilot.press(tab.key)
            assert app.main.query_one("#tabs").active == tab.id
            target = app.main.query_one(tab.focus)
            # The Risk tab's alert history is a Static: nothing there takes keys (as before).
            assert app.focused is target if target.can_focus else tab.id == "risk"


async def test_an_attached_engine_is_offered_for_take_over_at_start(session, recording, make_app):
    app = make_app(session, iface=recording.iface)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert session.calls == []
        await pilot.press("y")
        await supervising(pilot)
        assert session.called("take_over") == [("take_over", recording.iface)]


# -- the kill switch -------------------------------------------------------------------


async def test_ctrl_k_kills_through_the_session_from_anywhere_and_the_killed_theme_shows(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        await pilot.press("ctrl+k")
        assert session.called("kill") == [("kill",)]
        assert app.main.has_class("-killed")
        banner = app.main.query_one("#killed-banner")
        assert banner.display and f"KILLED by the operator: {recording.iface} sends no orders" in str(banner.render())
        assert "KILLED (operator)" in text_of(app, "#headline") and "KILLED (operator)" in text_of(app, "#status-bar")

        # From inside an edit (an Input binds ctrl+k itself), and by the button.
        await pilot.press("2", "right", "right", "enter")  # AAPL's buy_target
        assert app.focused.id == "edit-input"
        await pilot.press("ctrl+k")
        await pilot.click("#kill-button")
        assert session.called("kill") == [("kill",)] * 3


async def test_resume_asks_first(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        await pilot.press("ctrl+k")
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert session.called("resume") == [] and app.main.has_class("-killed")
        await pilot.press("ctrl+r", "y")
        assert session.called("resume") == [("resume",)]
        assert not app.main.has_class("-killed") and not app.main.query_one("#killed-banner").display
        assert f"resumed: {recording.iface} trades again" in alert_text(app)


async def test_ctrl_k_with_nothing_supervised_kills_every_engine_on_the_machine(session, recording, make_app):
    app = make_app(session, iface=recording.iface)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")  # the take-over declined
        await pilot.press("ctrl+k")
        assert session.called("kill_every_engine") == [("kill_every_engine",)]
        assert app.last_error.startswith(f"KILL: kill switch set on {recording.iface} (not supervised here")
        session.attached.clear()
        await pilot.press("ctrl+k")
        assert app.last_error == "no hft-tui engine attached on this machine: nothing to kill"


# -- parameters ---------------------------------------------------------------------------


async def edit_cell(pilot, symbol: str, key: str) -> None:
    app = pilot.app
    await pilot.press("2")
    table = app.main.query_one("#symbol-params")
    table.focus()
    row = [str(k.value) for k in table.rows].index(symbol)
    table.cursor_coordinate = Coordinate(row, list(SYMBOL_KEYS).index(key) + 1)
    await pilot.press("enter")
    assert (app.params_pane.editor.symbol, app.params_pane.editor.key) == (symbol, key)


async def params_table(pilot, selector: str):
    """The Parameters tab shown and one of its tables focused (``#symbol-params``, ``#engine-params``)."""
    await pilot.press("2")
    table = pilot.app.main.query_one(selector)
    table.focus()
    return table


def editor_message(app: HftApp) -> tuple[str, set[str]]:
    msg = app.params_pane.editor.query_one("#edit-message")
    return str(msg.render()), set(msg.classes)


async def test_a_parameter_is_checked_as_typed_and_written_only_when_valid(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        await edit_cell(pilot, "AAPL", "buy_target")
        await pilot.press(*"abc")
        text, classes = editor_message(app)
        assert "-error" in classes and "buy_target" in text and "AAPL" in text
        await pilot.press("enter")
        text, classes = editor_message(app)
        assert "-error" in classes and text.endswith("(nothing written)")
        assert session.called("set_param") == []
        await pilot.press("escape")
        assert editor_message(app)[0] == "discarded the edit of buy_target"

        await edit_cell(pilot, "AAPL", "sell_target")
        await pilot.press(*"190.0000")
        assert "must be above buy_target 190.2500" in editor_message(app)[0]
        await pilot.press("escape")

        await edit_cell(pilot, "AAPL", "buy_target")
        await pilot.press(*"190.3", "enter")
        assert session.called("set_param") == [("set_param", "AAPL", "buy_target", "190.3")]
        text, classes = editor_message(app)
        assert "-ok" in classes and "applied AAPL buy_target = 190.3000" in text
        assert app.focused is app.main.query_one("#symbol-params")


async def test_an_engine_wide_setting_is_written_and_the_mode_is_refused(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        table = await params_table(pilot, "#engine-params")
        table.cursor_coordinate = Coordinate(list(ENGINE_KEYS).index("mode"), 0)
        await pilot.press("enter", *"generic", "enter")
        assert "mode cannot change while attached" in editor_message(app)[0]
        await pilot.press("escape")
        table.cursor_coordinate = Coordinate(list(ENGINE_KEYS).index("rate_per_sec"), 0)
        await pilot.press("enter", *"1234", "enter")
        assert session.called("set_param") == [("set_param", None, "rate_per_sec", "1234")]
        assert "applied engine rate_per_sec = 1234" in editor_message(app)[0]


async def test_a_symbol_is_added_through_its_dialog_and_removed_after_a_question(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        await pilot.press("2", "n")
        assert isinstance(app.screen, AddSymbolScreen)
        await pilot.press(*"TOO-LONG-NAME", "enter")
        assert isinstance(app.screen, AddSymbolScreen) and session.called("add_symbol") == []
        app.screen.query_one("#new-name").value = ""
        await pilot.press(*"TSLA", "tab", *"250.5", "tab", *"251", "enter")
        assert not isinstance(app.screen, AddSymbolScreen)
        [(_, name, values)] = session.called("add_symbol")
        assert name == "TSLA" and values["buy_target"] == "250.5" and values["sell_target"] == "251"
        assert editor_message(app)[0] == "added TSLA (buy 250.5000, sell 251.0000)"

        table = app.main.query_one("#symbol-params")
        table.focus()
        table.cursor_coordinate = Coordinate([str(k.value) for k in table.rows].index("MSFT"), 1)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert session.called("remove_symbol") == [("remove_symbol", "MSFT")]
        assert editor_message(app)[0] == "removed MSFT"


async def test_removing_a_symbol_ends_an_edit_left_open_on_it(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        table = await params_table(pilot, "#symbol-params")
        table.cursor_coordinate = Coordinate([str(k.value) for k in table.rows].index("MSFT"), 1)
        await pilot.press("enter")  # an edit of one of MSFT's parameters, left open
        editor = app.params_pane.editor
        assert editor.symbol == "MSFT" and not editor.input.disabled
        table.focus()
        await pilot.press("x", "y")
        assert session.called("remove_symbol") == [("remove_symbol", "MSFT")]
        assert editor.symbol is None and editor.input.disabled  # nothing left to write it back
        await pilot.press("enter")
        assert session.called("set_param") == []


async def test_engines_that_cannot_be_listed_are_one_line_and_the_app_goes_on(recording, make_app):
    class RefusedPins(StandInSession):
        def engines(self):
            raise EngineError("/sys/fs/bpf/hft_tui is not root's: refused")

    session = RefusedPins(recording)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "cannot list the engines here: /sys/fs/bpf/hft_tui is not root's" in alert_text(app)
        await pilot.press("1")
        app.interfaces_pane.table.focus()
        await pilot.press("a")  # attach on the row under the cursor: asks the list first
        await pilot.press("d")
        app.command_take_over()  # the palette's "Take over" asks it too
        await pilot.pause()
        assert app.is_running and session.called("attach") == [] and session.called("detach") == []


# -- interfaces --------------------------------------------------------------------------


async def test_attach_in_the_chosen_mode_then_detach(recording, make_app):
    session = StandInSession(recording, attached=False)
    app = make_app(session, iface=recording.iface)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.interfaces_pane
        for _ in range(200):
            if pane.table.selected() == recording.iface:
                break
            await pilot.pause(0.02)
        assert app.main.query_one("#tabs").active == "interfaces"
        assert f"no engine on {recording.iface}: press a to attach one" in text_of(app, "#interfaces-message")
        await pilot.press("m")
        assert pane.mode == "generic"
        await pilot.press("a")
        await supervising(pilot)
        assert session.called("attach") == [("attach", recording.iface, "generic")]
        assert session.called("take_over") == [("take_over", recording.iface)]
        assert pane.busy is None and app.main.query_one("#tabs").active == "trading"

        app.show_tab("interfaces")
        await pilot.press("d")
        for _ in range(200):
            if app.view is None:
                break
            await pilot.pause(0.02)
        assert session.called("detach") == [("detach", recording.iface)]
        assert session.iface is None and app.view is None and pane.busy is None


async def test_a_refused_attach_is_one_line_in_the_pane_and_the_status_bar(recording, make_app):
    session = StandInSession(recording, attached=False)
    session.fail_attach = f"{recording.iface} already has an XDP program (id 7, generic)"
    app = make_app(session, iface=recording.iface)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.interfaces_pane
        for _ in range(200):
            if pane.table.selected() == recording.iface:
                break
            await pilot.pause(0.02)
        await pilot.press("a")
        for _ in range(200):
            if app.last_error:
                break
            await pilot.pause(0.02)
        assert app.last_error == f"cannot attach to {recording.iface}: {session.fail_attach}"
        assert "-error" in pane.query_one("#interfaces-message").classes
        assert session.fail_attach in text_of(app, "#status-bar")
        assert session.called("take_over") == []
        await pilot.press("d")  # nothing of ours there: refused, nothing asked
        assert "never detaches other programs" in text_of(app, "#interfaces-message")
        assert session.called("detach") == []


# -- quitting, help, crashes ---------------------------------------------------------------


@pytest.mark.parametrize("key, policy", [("enter", "detach"), ("d", "detach"), ("l", "leave")])
async def test_quit_asks_and_releases_the_engine_as_answered(session, recording, make_app, key, policy):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press(key)
        for _ in range(200):
            if app.return_code is not None:
                break
            await pilot.pause(0.02)
    assert app.return_code == 0 and app.exit_policy == policy
    assert session.called("release") == [("release", policy)]


async def test_quit_with_nothing_supervised_leaves_at_once(recording, make_app):
    session = StandInSession(recording, attached=False)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
    assert app.return_code == 0 and session.called("release") == []


async def test_the_help_lists_every_key_of_the_app_from_its_bindings(session, recording, make_app):
    app = make_app(session, iface=recording.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await supervising(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause()
        rows = str(app.screen.query_one("#help-keys").render()).splitlines()[1:]  # under the header
        for binding in HftApp.BINDINGS:
            assert any(key_name(binding.key) in row and binding.tooltip in row for row in rows), binding.key
        tabs_row = next(row for row in rows if row.startswith(f"{TABS[0].key}-{TABS[-1].key} "))
        assert tabs_row.endswith(f"{', '.join(t.title for t in TABS)} tabs")
        assert rows[0].startswith("ctrl+k") and "KILL: " in rows[0]  # the emergency key first
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_a_crash_sets_the_kill_switch_keeps_the_traceback_and_shows_one_line(
    session, recording, make_app, tmp_path, capsys
):
    app = make_app(session, iface=recording.iface, take_over=True)

    def broken():
        raise RuntimeError("a bug in the app")

    async def crash(pilot):
        await supervising(pilot)
        app.call_later(broken)
        await pilot.pause(0.2)

    code = run_app(app, headless=True, size=SIZE, auto_pilot=crash)
    assert code == 1
    assert session.called("release") == [("release", "kill")]
    err = capsys.readouterr().err
    log = tmp_path / "app-crash.log"
    assert err.splitlines() == [
        f"hft-tui: error: the app failed (RuntimeError: a bug in the app); {recording.iface}: kill switch set, "
        f"engine left attached (hft-tui engine detach {recording.iface}); details in {log}"
    ]
    text = log.read_text()
    assert "Traceback" in text and "in broken" in text and "RuntimeError: a bug in the app" in text


def test_the_quit_dialogs_lines_are_printed_after_the_screen_not_to_the_crash_log(
    session, recording, make_app, tmp_path, capsys
):
    app = make_app(session, iface=recording.iface, take_over=True)

    async def quit_by_dialog(pilot):
        await supervising(pilot)
        await pilot.press("ctrl+q", "d")
        await pilot.pause(0.2)

    assert run_app(app, headless=True, size=SIZE, auto_pilot=quit_by_dialog) == 0
    assert capsys.readouterr().err.splitlines() == [f"{recording.iface}: detached"]
    assert session.called("release") == [("release", "detach")]
    assert not (tmp_path / "app-crash.log").exists()


def test_sigterm_sets_the_kill_switch_and_says_so_in_one_line(session, recording, make_app, tmp_path, capsys):
    app = make_app(session, iface=recording.iface, take_over=True)

    async def terminated(pilot):
        await supervising(pilot)
        os.kill(os.getpid(), signal.SIGTERM)
        await pilot.pause(0.2)

    assert run_app(app, headless=True, size=SIZE, auto_pilot=terminated) == 128 + signal.SIGTERM
    assert session.called("release") == [("release", "kill")]
    assert capsys.readouterr().err.splitlines() == [f"hft-tui: stopped by signal {int(signal.SIGTERM)}"]
    assert not (tmp_path / "app-crash.log").exists()


# -- the demo's symbols have one source --------------------------------------------------------


def test_the_lab_session_and_the_tests_trade_the_demos_symbols():
    import engine_configs

    from hft_tui.demo.lab_session import DETERMINISTIC_CONFIG

    def parsed(text):
        return parse_config(tomllib.loads(text, parse_float=Decimal))

    demo = load_config(paths.DEMO_CONFIG)
    lab_config = parsed(DETERMINISTIC_CONFIG)
    assert lab_config.symbols == demo.symbols
    assert (lab_config.engine.rate_per_sec, lab_config.engine.update_sample) == (0, 1)  # its own engine table
    assert parsed(engine_configs.UNTHROTTLED).symbols == {"AAPL": demo.symbols["AAPL"]}


# -- snapshots of the recorded engine (the same screens as test_app_snapshots.py, no kernel) ---------


def test_trading_screen_of_the_recorded_engine(session, recording, make_app, snap_compare):
    assert snap_compare(
        make_app(session, iface=recording.iface, take_over=True), terminal_size=SIZE, run_before=supervising
    )


def test_killed_screen_of_the_recorded_engine(session, recording, make_app, snap_compare):
    async def kill(pilot):
        await supervising(pilot)
        await pilot.press("ctrl+k")
        await pilot.pause(0.1)

    assert snap_compare(make_app(session, iface=recording.iface, take_over=True), terminal_size=SIZE, run_before=kill)


def test_views_round_trip_through_the_recording_format(recording):
    for view in recording.views:
        assert view_from_json(dataclasses.asdict(view)) == view
