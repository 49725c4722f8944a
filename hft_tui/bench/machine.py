"""The machine a benchmark ran on, the lock that keeps one bench per lab, and the
check that a run left nothing behind; writing the results."""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import socket
import time
from pathlib import Path

from .. import lab as lab_mod
from .. import libbpf
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


def exclusive(lab: lab_mod.Lab) -> socket.socket:
    """An abstract unix socket as a lock: one bench per lab number; freed when the process ends."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind(f"\0hft-tui-bench-{lab.namespace}")
    except OSError:
        s.close()
        raise BenchError(f"another bench is running on lab {lab.namespace} (use --lab N for another number)") from None
    return s


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
    out_dir.mkdir(parents=True, exist_ok=True)
    others = {"results.md": report.markdown(result), "latency.svg": report.svg(result, samples)}
    result["files"] = [str(out_dir / name) for name in ("results.json", *others)]
    files = {"results.json": report.to_json(result) + "\n", **others}  # the JSON lists every file
    for name, text in files.items():
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out_dir / name)
    return result["files"]
