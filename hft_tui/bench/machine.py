"""The machine a benchmark ran on, the lock that keeps one bench per lab, and the
check that a run left nothing behind; writing the results."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import platform
import time
from pathlib import Path
from typing import IO

from .. import lab as lab_mod
from .. import libbpf, paths
from ..errors import PathError
from ..safefile import make_directories, open_private_log, write_file
from . import BenchError, bots, report


def machine() -> dict:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    clocksource = "unknown"
    with contextlib.suppress(OSError):
        clocksource = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text().strip()
    return {
        "kernel": os.uname().release,
        "cpu_model": model,
        "cores": os.cpu_count(),
        "clocksource": clocksource,
        "python": platform.python_version(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }


# -- entry point -------------------------------------------------------------------


def lock_path(lab: lab_mod.Lab) -> Path:
    return paths.RUN_DIR / f"bench-{lab.namespace}.lock"


def exclusive(lab: lab_mod.Lab) -> IO[bytes]:
    """One bench per lab number: an flock on a root-owned file in /run/hft-tui
    (0700), freed by the kernel when the process ends.  (An abstract unix
    socket name could be bound first by any user, locking the bench out.)"""
    paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        f = open_private_log(lock_path(lab))
    except PathError as exc:
        raise BenchError(f"bench lock: {exc}") from None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise BenchError(f"another bench is running on lab {lab.namespace} (use --lab N for another number)") from None
    return f


def netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def _prog_gone(prog_id: int) -> bool:
    try:
        fd = libbpf.prog_fd_by_id(prog_id)
    except OSError as exc:
        return exc.errno == errno.ENOENT
    os.close(fd)
    return False


def verify_cleanup(lab: lab_mod.Lab, bot_pids: list[int], prog_ids: list[int], tmp: Path | None) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(_prog_gone(i) for i in prog_ids):
        time.sleep(0.05)  # programs are freed after an RCU grace period
    from pyroute2 import IPRoute, netns

    with IPRoute() as ipr:
        iface_gone = not ipr.link_lookup(ifname=lab.engine_iface)
    return {
        "lab_removed": iface_gone and lab.namespace not in netns.listnetns(),
        "bots_gone": all(bots.pid_gone(p) for p in bot_pids),
        "programs_freed": all(_prog_gone(i) for i in prog_ids),
        "tmp_removed": tmp is None or not tmp.exists(),
        "bot_pids": bot_pids,
        "prog_ids": prog_ids,
    }


def write_outputs(result: dict, samples: dict, out_dir: Path) -> list[str]:
    """Each file written whole and renamed into place (safefile.py): never
    through a planted symlink, never into a directory another user can write."""
    try:
        make_directories(out_dir)
        others = {"results.md": report.markdown(result), "latency.svg": report.svg(result, samples)}
        result["files"] = [str(out_dir / name) for name in ("results.json", *others)]
        files = {"results.json": report.to_json(result) + "\n", **others}  # the JSON lists every file
        for name, text in files.items():
            write_file(out_dir / name, text)
    except PathError as exc:
        raise BenchError(f"--out {out_dir}: {exc}") from None
    return result["files"]
