"""The two locks of an engine, both flocks in /run/hft-tui/.

- The control lock (IFACE.lock), held for the moment of one control-plane
  write, so the CLI and the TUI writing at once cannot lose each other's
  config version bump.
- The controller lock (IFACE.controller), held for a controller's whole
  life (the kernel drops it when the process dies): one process drains the
  ring buffers and writes the journal, since a ring has one consumer
  position and two drains would split the events between two journals.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from . import paths
from .errors import EngineError


def _control_lock_path(iface: str) -> Path:
    return paths.RUN_DIR / f"{iface}.lock"


@contextlib.contextmanager
def control_lock(iface: str):
    """The control lock of ``iface``.  A detach removes its file while holding it
    (remove_control_lock): a process that waited on the removed file takes the lock
    again on the file now at the path, so two can never hold "the" lock at once."""
    paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = _control_lock_path(iface)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)  # removed (or replaced) while this process waited: lock the one there now
    try:
        yield
    finally:
        os.close(fd)


def remove_control_lock(iface: str) -> None:
    """Removes the control lock's file; only while holding the lock (control_lock)."""
    with contextlib.suppress(FileNotFoundError):
        _control_lock_path(iface).unlink()


# -- one controller per engine ---------------------------------------------------


def _lock_path(iface: str) -> Path:
    return paths.RUN_DIR / f"{paths.check_ifname(iface)}.controller"


#: a controller that finds the lock file held by a process that is not a
#: controller (a status reader of an older hft-tui takes a shared lock for a
#: moment) tries again for this long before it gives up
LOCK_RETRY_S = 1.0
LOCK_RETRY_STEP_S = 0.01


def _flock_holders(fd: int) -> list[tuple[str, int]] | None:
    """(kind, pid) of every flock held on ``fd``'s file, kind "WRITE" (LOCK_EX)
    or "READ" (LOCK_SH), read from /proc/locks: no lock is taken to find out.
    None when /proc/locks cannot be read."""
    st = os.fstat(fd)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    exact: list[tuple[str, int]] = []
    same_inode: list[tuple[str, int]] = []
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:56789 0 EOF"; a waiter has "->" after the number
        words = line.split()
        if len(words) < 6 or words[1] != "FLOCK" or not words[4].isdigit():
            continue
        where, _, ino = words[5].rpartition(":")
        if ino == str(st.st_ino):
            (exact if where == dev else same_inode).append((words[3], int(words[4])))
    if not exact and same_inode:
        # A stacked file system (overlayfs) shows the lower device: trust an
        # inode-only match only for the pid the controller wrote in the file.
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        exact = [(kind, pid) for kind, pid in same_inode if str(pid) == text]
    return exact


def acquire_controller_lock(iface: str) -> int:
    """An flock held for the controller's life (the kernel drops it if the
    process dies): a second drain would split the events between journals.

    The file is removed when the controller stops (``release_controller_lock``),
    so a lock taken on a file that was unlinked meanwhile is retried on the
    new one: two controllers can never hold locks on two different files.
    A lock held only as shared (a reader looking, not a controller) is
    retried for up to LOCK_RETRY_S: only a controller refuses a controller."""
    paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = _lock_path(iface)
    give_up = time.monotonic() + LOCK_RETRY_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
            holders = _flock_holders(fd)
            writers = [pid for kind, pid in holders or () if kind == "WRITE"]
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if not writers and time.monotonic() < give_up:
                time.sleep(LOCK_RETRY_STEP_S)  # a reader, for a moment: not a controller
                continue
            holder = writers[0] if writers else (text or "?")
            raise EngineError(
                f"{iface} already has a controller (pid {holder}): one process drains the events and "
                "writes the journal; stop it first"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the last controller removed it between our open and flock
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_controller_lock(iface: str, fd: int) -> None:
    """Removes the lock file while still holding it, then lets go: nothing is left in /run."""
    try:
        _lock_path(iface).unlink()
    except FileNotFoundError:
        pass
    os.close(fd)


def controller_pid(iface: str) -> int | None:
    """The pid of the live controller of ``iface``, or None.

    Looks without locking (/proc/locks): a shared lock taken here, even for a
    moment, would make a controller starting at that instant refuse to start."""
    try:
        fd = os.open(_lock_path(iface), os.O_RDONLY)
    except (FileNotFoundError, PermissionError):
        return None
    try:
        holders = _flock_holders(fd)
        if holders is not None:
            writers = [pid for kind, pid in holders if kind == "WRITE"]
            return writers[0] if writers else None
        # No /proc/locks: ask the lock itself (a controller starting now may retry).
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        return None  # nobody holds it
    finally:
        os.close(fd)
