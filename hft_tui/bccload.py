"""Loading the BCC-compiled program whole: the main function and its bpf_loop callback.

The BCC limitation this works around (BCC 0.26, the Debian package the
engine is built with): ``BPF.load_func`` hands the kernel only the bytes of
the function's own ELF section, as far as the function's size, so a program
that calls another function cannot load: the address of a ``bpf_loop``
callback is a plain constant ("R2 type=scalar expected=func") and a call to
a static subprogram leaves the program ("call to invalid destination").
BCC also replaces its placeholder map descriptors (-1, -2, ... in map
declaration order) only within those bytes.

So the program puts its callback in its own section (``HFT_SUBPROG`` in
ebpf/strategy.c: ``__attribute__((section(".bpf.fn.xdp_strategy")))``),
where LLVM resolves calls itself and leaves the callback's byte offset in
the ``ld_imm64`` that loads it.  This module then:
  * walks from the function's start through everything reachable (calls,
    callbacks) to find the program's true extent;
  * marks each callback load as ``BPF_PSEUDO_FUNC`` with an instruction
    offset, as libbpf would;
  * replaces the placeholder map descriptors left past the function's size,
    mapping each to its map by the declaration order in the sources
    (hft_tui/bccsource.py), which must name exactly BCC's tables and agree
    with the order BCC created them in, or nothing loads;
  * loads the whole through ``bcc_func_load`` (which still passes BCC's BTF
    function and line info: the kernel needs the callback's func_info), with
    the verifier's statistics kept (``Loaded.processed``).
A refusal is reported in the verifier's own words.  BCC retries a load the
kernel refused with EINVAL without its BTF, into the same log, and a program
with a callback cannot load without it: that retry's "missing btf func_info"
would hide the real reason.  So a refusal is loaded again here, through
libbpf, with BCC's BTF and nothing retried (``explain_refusal``), for its log.
Everything else (compiling, maps, pins) stays BCC's.  When BCC can load
subprograms itself, this module goes.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import libbpf
from .bccsource import declared_maps
from .errors import EngineError

BPF_PROG_TYPE_XDP = 6
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_FUNC = 4
CALLBACK_HELPERS = {181: 2}  # bpf_loop (helper 181): its callback is argument 2 (r2)
OP_LD_IMM64 = 0x18
OP_CALL = 0x85
OP_EXIT = 0x95
OP_JA = 0x05
CLASS_JMP, CLASS_JMP32 = 0x05, 0x06
# BPF_LOG_STATS: the verifier's statistics only ("processed N insns"), cheap to ask for.
LOG_STATS = 4
LOG_VERBOSE = 1
_PROCESSED = re.compile(r"processed (\d+) insns")
# What the kernel says to BCC's retry without BTF: the first answer was another.
MASKED_BY_RETRY = "missing btf func_info"


@dataclass(frozen=True)
class Loaded:
    fd: int  # the program, or -errno
    log: str  # the verifier's log (statistics; the whole log after a refusal)
    insns: int  # instructions handed to the kernel

    @property
    def processed(self) -> int | None:
        """The verifier's processed-instruction count (its limit is 1,000,000)."""
        m = _PROCESSED.search(self.log)
        return int(m.group(1)) if m else None

    def complaint(self) -> str:
        """The verifier's last words before its statistics, in one line (a line with the
        instruction's listing and register states is cut at it: its reason comes after)."""
        lines = [ln.strip() for ln in self.log.splitlines() if ln.strip()]
        tail = [ln for ln in lines if not ln.startswith(("processed ", "verification time", "stack depth"))]
        return " / ".join(_short(ln) for ln in tail[-3:]) or "no verifier log"


def _short(line: str, width: int = 160) -> str:
    """A log line kept readable in one line: a listing's register states dropped."""
    line = line.split(" ; ", 1)[0].rstrip() if re.match(r"^\d+: \(", line) else line
    return line if len(line) <= width else line[: width - 3] + "..."


def _insn(raw: bytes | bytearray, i: int) -> tuple[int, int, int, int, int]:
    op, regs, off, imm = struct.unpack_from("<BBhi", raw, i * 8)
    return op, regs & 0xF, regs >> 4, off, imm


def _reachable(read, size_insns: int, starts: set[int]) -> tuple[int, set[int]]:
    """(end, instructions) reachable from the function starts, following jumps and calls;
    ``starts`` grows with every call target found."""
    end = size_insns
    raw = read(end)
    todo, seen = list(starts), set()
    while todo:
        i = todo.pop()
        while i not in seen:
            if i + 2 > len(raw) // 8:
                raw = read(i + 2)
            seen.add(i)
            op, _, src, off, imm = _insn(raw, i)
            end = max(end, i + 1)
            if op == OP_LD_IMM64:
                end = max(end, i + 2)
                i += 2
                continue
            if op == OP_CALL:
                if src == BPF_PSEUDO_CALL and i + 1 + imm not in starts:
                    starts.add(i + 1 + imm)
                    todo.append(i + 1 + imm)
                i += 1
                continue
            if op == OP_EXIT:
                break
            if op & 0x07 in (CLASS_JMP, CLASS_JMP32):
                if op == OP_JA:
                    i += 1 + off
                    continue
                todo.append(i + 1 + off)
            i += 1
    return end, seen


