"""The engine's pins on bpffs: /sys/fs/bpf/hft_tui/IFACE/<map or prog>.

The pins are what keeps an engine alive without the process that loaded it
and how every other process reaches it (the maps, the kill switch, the
program).  Only this module makes or removes them.

bpffs may be world-writable (mounted without a mode it is 1777), so the pin
root and its entries are checked before every use, never trusted: each is a
real directory (never a symlink), owned by root, writable by nobody else,
and every entry's name passes the interface-name check; the directory
holding the pin root may be sticky (1777) but not writable by others
otherwise.  A user's ``ln -s /home /sys/fs/bpf/hft_tui`` would otherwise
turn ``sudo hft-tui engine detach`` into ``rm -rf /home/<user>``.  Pins are
removed through directory descriptors opened with O_NOFOLLOW (unlinkat),
never through a path that could change between the check and the removal.

The pin root is a parameter of every function here (the directory's parent
where a pin directory is given), ``paths.PIN_ROOT`` by default: the tests
run the attacks against a bpffs of their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from . import libbpf, paths
from .errors import EngineError, PathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def ensure_bpffs() -> None:
    """Mounts bpffs on /sys/fs/bpf when nothing is mounted there (mode 0700: root's alone)."""
    with open("/proc/mounts") as f:
        if any(line.split()[1:3] == [str(paths.BPFFS), "bpf"] for line in f):
            return
    libc = ctypes.CDLL(None, use_errno=True)
    paths.BPFFS.mkdir(parents=True, exist_ok=True)
    if libc.mount(b"bpf", str(paths.BPFFS).encode(), b"bpf", 0, b"mode=0700") != 0:
        err = ctypes.get_errno()
        raise EngineError(
            f"bpffs is not mounted on {paths.BPFFS} and mounting it failed ({os.strerror(err)}): "
            f"mount -t bpf bpf {paths.BPFFS} -o mode=0700"
        )


# -- the checks --------------------------------------------------------------------


def _refuse(path: Path, why: str) -> EngineError:
    return EngineError(f"refusing to use {path}: {why}; it is not hft-tui's (remove it as root after a look)")


def _check_ours(path: Path, st: os.stat_result) -> None:
    """A pin root or pin directory: a real directory, root's, writable by root alone."""
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, f"it is a symlink (to {os.readlink(path)!r})")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "it is not a directory")
    if st.st_uid != 0:
        raise _refuse(path, f"it belongs to uid {st.st_uid}, not root")
    if st.st_mode & 0o022:
        raise _refuse(path, f"group or other users can write it (mode {stat.S_IMODE(st.st_mode):o})")


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def check_pin_root(root: Path = paths.PIN_ROOT) -> bool:
    """True when the pin root exists and is ours, False when it does not
    exist; EngineError (one line) when it is anything else."""
    parent = _lstat(root.parent)
    if parent is not None and (parent.st_uid != 0 or (parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX)):
        raise _refuse(root.parent, "users other than root can replace what is in it (not sticky)")
    st = _lstat(root)
    if st is None:
        return False
    _check_ours(root, st)
    return True


def check_pin_dir(directory: Path) -> bool:
    """True when the engine's pin directory (``root/IFACE``) exists and it and
    the root are ours, False when either does not exist; EngineError otherwise."""
    if not check_pin_root(directory.parent):
        return False
    _checked_name(directory)
    st = _lstat(directory)
    if st is None:
        return False
    _check_ours(directory, st)
    return True


def _checked_name(directory: Path) -> str:
    try:
        return paths.check_ifname(directory.name)
    except PathError:
        raise _refuse(directory, "its name is not an interface name") from None


@contextlib.contextmanager
def _opened(path: Path, dir_fd: int | None = None) -> Iterator[int]:
    """A descriptor of the directory checked at ``path`` (O_NOFOLLOW: a symlink
    put there after the check fails to open; the inode is compared too)."""
    st = os.lstat(path.name if dir_fd is not None else path, dir_fd=dir_fd)
    _check_ours(path, st)
    fd = os.open(path.name if dir_fd is not None else path, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        got = os.fstat(fd)
        if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
            raise _refuse(path, "it changed while it was being checked")
        yield fd
    finally:
        os.close(fd)


# -- use ------------------------------------------------------------------------------


def attached_ifaces(root: Path = paths.PIN_ROOT) -> list[str]:
    """Interfaces that have an engine pinned (attached, or left behind).
    Anything in the pin root that is not a pin directory of ours is refused."""
    if not check_pin_root(root):
        return []
    found = []
    with _opened(root) as rfd:
        for name in sorted(os.listdir(rfd)):
            entry = root / name
            _checked_name(entry)
            _check_ours(entry, os.lstat(name, dir_fd=rfd))
            found.append(name)
    return found


def pin_all(directory: Path, map_fds: dict[str, int], prog_fd: int) -> None:
    """Makes the pin directory (and the pin root, 0700) and pins the maps and the program in it."""
    root = directory.parent
    name = _checked_name(directory)
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
    if not check_pin_root(root):
        raise _refuse(root, "it vanished while it was being made")
    with _opened(root) as rfd:
        try:
            os.mkdir(name, 0o700, dir_fd=rfd)
        except FileExistsError:
            raise _refuse(directory, "it already exists") from None
        with _opened(directory, rfd):
            # The root and the directory are root's and 0700 now: nobody else can change the path.
            for map_name, fd in map_fds.items():
                libbpf.pin(fd, str(directory / map_name))
            libbpf.pin(prog_fd, str(directory / "prog"))


def pinned_prog_id(directory: Path) -> int | None:
    """The id of the program pinned in ``directory`` (ours, whatever the state file says)."""
    if not check_pin_dir(directory):
        return None
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
    """Removes the pins and the pin directory, through directory descriptors
    (unlinkat on a directory opened O_NOFOLLOW after its checks).  Refuses,
    removing nothing, when the pin root or the directory is not ours or the
    directory holds a directory (pins are files)."""
    if not check_pin_dir(directory):
        return
    root = directory.parent
    with _opened(root) as rfd:
        with _opened(directory, rfd) as dfd:
            names = os.listdir(dfd)
            for name in names:
                if stat.S_ISDIR(os.lstat(name, dir_fd=dfd).st_mode):
                    raise _refuse(directory / name, "a pin directory holds only pins, not directories")
            for name in names:
                os.unlink(name, dir_fd=dfd)
        os.rmdir(directory.name, dir_fd=rfd)
