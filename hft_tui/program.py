"""The XDP program as source and as a loaded object: compile, hash, load.

BCC compiles ebpf/strategy.c at run time; everything that identifies what
runs (the SHA-256 of the sources) and every way the program is built (the
live engine, the tests' and the benchmark's BPF_PROG_TEST_RUN copies) goes
through here, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import paths
from .errors import EngineError
from .maps import MAP_VALUES
from .preflight import require_bcc

PROGRAM_NAME = "xdp_strategy"


def program_sources() -> list[Path]:
    return [paths.STRATEGY_SOURCE, *sorted(paths.EBPF_DIR.glob("*.h"))]


def program_hash() -> str:
    """SHA-256 of the C source and headers that make the program."""
    h = hashlib.sha256()
    for src in program_sources():
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def compile_program(source: Path = paths.STRATEGY_SOURCE, cflags: tuple[str, ...] = ()):
    """BCC object for ``source``; raises EngineError with the compiler's complaint."""
    bcc = require_bcc()
    try:
        return bcc.BPF(src_file=str(source).encode(), cflags=[f"-I{paths.EBPF_DIR}", *cflags])
    except Exception as exc:
        raise EngineError(f"cannot compile {source.name}: {exc}") from None


def load_strategy(cflags: tuple[str, ...] = ()):
    """(BCC object, program fd): for attach and for BPF_PROG_TEST_RUN."""
    b = compile_program(cflags=cflags)
    try:
        fn = b.load_func(PROGRAM_NAME.encode(), b.XDP)
    except Exception as exc:
        raise EngineError(f"the verifier refused {PROGRAM_NAME}: {exc}") from None
    return b, fn.fd


def bcc_map_fds(b) -> dict[str, int]:
    return {name: b.get_table(name.encode()).map_fd for name in MAP_VALUES}
