"""Files root writes or reads where other users may have been first.

hft-tui runs as root, and a path a user can influence is an attack: a
planted ``/tmp/o.csv -> /etc/passwd`` makes an ``open(path, "w")`` truncate
``/etc/passwd``, and a directory someone else owns can have its entries
swapped between a check and a use.  Every file hft-tui writes outside its
own root-only directories (an export, the bench's results, a capture, the
perf tool's output) and every file it writes in place (the journal, the
logs) goes through here.  The rules:

- **Trusted directories.**  The target's directory, and every directory above
  it (both the path as given and the path it resolves to), is owned by root
  (or the caller) and writable by nobody else, except that a sticky directory
  (``/tmp``) may be on the way: there only an entry's owner can rename or
  remove it.  A symlink on the way must be owned by root (or the caller).
  The target's own directory may be sticky and world-writable only when the
  target does not exist yet (it is then made with ``link``, which never
  replaces what someone may have put there meanwhile).
- **Written whole, then renamed.**  Output goes to a new temporary file in the
  target directory (``O_CREAT|O_EXCL|O_NOFOLLOW``, mode fixed with ``fchmod``
  on the descriptor, so the umask and an existing file's mode never matter),
  then replaces the target in one rename: nothing is ever opened through the
  target's name, and a reader never sees half a file.
- **An existing target is a regular file**, never a symlink, a device or a
  directory.
- **Files written in place** (SQLite's journal, logs) are opened with
  ``O_NOFOLLOW``, must be regular, ours and have one link (no hard link to
  a file elsewhere), and are made 0600 through the descriptor.
- **Small inputs** (a config) are read only from a regular file under a size
  bound: never a FIFO (a read that blocks forever), ``/dev/zero`` (one that
  never ends) or a directory.

Each refusal is a :class:`~hft_tui.errors.PathError`: one line naming the
path and why.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import PathError

PRIVATE_MODE = 0o600
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {
    stat.S_IFLNK: "a symlink",
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _trusted_uids() -> set[int]:
    return {0, os.geteuid()}


def _others_may_write(st: os.stat_result) -> bool:
    return st.st_uid not in _trusted_uids() or bool(st.st_mode & 0o022)


def _prefixes(path: Path) -> list[Path]:
    """/, /a, /a/b, ... path (absolute)."""
    return [*reversed(path.parents), path]


def _check_component(path: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid not in _trusted_uids():
            raise PathError(f"{path} is a symlink owned by uid {st.st_uid}: root does not follow it")
        return
    if not stat.S_ISDIR(st.st_mode):
        raise PathError(f"{path} is not a directory")
    if st.st_uid not in _trusted_uids():
        raise PathError(f"{path} belongs to uid {st.st_uid}: root does not write below a directory another user owns")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise PathError(f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})")


def trusted_directory(directory: str | Path) -> tuple[Path, os.stat_result]:
    """The directory resolved, and its lstat, once every directory on the way
    from / (as given and as resolved) passes the rules above; else PathError."""
    given = Path(os.path.abspath(directory))
    real = Path(os.path.realpath(given))
    seen: set[Path] = set()
    st = None
    for path in [*_prefixes(given), *_prefixes(real)]:
        if path in seen:
            continue
        seen.add(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise PathError(f"{path} does not exist") from None
        except OSError as exc:
            raise PathError(f"{path}: {exc.strerror}") from None
        _check_component(path, st)
    st = os.lstat(real)
    return real, st


def make_directories(directory: str | Path, mode: int = 0o755) -> Path:
    """``directory`` and the missing directories above it, made below the
    nearest existing one once that one is trusted (each new one is root's);
    every level is checked again afterwards."""
    path = Path(os.path.abspath(directory))
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    trusted_directory(existing)
    for level in _prefixes(path):
        if level in existing.parents or level == existing:
            continue
        try:
            os.mkdir(level, mode)
        except FileExistsError:
            pass
        except OSError as exc:
            raise PathError(f"cannot make {level}: {exc.strerror}") from None
    return trusted_directory(path)[0]


def _open_directory(directory: str | Path, name: str) -> tuple[int, bool]:
    """A descriptor of the trusted ``directory`` that is the one checked, and
    whether the directory is one others may write (sticky: ``name`` must be new)."""
    real, st = trusted_directory(directory)
    try:
        dfd = os.open(real, _DIR_FLAGS)
    except OSError as exc:
        raise PathError(f"{real}: {exc.strerror}") from None
    got = os.fstat(dfd)
    if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
        os.close(dfd)
        raise PathError(f"{real} changed while it was being checked")
    shared = _others_may_write(got)
    if shared and _lstat_at(dfd, name) is not None:
        os.close(dfd)
        raise PathError(
            f"{real / name} already exists in {real}, a directory other users can write: "
            "root writes there only a file that does not exist yet"
        )
    return dfd, shared


def _lstat_at(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _split(path: str | Path) -> tuple[Path, str]:
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise PathError(f"{path} does not name a file")
    return path.parent, path.name


def _check_existing_target(dfd: int, parent: Path, name: str) -> None:
    st = _lstat_at(dfd, name)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise PathError(f"{parent / name} is {_kind(st.st_mode)}: root replaces only a regular file")


class NewFile:
    """A file that becomes ``path`` (mode 0600, the caller's) only on
    :meth:`commit`, and is removed by :meth:`abort`: write to :attr:`file`
    (text or binary) meanwhile.  Refused at once (PathError, nothing
    written) when the rules above say no.  For a writer with a life of its
    own (a capture); :func:`replace_file` is the same as a ``with`` block."""

    def __init__(self, path: str | Path, *, text: bool = False, newline: str | None = None) -> None:
        self.parent, self.name = _split(path)
        self.path = self.parent / self.name
        self._dfd, self._shared = _open_directory(self.parent, self.name)
        self._tmp = f".{self.name[:200]}.{secrets.token_hex(6)}.tmp"
        self.done = False
        try:
            _check_existing_target(self._dfd, self.parent, self.name)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(self._tmp, flags, 0o600, dir_fd=self._dfd)
            except OSError as exc:
                raise PathError(f"cannot write {self.path}: {exc.strerror}") from None
            try:
                os.fchmod(fd, PRIVATE_MODE)
                self.file: IO[Any] = os.fdopen(fd, "w", newline=newline) if text else os.fdopen(fd, "wb")
            except BaseException:
                os.close(fd)
                os.unlink(self._tmp, dir_fd=self._dfd)
                raise
        except BaseException:
            os.close(self._dfd)
            raise

    def commit(self) -> None:
        """Synced, then put in place: renamed over the target (a trusted
        directory) or, in a sticky one, linked to a name that must still be free."""
        if self.done:
            return
        self.done = True
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if self._shared:
                # Never replaces an entry someone made meanwhile: link fails if the name exists.
                os.link(self._tmp, self.name, src_dir_fd=self._dfd, dst_dir_fd=self._dfd, follow_symlinks=False)
                os.unlink(self._tmp, dir_fd=self._dfd)
            else:
                _check_existing_target(self._dfd, self.parent, self.name)
                os.rename(self._tmp, self.name, src_dir_fd=self._dfd, dst_dir_fd=self._dfd)
        except FileExistsError:
            self._remove_tmp()
            raise PathError(f"{self.path} appeared while it was being written: not replaced") from None
        except BaseException:
            self._remove_tmp()
            raise
        finally:
            os.close(self._dfd)

    def abort(self) -> None:
        """Removes what was written; the target is left as it was."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(OSError):
            self.file.close()
        self._remove_tmp()
        os.close(self._dfd)

    def _remove_tmp(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._tmp, dir_fd=self._dfd)


@contextlib.contextmanager
def replace_file(path: str | Path, *, text: bool = True, newline: str | None = None) -> Iterator[IO[Any]]:
    """Writes ``path`` whole: yields a file (text or binary) that becomes
    ``path`` (mode 0600, owned by the caller) when the block ends without an
    error, and is removed otherwise (:class:`NewFile`)."""
    out = NewFile(path, text=text, newline=newline)
    try:
        yield out.file
    except BaseException:
        out.abort()
        raise
    out.commit()


def write_file(path: str | Path, data: str | bytes) -> None:
    """``data`` as the whole of ``path`` (see :func:`replace_file`)."""
    with replace_file(path, text=isinstance(data, str)) as f:
        f.write(data)


def _check_private_fd(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise PathError(f"{path} is {_kind(st.st_mode)}, not a regular file")
    if st.st_uid != os.geteuid():
        raise PathError(f"{path} belongs to uid {st.st_uid}: root writes in place only a file of its own")
    if st.st_nlink != 1:
        raise PathError(f"{path} has {st.st_nlink} hard links: it may be another file's name")
    if stat.S_IMODE(st.st_mode) != PRIVATE_MODE:
        os.fchmod(fd, PRIVATE_MODE)


def _open_private_at(dfd: int, path: Path, flags: int) -> int:
    try:
        fd = os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, PRIVATE_MODE, dir_fd=dfd)
    except OSError as exc:
        st = _lstat_at(dfd, path.name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise PathError(f"{path} is a symlink: root does not write through it") from None
        raise PathError(f"cannot open {path}: {exc.strerror}") from None
    try:
        _check_private_fd(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def prepare_private_file(path: str | Path, *, sidecars: tuple[str, ...] = ()) -> None:
    """Makes sure ``path`` may be written in place by a library that opens it
    by name (SQLite): in a trusted directory (a sticky one only when the file
    is new), not a symlink, a regular file of ours with one link, mode 0600;
    made empty if missing.  ``sidecars`` (suffixes: "-wal", "-shm") must pass
    the same rules when they exist (they are made by the library)."""
    path = Path(path)
    parent, name = _split(path)
    dfd, _shared = _open_directory(parent, name)
    try:
        os.close(_open_private_at(dfd, path, os.O_RDWR | os.O_CREAT))
        for suffix in sidecars:
            side = path.with_name(name + suffix)
            if _lstat_at(dfd, side.name) is not None:
                os.close(_open_private_at(dfd, side, os.O_RDONLY))
    finally:
        os.close(dfd)


def open_private_log(path: str | Path, *, append: bool = True) -> IO[bytes]:
    """A log file (binary) of ours, 0600, opened without following a symlink;
    appended to, or emptied with ``append=False``."""
    path = Path(path)
    parent, name = _split(path)
    dfd, _shared = _open_directory(parent, name)
    try:
        fd = _open_private_at(dfd, path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0))
    finally:
        os.close(dfd)
    if not append:
        os.ftruncate(fd, 0)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "ab" if append else "wb")


def read_regular_file(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; PathError for
    anything else (a FIFO, a device, a directory, a larger file)."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PathError(f"{path} not found") from None
    except OSError as exc:
        raise PathError(f"{path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PathError(f"{path} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise PathError(f"{path} is {st.st_size:,} bytes: more than the {limit:,} allowed")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise PathError(f"{path} grew past the {limit:,} bytes allowed while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)
