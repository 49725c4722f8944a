"""Sending fast: the exchange's socket in the lab, sendmmsg(2) batches, one CPU.

The socket is made in the lab's namespace (lab.lab_socket), bound to the
exchange address, with nanosecond receive timestamps and buffers big enough
that no order is lost while the sender is busy; orders come back on it
(receiver.py).  A batch buffer of packed datagrams (hft1.py packs them in
place) is sent with one sendmmsg(2) call (libc through ctypes: Python has no
sendmmsg).  The sending thread is pinned to one CPU so the engine sees the
updates in the order they were sent.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct

from .. import lab as lab_mod
from ..constants import MSG_LEN
from ..errors import SimulatorError

# asm-generic/socket.h; Python's socket module does not export these.
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD == SCM_TIMESTAMPNS on 64-bit
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SOCKET_BUFFER = 16 << 20  # orders must not be lost while the sender is busy

MAX_BATCH = 64


def exchange_socket(lab: lab_mod.Lab) -> socket.socket:
    """A non-blocking UDP socket in the lab, bound to the exchange address."""
    if not lab.netns_path.exists():
        raise SimulatorError(f"lab {lab.namespace} is not up (hft-tui lab up)")
    sock = lab_mod.lab_socket(lab)
    try:
        sock.bind((lab.exchange_ip, 0))
    except OSError as exc:
        sock.close()
        raise SimulatorError(f"cannot bind to the exchange address {lab.exchange_ip}: {exc.strerror}") from None
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
    sock.setblocking(False)
    return sock


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_Iovec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


class BatchSender:
    """Up to MAX_BATCH datagrams of ``size`` bytes to one address in one sendmmsg(2)."""

    def __init__(self, sock: socket.socket, ip: str, port: int, size: int = MSG_LEN, batch: int = MAX_BATCH) -> None:
        self.fd = sock.fileno()
        self.size = size
        self.batch = batch
        self._buf = (ctypes.c_char * (size * batch))()
        self.view = memoryview(self._buf).cast("B")
        self._addr = ctypes.create_string_buffer(
            struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_aton(ip)), 16
        )
        self._iov = (_Iovec * batch)()
        self._msgs = (_Mmsghdr * batch)()
        base = ctypes.addressof(self._buf)
        for i in range(batch):
            self._iov[i].base, self._iov[i].len = base + i * size, size
            h = self._msgs[i].hdr
            h.name, h.namelen = ctypes.addressof(self._addr), 16
            h.iov, h.iovlen = ctypes.pointer(self._iov[i]), 1
        libc = ctypes.CDLL(None, use_errno=True)
        self._sendmmsg = libc.sendmmsg
        self._sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._sendmmsg.restype = ctypes.c_int

    def send(self, count: int) -> None:
        """Sends the first ``count`` datagrams of the buffer, all of them."""
        done = 0
        while done < count:
            n = self._sendmmsg(self.fd, ctypes.byref(self._msgs, done * ctypes.sizeof(_Mmsghdr)), count - done, 0)
            if n < 0:
                err = ctypes.get_errno()
                if err in (11, 4, 105):  # EAGAIN, EINTR, ENOBUFS: the queue is full, go again
                    continue
                raise OSError(err, f"sendmmsg: {os.strerror(err)}")
            done += n


def pin_thread(cpu: int | None) -> set[int] | None:
    """Pins the calling thread (one CPU keeps the updates in order); returns the
    old affinity to restore, or None when nothing changed."""
    if cpu is None:
        return None
    old = os.sched_getaffinity(0)
    if cpu not in old:
        raise SimulatorError(f"cpu {cpu} is not one this process may use ({sorted(old)})")
    os.sched_setaffinity(0, {cpu})
    return old


def current_cpu() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    cpu = libc.sched_getcpu()
    return cpu if cpu >= 0 else min(os.sched_getaffinity(0))
