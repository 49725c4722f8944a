"""The few libbpf calls the control plane needs, through ctypes.

libbpf.so.1 comes with Debian's libbpfcc.  BCC compiles and loads the
program; everything that must also work from a second process that only has
the pins (map access, ring buffer, BPF_PROG_TEST_RUN, object info) goes
through plain file descriptors here, so the CLI, the TUI and the tests use
one code path whether or not they loaded the program themselves.

libbpf 1.x returns -errno from every call; :func:`_check` turns that into an
OSError carrying the errno.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_char,
    c_char_p,
    c_int,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import TypeVar

from .constants import BPF_F_LOCK

_Key = TypeVar("_Key", bound=ctypes.Structure)  # a map's key type: a ctypes mirror

_lib = None


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            _lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError as exc:  # pragma: no cover - depends on the machine
            raise OSError(errno_mod.ENOENT, "libbpf.so.1 not found: apt-get install libbpfcc") from exc
        _declare(_lib)
    return _lib


class BpfTestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (libbpf 1.1, bpf.h)."""

    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class BpfMapInfo(ctypes.Structure):
    """The leading fields of struct bpf_map_info; the kernel fills what fits."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * 16),
    ]


class BpfProgInfo(ctypes.Structure):
    """The leading fields of struct bpf_prog_info."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("tag", c_uint8 * 8),
        ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64),
        ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64),
        ("name", c_char * 16),
    ]


class BpfProgLoadOpts(ctypes.Structure):
    """struct bpf_prog_load_opts (libbpf 1.1, bpf.h)."""

    _fields_ = [
        ("sz", c_size_t),
        ("attempts", c_int),
        ("expected_attach_type", c_uint32),
        ("prog_btf_fd", c_uint32),
        ("prog_flags", c_uint32),
        ("prog_ifindex", c_uint32),
        ("kern_version", c_uint32),
        ("attach_btf_id", c_uint32),
        ("attach_prog_fd", c_uint32),
        ("attach_btf_obj_fd", c_uint32),
        ("fd_array", c_void_p),
        ("func_info", c_void_p),
        ("func_info_cnt", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("line_info", c_void_p),
        ("line_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
        ("log_buf", c_void_p),
    ]


class BpfFuncInfo(ctypes.Structure):
    """struct bpf_func_info: a function of the program (its first instruction) and its BTF FUNC."""

    _fields_ = [("insn_off", c_uint32), ("type_id", c_uint32)]


class BpfBtfInfo(ctypes.Structure):
    """struct bpf_btf_info."""

    _fields_ = [
        ("btf", c_uint64),
        ("btf_size", c_uint32),
        ("id", c_uint32),
        ("name", c_uint64),
        ("name_len", c_uint32),
        ("kernel_btf", c_uint32),
    ]


class BtfType(ctypes.Structure):
    """The leading fields of struct btf_type (what names a FUNC and its linkage)."""

    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("size_or_type", c_uint32)]


BTF_KIND_FUNC = 12
BTF_FUNC_STATIC = 0  # a FUNC's linkage (its vlen bits): static, global or extern
BPF_PROG_TYPE_XDP = 6

RingBufferSampleFn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


def _declare(so: ctypes.CDLL) -> None:
    sigs = {
        "bpf_map_lookup_elem": ([c_int, c_void_p, c_void_p], c_int),
        "bpf_map_lookup_elem_flags": ([c_int, c_void_p, c_void_p, c_uint64], c_int),
        "bpf_map_update_elem": ([c_int, c_void_p, c_void_p, c_uint64], c_int),
        "bpf_map_delete_elem": ([c_int, c_void_p], c_int),
        "bpf_map_get_next_key": ([c_int, c_void_p, c_void_p], c_int),
        "bpf_obj_pin": ([c_int, c_char_p], c_int),
        "bpf_obj_get": ([c_char_p], c_int),
        "bpf_obj_get_info_by_fd": ([c_int, c_void_p, POINTER(c_uint32)], c_int),
        "bpf_prog_get_fd_by_id": ([c_uint32], c_int),
        "bpf_prog_test_run_opts": ([c_int, POINTER(BpfTestRunOpts)], c_int),
        "libbpf_num_possible_cpus": ([], c_int),
        "ring_buffer__new": ([c_int, RingBufferSampleFn, c_void_p, c_void_p], c_void_p),
        "ring_buffer__add": ([c_void_p, c_int, RingBufferSampleFn, c_void_p], c_int),
        "ring_buffer__poll": ([c_void_p, c_int], c_int),
        "ring_buffer__consume": ([c_void_p], c_int),
        "ring_buffer__free": ([c_void_p], None),
        "bpf_prog_load": (
            [c_int, c_char_p, c_char_p, c_void_p, c_size_t, POINTER(BpfProgLoadOpts)],
            c_int,
        ),
        "btf__load_from_kernel_by_id": ([c_uint32], c_void_p),
        "btf__type_cnt": ([c_void_p], c_uint32),
        "btf__type_by_id": ([c_void_p, c_uint32], POINTER(BtfType)),
        "btf__name_by_offset": ([c_void_p, c_uint32], c_char_p),
        "btf__free": ([c_void_p], None),
    }
    for name, (argtypes, restype) in sigs.items():
        fn = getattr(so, name)
        fn.argtypes = argtypes
        fn.restype = restype


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = -rc if rc != -1 else (ctypes.get_errno() or errno_mod.EINVAL)
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def lookup(fd: int, key: ctypes._SimpleCData | ctypes.Structure, value, *, lock: bool = False) -> bool:
    """Reads one element into ``value``; False when the key is absent."""
    if lock:
        rc = lib().bpf_map_lookup_elem_flags(fd, ctypes.byref(key), ctypes.byref(value), BPF_F_LOCK)
    else:
        rc = lib().bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value))
    if rc == -errno_mod.ENOENT:
        return False
    _check(rc, "map lookup")
    return True