def extent_and_patch(read, size: int) -> bytearray:
    """The program's bytes and its callbacks', each callback load made a BPF_PSEUDO_FUNC."""
    return program_and_functions(read, size)[0]


def program_and_functions(read, size: int) -> tuple[bytearray, list[int]]:
    """extent_and_patch, and the first instruction of every function in it (0: the main)."""
    funcs, patched = {0}, {}
    while True:
        end, seen = _reachable(read, size // 8, funcs)
        raw = bytearray(read(end))
        found_new = False
        for i in sorted(seen):
            op, _, src, _, imm = _insn(raw, i)
            if not (op == OP_CALL and src == 0 and imm in CALLBACK_HELPERS):
                continue
            reg = CALLBACK_HELPERS[imm]
            for j in range(i - 1, max(i - 16, -1), -1):
                op2, dst2, src2, _, imm2 = _insn(raw, j)
                if op2 == OP_LD_IMM64 and dst2 == reg:
                    if j not in patched:
                        hi = struct.unpack_from("<i", raw, (j + 1) * 8 + 4)[0]
                        if src2 != 0 or hi != 0 or imm2 % 8:
                            raise EngineError(f"insn {j}: callback address {imm2:#x} is not an offset in the program")
                        patched[j] = imm2 // 8
                        if imm2 // 8 not in funcs:
                            funcs.add(imm2 // 8)
                            found_new = True
                    break
            else:
                raise EngineError(f"insn {i}: no callback address loaded before the bpf_loop call")
        if not found_new:
            break
    for j, target in patched.items():
        _, dst, *_ = _insn(raw, j)
        raw[j * 8 + 1] = (BPF_PSEUDO_FUNC << 4) | dst
        struct.pack_into("<i", raw, j * 8 + 4, target - j - 1)
    return raw, sorted(funcs)


def fix_map_fds(raw: bytearray, placeholders: dict[int, int]) -> None:
    """Replaces BCC's placeholder descriptors (negative) with the maps' descriptors."""
    for i in range(len(raw) // 8):
        op, _, src, _, imm = _insn(raw, i)
        if op == OP_LD_IMM64 and src == BPF_PSEUDO_MAP_FD and imm < 0:
            if imm not in placeholders:
                raise EngineError(f"insn {i}: map placeholder {imm} names no map")
            struct.pack_into("<i", raw, i * 8 + 4, placeholders[imm])


def bcc_tables(b) -> list[str]:
    """The names of the tables BCC made for the module (its own count, its own names)."""
    from bcc.libbcc import lib

    lib.bpf_num_tables.restype, lib.bpf_num_tables.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    lib.bpf_table_name.restype, lib.bpf_table_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]
    return [lib.bpf_table_name(b.module, i).decode() for i in range(lib.bpf_num_tables(b.module))]


def placeholders(b, source: Path, include_dirs: list[Path], defines: set[str] | dict[str, str]) -> dict[int, int]:
    """BCC's placeholder descriptor -> the map's descriptor.

    BCC numbers its placeholders -1, -2, ... in declaration order, then creates
    the maps in ascending placeholder order (-N first), so their descriptors
    fall as the declaration index rises.  The maps read from the sources must
    be exactly BCC's tables (a map missed would shift every later one), and
    their order must show exactly that fall, or it is not BCC's and nothing
    loads.
    """
    from bcc.libbcc import lib

    names = declared_maps(source, include_dirs, defines)
    tables = bcc_tables(b)
    if sorted(names) != sorted(tables):
        missed, extra = sorted(set(tables) - set(names)), sorted(set(names) - set(tables))
        raise EngineError(
            f"the sources declare {len(names)} maps, BCC made {len(tables)}"
            + (f"; not found in the sources: {', '.join(missed)}" if missed else "")
            + (f"; not BCC's: {', '.join(extra)}" if extra else "")
            + (" (declared twice?)" if not missed and not extra else "")
        )
    fds = [lib.bpf_table_fd(b.module, name.encode()) for name in names]
    if any(fd < 0 for fd in fds) or any(a <= z for a, z in itertools.pairwise(fds)):
        raise EngineError(f"the maps' descriptors {fds} do not follow their declaration order {names}")
    return {-(index + 1): fd for index, fd in enumerate(fds)}


def load_xdp(
    b,
    name: str,
    *,
    source: Path,
    include_dirs: list[Path],
    defines: set[str] | dict[str, str],
    log_level: int = LOG_STATS,
) -> Loaded:
    """Loads ``name`` with everything it calls; the BCC object keeps the descriptor (b.cleanup
    closes it, as for load_func)."""
    import bcc
    from bcc.libbcc import lib

    bname = name.encode()
    start = lib.bpf_function_start(b.module, bname)
    size = lib.bpf_function_size(b.module, bname)
    if not start:
        raise EngineError(f"the compiled program has no function {name}")
    raw, funcs = program_and_functions(lambda n: ctypes.string_at(start, n * 8), size)
    if len(raw) > size:  # code past BCC's view: its placeholders are still there
        fix_map_fds(raw, placeholders(b, source, include_dirs, defines))
    loaded = _load(b, bname, raw, log_level)
    if loaded.fd < 0 and log_level == LOG_STATS:
        # The statistics say nothing of why: ask again for the whole log (its tail).
        again = _load(b, bname, raw, LOG_VERBOSE, log_size=1 << 26)
        loaded = Loaded(again.fd, again.log[-20000:] + "\n" + loaded.log, loaded.insns)
    if loaded.fd < 0 and MASKED_BY_RETRY in loaded.log:
        loaded = explain_refusal(b, name, raw, funcs, loaded)
    if loaded.fd >= 0:
        b.funcs[bname] = bcc.BPF.Function(b, bname, loaded.fd)
    return loaded


def module_btf(func: str) -> tuple[int, int] | None:
    """(descriptor, BTF id) of the newest BTF object this process holds that has a FUNC
    ``func``: BCC loads its module's BTF into the kernel and keeps the descriptor, and
    the module is the one compiled last (load_xdp runs right after the compile)."""
    best: tuple[int, int] | None = None
    for entry in os.scandir("/proc/self/fd"):
        try:
            if os.readlink(entry.path) != "anon_inode:btf":
                continue
        except OSError:
            continue
        fd = int(entry.name)
        btf_id = libbpf.btf_id(fd)
        if btf_id is None or (best and best[1] >= btf_id):
            continue
        try:
            if any(n == func for _, n, _ in libbpf.btf_funcs(btf_id)):
                best = (fd, btf_id)
        except OSError:
            continue
    return best


def explain_refusal(b, name: str, raw: bytearray, funcs: list[int], refused: Loaded) -> Loaded:
    """The refusal again, loaded through libbpf with BCC's BTF and nothing retried, for the
    verifier's own words; ``refused`` as it was (said to be BCC's retry) when that cannot be
    done.  The program's main function gets its own FUNC; each callback some static FUNC of
    the module (the BTF cannot name a callback by its offset), so a log line naming a
    callback may name another function."""
    from bcc.libbcc import lib

    masked = Loaded(
        refused.fd,
        refused.log + f"\n(BCC's retry without BTF hid the verifier's first answer: {MASKED_BY_RETRY})",
        refused.insns,
    )
    found = module_btf(name)
    if found is None:
        return masked
    btf_fd, btf_id = found
    btf = libbpf.btf_funcs(btf_id)
    main = [tid for tid, n, _ in btf if n == name]
    # The log is all this load is for: any static FUNC stands for a callback the BTF cannot name by offset.
    static = [tid for tid, n, linkage in btf if linkage == libbpf.BTF_FUNC_STATIC and n != name]
    if not main or (len(funcs) > 1 and not static):
        return masked
    types = [main[0], *(static[min(k, len(static) - 1)] for k in range(len(funcs) - 1))]
    fd, log = libbpf.prog_load_xdp(
        raw,
        name,
        (lib.bpf_module_license(b.module) or b"GPL").decode(),
        btf_fd=btf_fd,
        funcs=list(zip(funcs, types, strict=True)),
        log_level=LOG_VERBOSE,
        log_size=1 << 26,
    )
    if fd >= 0:  # loaded this time: the refusal was BCC's own doing, not the verifier's
        os.close(fd)
        return masked
    return Loaded(refused.fd, log[-20000:], refused.insns)


@contextlib.contextmanager
def stderr_kept(into: list[str]) -> Iterator[None]:
    """File descriptor 2 into a file while BCC's C code runs, what it wrote appended to
    ``into``: clang's diagnostics and BCC's notes (on a refusal, the whole verifier log)
    go where the caller's error can quote them, never over a terminal the app draws on."""
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                tmp.seek(0)
                into.append(tmp.read().decode(errors="replace"))
    finally:
        os.close(saved)


def first_error(text: str) -> str:
    """The first line of ``text`` that says error (else its last line), for a one-line message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[0 if errors else -1][:300]


def _load(b, bname: bytes, raw: bytearray, log_level: int, log_size: int = 1 << 20) -> Loaded:
    from bcc.libbcc import lib

    buf = (ctypes.c_char * len(raw)).from_buffer(raw)
    log = ctypes.create_string_buffer(log_size)
    with stderr_kept([]):  # BCC prints a refusal's whole log to stderr: it is in `log` already
        fd = lib.bcc_func_load(
            b.module,
            BPF_PROG_TYPE_XDP,
            bname,
            ctypes.cast(buf, ctypes.c_void_p),
            len(raw),
            lib.bpf_module_license(b.module),
            lib.bpf_module_kern_version(b.module),
            log_level,
            log,
            log_size,
            None,
            -1,
        )
        if fd < 0:
            fd = -(ctypes.get_errno() or 22)
    return Loaded(fd, log.value.decode(errors="replace"), len(raw) // 8)
