"""The hft-tui application: one full-screen app driving one kernel engine.

The app composes the screens and routes keys; the engine itself is the
session's (session.py), which the app is given.  What is on screen comes
from the kernel: the supervisor's views (read from the maps every tick) and,
right after a write, the value read back from the map.  The kill key goes
straight to the session in the UI thread: one map write, never behind a
queue.  Slow work (attach, detach, quit) runs in threads and reports back
with messages.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.widgets import Input

from .. import paths
from ..constants import KILL_STATES
from ..errors import PathError
from ..safefile import open_private_log
from .dialogs import ConfirmScreen, QuitScreen
from .formatting import Display, one_line
from .messages import (
    EngineDetached,
    EngineTicked,
    Failed,
    Notice,
    StopSignalled,
    SupervisionEnded,
    SupervisionStarted,
    TakeOverRequested,
)
from .model import EngineView
from .screens.full_tables import FullTablesScreen
from .screens.help import HelpScreen
from .screens.main import TABS, MainScreen
from .session import USER_ERRORS, Session, listed_engines
from .shutdown import SignalWatch
from .widgets.interfaces import InterfacesPane
from .widgets.params import ParametersPane

# The worker ticks at the poll rate (heartbeat, drain, journal); the screen is
# redrawn at UI_HZ from the newest view, the slow parts every SLOW_EVERY frames.
# A frame of this screen costs Textual ~25 ms of CPU whatever the feed rate, so
# 2 Hz keeps the UI under 10% of a core; figures changing faster than twice a
# second cannot be read anyway, and a kill, an error or a key shows at once.
UI_HZ = 2.0
SLOW_EVERY = 2
TAPE_BACKLOG = 200  # tape lines kept between two frames at most
GC_FREEZE_S = 10.0
GC_FULL_S = 600.0
CRASH_LOG = paths.RUN_DIR / "app-crash.log"


class CrashLog(io.TextIOBase):
    """The file Textual's report of an unexpected exception goes to, instead of the terminal.

    Textual 8 has no public hook for an unhandled exception: it renders the
    traceback itself and, once the terminal is restored, prints it to
    ``App.error_console``.  The app points that console here, so the whole
    traceback lands in the crash log and the user sees one line (run_app);
    the kill switch is set on the way out (HftApp.on_unmount), whatever ended
    the app.  Nothing else is printed to that console: the app's own parting
    lines go to ``HftApp.farewell``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.text = ""
        self.saved: Path | None = None  # where the report went; None: nowhere (yet)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        first = not self.text
        self.text += text
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open_private_log(self.path) as f:  # 0600, never through a symlink
                if first:
                    f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n".encode())
                f.write(text.encode())
            self.saved = self.path
        except (OSError, PathError):
            self.saved = None
        return len(text)

    def summary(self) -> str:
        """The exception's own line ("RuntimeError: ..."): in Rich's traceback, the
        lines after the last box, up to the first blank one."""
        lines = [line.strip() for line in self.text.splitlines()]
        boxes = [i for i, line in enumerate(lines) if line.startswith("╰")]
        tail: list[str] = []
        for line in lines[boxes[-1] + 1 if boxes else 0 :]:
            if not line and tail:
                break
            if line:
                tail.append(line)
        return " ".join(tail) or "unknown error"


class HftApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "hft-tui"
    # The tooltips are the help's key table (screens/help.py).
    BINDINGS = [
        # priority: these work whatever has the focus, an editor included
        # (an Input binds ctrl+k to "delete to the end of the line").
        Binding(
            "ctrl+k",
            "kill",
            "KILL",
            priority=True,
            id="kill",
            tooltip="sets the kernel kill switch at once, no question asked",
        ),
        Binding("ctrl+r", "resume", "Resume", priority=True, id="resume", tooltip="resume trading (asks first)"),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            priority=True,
            id="quit",
            tooltip="quit (asks whether to detach the engine; default: detach)",
        ),
        Binding("question_mark", "help", "Help", id="help", tooltip="this help"),
        # Textual's own palette binding, with what our palette holds.
        Binding(
            App.COMMAND_PALETTE_BINDING,
            "command_palette",
            "palette",
            show=False,
            priority=True,
            id="palette",
            tooltip="command palette (take over, refresh, less common actions)",
        ),
    ]

    def __init__(
        self,
        session: Session,
        *,
        iface: str | None = None,
        mode: str | None = None,
        take_over: bool = False,
        crash_log: Path = CRASH_LOG,
        signal_policy: str = "kill",
    ) -> None:
        super().__init__()
        self.session = session
        self.select_iface = iface
        self.mode = mode or session.config_mode()
        self.auto_take_over = take_over
        self.display_opts = Display(deterministic=session.deterministic)
        self.crash = CrashLog(crash_log)
        # Rich's stub asks for typing.IO[str], which typeshed's io.TextIOBase (a text stream all
        # the same, all Rich calls is write and flush) does not derive from.
        self.error_console = Console(
            file=self.crash,  # type: ignore[arg-type]
            width=500,
            color_system=None,
            markup=False,
            highlight=False,
        )
        self.view: EngineView | None = None
        self.last_error: str | None = None
        self.exit_policy: str | None = None  # what the quit dialog chose
        # What SIGHUP/SIGTERM do with the engine: "kill" (set the kill switch, leave
        # it attached) or "detach" (the demo: as ctrl+q -> detach does).
        if signal_policy not in ("kill", "detach"):
            raise ValueError(f"signal policy {signal_policy!r} is not kill or detach")
        self.signal_policy = signal_policy
        self.signals: SignalWatch | None = None  # run_app's, when run by it
        self.stopped_by: int | None = None  # the signal that stops the app
        self.farewell: list[str] = []  # printed once the terminal is back (run_app)
        self.released: list[str] = []  # what ending supervision on the way out did
        self._tape: deque = deque(maxlen=TAPE_BACKLOG)  # tape lines not drawn yet
        self._frames = 0
        self._drawn_kill: str | None = None

    # -- life cycle -------------------------------------------------------
    async def on_mount(self) -> None:
        self.main = MainScreen(
            self.session, self.mode, select=self.select_iface, deterministic=self.display_opts.deterministic
        )
        await self.push_screen(self.main)
        # The widgets live as long as the app: out of the collector's way.  A full
        # collection over them took ~100 ms, a stall the kill key would wait behind.
        gc.freeze()
        if self.display_opts.deterministic:
            # Snapshot mode: a blinking cursor would make two screenshots differ.
            for inp in self.main.query(Input):
                inp.cursor_blink = False
        self.render_view()
        self.set_interval(1 / UI_HZ, self.draw_frame)
        # Freezing moves what exists now out of the collector's reach, so a full
        # collection only walks what was made since; every ten minutes a real one
        # frees the cycles that froze meanwhile (one ~100 ms pause, not one a few seconds).
        self.set_interval(GC_FREEZE_S, self._freeze)
        self.set_interval(GC_FULL_S, self._full_collection)
        if self.signals is not None:
            # post_message is thread-safe and never blocks: the message is handled in
            # the event loop like a key, and a closed app simply does not take it.
            self.signals.app_started(self._post_stop)
            if self.signals.signum is not None:
                return  # a signal came during start-up: no engine is taken over now
        self.offer_take_over()

    def on_unmount(self) -> None:
        """Any way out that did not go through the quit dialog (a signal, a crash)
        leaves the engine killed."""
        if self.session.iface is not None:
            try:
                self.released = self.session.release("kill")
            except Exception as exc:  # the way out goes on; the line says what failed
                self.released = [f"could not set the kill switch: {one_line(exc)}"]

    def abandon(self, signum: int) -> None:
        """The watchdog's first step when the app is stuck (shutdown.py; another thread):
        the engine's kill switch set through its pins, its supervisor process ended."""
        self.session.abandon()

    @property
    def running(self) -> bool:
        """False once shutting down (the screens are being taken apart): late messages are dropped."""
        main = getattr(self, "main", None)
        return self.is_running and main is not None and main.is_running and main in self.screen_stack

    @property
    def iface(self) -> str | None:
        return self.session.iface

    def offer_take_over(self) -> None:
        """An engine already attached is taken over, never loaded a second time."""
        engines, why = listed_engines(self.session)
        if engines is None:
            self.set_error(why)
            return
        if self.select_iface:
            target = self.select_iface if self.select_iface in engines else None
        else:
            target = next(iter(engines)) if len(engines) == 1 else None
        if target and self.auto_take_over:
            self.take_over(target)
        elif target:
            rec = self.session.record(target)
            since = time.strftime("%H:%M:%S", time.localtime(rec.attached_at)) if rec else "?"
            detail = f"{rec.mode} mode, program id {rec.prog_id}, attached {since}" if rec else "no record"
            self.push_screen(
                ConfirmScreen(
                    "Engine already attached",
                    f"An hft-tui engine is attached to {target} ({detail}).\n"
                    "Take it over? This app then supervises it (heartbeat, ring buffer, kill).",
                    yes="Take over",
                ),
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
        try:
            self.session.take_over(iface, self)
        except (*USER_ERRORS, ValueError) as exc:
            self.set_error(one_line(exc))
            return
        self.show_tab("trading")

    # -- messages from the supervisor and the panes ---------------------------
    def on_engine_ticked(self, message: EngineTicked) -> None:
        if not self.running or message.view.iface != self.session.iface:
            return  # a late tick of an engine no longer supervised
        self.view = message.view
        self._tape.extend(message.view.tape)
        for text in message.view.alerts:
            self.alert(text, "error" if text.startswith(("KILL", "LINK DOWN", "FEED GAP")) else "warning")
        if not message.view.present:
            self.set_error(f"interface {message.view.iface} disappeared", notify=False)
        if message.view.kill_state != self._drawn_kill:
            self.render_view()  # a kill (by anyone) shows at once, not at the next frame

    def on_supervision_started(self, message: SupervisionStarted) -> None:
        if not self.running:
            return
        self.alert(f"supervising the engine on {message.iface} (heartbeat, ring buffer, journal)", "information")
        if message.journal_error:
            self.set_error(message.journal_error)
        if message.tripped_on_start:
            self.alert("the previous controller died: the kill switch was latched; ctrl+r resumes", "error")

    def on_supervision_ended(self, message: SupervisionEnded) -> None:
        if not self.running or not message.error:
            return
        self.set_error(message.error)
        if self.session.supervision_lost(message.iface):
            self.view = None
            self.render_view()

    def on_take_over_requested(self, message: TakeOverRequested) -> None:
        if self.running:
            self.take_over(message.iface)

    def on_engine_detached(self, message: EngineDetached) -> None:
        if self.running:
            self.view = None
            self.render_view()

    def on_failed(self, message: Failed) -> None:
        self.set_error(message.text, notify=message.notify)

    def on_notice(self, message: Notice) -> None:
        self.alert(message.text, message.severity)

    # -- drawing -------------------------------------------------------------
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
        if isinstance(self.screen, FullTablesScreen):
            self.screen.show(self.view, self.display_opts)

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
    def action_kill(self) -> None:
        """Straight to the kernel: one map write, then the value read back.
        With no engine supervised here, every hft-tui engine on this machine is killed."""
        iface = self.session.iface
        try:
            state = self.session.kill()
        except USER_ERRORS as exc:
            self.bell()
            self.set_error(f"KILL FAILED: {one_line(exc)} (hft-tui engine kill {iface or 'IFACE'})")
            return
        if state is None:
            self.kill_every_engine()
        else:
            self.show_kill_state(state)

    def kill_every_engine(self) -> None:
        """The emergency kill with nothing supervised here (take-over declined, supervision
        ended): sets the kill switch of every hft-tui engine attached on this machine."""
        killed, failed = self.session.kill_every_engine()
        if failed:
            self.bell()
            self.set_error(
                f"KILL FAILED on {', '.join(failed)}: hft-tui engine kill IFACE"
                + (f"; kill switch set on {', '.join(killed)}" if killed else "")
            )
        elif killed:
            self.set_error(
                f"KILL: kill switch set on {', '.join(killed)} (not supervised here; the Interfaces tab lists them)"
            )
        else:
            self.set_error("no hft-tui engine attached on this machine: nothing to kill")

    def show_kill_state(self, state: int) -> None:
        """Shows the kill switch as just read back from the map, without waiting for a tick."""
        if self.view is not None:
            self.view = replace(self.view, kill_state=KILL_STATES.get(state, str(state)), tape=(), alerts=())
        self.render_view()

    def action_resume(self) -> None:
        iface = self.session.iface
        if iface is None:
            self.set_error("no engine supervised: nothing to resume")
            return
        why = self.view.kill_state if self.view else "?"
        self.push_screen(
            ConfirmScreen(
                "Resume trading?",
                f"The kill switch on {iface} is set ({why}).\nResuming lets the kernel send orders again at once.",
                yes="Resume",
                danger=True,
            ),
            self._resume_confirmed,
        )

    def _resume_confirmed(self, yes: bool | None) -> None:
        if not yes:
            return
        try:
            got = self.session.resume()
        except USER_ERRORS as exc:
            self.set_error(f"resume failed: {one_line(exc)}")
            return
        if got is None:
            return
        iface, state = got
        self.alert(f"resumed: {iface} trades again", "information")
        self.show_kill_state(state)

    # -- navigation, help, palette, quit -----------------------------------
    @property
    def params_pane(self) -> ParametersPane:
        return self.main.query_one(ParametersPane)

    @property
    def interfaces_pane(self) -> InterfacesPane:
        return self.main.query_one(InterfacesPane)

    def show_tab(self, tab: str) -> None:
        self.main.action_show_tab(tab)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def get_system_commands(self, screen):
        yield SystemCommand("Kill", "Set the kernel kill switch now (ctrl+k)", self.action_kill)
        yield SystemCommand(
            "Resume trading", "Clear the kill switch, after a confirmation (ctrl+r)", self.action_resume
        )
        yield SystemCommand("Add symbol", "Add a symbol to the running engine", self.params_pane.action_add_symbol)
        yield SystemCommand(
            "Take over an attached engine",
            "Supervise the engine pinned on the selected interface",
            self.command_take_over,
        )
        yield SystemCommand(
            "Refresh interfaces", "List the interfaces again now", self.interfaces_pane.refresh_interfaces
        )
        for tab in TABS:
            yield SystemCommand(f"Show {tab.id}", f"Switch to the {tab.id} tab", lambda t=tab.id: self.show_tab(t))
        yield SystemCommand("Help", "Keys and what they do (?)", self.action_help)
        yield SystemCommand("Quit", "Quit, asking whether to detach the engine (ctrl+q)", self.action_quit)
        yield from super().get_system_commands(screen)

    def command_take_over(self) -> None:
        iface = self.interfaces_pane.table.selected()
        engines, why = listed_engines(self.session)
        if engines is None:
            self.set_error(why)
            return
        if iface and iface in engines:
            self.take_over(iface)
        else:
            self.set_error("select an interface with an hft-tui engine on the Interfaces tab first")

    async def action_quit(self) -> None:
        iface = self.session.iface
        if iface is None:
            self.exit(return_code=0)
            return
        deadman = (self.view.deadman_ms if self.view else 0) or 500
        self.push_screen(QuitScreen(iface, deadman), self._quit_answered)

    def _post_stop(self, signum: int) -> None:
        self.post_message(StopSignalled(signum))

    def on_stop_signalled(self, message: StopSignalled) -> None:
        self.stop_by_signal(message.signum)

    def stop_by_signal(self, signum: int) -> None:
        """SIGHUP (the terminal closed) or SIGTERM, handed over by shutdown.SignalWatch:
        in the event loop, like a key.  "detach": the kill switch at once, then what
        ctrl+q -> detach does; "kill": leave, the kill switch set on the way out."""
        if self.stopped_by is not None or self.exit_policy is not None:
            return  # already on the way out
        self.stopped_by = signum
        line = f"hft-tui: stopped by signal {signum}"
        if self.signal_policy == "detach" and self.session.iface is not None:
            with contextlib.suppress(*USER_ERRORS):
                self.session.kill()
            self.exit_policy = "detach"
            self._quit_in_thread("detach", 128 + signum, [line])
        else:
            self.leave(128 + signum, [line])

    def _quit_answered(self, answer: str | None) -> None:
        if answer is None:
            return
        self.exit_policy = answer
        if not self.display_opts.deterministic:
            self.notify("detaching the engine…" if answer == "detach" else "leaving the engine attached…")
        self._quit_in_thread(answer)

    @work(thread=True, group="quit")
    def _quit_in_thread(self, policy: str, code: int = 0, first: list[str] | None = None) -> None:
        lines = list(first or [])
        try:
            lines += self.session.release(policy)
        except Exception as exc:
            # Could not detach: stop trading at least, then say so.
            lines, code = [*lines, f"hft-tui: error: {one_line(exc)}"], code or 1
        self.call_from_thread(self.leave, code, lines)

    def leave(self, return_code: int, lines: list[str]) -> None:
        """Exits; ``lines`` are printed once the terminal is back."""
        self.farewell.extend(lines)
        self.exit(None, return_code)