def update(fd: int, key, value, flags: int = 0) -> None:
    _check(lib().bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), flags), "map update")


def delete(fd: int, key) -> bool:
    rc = lib().bpf_map_delete_elem(fd, ctypes.byref(key))
    if rc == -errno_mod.ENOENT:
        return False
    _check(rc, "map delete")
    return True


def keys(fd: int, key_type: type[_Key]) -> list[_Key]:
    """Every key of a hash map, once (a snapshot; the map may change meanwhile: when the key
    the walk stands on is deleted, the kernel starts it again from the first)."""
    out: list[_Key] = []
    seen: set[bytes] = set()
    prev: _Key | None = None
    while True:
        nxt = key_type()
        rc = lib().bpf_map_get_next_key(fd, ctypes.byref(prev) if prev is not None else None, ctypes.byref(nxt))
        if rc == -errno_mod.ENOENT:
            return out
        _check(rc, "map iteration")
        if bytes(nxt) not in seen:
            seen.add(bytes(nxt))
            out.append(nxt)
        prev = nxt


def pin(fd: int, path: str) -> None:
    _check(lib().bpf_obj_pin(fd, path.encode()), f"pin {path}")


def obj_get(path: str) -> int:
    return _check(lib().bpf_obj_get(path.encode()), f"open pinned {path}")


def map_info(fd: int) -> BpfMapInfo:
    info = BpfMapInfo()
    size = c_uint32(ctypes.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "map info")
    return info


def prog_info(fd: int) -> BpfProgInfo:
    info = BpfProgInfo()
    size = c_uint32(ctypes.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "program info")
    return info


def prog_fd_by_id(prog_id: int) -> int:
    return _check(lib().bpf_prog_get_fd_by_id(prog_id), f"program id {prog_id}")


def btf_id(fd: int) -> int | None:
    """The id of the BTF object ``fd`` is; None when the kernel gives no info for it.  ``fd``
    must be a BTF object's: for a map's or a program's the kernel fills in their info instead,
    and what is read here as an id is not one (bccload.module_btf passes only anon_inode:btf)."""
    info = BpfBtfInfo()
    size = c_uint32(ctypes.sizeof(info))
    if lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) < 0:
        return None
    return info.id


def btf_funcs(btf_object_id: int) -> list[tuple[int, str, int]]:
    """(type id, name, linkage) of every FUNC of a BTF object in the kernel, in id order."""
    btf = lib().btf__load_from_kernel_by_id(btf_object_id)
    if not btf:
        err = ctypes.get_errno() or errno_mod.ENOENT
        raise OSError(err, f"BTF id {btf_object_id}: {os.strerror(err)}")
    try:
        out = []
        for type_id in range(1, lib().btf__type_cnt(btf)):
            t = lib().btf__type_by_id(btf, type_id).contents
            if (t.info >> 24) & 0x1F == BTF_KIND_FUNC:
                name = lib().btf__name_by_offset(btf, t.name_off) or b""
                out.append((type_id, name.decode(errors="replace"), t.info & 0xFFFF))
        return out
    finally:
        lib().btf__free(btf)


