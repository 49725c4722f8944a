"""Code and config from a user's checkout (issue 14: "Code and config from a user's checkout").

Root compiles ebpf/* into the kernel and runs hft_tui/*.py from the
checkout (the install is editable): a checkout another user can change is
that user's root shell.  As root, hft-tui refuses in one line naming the
file.  The tests make a copy of the checkout's code and give one file or
directory of it to ``nobody`` (or loosen a mode), and run the real CLI from
the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hft_tui import paths
from hft_tui.errors import EngineError
from hft_tui.preflight import require_trusted_code

NOBODY_UID = 65534


@pytest.fixture
def checkout():
    """A root-owned copy of the package and ebpf/ under /tmp (sticky /tmp on the way is fine)."""
    box = Path(tempfile.mkdtemp(prefix="hft140-checkout-"))
    box.chmod(0o755)
    copy = box / "hft-tui"
    shutil.copytree(paths.PACKAGE_DIR, copy / "hft_tui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(paths.EBPF_DIR, copy / "ebpf")
    shutil.copytree(paths.REPO_DIR / "scripts", copy / "scripts")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(paths.REPO_DIR / name, copy / name)
    (copy / "configs").mkdir()
    shutil.copy(paths.DEMO_CONFIG, copy / "configs" / "demo.toml")
    yield copy
    shutil.rmtree(box)


def check(copy: Path, configs: tuple[Path, ...] = ()) -> None:
    require_trusted_code(configs, code_dirs=[copy / "hft_tui", copy / "ebpf"], interpreter=[])


def run_cli(copy: Path, *argv: str) -> subprocess.CompletedProcess:
    """The CLI of the copy (its paths.PACKAGE_DIR is the copy's), as root, isolated."""
    code = (
        f"import sys; sys.path.insert(0, {str(copy)!r}); from hft_tui.cli import main; sys.exit(main({list(argv)!r}))"
    )
    return subprocess.run(
        [sys.executable, "-I", "-B", "-c", code], capture_output=True, text=True, timeout=120, cwd="/"
    )


def assert_refused(p: subprocess.CompletedProcess, path: Path, who: str) -> None:
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"hft-tui: error: refusing to run as root: {path} can be changed by {who}"), p.stderr


def test_a_root_owned_checkout_runs(checkout):
    check(checkout, (checkout / "configs" / "demo.toml",))
    p = run_cli(checkout, "engine", "status", "hft149")
    assert "refusing to run as root" not in p.stderr, p.stderr
    assert p.stderr.startswith("hft-tui: error: no hft-tui engine on hft149"), p.stderr


@pytest.mark.parametrize("victim", ["hft_tui/engine.py", "hft_tui/app", "ebpf/strategy.c", "ebpf", "."])
def test_a_file_or_directory_a_user_owns_is_refused_naming_it(checkout, victim):
    path = (checkout / victim).resolve()
    os.chown(path, NOBODY_UID, NOBODY_UID)
    with pytest.raises(EngineError, match=f"{path} can be changed by uid {NOBODY_UID}"):
        check(checkout)
    assert_refused(run_cli(checkout, "engine", "status"), path, f"uid {NOBODY_UID} (its owner)")


@pytest.mark.parametrize(
    "gid, mode, who", [(0, 0o666, "every user (mode 666)"), (NOBODY_UID, 0o664, "group 65534 (mode 664)")]
)
def test_a_file_others_can_write_is_refused(checkout, gid, mode, who):
    path = checkout / "hft_tui" / "pins.py"
    os.chown(path, 0, gid)
    path.chmod(mode)
    assert_refused(run_cli(checkout, "engine", "detach", "hft149"), path, who)


def test_a_compiled_cache_a_user_planted_is_refused(checkout):
    """A planted .pyc runs as surely as the .py beside it."""
    cache = checkout / "hft_tui" / "__pycache__"
    cache.mkdir(exist_ok=True)
    pyc = cache / f"engine.{sys.implementation.cache_tag}.pyc"
    pyc.write_bytes(b"")
    os.chown(pyc, NOBODY_UID, NOBODY_UID)
    with pytest.raises(EngineError, match=f"{pyc} can be changed by uid {NOBODY_UID}"):
        check(checkout)


def test_a_directory_above_the_checkout_that_others_can_write_is_refused(checkout):
    checkout.chmod(0o777)
    with pytest.raises(EngineError, match=f"{checkout} can be changed by every user"):
        check(checkout)
    checkout.chmod(0o1777)  # sticky: only an entry's owner (root) may replace it
    check(checkout)


def test_a_config_a_user_can_change_is_refused(checkout):
    config = checkout / "configs" / "demo.toml"
    os.chown(config, NOBODY_UID, NOBODY_UID)
    p = run_cli(checkout, "engine", "attach", "hft149", "--config", str(config))
    assert_refused(p, config, f"uid {NOBODY_UID} (its owner)")
    assert "root would run config another user wrote" in p.stderr
    os.chown(config, 0, 0)
    os.chown(config.parent, NOBODY_UID, NOBODY_UID)
    assert_refused(run_cli(checkout, "--demo"), config.parent, f"uid {NOBODY_UID} (its owner)")


def test_the_interpreters_start_up_files_are_checked_too(checkout, tmp_path):
    pth = tmp_path / "site" / "evil.pth"
    pth.parent.mkdir()
    pth.write_text("import os\n")
    os.chown(pth, NOBODY_UID, NOBODY_UID)
    with pytest.raises(EngineError, match=f"{pth} can be changed by uid {NOBODY_UID}"):
        require_trusted_code(code_dirs=[checkout / "hft_tui"], interpreter=[pth])
    require_trusted_code()  # this machine's own install passes


def install_check(copy: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(copy / "scripts" / "check_checkout.sh")], capture_output=True, text=True)


def test_make_install_refuses_a_users_checkout_before_running_anything_from_it(checkout):
    """scripts/check_checkout.sh, install.sh's first step (shell: nothing of the checkout is imported)."""
    assert install_check(checkout).returncode == 0
    victim = checkout / "ebpf" / "strategy.c"
    os.chown(victim, NOBODY_UID, NOBODY_UID)
    p = install_check(checkout)
    assert p.returncode == 1 and p.stderr.startswith(f"install: {victim} can be changed by a user other than root")
    os.chown(victim, 0, 0)
    (checkout / "hft_tui").chmod(0o777)
    assert install_check(checkout).stderr.startswith(f"install: {checkout / 'hft_tui'} can be changed")
    (checkout / "hft_tui").chmod(0o755)
    checkout.parent.chmod(0o777)
    assert install_check(checkout).stderr.startswith(f"install: {checkout.parent} can be changed")
    checkout.parent.chmod(0o1777)  # sticky, like /tmp: fine
    assert install_check(checkout).returncode == 0
    checkout.parent.chmod(0o755)
