"""Shared fixtures, and the two kinds of test.

Pure tests (marked ``pure``: the config, the protocol, the layouts, the
strategy model, the app's views...) need neither root nor the kernel and run
as any user: ``pytest -m "pure and not kernel"`` (a module marked pure may
hold a few tests marked ``kernel``).  Every other test is a kernel test: it needs
root, BCC and kernel headers, and a session that selects one without them
ends at once with the reason (CI runs as root).  Under CI=true a skipped
test is turned into a failure, so a green run always exercised the real
kernel.
"""

from __future__ import annotations

import os

import pytest

from hft_tui import lab, preflight
from hft_tui.errors import HftError

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def is_pure(item: pytest.Item) -> bool:
    """Marked pure (module or test) and not marked kernel (a kernel test in a pure module)."""
    return item.get_closest_marker("pure") is not None and item.get_closest_marker("kernel") is None


def kernel_problem() -> str | None:
    """Why the kernel tests cannot run here, or None."""
    try:
        preflight.require_root()
        preflight.require_bcc()
    except HftError as exc:
        return str(exc)
    return None


@pytest.hookimpl(trylast=True)  # after `-m pure` deselected the rest: only what will run counts
def pytest_collection_modifyitems(session, config, items):
    kernel_tests = [item for item in items if not is_pure(item)]
    if not kernel_tests:
        return
    problem = kernel_problem()
    if problem:
        pytest.exit(
            f"{len(kernel_tests)} kernel test(s) selected but they cannot run: {problem} "
            "(the tests that need neither root nor the kernel: pytest -m pure)",
            returncode=3,
        )


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
    from hft_tui.program import bcc_map_fds, load_strategy

    b, fd = load_strategy()
    maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
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
