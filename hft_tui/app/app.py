"""The hft-tui application: one full-screen app driving one kernel engine.

What is on screen comes from the kernel: the worker's views (read from the
maps every tick) and, right after a write, the value read back from the map.
Writes are done here, in the UI thread, because each is a single map update
that takes microseconds: the kill key in particular never waits behind a
queue.  Slow work (compiling and attaching, detaching, listing interfaces)
runs in threads and reports back with messages.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
from collections import deque
from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.widgets import Input

from .. import engine, netlink, paths
from ..config import ConfigError, default_config, load_config
from ..constants import KILL_STATES
from ..engine import EngineError, EngineHandle, EngineRecord
from ..maps import MapsError
from ..paths import PathError
from ..protocol import ProtocolError
from .formatting import Display, param_value
from .messages import AttachFinished, EngineTicked, InterfacesListed, SupervisionEnded, SupervisionStarted
from .model import EngineView
from .screens.dialogs import AddSymbolScreen, ConfirmScreen, QuitScreen
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .widgets.interfaces import InterfacesPane
from .widgets.params import ParamEditor, ParametersPane, SymbolParamsTable
from .worker import EnginePoller

# Errors whose text is meant for the user as it is.
USER_ERRORS = (EngineError, ConfigError, MapsError, PathError, ProtocolError, netlink.NetlinkFailure, OSError)
INTERFACE_REFRESH_S = 2.0
# The worker ticks at the poll rate (heartbeat, drain, journal); the screen is
# redrawn at UI_HZ from the newest view, the slow parts every SLOW_EVERY frames.
# A frame of this screen costs Textual ~25 ms of CPU whatever the feed rate, so
# 2 Hz keeps the UI under 10% of a core; figures changing faster than twice a
# second cannot be read anyway, and a kill, an error or a key shows at once.
UI_HZ = 2.0
SLOW_EVERY = 2
TAPE_BACKLOG = 200        # tape lines kept between two frames at most
GC_FREEZE_S = 10.0
GC_FULL_S = 600.0
CRASH_LOG = paths.RUN_DIR / "app-crash.log"


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def our_engines() -> dict[str, int]:
    """iface -> program id of every hft-tui engine pinned on this machine."""
    out = {}
    for iface in engine.attached_ifaces():
        rec = EngineRecord.load(iface)
        out[iface] = rec.prog_id if rec else 0
    return out


class HftApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "hft-tui"
    BINDINGS = [
        # priority: these work whatever has the focus, an editor included
        # (an Input binds ctrl+k to "delete to the end of the line").
        Binding("ctrl+k", "kill", "KILL", priority=True, id="kill"),
        Binding("ctrl+r", "resume", "Resume", priority=True, id="resume"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("question_mark", "help", "Help", id="help"),
    ]

    def __init__(self, *, iface: str | None = None, config_path: str | None = None, mode: str | None = None,
                 poll_hz: float = 10.0, take_over: bool = False, deterministic: bool = False) -> None:
        super().__init__()
        self.select_iface = iface
        self.config_path = config_path
        self.mode = mode or self._config_mode(config_path)
        self.poll_hz = poll_hz
        self.auto_take_over = take_over
        self.display_opts = Display(deterministic=deterministic)
        self.handle: EngineHandle | None = None     # control writes (UI thread)
        self.poller: EnginePoller | None = None     # supervision (its own thread)
        self._engine_lock = threading.Lock()         # handle and poller change together
        self.view: EngineView | None = None
        self.last_error: str | None = None
        self.exit_policy: str | None = None          # what the quit dialog chose
        self.busy: str | None = None                 # an attach/detach under way
        self._tape: deque = deque(maxlen=TAPE_BACKLOG)  # tape lines not drawn yet
        self._frames = 0
        self._drawn_kill: str | None = None

    @staticmethod
    def _config_mode(config_path: str | None) -> str:
        """The XDP mode the attach choice starts on: the config's, else native."""
        if config_path:
            try:
                return load_config(config_path).engine.mode
            except ConfigError:
                pass  # the attach reports the bad config when it is tried
        return "native"

    # -- life cycle -------------------------------------------------------
    async def on_mount(self) -> None:
        self.main = MainScreen(self.mode, deterministic=self.display_opts.deterministic)
        await self.push_screen(self.main)
        # The widgets live as long as the app: out of the collector's way.  A full
        # collection over them took ~100 ms, a stall the kill key would wait behind.
        gc.freeze()
        if self.display_opts.deterministic:
            # Snapshot mode: a blinking cursor would make two screenshots differ.
            for inp in self.main.query(Input):
                inp.cursor_blink = False
        self.render_view()
        self.refresh_interfaces()
        self.set_interval(INTERFACE_REFRESH_S, self.refresh_interfaces)
        self.set_interval(1 / UI_HZ, self.draw_frame)
        # Freezing moves what exists now out of the collector's reach, so a full
        # collection only walks what was made since; every ten minutes a real one
        # frees the cycles that froze meanwhile (one ~100 ms pause, not one a few seconds).
        self.set_interval(GC_FREEZE_S, self._freeze)
        self.set_interval(GC_FULL_S, self._full_collection)
        self.offer_take_over()

    def on_unmount(self) -> None:
        """Any way out that did not go through the quit dialog leaves the engine killed."""
        if self.handle is not None:
            self.release_engine("kill")   # takes its own copy: a worker may release meanwhile

    @property
    def running(self) -> bool:
        """False once shutting down (the screens are being taken apart): late messages are dropped."""
        main = getattr(self, "main", None)
        return self.is_running and main is not None and main.is_running and main in self.screen_stack

    @property
    def iface(self) -> str | None:
        handle = self.handle      # one read: a worker thread may clear it (release_engine)
        return handle.iface if handle else None

    def offer_take_over(self) -> None:
        """An engine already attached is taken over, never loaded a second time."""
        engines = our_engines()
        if self.select_iface:
            target = self.select_iface if self.select_iface in engines else None
        else:
            target = next(iter(engines)) if len(engines) == 1 else None
        if target and self.auto_take_over:
            self.take_over(target)
        elif target:
            rec = EngineRecord.load(target)
            since = time.strftime("%H:%M:%S", time.localtime(rec.attached_at)) if rec else "?"
            detail = f"{rec.mode} mode, program id {rec.prog_id}, attached {since}" if rec else "no record"
            self.push_screen(
                ConfirmScreen("Engine already attached",
                              f"An hft-tui engine is attached to {target} ({detail}).\n"
                              "Take it over? This app then supervises it (heartbeat, ring buffer, kill).",
                              yes="Take over"),
                lambda yes: self.take_over(target) if yes else self.show_tab("interfaces"),
            )
        else:
            self.show_tab("interfaces")
            if self.select_iface:
                text = f"no engine on {self.select_iface}: press a to attach one"
            elif engines:
                text = f"engines attached on {', '.join(engines)}: select one and press a to take it over"
            else:
                text = "no engine attached: select an interface and press a to attach"
            self.interfaces_pane.set_message(text)

    def take_over(self, iface: str) -> None:
        poller = self.poller
        if poller is not None:
            self.set_error(f"already supervising {poller.iface}: detach it first")
            return
        handle = None
        try:
            handle = EngineHandle(iface)
            poller = EnginePoller(self, iface, poll_hz=self.poll_hz, deterministic=self.display_opts.deterministic)
        except (*USER_ERRORS, ValueError) as exc:
            if handle is not None:
                handle.close()
            self.set_error(one_line(exc))
            return
        with self._engine_lock:
            self.handle, self.poller = handle, poller
        poller.start()
        self.show_tab("trading")

    def _take_engine(self) -> tuple[EngineHandle | None, EnginePoller | None]:
        """The supervised engine's handle and poller, now no longer the app's: whichever
        thread takes them (a worker's release, the UI's end of supervision) is the only one."""
        with self._engine_lock:
            handle, poller = self.handle, self.poller
            self.handle = self.poller = None
        return handle, poller

    def _with_handle(self, use):
        """(iface, ``use(handle)``) on the supervised engine's handle, or None when none is
        supervised.  The handle is read once and held while ``use`` runs (a few map
        operations), so a worker thread's release_engine cannot close it meanwhile."""
        with self._engine_lock:
            handle = self.handle
            if handle is None:
                return None
            return handle.iface, use(handle)

    def release_engine(self, policy: str) -> list[str]:
        """Ends supervision: "detach" removes the engine, "kill" sets its kill switch and
        leaves it, "leave" leaves it to the dead-man switch.  Safe from any thread."""
        done: list[str] = []
        handle, poller = self._take_engine()
        if handle is None:
            return done
        iface = handle.iface
        try:
            if policy == "kill":
                handle.kill()
                done.append(f"{iface}: kill switch set, engine left attached (hft-tui engine detach {iface})")
        finally:
            handle.close()
            if poller is not None:
                # The controller detaches first, then drains the rings into the journal.
                done.extend(poller.stop(detach=(policy == "detach")))
        if policy == "detach" and iface in engine.attached_ifaces():
            done.extend(engine.detach(iface))   # the controller had stopped already
        return done

    # -- messages from the worker ----------------------------------------
    def on_engine_ticked(self, message: EngineTicked) -> None:
        if not self.running:
            return
        poller = self.poller
        if poller is None or message.view.iface != poller.iface:
            return  # a late tick of an engine no longer supervised
        self.view = message.view
        self._tape.extend(message.view.tape)
        for text in message.view.alerts:
            self.alert(text, "error" if text.startswith(("KILL", "LINK DOWN")) else "warning")
        if not message.view.present:
            self.set_error(f"interface {message.view.iface} disappeared", notify=False)
        if message.view.kill_state != self._drawn_kill:
            self.render_view()     # a kill (by anyone) shows at once, not at the next frame

    def on_supervision_started(self, message: SupervisionStarted) -> None:
        if not self.running:
            return
        self.alert(f"supervising the engine on {message.iface} (heartbeat, ring buffer, journal)", "information")
        if message.journal_error:
            self.set_error(message.journal_error)
        if message.tripped_on_start:
            self.alert("the previous controller died: the kill switch was latched; ctrl+r resumes", "error")

    def on_supervision_ended(self, message: SupervisionEnded) -> None:
        if not self.running:
            return
        if message.error:
            self.set_error(message.error)
            poller = self.poller
            if poller is not None and poller.iface == message.iface:
                handle, _ = self._take_engine()
                if handle is not None:
                    handle.close()
                self.view = None
                self.render_view()

    def _freeze(self) -> None:
        gc.freeze()

    def _full_collection(self) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def draw_frame(self) -> None:
        self._frames += 1
        self.render_view(slow=self._frames % SLOW_EVERY == 0)

    def render_view(self, slow: bool = True) -> None:
        if not self.running:
            return
        tape, self._tape = list(self._tape), deque(maxlen=TAPE_BACKLOG)
        self._drawn_kill = self.view.kill_state if self.view else None
        self.main.show_view(self.view, self.iface, self.last_error, self.display_opts, tape=tape, slow=slow)

    # -- alerts and errors -----------------------------------------------
    def alert(self, text: str, severity: str = "warning") -> None:
        if not self.running:
            return
        self.main.add_alert(self.display_opts.clock(), text, severity)

    def set_error(self, text: str, notify: bool = True) -> None:
        """The one line a failure shows: status bar, alert log and a toast."""
        if text == self.last_error:
            return
        self.last_error = text
        self.alert(text, "error")
        if notify and not self.display_opts.deterministic:
            self.notify(text, severity="error", timeout=8)
        self.render_view()

    # -- the kill switch ---------------------------------------------------
    # release_engine, run by a worker thread (detach, quit), may clear and close
    # the handle at any moment: the methods below use it through _with_handle
    # (read once, held while used) or read it once into a local.
    def action_kill(self) -> None:
        """Straight to the kernel: one map write, then the value read back.
        With no engine supervised here, every hft-tui engine on this machine is killed."""
        iface = self.iface

        def kill(handle: EngineHandle) -> int:
            handle.kill()
            return handle.maps.kill()

        try:
            got = self._with_handle(kill)
        except USER_ERRORS as exc:
            self.bell()
            self.set_error(f"KILL FAILED: {one_line(exc)} (hft-tui engine kill {iface or 'IFACE'})")
            return
        if got is None:
            self.kill_unsupervised()
            return
        _, state = got
        self.note_change("kill", {"state": state})
        self.show_kill_state(state)

    def kill_unsupervised(self) -> None:
        """The emergency kill with nothing supervised here (take-over declined, supervision
        ended): sets the kill switch of every hft-tui engine attached on this machine."""
        killed, failed = [], []
        for iface in engine.attached_ifaces():
            try:
                engine.kill_pinned(iface)     # its own pin only: any engine version
                killed.append(iface)
            except (*USER_ERRORS, ValueError) as exc:
                failed.append(f"{iface} ({one_line(exc)})")
        if failed:
            self.bell()
            self.set_error(f"KILL FAILED on {', '.join(failed)}: hft-tui engine kill IFACE"
                           + (f"; kill switch set on {', '.join(killed)}" if killed else ""))
        elif killed:
            self.set_error(f"KILL: kill switch set on {', '.join(killed)} (not supervised here; "
                           "the Interfaces tab lists them)")
        else:
            self.set_error("no hft-tui engine attached on this machine: nothing to kill")

    def show_kill_state(self, state: int) -> None:
        """Shows the kill switch as just read back from the map, without waiting for a tick."""
        if self.view is not None:
            self.view = replace(self.view, kill_state=KILL_STATES.get(state, str(state)), tape=(), alerts=())
        self.render_view()

    def on_button_pressed(self, event) -> None:
        if event.button.id == "kill-button":
            self.action_kill()

    def action_resume(self) -> None:
        handle = self.handle
        if handle is None:
            self.set_error("no engine supervised: nothing to resume")
            return
        why = self.view.kill_state if self.view else "?"
        self.push_screen(
            ConfirmScreen("Resume trading?",
                          f"The kill switch on {handle.iface} is set ({why}).\n"
                          "Resuming lets the kernel send orders again at once.", yes="Resume", danger=True),
            self._resume_confirmed,
        )

    def _resume_confirmed(self, yes: bool | None) -> None:
        if not yes:
            return

        def resume(handle: EngineHandle) -> int:
            handle.resume()
            return handle.maps.kill()

        try:
            got = self._with_handle(resume)
        except USER_ERRORS as exc:
            self.set_error(f"resume failed: {one_line(exc)}")
            return
        if got is None:
            return
        iface, state = got
        self.note_change("resume", {"state": state})
        self.alert(f"resumed: {iface} trades again", "information")
        self.show_kill_state(state)

    def note_change(self, what: str, detail: dict) -> None:
        poller = self.poller
        if poller is not None:
            poller.note_change(what, detail)

    # -- parameters --------------------------------------------------------
    @property
    def params_pane(self) -> ParametersPane:
        return self.main.query_one(ParametersPane)

    def on_param_editor_apply(self, message: ParamEditor.Apply) -> None:
        editor = self.params_pane.editor

        def apply(handle: EngineHandle):
            if message.symbol is not None:
                applied = handle.set_symbol(message.symbol, {message.key: message.value})
            else:
                applied = handle.set_engine({message.key: message.value})
            return applied, handle.maps.read_global().config_version

        try:
            got = self._with_handle(apply)
        except USER_ERRORS as exc:
            editor.set_message(f"{one_line(exc)} (nothing written)", "error")
            return
        if got is None:
            editor.set_message("no engine supervised: nothing written", "error")
            return
        _, (applied, version) = got
        shown = param_value(message.key, getattr(applied, message.key))
        where = message.symbol or "engine"
        editor.set_message(f"applied {where} {message.key} = {shown} (read back from the kernel, config v{version})",
                           "ok")
        self.note_change("symbol_config" if message.symbol else "engine_config",
                         {"symbol": message.symbol, message.key: shown})
        editor.finish()
        self.params_pane.return_focus()

    def on_symbol_params_table_add_symbol(self, message: SymbolParamsTable.AddSymbol) -> None:
        self.action_add_symbol()

    def action_add_symbol(self) -> None:
        if self.handle is None:   # a first look only: _add_symbol looks again
            self.set_error("no engine supervised: attach or take over one first")
            return
        self.push_screen(AddSymbolScreen(), self._add_symbol)

    def _add_symbol(self, result) -> None:
        if not result:
            return
        name, values = result
        if self.view and self.view.symbol(name):
            self.set_error(f"symbol {name} exists already: edit it in the table")
            return
        try:
            got = self._with_handle(lambda h: h.set_symbol(name, {k: v for k, v in values.items() if v.strip()}))
        except USER_ERRORS as exc:
            self.set_error(f"{one_line(exc)} (nothing written)")
            return
        if got is None:
            self.set_error("no engine supervised: nothing written")
            return
        _, applied = got
        self.note_change("symbol_add", {"symbol": name, **applied.to_toml_values()})
        self.params_pane.editor.set_message(f"added {name} (buy {param_value('buy_target', applied.buy_target)}, "
                                            f"sell {param_value('sell_target', applied.sell_target)})", "ok")

    def on_symbol_params_table_remove_symbol(self, message: SymbolParamsTable.RemoveSymbol) -> None:
        name = message.symbol
        self.push_screen(
            ConfirmScreen("Remove symbol?", f"Remove {name} from the engine? Its position and statistics go with it.",
                          yes="Remove", danger=True),
            lambda yes: self._remove_symbol(name) if yes else None,
        )

    def _remove_symbol(self, name: str) -> None:
        try:
            got = self._with_handle(lambda h: h.remove_symbol(name))
        except USER_ERRORS as exc:
            self.set_error(one_line(exc))
            return
        if got is None:
            return
        self.note_change("symbol_remove", {"symbol": name})
        self.params_pane.editor.set_message(f"removed {name}", "ok")

    # -- interfaces: list, attach, detach ----------------------------------
    @property
    def interfaces_pane(self) -> InterfacesPane:
        return self.main.query_one(InterfacesPane)

    @work(thread=True, exclusive=True, group="interfaces")
    def refresh_interfaces(self) -> None:
        try:
            self.post_message(InterfacesListed(netlink.interfaces(), our_engines()))
        except Exception as exc:  # netlink trouble: shown, never raised
            self.post_message(InterfacesListed([], {}, error=f"cannot list interfaces: {one_line(exc)}"))

    def on_interfaces_listed(self, message: InterfacesListed) -> None:
        if not self.running:
            return
        if message.error:
            self.set_error(message.error, notify=False)
            return
        table = self.interfaces_pane.table
        first = table.row_count == 0
        table.show(message.interfaces, message.engines)
        if first and (self.select_iface or self.iface):
            if not table.select(self.iface or self.select_iface):
                self.set_error(f"interface {self.select_iface} does not exist")

    def on_interfaces_pane_attach_requested(self, message: InterfacesPane.AttachRequested) -> None:
        iface = message.iface
        if self.busy:
            self.interfaces_pane.set_message(f"wait: {self.busy}", "error")
            return
        poller = self.poller
        if poller is not None:
            text = (f"{iface} is already supervised here" if poller.iface == iface else
                    f"this app supervises {poller.iface}: detach it first (d on its row)")
            self.interfaces_pane.set_message(text, "error")
            return
        if iface in our_engines():
            rec = EngineRecord.load(iface)
            self.push_screen(
                ConfirmScreen("Engine already attached",
                              f"An hft-tui engine is already on {iface}"
                              f"{f' ({rec.mode}, program id {rec.prog_id})' if rec else ''}. Take it over?",
                              yes="Take over"),
                lambda yes: self.take_over(iface) if yes else None,
            )
            return
        self.busy = f"attaching to {iface}"
        self.interfaces_pane.set_message(f"compiling and attaching to {iface} in {message.mode} mode…", "info")
        self.attach_engine(iface, message.mode)

    @work(thread=True, group="attach")
    def attach_engine(self, iface: str, mode: str) -> None:
        try:
            config = load_config(self.config_path) if self.config_path else default_config()
            rec = engine.attach(iface, config, mode=mode, config_path=self.config_path)
            detail = f"attached to {iface} in {rec.mode} mode, program id {rec.prog_id}, {len(config.symbols)} symbol(s)"
            self.post_message(AttachFinished("attach", iface, True, detail))
        except Exception as exc:  # every failure is one line in the app
            self.post_message(AttachFinished("attach", iface, False, f"cannot attach to {iface}: {one_line(exc)}"))

    def on_interfaces_pane_detach_requested(self, message: InterfacesPane.DetachRequested) -> None:
        iface = message.iface
        if self.busy:
            self.interfaces_pane.set_message(f"wait: {self.busy}", "error")
            return
        if iface not in our_engines():
            self.interfaces_pane.set_message(
                f"no hft-tui engine on {iface} (hft-tui never detaches other programs)", "error")
            return
        self.busy = f"detaching from {iface}"
        self.interfaces_pane.set_message(f"detaching from {iface}…", "info")
        self.detach_engine(iface)

    @work(thread=True, group="attach")
    def detach_engine(self, iface: str) -> None:
        try:
            poller = self.poller
            if poller is not None and poller.iface == iface:
                lines = self.release_engine("detach")
            else:
                lines = engine.detach(iface)
            self.post_message(AttachFinished("detach", iface, True, "; ".join(lines)))
        except Exception as exc:
            self.post_message(AttachFinished("detach", iface, False, f"cannot detach from {iface}: {one_line(exc)}"))

    def on_attach_finished(self, message: AttachFinished) -> None:
        if not self.running:
            return
        self.busy = None
        pane = self.interfaces_pane
        if not message.ok:
            pane.set_message(message.detail, "error")
            self.set_error(message.detail)
        else:
            pane.set_message(message.detail, "ok")
            self.alert(message.detail, "information")
            if message.action == "attach":
                self.take_over(message.iface)
            else:
                self.view = None
                self.render_view()
        self.refresh_interfaces()

    # -- navigation, help, palette, quit -----------------------------------
    def show_tab(self, tab: str) -> None:
        self.main.action_show_tab(tab)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen):
        yield SystemCommand("Kill", "Set the kernel kill switch now (ctrl+k)", self.action_kill)
        yield SystemCommand("Resume trading", "Clear the kill switch, after a confirmation (ctrl+r)",
                            self.action_resume)
        yield SystemCommand("Add symbol", "Add a symbol to the running engine", self.action_add_symbol)
        yield SystemCommand("Take over an attached engine", "Supervise the engine pinned on the selected interface",
                            self.command_take_over)
        yield SystemCommand("Refresh interfaces", "List the interfaces again now", self.refresh_interfaces)
        for tab in ("trading", "parameters", "interfaces", "risk"):
            yield SystemCommand(f"Show {tab}", f"Switch to the {tab} tab", lambda t=tab: self.show_tab(t))
        yield SystemCommand("Help", "Keys and what they do (?)", self.action_help)
        yield SystemCommand("Quit", "Quit, asking whether to detach the engine (ctrl+q)", self.action_quit)
        yield from super().get_system_commands(screen)

    def command_take_over(self) -> None:
        iface = self.interfaces_pane.table.selected()
        if iface and iface in our_engines():
            self.take_over(iface)
        else:
            self.set_error("select an interface with an hft-tui engine on the Interfaces tab first")

    async def action_quit(self) -> None:
        handle = self.handle
        if handle is None:
            self.exit(return_code=0)
            return
        deadman = (self.view.deadman_ms if self.view else 0) or 500
        self.push_screen(QuitScreen(handle.iface, deadman), self._quit_answered)

    def _quit_answered(self, answer: str | None) -> None:
        if answer is None:
            return
        self.exit_policy = answer
        if not self.display_opts.deterministic:
            self.notify("detaching the engine…" if answer == "detach" else "leaving the engine attached…")
        self._quit_in_thread(answer)

    @work(thread=True, group="quit")
    def _quit_in_thread(self, policy: str) -> None:
        try:
            lines = self.release_engine(policy)
            self.call_from_thread(self.exit, None, 0, "\n".join(lines) or None)
        except Exception as exc:
            # Could not detach: stop trading at least, then say so.
            self.call_from_thread(self.exit, None, 1, f"hft-tui: error: {one_line(exc)}")

    # -- crashes -------------------------------------------------------------
    def _fatal_error(self) -> None:
        """An unexpected exception: stop trading, keep the traceback in a file,
        show one line (Textual would print the whole traceback)."""
        import sys

        exc = sys.exc_info()[1] or self._exception
        released = []
        try:
            released = self.release_engine("kill")
        except Exception as kill_exc:
            released = [f"could not set the kill switch: {one_line(kill_exc)}"]
        where = write_crash_log()
        text = Text(f"hft-tui: error: the app failed ({one_line(exc) if exc else 'unknown error'}); "
                    f"{'; '.join(released) or 'no engine was supervised'}; details in {where}", style="bold red")
        self.panic(text)


def write_crash_log() -> Path:
    try:
        paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(CRASH_LOG, "a") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n")
            f.write(traceback.format_exc())
        return CRASH_LOG
    except OSError:
        return Path("(could not write a crash log)")
