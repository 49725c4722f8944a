"""A stop request raised from a signal handler always ends the wait (the supervisor's SIGTERM path)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from hft_tui.stopflag import StopFlag

pytestmark = pytest.mark.pure  # no root, no kernel


def test_a_signal_handler_setting_the_flag_ends_the_wait_of_the_main_thread():
    flag = StopFlag()
    previous = signal.signal(signal.SIGUSR1, lambda *_: flag.set())
    try:
        # Many signals while the main thread is waiting: with threading.Event a
        # handler landing inside Event.wait deadlocks on the event's own lock.
        sender = threading.Thread(target=lambda: [os.kill(os.getpid(), signal.SIGUSR1) for _ in range(50)])
        sender.start()
        assert flag.wait(30) is True
        sender.join()
        assert flag.is_set()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        flag.close()


def test_a_set_from_another_thread_wakes_the_waiter_and_stays_set():
    flag = StopFlag()
    threading.Timer(0.05, flag.set).start()
    assert flag.wait(30) is True
    assert flag.wait(0) is True
    flag.close()


def test_an_unset_flag_waits_out_its_timeout_and_says_so():
    flag = StopFlag()
    assert flag.wait(0.01) is False
    assert not flag.is_set()
    flag.close()
