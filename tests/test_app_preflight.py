"""Starting the app where it cannot work: one clear line with the fix, a non-zero exit,
and the full screen never opens (no escape sequences on the terminal)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HFT_TUI = Path(sys.executable).with_name("hft-tui")
NOBODY = 65534


def run_app(*, user: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [str(HFT_TUI)]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_without_root_one_line_says_to_use_sudo():
    got = run_app(user=NOBODY)
    assert got.returncode != 0
    assert got.stderr.strip().splitlines() == [
        "hft-tui: error: hft-tui needs root for BPF and netlink: run it with sudo"
    ]
    assert got.stdout == ""  # the screen never opened


def test_without_bcc_one_line_says_how_to_install_it(tmp_path):
    # A 'bcc' package that cannot be imported, ahead of Debian's on the path.
    (tmp_path / "bcc").mkdir()
    (tmp_path / "bcc" / "__init__.py").write_text('raise ImportError("no bcc here")\n')
    got = run_app(env={"PYTHONPATH": str(tmp_path)})
    assert got.returncode != 0
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "BCC's Python module is missing: run 'make install'" in lines[0]
    assert got.stdout == ""


def test_without_kernel_headers_one_line_says_how_to_install_them(tmp_path):
    # A kernel release with nothing under /lib/modules: BCC would have no headers to compile against.
    release = "0.0.0-hft-tui-no-headers"
    assert not Path(f"/lib/modules/{release}").exists()
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        "_uname = os.uname\n"
        "def uname():\n"
        "    u = _uname()\n"
        f"    return os.uname_result((u.sysname, u.nodename, {release!r}, u.version, u.machine))\n"
        "os.uname = uname\n"
    )
    got = run_app(env={"PYTHONPATH": str(tmp_path)})
    assert got.returncode != 0
    assert got.stderr.strip().splitlines() == [
        f"hft-tui: error: no kernel headers at /lib/modules/{release}/build: run 'make install' "
        "(installs linux-headers-amd64 and links /lib/modules/$(uname -r) to them)"
    ]
    assert got.stdout == ""  # the screen never opened
