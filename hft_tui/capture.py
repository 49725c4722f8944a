"""Captures written: what the lab sent, as a pcap file anyone can read.

Classic pcap (dpkt's writer), nanosecond timestamps (magic 0xa1b23c4d),
link type Ethernet, every frame whole as it went out (VLAN tag and
multicast addresses kept).  The file appears only when it is complete and
only as its owner's (mode 0600): it is written to a temporary file in the
target directory and renamed over the target at :meth:`CaptureWriter.close`,
so a symlink planted at the target is replaced, never followed, and a run
that fails leaves nothing behind.  A target directory that others may write
is refused unless it is sticky and the target does not exist yet (in /tmp,
a file someone else made is theirs).

The simulator writes captures with ``lab feed --pcap-out``; the replay and
the backtest read them.
"""

from __future__ import annotations

import os
import stat
import tempfile
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import dpkt

from .errors import CaptureError

SNAPLEN = 65535
FILE_MODE = 0o600


def check_target(path: Path) -> None:
    """Refuses a target whose directory others could swap it in (see the module doc)."""
    directory = path.parent
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise CaptureError(f"cannot write {path}: directory {directory} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CaptureError(f"cannot write {path}: {directory} is not a directory")
    if path.is_dir() and not path.is_symlink():
        raise CaptureError(f"cannot write {path}: it is a directory")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if not st.st_mode & stat.S_ISVTX:
            raise CaptureError(f"cannot write {path}: {directory} is writable by others and not sticky")
        if os.path.lexists(path):
            raise CaptureError(f"cannot write {path}: it exists in a directory others can write")


class CaptureWriter:
    """A pcap of Ethernet frames with nanosecond times, written safely (module doc).

    ``write(frame, ts_ns)`` for each frame; ``close()`` puts the file in
    place; ``abort()`` (or leaving a ``with`` block by an exception) removes
    everything it wrote.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        check_target(self.path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as exc:
            raise CaptureError(f"cannot write {self.path}: {exc.strerror}") from None
        self._tmp = Path(tmp)
        os.fchmod(fd, FILE_MODE)  # mkstemp makes it 0600 already; say so whatever the umask
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self._pcap = dpkt.pcap.Writer(self._file, snaplen=SNAPLEN, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
        self.frames = 0
        self.closed = False

    def write(self, frame: bytes, ts_ns: int) -> None:
        # A Decimal keeps every nanosecond (a float of today's epoch seconds keeps ~0.2 us).
        self._pcap.writepkt_time(frame, Decimal(ts_ns).scaleb(-9))
        self.frames += 1

    def close(self) -> None:
        """Flushes, syncs and renames the file into place."""
        if self.closed:
            return
        self.closed = True
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.rename(self._tmp, self.path)
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            raise CaptureError(f"cannot write {self.path}: {exc.strerror}") from None

    def abort(self) -> None:
        """Removes the unfinished file; the target is left as it was."""
        if self.closed:
            return
        self.closed = True
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
