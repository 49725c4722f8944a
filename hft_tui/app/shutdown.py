"""The signals that end the app (SIGHUP: its terminal closed; SIGTERM), and a watchdog.

A raw Python signal handler runs between any two bytecodes of the main
thread: one that called into the app from there once re-entered Textual's
bounded writer queue and left the app hanging for good, engine attached and
lab up.  So the handler here only writes the signal's number to a pipe (one
system call, safe anywhere).  A thread of this module reads it, hands the
signal to the app's event loop (``loop.call_soon_threadsafe``), where the
app leaves its normal way, and keeps watching: if the app has not exited
APP_EXIT_S after the signal, or what runs after it (releasing the engine,
the demo's lab) has not finished CLEANUP_S after that, it does the safety
part itself (the ``safety`` callbacks: kill switch, detach, the lab the demo
made) and ends the process.

The watch is installed before anything is made (the demo installs it before
its lab) and stays until the very end, so there is no moment at which the
default action of these signals (die on the spot, leaving everything) applies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import paths

STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
APP_EXIT_S = 5.0  # after a signal, the app has this long to exit ...
CLEANUP_S = 20.0  # ... and what follows (supervision released, the demo's lab down) this long
SAFETY_S = 15.0  # the watchdog's own steps get this long; then the process ends whatever they did
LOG = paths.RUN_DIR / "app-watchdog.log"


class SignalWatch:
    """SIGHUP/SIGTERM noted at any moment, handed to the app's loop, and a deadline on the way out.

    ``safety`` callbacks run, in order, only if the deadline passes; each is
    given the signal's number, and one that fails does not stop the next."""

    def __init__(self, *, app_exit_s: float = APP_EXIT_S, cleanup_s: float = CLEANUP_S, log: Path = LOG) -> None:
        self.app_exit_s = app_exit_s
        self.cleanup_s = cleanup_s
        self.log = log
        self.signum: int | None = None  # the first stop signal received
        self.safety: list[Callable[[int], None]] = []
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._previous: dict[int, object] = {}
        self._cond = threading.Condition()
        self._deliver: Callable[[int], None] | None = None  # the running app's loop, while it runs
        self._app_ran = False
        self._app_exited_at: float | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._watch, name="signal-watch", daemon=True)

    # -- set-up and the end -------------------------------------------------------
    def install(self) -> SignalWatch:
        """From the main thread: the handlers in place, the watching thread started."""
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._note)
        self._thread.start()
        return self

    def finished(self) -> None:
        """The process's own way out is done: the watchdog stands down, the handlers go back."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()
        for sig, handler in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"\0")  # wakes the thread if it still waits for a signal

    def _note(self, signum: int, frame: object) -> None:
        # The only thing done in the handler: one write (never blocks; a full pipe already says it).
        with contextlib.suppress(OSError):
            os.write(self._write_fd, bytes([signum]))

    # -- the app ------------------------------------------------------------------------
    def app_started(self, deliver: Callable[[int], None]) -> None:
        """The app runs: ``deliver(signum)`` (safe from any thread) stops it.
        A signal that came before (during start-up) is delivered now."""
        with self._cond:
            self._deliver = deliver
            self._app_ran = True
            pending = self.signum
        if pending is not None:
            self._hand_over(pending)

    def app_exited(self) -> None:
        with self._cond:
            self._deliver = None
            self._app_exited_at = time.monotonic()
            self._cond.notify_all()

    def _hand_over(self, signum: int) -> None:
        with self._cond:
            deliver = self._deliver
        if deliver is None:
            return
        try:
            deliver(signum)
        except RuntimeError:
            pass  # the loop closed meanwhile: the app is on its way out already

    # -- the watching thread ---------------------------------------------------------------
    def _watch(self) -> None:
        while True:
            data = os.read(self._read_fd, 64)
            with self._cond:
                if self._finished:
                    return
            signums = [b for b in data if b]
            if signums:
                break
        signum = signums[0]
        signalled = time.monotonic()
        with self._cond:
            self.signum = signum
        self._hand_over(signum)
        with self._cond:
            while not self._finished:
                if self._deliver is not None:
                    deadline = signalled + self.app_exit_s
                else:
                    deadline = max(signalled, self._app_exited_at or signalled) + self.cleanup_s
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._finished:
                return
            stuck = "the app did not exit" if self._deliver is not None else "the way out did not finish"
        self._force(signum, stuck)

    def _force(self, signum: int, stuck: str) -> None:
        lines = [f"hft-tui: stopped by signal {signum}; {stuck} in time: the watchdog took over"]

        def steps() -> None:
            for step in self.safety:
                try:
                    step(signum)
                except BaseException as exc:  # the next step runs whatever this one did
                    lines.append(f"hft-tui: watchdog: {getattr(step, '__name__', 'step')} failed: {exc}")

        worker = threading.Thread(target=steps, name="watchdog-safety", daemon=True)
        worker.start()
        worker.join(SAFETY_S)
        if worker.is_alive():
            lines.append(f"hft-tui: watchdog: its steps took over {SAFETY_S:g} s; ending anyway")
        _log(self.log, lines)
        _say(lines)
        os._exit(128 + signum)


def _say(lines: list[str]) -> None:
    """To the terminal if it is still there; never blocking (a stuck terminal is one way to get here)."""
    with contextlib.suppress(Exception):
        fd = sys.__stderr__.fileno() if sys.__stderr__ else 2
        os.set_blocking(fd, False)
        os.write(fd, ("\r\n".join(lines) + "\r\n").encode())


def _log(path: Path, lines: list[str]) -> None:
    """The watchdog's account, kept: its terminal is likely gone."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a") as f:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for line in lines:
                f.write(f"{stamp} pid {os.getpid()} {line}\n")
