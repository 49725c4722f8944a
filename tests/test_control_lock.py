"""The control lock (locks.py): one holder at a time, even across the detach that removes its file."""

from __future__ import annotations

import threading
import time

import pytest

from hft_tui import locks, paths


@pytest.mark.pure
def test_a_waiter_on_a_removed_lock_file_never_holds_it_beside_a_newcomer(tmp_path, monkeypatch):
    """A holds the lock and removes its file (a detach); B was waiting on that file; C comes
    after and makes a new one.  B and C must not hold the lock at the same time."""
    monkeypatch.setattr(paths, "RUN_DIR", tmp_path)
    holders: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    a_holds, c_holds, c_may_go = threading.Event(), threading.Event(), threading.Event()

    def hold(name: str, until: threading.Event | None = None) -> None:
        with locks.control_lock("hft9"):
            holders.append(name)
            if len(holders) > 1:
                overlaps.append(tuple(holders))
            if name == "C":
                c_holds.set()
            if until is not None:
                until.wait(5)
            else:
                time.sleep(0.2)
            holders.remove(name)

    def a() -> None:
        with locks.control_lock("hft9"):
            a_holds.set()
            time.sleep(0.2)  # B starts waiting on this file
            locks.remove_control_lock("hft9")

    ta = threading.Thread(target=a)
    ta.start()
    a_holds.wait(5)
    tb = threading.Thread(target=hold, args=("B",))
    tb.start()
    ta.join()
    tc = threading.Thread(target=hold, args=("C", c_may_go))
    tc.start()
    c_holds.wait(5)
    time.sleep(0.2)  # B, if it held the old file, would be inside now
    c_may_go.set()
    tb.join()
    tc.join()
    assert overlaps == []
