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
    mapping each to its map by BCC's table index, cross-checked with the
    declaration order in the sources (they must agree, or nothing loads);
  * loads the whole through ``bcc_func_load`` (which still passes BCC's BTF
    function and line info: the kernel needs the callback's func_info), with
    the verifier's statistics kept (``Loaded.processed``).
Everything else (compiling, maps, pins) stays BCC's.  When BCC can load
subprograms itself, this module goes.
"""

from __future__ import annotations

import ctypes
import itertools
import re
import struct
from dataclasses import dataclass
from pathlib import Path

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
        """The verifier's last words before its statistics, in one line."""
        lines = [ln.strip() for ln in self.log.splitlines() if ln.strip()]
        tail = [ln for ln in lines if not ln.startswith(("processed ", "verification time", "stack depth"))]
        return " / ".join(tail[-3:]) or "no verifier log"


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
    return raw


_MAP_DECL = re.compile(
    r"^\s*BPF_(?:HASH|ARRAY|PERCPU_ARRAY|PERCPU_HASH|LRU_HASH|RINGBUF_OUTPUT|PROG_ARRAY|TABLE|F_TABLE)\s*\(\s*"
    r"(?:\"\w+\"\s*,\s*[^,]+,\s*[^,]+,\s*)?(\w+)",
    re.MULTILINE,
)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
_IFDEF = re.compile(r"^\s*#\s*(ifdef|ifndef|endif|if|else|elif)\b\s*(\w*)", re.MULTILINE)


def declared_maps(source: Path, include_dirs: list[Path], defines: set[str]) -> list[str]:
    """Map names in declaration order, following the sources' includes (BCC numbers its
    placeholders in this order).  ``#ifdef NAME`` blocks count only when NAME is defined."""
    seen: set[Path] = set()
    out: list[str] = []

    def visit(path: Path) -> None:
        if path in seen:
            return
        seen.add(path)
        text = path.read_text()
        events = [(m.start(), "inc", m.group(1)) for m in _INCLUDE.finditer(text)]
        events += [(m.start(), "map", m.group(1)) for m in _MAP_DECL.finditer(text)]
        events += [(m.start(), m.group(1), m.group(2)) for m in _IFDEF.finditer(text)]
        skipping: list[bool] = []
        for _, kind, what in sorted(events):
            if kind in ("ifdef", "ifndef", "if"):
                skipping.append(kind == "ifdef" and what not in defines)
            elif kind == "endif":
                if skipping:
                    skipping.pop()
            elif kind in ("else", "elif"):
                if skipping:
                    skipping[-1] = False
            elif any(skipping):
                continue
            elif kind == "map":
                out.append(what)
            elif kind == "inc":
                for d in [path.parent, *include_dirs]:
                    if (d / what).exists():
                        visit((d / what).resolve())
                        break

    visit(source.resolve())
    return out


def fix_map_fds(raw: bytearray, placeholders: dict[int, int]) -> None:
    """Replaces BCC's placeholder descriptors (negative) with the maps' descriptors."""
    for i in range(len(raw) // 8):
        op, _, src, _, imm = _insn(raw, i)
        if op == OP_LD_IMM64 and src == BPF_PSEUDO_MAP_FD and imm < 0:
            if imm not in placeholders:
                raise EngineError(f"insn {i}: map placeholder {imm} names no map")
            struct.pack_into("<i", raw, i * 8 + 4, placeholders[imm])


def placeholders(b, source: Path, include_dirs: list[Path], defines: set[str]) -> dict[int, int]:
    """BCC's placeholder descriptor -> the map's descriptor.

    BCC numbers its placeholders -1, -2, ... in declaration order, then creates
    the maps in ascending placeholder order (-N first), so their descriptors
    fall as the declaration index rises.  The declaration order read from the
    sources must show exactly that, or it is not BCC's and nothing loads.
    """
    from bcc.libbcc import lib

    names = declared_maps(source, include_dirs, defines)
    fds = [lib.bpf_table_fd(b.module, name.encode()) for name in names]
    if any(fd < 0 for fd in fds) or any(a <= z for a, z in itertools.pairwise(fds)):
        raise EngineError(f"the maps' descriptors {fds} do not follow their declaration order {names}")
    return {-(index + 1): fd for index, fd in enumerate(fds)}


def load_xdp(
    b, name: str, *, source: Path, include_dirs: list[Path], defines: set[str], log_level: int = LOG_STATS
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
    raw = extent_and_patch(lambda n: ctypes.string_at(start, n * 8), size)
    if len(raw) > size:  # code past BCC's view: its placeholders are still there
        fix_map_fds(raw, placeholders(b, source, include_dirs, defines))
    loaded = _load(b, bname, raw, log_level)
    if loaded.fd < 0 and log_level == LOG_STATS:
        # The statistics say nothing of why: ask again for the whole log (its tail).
        again = _load(b, bname, raw, LOG_VERBOSE, log_size=1 << 26)
        loaded = Loaded(again.fd, again.log[-20000:] + "\n" + loaded.log, loaded.insns)
    if loaded.fd >= 0:
        b.funcs[bname] = bcc.BPF.Function(b, bname, loaded.fd)
    return loaded


def _load(b, bname: bytes, raw: bytearray, log_level: int, log_size: int = 1 << 20) -> Loaded:
    from bcc.libbcc import lib

    buf = (ctypes.c_char * len(raw)).from_buffer(raw)
    log = ctypes.create_string_buffer(log_size)
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
