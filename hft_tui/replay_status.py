"""What a replay feeding an interface is doing now: one small file, for the app's status bar.

The demo's replay feeder (replay/feeder.py) writes
/run/hft-tui/replay-IFACE.json a few times a second: the capture's name,
the capture time of the frame just sent, how far through the capture it is,
which loop, and whether the engine's config was made from the capture.
The app reads it with :func:`replay_note` (one short line, or None when no
replay feeds the interface: no file, or its writer is gone).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from .paths import RUN_DIR, check_ifname
from .safefile import make_directories, write_file


@dataclass(frozen=True)
class ReplayStatus:
    capture: str  # the file's name
    clock_ns: int  # capture time of the frame just sent
    frame: int  # its index in the capture's frames sent (from 0)
    frames: int
    loop: int  # from 1
    auto_config: bool  # the engine's config was made from the capture
    pid: int

    def note(self) -> str:
        sec, frac = divmod(self.clock_ns, 1_000_000_000)
        clock = time.strftime("%H:%M:%S", time.gmtime(sec)) + f".{frac // 1_000_000:03d}"
        done = 100 * (self.frame + 1) // max(self.frames, 1)
        auto = " · config from the capture" if self.auto_config else ""
        return f"replay {self.capture} {clock} {done}% loop {self.loop}{auto}"


def status_path(iface: str) -> str:
    return str(RUN_DIR / f"replay-{check_ifname(iface)}.json")


def write_status(iface: str, status: ReplayStatus) -> None:
    make_directories(RUN_DIR, 0o700)
    write_file(status_path(iface), json.dumps(asdict(status)))


def clear_status(iface: str) -> None:
    try:
        os.unlink(status_path(iface))
    except FileNotFoundError:
        pass


def read_status(iface: str) -> ReplayStatus | None:
    try:
        with open(status_path(iface)) as f:
            st = ReplayStatus(**json.load(f))
        os.kill(st.pid, 0)  # its writer still runs
    except (OSError, ValueError, TypeError):
        return None
    return st


def replay_note(iface: str | None) -> str | None:
    """The status bar's words for a replay feeding ``iface`` (None: none does)."""
    if not iface:
        return None
    try:
        st = read_status(iface)
    except Exception:  # a name the paths refuse, say: no note, never a broken status bar
        return None
    return st.note() if st is not None else None
