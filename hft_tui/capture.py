"""Captures written: what the lab sent, as a pcap file anyone can read.

Classic pcap (dpkt's writer), nanosecond timestamps (magic 0xa1b23c4d),
link type Ethernet, every frame whole as it went out (VLAN tag and
multicast addresses kept).  The file is written the safe way root writes
anywhere a user may have been first (safefile.NewFile): checked at once
(the directories on the way trusted, an existing target a regular file), written to a
temporary file in the target directory, and put in place, mode 0600, only
by :meth:`CaptureWriter.close`; a run that fails leaves nothing behind.  A
refusal is a PathError: one line, nothing written.

The simulator writes captures with ``lab feed --pcap-out``; the replay and
the backtest read them.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import dpkt

from .safefile import NewFile

SNAPLEN = 65535


def check_target(path: str | os.PathLike[str]) -> None:
    """Refuses (PathError, one line) a target a capture may not be written to,
    leaving nothing behind: for a command that checks its arguments first."""
    NewFile(Path(path)).abort()


class CaptureWriter:
    """A pcap of Ethernet frames with nanosecond times, written safely (module doc).

    ``write(frame, ts_ns)`` for each frame; ``close()`` puts the file in
    place; ``abort()`` (or leaving a ``with`` block by an exception) removes
    everything it wrote.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._out = NewFile(self.path)
        self._pcap = dpkt.pcap.Writer(self._out.file, snaplen=SNAPLEN, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
        self.frames = 0

    def write(self, frame: bytes, ts_ns: int) -> None:
        # A Decimal keeps every nanosecond (a float of today's epoch seconds keeps ~0.2 us).
        self._pcap.writepkt_time(frame, Decimal(ts_ns).scaleb(-9))
        self.frames += 1

    def close(self) -> None:
        """Synced and put in place."""
        self._out.commit()

    def abort(self) -> None:
        """Removes the unfinished file; the target is left as it was."""
        self._out.abort()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
