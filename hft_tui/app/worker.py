"""The background worker: supervises one engine and posts what it sees.

A plain thread (not the event loop) ticks the controller at the poll rate:
a tick is a handful of map reads and a ring-buffer drain into the journal,
and it must go on beating the heartbeat even while the UI is busy drawing.
Each tick becomes an immutable view posted to the app; the thread never
touches a widget.
"""

from __future__ import annotations

import queue
import threading
import time

from textual.message_pump import MessagePump

from ..constants import KILL_OFF, KILL_OPERATOR
from ..controller import Controller
from ..engine import EngineHandle
from .messages import EngineTicked, SupervisionEnded, SupervisionStarted
from .model import LinkState, ViewBuilder

# The interface's XDP state is read over netlink once every this many ticks.
LINK_CHECK_EVERY = 10


def open_journal(iface: str):
    """The one place the app creates the order journal of the engine it supervises."""
    from ..journal import open_journal as open_iface_journal

    return open_iface_journal(iface)


class EnginePoller:
    """Owns the controller of one engine for as long as the app supervises it."""

    def __init__(self, target: MessagePump, iface: str, *, poll_hz: float = 10.0,
                 deterministic: bool = False) -> None:
        if not 1 <= poll_hz <= 1000:
            raise ValueError(f"poll rate {poll_hz} Hz is outside 1..1000")
        self.target = target
        self.iface = iface
        self.interval = 1.0 / poll_hz
        self.deterministic = deterministic
        self.ticks = 0
        self.stop_lines: list[str] = []      # what controller.stop did
        self._detach = False
        self._stop = threading.Event()
        self._changes: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"engine-poller-{iface}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, detach: bool = False, timeout: float = 10.0) -> list[str]:
        """Stops supervising; with ``detach`` the controller detaches the engine
        first and then drains what is left into the journal."""
        self._detach = detach
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return self.stop_lines

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def note_change(self, what: str, detail: dict) -> None:
        """An operator's change, journaled by the controller on its own thread."""
        self._changes.put((what, detail))

    def _journal_changes(self, controller: Controller) -> None:
        while not self._changes.empty():
            what, detail = self._changes.get_nowait()
            controller.record_change(what, detail)

    def _link(self, handle: EngineHandle) -> LinkState:
        xdp = handle.xdp()
        if xdp is None:
            return LinkState(present=False)
        ours = bool(xdp.mode and handle.record and xdp.prog_id == handle.record.prog_id)
        return LinkState(present=True, attached=ours, mode=xdp.mode if ours else None,
                         prog_id=xdp.prog_id if ours else None)

    def _open_journal(self, handle: EngineHandle) -> tuple[object | None, str | None]:
        """The journal, or (None, why): then orders cannot be journaled, so none may be sent."""
        try:
            return open_journal(self.iface), None
        except Exception as exc:
            if handle.maps.kill() == KILL_OFF:
                handle.maps.set_kill(KILL_OPERATOR)
            return None, f"JOURNAL UNAVAILABLE ({exc}): kill switch latched; supervising without a journal"

    def _run(self) -> None:
        error = None
        controller = handle = journal = None
        try:
            handle = EngineHandle(self.iface)
            journal, journal_error = self._open_journal(handle)
            controller = Controller(handle, journal=journal)
            controller.start()
            self.target.post_message(SupervisionStarted(self.iface, controller.tripped_on_start, journal_error))
            builder = ViewBuilder(self.iface, handle.record, deterministic=self.deterministic)
            link = self._link(handle)
            next_at = time.monotonic()
            while not self._stop.is_set():
                if self.ticks and self.ticks % LINK_CHECK_EVERY == 0:
                    link = self._link(handle)
                self._journal_changes(controller)
                tick = controller.tick(0)
                self.ticks += 1
                self.target.post_message(EngineTicked(builder.build(tick, link)))
                if tick.ended:
                    # The interface went away or the engine was detached under us;
                    # the controller journaled it and cleaned the pins.
                    error = "; ".join(a.text() for a in tick.alerts if a.kind == "engine") or tick.ended
                    break
                next_at += self.interval
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind (a slow tick): do not try to catch up
                    next_at, delay = time.monotonic(), 0
                self._stop.wait(delay)
        except Exception as exc:  # shown in the app as one line; never a traceback
            error = f"supervision of {self.iface} failed: {exc}"
        finally:
            if controller is not None and not controller.ended:
                try:
                    self.stop_lines = controller.stop(detach=self._detach)
                except Exception as exc:
                    error = error or f"stopping supervision of {self.iface}: {exc}"
            if journal is not None:
                journal.close()
            if handle is not None:
                handle.close()
            self.target.post_message(SupervisionEnded(self.iface, error))
