"""The inner loop (testrun_loop.c), compiled for this run and called per batch.

gcc builds the loop into a shared object in a private temporary directory,
ctypes loads it, and the directory is removed at once (the loaded code
stays mapped): nothing is left on disk.  :class:`TestRunLoop` calls it for
one batch of frames (capture_reader.FrameBatch) at a time and hands back
the frames the program sent with XDP_TX.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from array import array
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..capture_reader import FrameBatch
from ..errors import EngineError

SOURCE = Path(__file__).with_name("testrun_loop.c")
OUT_BYTES = 4 << 20  # order frames kept between two looks (an order frame is at most ~1.5 KB)
SENT_SLOTS = 4096

# enum bt_count in testrun_loop.c
OUTSIDE, OTHER, FED, ABORTED, DROP, PASS, TX, REDIRECT, WINDOW, FIRST_TS, LAST_TS, N_COUNTS = range(12)


class Sent(ctypes.Structure):
    """struct bt_sent"""

    _fields_ = [
        ("index", ctypes.c_uint32),
        ("offset", ctypes.c_uint32),
        ("length", ctypes.c_uint32),
        ("in_length", ctypes.c_uint32),
    ]


@cache
def _library() -> ctypes.CDLL:
    """testrun_loop.c built and loaded (once a process; a fork inherits it)."""
    if shutil.which("gcc") is None:
        raise EngineError("the backtest needs gcc to build its loop: apt-get install gcc")
    directory = tempfile.mkdtemp(prefix="hft-tui-backtest-")
    try:
        so = Path(directory) / "testrun_loop.so"
        argv = ["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(so), str(SOURCE)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["?"])[0]
            raise EngineError(f"cannot build the backtest loop: {first}")
        lib = ctypes.CDLL(str(so))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    p, u32, i64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int64
    lib.bt_run.argtypes = [ctypes.c_int, ctypes.c_int, p, p, p, p, u32, i64, i64, p, u32, p, u32, p, p, p]
    lib.bt_run.restype = ctypes.c_int
    return lib


def prepare() -> None:
    """Builds the loop now (before a fork, say), so each process need not."""
    _library()


@dataclass(frozen=True)
class SentFrame:
    """A frame the program sent (XDP_TX): the frame it answered and the order frame."""

    number: int  # the frame's number in the capture (from 1)
    ts_ns: int  # its capture time
    frame_in: bytes
    frame_out: bytes


class LoopFailure(EngineError):
    """A syscall of the loop failed on one frame."""


def _address(buf: object) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))  # type: ignore[arg-type]


class TestRunLoop:
    """Runs batches through one loaded program (prog_fd) with its clock map (clock_fd)."""

    __test__ = False  # not a pytest class

    def __init__(self, prog_fd: int, clock_fd: int, from_ns: int, to_ns: int) -> None:
        self.lib = _library()
        self.prog_fd = prog_fd
        self.clock_fd = clock_fd
        self.from_ns = from_ns
        self.to_ns = to_ns
        self.out = bytearray(OUT_BYTES)
        self.sent = (Sent * SENT_SLOTS)()
        self.sent_n = ctypes.c_uint32()
        self.failed = ctypes.c_uint32()
        self.counts = (ctypes.c_int64 * N_COUNTS)()

    def run(self, batch: FrameBatch) -> list[SentFrame]:
        """Every frame of ``batch`` in order; the frames sent with XDP_TX."""
        data = batch.data  # bytes: ctypes passes a pointer into it (no copy)
        n = len(batch)
        offs = _array_address(batch.offsets)
        lens = _array_address(batch.lengths)
        stamps = _array_address(batch.stamps)
        out = _address(self.out)
        sent: list[SentFrame] = []
        start = 0
        while start < n:
            done = self.lib.bt_run(
                self.prog_fd,
                self.clock_fd,
                data,
                offs + 4 * start,
                lens + 4 * start,
                stamps + 8 * start,
                n - start,
                self.from_ns,
                self.to_ns,
                out,
                len(self.out),
                ctypes.byref(self.sent),
                SENT_SLOTS,
                ctypes.byref(self.sent_n),
                ctypes.byref(self.counts),
                ctypes.byref(self.failed),
            )
            if done < 0:
                i = start + self.failed.value
                raise LoopFailure(
                    f"frame {batch.first + i}: BPF_PROG_TEST_RUN refused it ({_strerror(-done)}; "
                    f"{batch.lengths[i]} bytes)"
                )
            for k in range(self.sent_n.value):
                s = self.sent[k]
                i = start + s.index
                sent.append(
                    SentFrame(
                        batch.first + i,
                        batch.stamps[i],
                        batch.frame(i),
                        bytes(self.out[s.offset : s.offset + s.length]),
                    )
                )
            start += done
        return sent

    def count(self, which: int) -> int:
        return int(self.counts[which])


def _array_address(a: array[int]) -> int:
    addr, _n = a.buffer_info()
    return addr


def _strerror(errno: int) -> str:
    import os

    return os.strerror(errno)
