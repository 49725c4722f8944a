"""The userspace bots' processes, and the C programs built at bench time.

Every bot runs in the root namespace, bound to the lab's engine address, and
lives for the whole run: the bench re-pins it (os.sched_setaffinity) when
the placement changes and stops it with SIGSTOP while other variants run,
so a busy-polling bot never steals a core from them.  Each bot dies with
the bench (PR_SET_PDEATHSIG), even if the bench is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..paths import EBPF_DIR, REPO_DIR
from . import BenchError

CBOT_SOURCE = REPO_DIR / "bench" / "cbot.c"
BLAST_SOURCE = Path(__file__).resolve().parent / "blast.c"
PR_SET_PDEATHSIG = 1


def compile_c(source: Path, out: Path, *extra: str) -> Path:
    """gcc -O2 with the protocol header on the include path (one source of truth)."""
    argv = ["gcc", "-O2", "-Wall", f"-I{EBPF_DIR}", str(source), "-o", str(out), *extra]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise BenchError("gcc is not installed: apt-get install gcc") from None
    if res.returncode != 0:
        first = next((ln for ln in res.stderr.splitlines() if "error" in ln), res.stderr.strip()[:200])
        raise BenchError(f"cannot compile {source.name}: {first}")
    return out


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Bot:
    """One bot process: started once, then pinned, paused and resumed."""

    def __init__(self, name: str, argv: list[str], cpu: int, port: int) -> None:
        self.name = name
        self.port = port
        self.cpu = cpu
        self.paused = False
        # stderr goes to a file: a pipe nobody reads could fill and block the bot.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the bot's life, closed in stop()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            self.stderr.close()
            raise BenchError(f"cannot start the {name}: {exc.strerror}") from None
        self.pid = self.proc.pid
        self.pin(cpu)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        line = b""
        out = self.proc.stdout
        assert out is not None, "the bot is started with stdout=PIPE"
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], 0.1)
            if ready:
                line = out.readline()
                if line.strip() == b"ready":
                    return
            if self.proc.poll() is not None:
                break
        err = self._last_error() if self.proc.poll() is not None else ""
        self.stop()
        why = [err] if err else [f"no 'ready' within {timeout:.0f} s"]
        raise BenchError(f"the {self.name} did not start: {why[0]}")

    def pin(self, cpu: int) -> None:
        os.sched_setaffinity(self.pid, {cpu})
        self.cpu = cpu

    def pause(self) -> None:
        if not self.paused:
            os.kill(self.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            os.kill(self.pid, signal.SIGCONT)
            self.paused = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _last_error(self) -> str:
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def check(self) -> None:
        if not self.alive():
            err = self._last_error()
            raise BenchError(f"the {self.name} exited (code {self.proc.returncode})" + (f": {err}" if err else ""))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()  # SIGKILL also ends a stopped process
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdout, self.stderr):
            with contextlib.suppress(Exception):
                if f is not None:
                    f.close()


def python_bot_argv(bind: str, port: int, strategy: list[str]) -> list[str]:
    return [sys.executable, "-m", "hft_tui.bench.python_bot", "--bind", bind, "--port", str(port), *strategy]


def cbot_argv(binary: Path, bind: str, port: int, strategy: list[str], busy: bool) -> list[str]:
    return [str(binary), "--bind", bind, "--port", str(port), *strategy, *(["--busy"] if busy else [])]


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes only once reaped.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True
