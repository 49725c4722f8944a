"""The background worker: the engine's supervisor process, seen from the app.

The controller (heartbeat, ring-buffer drain, journal) runs in its own
process (supervisor_process.py) so that its work never holds the UI's
interpreter lock.  This side starts it, reads its views on a thread
(blocked in a read most of the time) and posts them to the app as
messages; the thread never touches a widget.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import threading

from textual.message_pump import MessagePump

from .. import paths
from ..python_child import CHILD_CWD, python_module_argv
from ..safefile import open_private_log
from .messages import EngineTicked, SupervisionEnded, SupervisionStarted
from .supervisor_process import FRAME

LOG = paths.RUN_DIR / "app-supervisor.log"


class EnginePoller:
    """Supervises one engine through a supervisor process, for as long as the app wants."""

    def __init__(self, target: MessagePump, iface: str, *, poll_hz: float = 10.0, deterministic: bool = False) -> None:
        if not 1 <= poll_hz <= 1000:
            raise ValueError(f"poll rate {poll_hz} Hz is outside 1..1000")
        self.target = target
        self.iface = iface
        self.poll_hz = poll_hz
        self.deterministic = deterministic
        self.ticks = 0
        self.stop_lines: list[str] = []  # what the controller's stop did
        self.proc: subprocess.Popen[bytes] | None = None
        self._ended = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name=f"engine-views-{iface}", daemon=True)

    def start(self) -> None:
        argv = python_module_argv(
            "hft_tui.app.supervisor_process", self.iface, "--poll-hz", str(self.poll_hz), "--app-pid", str(os.getpid())
        )
        if self.deterministic:
            argv.append("--deterministic")
        paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open_private_log(LOG) as log:  # 0600: a log may hold trading detail
            # Its own session: the terminal's signals are the app's to handle.
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd=CHILD_CWD,
            )
        self._thread.start()

    def _send(self, obj: dict) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        with self._write_lock:
            try:
                self.proc.stdin.write((json.dumps(obj) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass

    def note_change(self, what: str, detail: dict) -> None:
        """An operator's change, journaled by the controller."""
        self._send({"change": [what, detail]})

    def stop(self, *, detach: bool = False, timeout: float = 15.0) -> list[str]:
        """Ends supervision; with ``detach`` the controller detaches the engine first,
        then drains what is left into the journal.  Returns what it did."""
        if self.proc is None:
            return []
        self._send({"stop": {"detach": detach}})
        self._ended.wait(timeout)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return self.stop_lines

    def abandon(self, timeout: float = 3.0) -> None:
        """Ends the supervisor process without a word through the pipe (the app is
        stuck): SIGTERM, on which it sets the kill switch and stops; SIGKILL if it
        has not within ``timeout``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _read(self) -> None:
        # The thread is started by start(), after the process, whose stdout is a pipe.
        assert self.proc is not None and self.proc.stdout is not None, "read before start()"
        stream = self.proc.stdout
        error = None
        try:
            while True:
                head = stream.read(FRAME.size)
                if len(head) < FRAME.size:
                    error = f"the supervisor of {self.iface} stopped (see {LOG})"
                    break
                (size,) = FRAME.unpack(head)
                kind, payload = pickle.loads(stream.read(size))
                if kind == "view":
                    self.ticks += 1
                    self.target.post_message(EngineTicked(payload))
                elif kind == "started":
                    tripped, journal_error = payload
                    self.target.post_message(SupervisionStarted(self.iface, tripped, journal_error))
                elif kind == "ended":
                    error, self.stop_lines = payload
                    break
        except Exception as exc:  # a broken stream: shown as one line
            error = f"lost the supervisor of {self.iface}: {exc}"
        finally:
            self._ended.set()
            self.target.post_message(SupervisionEnded(self.iface, error))
