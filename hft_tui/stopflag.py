"""A stop request that a signal handler may raise.

``threading.Event.set`` takes the event's lock; a Python signal handler runs
in the main thread between two bytecodes, possibly while that same thread
holds the lock inside ``Event.wait``, and then deadlocks on it for good (seen
here: a supervisor hung in its SIGTERM handler and never set the kill
switch).  This flag is a plain bool plus a byte written to a self-pipe, so
setting it takes no lock, and ``wait`` is a ``select`` on the pipe that any
``set`` (from a thread or a handler) wakes at once.
"""

from __future__ import annotations

import os
import select


class StopFlag:
    def __init__(self) -> None:
        self._set = False
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set(self) -> None:
        self._set = True
        try:
            os.write(self._write, b"\0")
        except OSError:  # the pipe is full (it already wakes every waiter) or closed
            pass

    def fileno(self) -> int:
        """Readable once set: a select or epoll over other files wakes on a stop too."""
        return self._read

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; otherwise after ``timeout`` seconds, whether set."""
        if not self._set:
            # PEP 475: select is retried after a signal, and the handler's byte ends it.
            select.select([self._read], [], [], timeout)
        return self._set

    def close(self) -> None:
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
