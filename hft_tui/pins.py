"""The engine's pins on bpffs: /sys/fs/bpf/hft_tui/IFACE/<map or prog>.

The pins are what keeps an engine alive without the process that loaded it
and how every other process reaches it (the maps, the kill switch, the
program).  Only this module makes or removes them.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

from . import libbpf, paths
from .errors import EngineError


def ensure_bpffs() -> None:
    """Mounts bpffs on /sys/fs/bpf when nothing is mounted there."""
    with open("/proc/mounts") as f:
        if any(line.split()[1:3] == [str(paths.BPFFS), "bpf"] for line in f):
            return
    libc = ctypes.CDLL(None, use_errno=True)
    paths.BPFFS.mkdir(parents=True, exist_ok=True)
    if libc.mount(b"bpf", str(paths.BPFFS).encode(), b"bpf", 0, b"mode=0700") != 0:
        err = ctypes.get_errno()
        raise EngineError(
            f"bpffs is not mounted on {paths.BPFFS} and mounting it failed ({os.strerror(err)}): "
            f"mount -t bpf bpf {paths.BPFFS}"
        )


def attached_ifaces() -> list[str]:
    """Interfaces that have an engine pinned (attached, or left behind)."""
    if not paths.PIN_ROOT.is_dir():
        return []
    return sorted(p.name for p in paths.PIN_ROOT.iterdir() if p.is_dir())


def pin_all(directory: Path, map_fds: dict[str, int], prog_fd: int) -> None:
    paths.PIN_ROOT.mkdir(mode=0o700, exist_ok=True)
    directory.mkdir(mode=0o700)
    for name, fd in map_fds.items():
        libbpf.pin(fd, str(directory / name))
    libbpf.pin(prog_fd, str(directory / "prog"))


def pinned_prog_id(directory: Path) -> int | None:
    """The id of the program pinned in ``directory`` (ours, whatever the state file says)."""
    try:
        fd = libbpf.obj_get(str(directory / "prog"))
    except OSError:
        return None
    try:
        return libbpf.prog_info(fd).id
    except OSError:
        return None
    finally:
        os.close(fd)


def unpin_all(directory: Path) -> None:
    if directory.is_dir():
        shutil.rmtree(directory, ignore_errors=True)