def prog_load_xdp(
    insns: bytes | bytearray,
    name: str,
    license: str,
    *,
    btf_fd: int,
    funcs: list[tuple[int, int]],
    log_level: int,
    log_size: int,
) -> tuple[int, str]:
    """BPF_PROG_LOAD of an XDP program with its functions' BTF (``funcs``: (first
    instruction, FUNC type id) of each, in order), nothing retried without them.
    Returns (fd or -errno, the verifier's log)."""
    code = ctypes.create_string_buffer(bytes(insns), len(insns))
    finfo = (BpfFuncInfo * len(funcs))(*(BpfFuncInfo(off, tid) for off, tid in funcs))
    log = ctypes.create_string_buffer(log_size)
    opts = BpfProgLoadOpts(
        sz=ctypes.sizeof(BpfProgLoadOpts),
        prog_btf_fd=btf_fd,
        func_info=ctypes.cast(finfo, c_void_p),
        func_info_cnt=len(funcs),
        func_info_rec_size=ctypes.sizeof(BpfFuncInfo),
        log_level=log_level,
        log_size=log_size,
        log_buf=ctypes.cast(log, c_void_p),
    )
    fd = lib().bpf_prog_load(
        BPF_PROG_TYPE_XDP,
        name.encode()[:15],
        license.encode(),
        ctypes.cast(code, c_void_p),
        len(insns) // 8,
        ctypes.byref(opts),
    )
    return fd, log.value.decode(errors="replace")  # fd: libbpf 1.x gives -errno on failure


def num_possible_cpus() -> int:
    return _check(lib().libbpf_num_possible_cpus(), "possible CPUs")


def test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> tuple[int, bytes, int]:
    """BPF_PROG_TEST_RUN: (XDP action, frame after the program, ns per run).
    The output buffer holds a frame the program grew (an order frame of up to
    32 orders is 1,454 bytes, whatever the update's length)."""
    data_in = ctypes.create_string_buffer(frame, len(frame))
    data_out = ctypes.create_string_buffer(max(len(frame), 2048) + 256)
    opts = BpfTestRunOpts(
        sz=ctypes.sizeof(BpfTestRunOpts),
        data_in=ctypes.cast(data_in, c_void_p),
        data_out=ctypes.cast(data_out, c_void_p),
        data_size_in=len(frame),
        data_size_out=len(data_out),
        repeat=repeat,
    )
    _check(lib().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), "BPF_PROG_TEST_RUN")
    return opts.retval, data_out.raw[: opts.data_size_out], opts.duration


class RingBuffer:
    """A libbpf ring_buffer manager over one or more BPF_MAP_TYPE_RINGBUF fds.

    ``callback(bytes)`` runs for each record during :meth:`poll`.  Only one
    process should drain a given ring buffer: records are consumed once.
    """

    def __init__(self, map_fd: int, callback, *more_fds: int) -> None:
        def _sample(_ctx, data, size):
            try:
                callback(ctypes.string_at(data, size))
            except Exception:  # an exception must not unwind through C
                return -1
            return 0

        self._cb = RingBufferSampleFn(_sample)  # keep a reference for C
        ptr = lib().ring_buffer__new(map_fd, self._cb, None, None)
        if not ptr:
            err = ctypes.get_errno() or errno_mod.EINVAL
            raise OSError(err, f"ring buffer: {os.strerror(err)}")
        self._rb = ptr
        for fd in more_fds:
            _check(lib().ring_buffer__add(ptr, fd, self._cb, None), "ring buffer add")

    def poll(self, timeout_ms: int = 0) -> int:
        return _check(lib().ring_buffer__poll(self._rb, timeout_ms), "ring buffer poll")

    def consume(self) -> int:
        return _check(lib().ring_buffer__consume(self._rb), "ring buffer consume")

    def close(self) -> None:
        if self._rb:
            lib().ring_buffer__free(self._rb)
            self._rb = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
