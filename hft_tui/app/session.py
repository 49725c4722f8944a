"""The engine the app supervises: the one object of the app that touches it.

The app is given a session and asks it to take an engine over, attach,
detach, kill, resume, write parameters and, on the way out, release the
engine.  The session holds that state (the control handle and the
supervisor process) outside the App, so the app only composes screens and
routes keys, and the app's tests can give it a stand-in that plays recorded
views without a kernel (tests/test_app_offline.py).

Writes are done in the caller's thread (the UI's) because each is a single
map update that takes microseconds: the kill key never waits behind a queue.
The slow calls (attach, detach, interfaces, release) are made from threads;
every method is safe from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from textual.message_pump import MessagePump

from .. import engine, netlink
from ..config import EngineParams, SymbolParams, default_config, load_config
from ..engine import EngineHandle, EngineRecord
from ..errors import ConfigError, EngineError, HftError
from ..netlink import Interface
from ..pins import attached_ifaces
from ..symbol import Symbol
from .formatting import one_line, param_value
from .worker import EnginePoller

# Errors whose text is meant for the user as it is: every HftError, and an
# OSError's strerror (a file or a socket refused); the app shows them in one
# line, anything else is a bug (the app's crash handling takes over).
USER_ERRORS = (HftError, OSError)

T = TypeVar("T")


class Session(Protocol):
    """What the app asks of the engine it supervises (EngineSession; a stand-in in tests).

    Methods that write to an engine return None when none is supervised, and
    raise one of USER_ERRORS when the engine refuses."""

    deterministic: bool  # snapshot mode: views and screen print steady placeholders

    @property
    def iface(self) -> str | None:
        """The interface of the engine supervised here, or None."""

    def config_mode(self) -> str:
        """The XDP mode an attach starts on."""

    def engines(self) -> dict[str, int]:
        """iface -> program id of every hft-tui engine attached on this machine."""

    def record(self, iface: str) -> EngineRecord | None:
        """What the state file remembers of the engine on ``iface``."""

    def interfaces(self) -> list[Interface]:
        """Every interface of this machine (netlink)."""

    def take_over(self, iface: str, target: MessagePump) -> None:
        """Supervises the engine on ``iface``; its views go to ``target`` as messages."""

    def supervision_lost(self, iface: str) -> bool:
        """The supervisor of ``iface`` stopped on its own: forget the engine (True if it was ours)."""

    def release(self, policy: str) -> list[str]:
        """Ends supervision ("detach", "kill" or "leave"); returns what it did."""

    def abandon(self) -> list[str]:
        """The watchdog's way out when the app is stuck (another thread; takes no lock
        the stuck thread may hold): the kill switch set, supervision ended."""

    def attach(self, iface: str, mode: str) -> str:
        """Compiles and attaches an engine (slow: call from a thread); returns what it did."""

    def detach(self, iface: str) -> list[str]:
        """Detaches the engine on ``iface`` (slow: call from a thread)."""

    def kill(self) -> int | None:
        """Sets the supervised engine's kill switch; returns the switch read back."""

    def kill_every_engine(self) -> tuple[list[str], list[str]]:
        """With nothing supervised: kills every hft-tui engine here; (killed, failed)."""

    def resume(self) -> tuple[str, int] | None:
        """Clears the supervised engine's kill switch; (iface, switch read back)."""

    def set_param(self, symbol: str | None, key: str, value: str) -> tuple[SymbolParams | EngineParams, int] | None:
        """Writes one parameter (symbol None: engine-wide); (what the map holds now, config version)."""

    def add_symbol(self, name: str, values: dict[str, str]) -> SymbolParams | None:
        """Adds a symbol (values left empty take the defaults); what the map holds now."""

    def remove_symbol(self, name: str) -> bool | None:
        """Removes a symbol with its position and statistics."""


def listed_engines(session: Session) -> tuple[dict[str, int] | None, str]:
    """(iface -> program id, "") of the engines attached here, or (None, why) when they cannot be
    listed (the pin root refused, an entry gone meanwhile): the app shows why and goes on."""
    try:
        return session.engines(), ""
    except USER_ERRORS as exc:
        return None, f"cannot list the engines here: {one_line(exc)}"


