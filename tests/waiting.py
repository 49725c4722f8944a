"""Waiting for a condition in the real system, with a deadline that names what was awaited."""

from __future__ import annotations

import time


def wait_for(cond, timeout: float, what: str, interval: float = 0.05):
    """``cond()``'s first truthy value; an AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
