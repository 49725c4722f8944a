"""Shared fixtures.

The kernel tests need root, BCC and kernel headers; CI runs as root.  A run
that selects any test not marked ``offline`` ends at once without them (exit
code 3); a run of offline tests only works as any user.  Under CI=true a
skipped test is turned into a failure, so a green run always exercised the
real kernel.
"""

from __future__ import annotations

import os

import pytest

from hft_tui import engine, lab

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line("markers", "offline: needs no root, BCC or kernel (runs as a normal user)")


def pytest_collection_finish(session):
    """Ends the session at once when a kernel test was selected and cannot run here;
    a selection of offline tests only runs anywhere."""
    if all(item.get_closest_marker("offline") for item in session.items):
        return
    try:
        engine.require_root()
        engine.require_bcc()
    except engine.EngineError as exc:
        pytest.exit(f"kernel tests cannot run: {exc}", returncode=3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (a skipped kernel test is a failure): {report.longrepr}"


@pytest.fixture
def make_lab():
    """make_lab(n) -> Lab: lab number n, up; torn down after the test.

    Each test module uses its own numbers, so modules never share a lab.
    """
    made = []

    def factory(n: int) -> lab.Lab:
        L = lab.Lab.numbered(n)
        lab.down(L, quiet=True)
        lab.up(L)
        made.append(L)
        return L

    yield factory
    for L in made:
        lab.down(L, quiet=True)


@pytest.fixture(scope="module")
def strategy_program():
    """(BCC object, prog fd, EngineMaps) of a freshly loaded, unattached strategy."""
    from hft_tui.maps import EngineMaps

    b, fd = engine.load_strategy()
    maps = EngineMaps(engine.bcc_map_fds(b), owns_fds=False)
    yield b, fd, maps
    b.cleanup()


@pytest.fixture(scope="module")
def h(strategy_program):
    """A BPF_PROG_TEST_RUN harness (frames.Harness) around that program."""
    from frames import Harness

    _, prog_fd, maps = strategy_program
    harness = Harness(prog_fd, maps)
    yield harness
    harness.close()