class EngineSession:
    """The real session: an engine handle for writes and a supervisor process for views."""

    def __init__(self, *, config_path: str | None = None, poll_hz: float = 10.0, deterministic: bool = False) -> None:
        self.config_path = config_path
        self.poll_hz = poll_hz
        self.deterministic = deterministic
        self.handle: EngineHandle | None = None  # control writes
        self.poller: EnginePoller | None = None  # supervision (its own process)
        self._lock = threading.Lock()  # handle and poller change together
        # The engine supervised, until a release has finished with it (for abandon()).
        self._supervised: tuple[str, EnginePoller] | None = None

    # -- what is there ------------------------------------------------------
    @property
    def iface(self) -> str | None:
        handle = self.handle  # one read: another thread may release it
        return handle.iface if handle else None

    def config_mode(self) -> str:
        """The config's XDP mode, else native."""
        if self.config_path:
            try:
                return load_config(self.config_path).engine.mode
            except ConfigError:
                pass  # the attach reports the bad config when it is tried
        return "native"

    def engines(self) -> dict[str, int]:
        out = {}
        for iface in attached_ifaces():
            rec = EngineRecord.load(iface)
            out[iface] = rec.prog_id if rec else 0
        return out

    def record(self, iface: str) -> EngineRecord | None:
        return EngineRecord.load(iface)

    def interfaces(self) -> list[Interface]:
        return netlink.interfaces()

    # -- supervision ----------------------------------------------------------
    def take_over(self, iface: str, target: MessagePump) -> None:
        poller = self.poller
        if poller is not None:
            raise EngineError(f"already supervising {poller.iface}: detach it first")
        handle = EngineHandle(iface)
        try:
            poller = EnginePoller(target, iface, poll_hz=self.poll_hz, deterministic=self.deterministic)
        except BaseException:
            handle.close()
            raise
        with self._lock:  # before start: the supervisor's first message finds them
            self.handle, self.poller = handle, poller
            self._supervised = (iface, poller)
        try:
            poller.start()
        except BaseException:  # no supervisor: the session keeps nothing of this engine
            with self._lock:
                self.handle = self.poller = None
                self._supervised = None
            poller.abandon()  # a process started before the failure
            handle.close()
            raise

    def _take_engine(self) -> tuple[EngineHandle | None, EnginePoller | None]:
        """The handle and poller, now no longer the session's: whichever thread
        takes them (a release, the end of supervision) is the only one."""
        with self._lock:
            handle, poller = self.handle, self.poller
            self.handle = self.poller = None
        return handle, poller

    def supervision_lost(self, iface: str) -> bool:
        poller = self.poller
        if poller is None or poller.iface != iface:
            return False
        handle, _ = self._take_engine()
        if handle is not None:
            handle.close()
        self._supervised = None
        return True

    def release(self, policy: str) -> list[str]:
        """ "detach" removes the engine, "kill" sets its kill switch and leaves it,
        "leave" leaves it to the dead-man switch."""
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
        if policy == "detach" and iface in attached_ifaces():
            done.extend(engine.detach(iface))  # the controller had stopped already
        self._supervised = None
        return done

    def abandon(self) -> list[str]:
        supervised = self._supervised  # one read, no lock: the stuck thread may hold it
        if supervised is None:
            return []
        iface, poller = supervised
        done = []
        try:
            engine.kill_pinned(iface)
            done.append(f"{iface}: kill switch set")
        finally:
            poller.abandon()
        return done

    def _note(self, what: str, detail: dict) -> None:
        """An operator's change, journaled by the supervisor."""
        poller = self.poller
        if poller is not None:
            poller.note_change(what, detail)

    def _with_handle(self, use: Callable[[EngineHandle], T]) -> T | None:
        """``use(handle)`` on the supervised engine's handle, or None when none is
        supervised.  The handle is held while ``use`` runs (a few map operations),
        so another thread's release cannot close it meanwhile."""
        with self._lock:
            handle = self.handle
            if handle is None:
                return None
            return use(handle)

    # -- attach and detach (slow: threads) ------------------------------------
    def attach(self, iface: str, mode: str) -> str:
        config = load_config(self.config_path) if self.config_path else default_config()
        rec = engine.attach(iface, config, mode=mode, config_path=self.config_path)
        return f"attached to {iface} in {rec.mode} mode, program id {rec.prog_id}, {len(config.symbols)} symbol(s)"

    def detach(self, iface: str) -> list[str]:
        poller = self.poller
        if poller is not None and poller.iface == iface:
            return self.release("detach")
        return engine.detach(iface)

    # -- the kill switch ---------------------------------------------------------
    def kill(self) -> int | None:
        """Straight to the kernel: one map write, then the value read back."""

        def kill(handle: EngineHandle) -> int:
            handle.kill()
            return handle.maps.kill()

        state = self._with_handle(kill)
        if state is not None:
            self._note("kill", {"state": state})
        return state

    def kill_every_engine(self) -> tuple[list[str], list[str]]:
        killed, failed = [], []
        try:
            ifaces = attached_ifaces()
        except USER_ERRORS as exc:
            return [], [f"(cannot list the engines: {one_line(exc)})"]
        for iface in ifaces:
            try:
                engine.kill_pinned(iface)  # its own pin only: any engine version
                killed.append(iface)
            except (*USER_ERRORS, ValueError) as exc:
                failed.append(f"{iface} ({one_line(exc)})")
        return killed, failed

    def resume(self) -> tuple[str, int] | None:
        def resume(handle: EngineHandle) -> tuple[str, int]:
            handle.resume()
            return handle.iface, handle.maps.kill()

        got = self._with_handle(resume)
        if got is not None:
            self._note("resume", {"state": got[1]})
        return got

    # -- parameters ----------------------------------------------------------------
    def set_param(self, symbol: str | None, key: str, value: str) -> tuple[SymbolParams | EngineParams, int] | None:
        def write(handle: EngineHandle) -> tuple[SymbolParams | EngineParams, int]:
            if symbol is not None:
                applied: SymbolParams | EngineParams = handle.set_symbol(Symbol(symbol), {key: value}, new=False)
            else:
                applied = handle.set_engine({key: value})
            return applied, handle.maps.read_global().config_version

        got = self._with_handle(write)
        if got is not None:
            shown = param_value(key, getattr(got[0], key))
            self._note("symbol_config" if symbol else "engine_config", {"symbol": symbol, key: shown})
        return got

    def add_symbol(self, name: str, values: dict[str, str]) -> SymbolParams | None:
        given = {k: v for k, v in values.items() if v.strip()}
        applied = self._with_handle(lambda h: h.set_symbol(Symbol(name), given, new=True))
        if applied is not None:
            self._note("symbol_add", {"symbol": name, **applied.to_toml_values()})
        return applied

    def remove_symbol(self, name: str) -> bool | None:
        def remove(handle: EngineHandle) -> bool:
            handle.remove_symbol(Symbol(name))
            return True

        removed = self._with_handle(remove)
        if removed:
            self._note("symbol_remove", {"symbol": name})
        return removed
