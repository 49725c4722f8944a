"""What hft-tui needs before it can touch the kernel: root, BCC with kernel headers,
and code and config that no other user can change.

Each check is one clear line with its fix, raised before anything is changed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from . import paths
from .errors import EngineError


def require_root() -> None:
    if os.geteuid() != 0:
        raise EngineError("hft-tui needs root for BPF and netlink: run it with sudo")


def require_bcc():
    try:
        import bcc
    except ImportError:
        raise EngineError(
            "BCC's Python module is missing: run 'make install' (apt-get install python3-bpfcc libbpfcc) "
            "and use the venv made from /usr/bin/python3 --system-site-packages"
        ) from None
    build = Path(f"/lib/modules/{os.uname().release}/build")
    if not build.exists():
        raise EngineError(
            f"no kernel headers at {build}: run 'make install' (installs linux-headers-amd64 "
            "and links /lib/modules/$(uname -r) to them)"
        )
    return bcc


# -- the code root runs ------------------------------------------------------------------


def _who_can_change(st: os.stat_result) -> str | None:
    """Who other than root can change a file or directory with this lstat, or None."""
    if st.st_uid != 0:
        return f"uid {st.st_uid} (its owner)"
    if stat.S_ISLNK(st.st_mode):
        return None  # a symlink's own mode means nothing; its directory is checked
    if st.st_mode & 0o020 and st.st_gid != 0:
        return f"group {st.st_gid} (mode {stat.S_IMODE(st.st_mode):o})"
    if st.st_mode & 0o002 and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        return f"every user (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _tree(top: Path) -> list[Path]:
    """``top``, everything below it (compiled caches too: a planted .pyc runs) and every directory above it."""
    found = [*top.parents, top]
    if top.is_dir() and not top.is_symlink():
        for root, dirs, files in os.walk(top):
            found += [Path(root, name) for name in dirs + files]
    return found


def _interpreter_paths() -> list[Path]:
    """What the interpreter runs at start-up: the venv's bin directory and its
    python, the site-packages directory and the .pth files in it."""
    out = [Path(sys.executable), Path(sys.executable).resolve()]
    site_dir = Path(sysconfig.get_path("purelib"))
    out.append(site_dir)
    with contextlib.suppress(OSError):
        out += [p for p in site_dir.iterdir() if p.suffix == ".pth" or p.name.startswith("__editable__")]
    return out


def require_trusted_code(
    config_paths: Iterable[str | Path] = (),
    *,
    code_dirs: Iterable[Path] | None = None,
    interpreter: Iterable[Path] | None = None,
) -> None:
    """Refuses, in one line naming the file, to run as root code or config that
    another user can change.  Root compiles ebpf/* into the kernel and runs
    hft_tui/*.py from the checkout (an editable install): a checkout a user
    can write is that user's root shell.  Checked: the package and ebpf/
    (every file and directory in them, and every directory above them up to
    /), the interpreter's start-up files, and the config files given (and
    the directories above them).  A sticky world-writable directory (/tmp)
    may be on the way: only an entry's owner can replace it there."""
    dirs = [paths.PACKAGE_DIR, paths.EBPF_DIR] if code_dirs is None else list(code_dirs)
    candidates: list[Path] = []
    for top in dirs:
        candidates += _tree(top)
    for extra in _interpreter_paths() if interpreter is None else interpreter:
        candidates += [*extra.parents, extra]
    configs = [Path(os.path.abspath(c)) for c in config_paths]
    for config in configs:
        candidates += [*config.parents, config]
    seen: set[Path] = set()
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # a missing config is load_config's to report
        who = _who_can_change(st)
        if who:
            what = "config" if path in configs else "code"
            raise EngineError(
                f"refusing to run as root: {path} can be changed by {who}, and root would run {what} "
                "another user wrote; install from a checkout only root can write (README: Install)"
            )
