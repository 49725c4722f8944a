"""The engine's two BPF ring buffers, read in place.

``events`` carries orders and kills (the journal's lossless path),
``tape_events`` rejects and sampled updates.  A :class:`RingDrain` maps one
ring (the layout libbpf uses) and reads its records without moving the
consumer position; the position moves only on :meth:`RingDrain.commit`,
after the journal has committed the records, so a reader killed at any
instant loses nothing.  :class:`EngineRings` drains both rings together.

A record is an 8-byte header (length with busy/discard bits, page offset)
and the kernel's ``struct hft_event``, padded to 8 bytes; the struct format
here is derived from its ctypes mirror (layout.Event), never retyped.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import platform
import select
import struct
from pathlib import Path

from . import libbpf
from .errors import EngineError
from .events import EngineEvent, EventReader
from .layout import Event

# include/uapi/linux/bpf.h: a record's header is a u32 length with these two
# flag bits, then a u32 page offset; records are 8-byte aligned.
_RINGBUF_BUSY_BIT = 1 << 31
_RINGBUF_DISCARD_BIT = 1 << 30
_RINGBUF_HDR_SZ = 8
RINGBUF_HDR_SZ = _RINGBUF_HDR_SZ  # a record's header, before the event (the journal reads records as bytes)
# Native formats: struct reads 4/8 bytes at once (one aligned load).  The
# consumer position is *written* through a memoryview item, one 8-byte store:
# Struct.pack_into zero-fills its target first, and a kernel reading that
# transient 0 sees a full ring and drops the event (measured: 12 in 400k).
_U32 = struct.Struct("I")
_U64 = struct.Struct("Q")


def _event_struct() -> struct.Struct:
    """The kernel's struct hft_event as a struct format, derived from its
    ctypes mirror (layout.Event), so no field is typed twice."""
    codes: dict[type[ctypes._CData], str] = {
        ctypes.c_uint64: "Q",
        ctypes.c_int64: "q",
        ctypes.c_uint32: "I",
        ctypes.c_int32: "i",
    }
    fmt = "="
    for field in Event._fields_:
        ctype = field[1]  # (name, type) or (name, type, bit width)
        fmt += f"{ctypes.sizeof(ctype)}s" if issubclass(ctype, ctypes.Array) else codes[ctype]
    st = struct.Struct(fmt)
    assert st.size == ctypes.sizeof(Event), "layout.Event has implicit padding"
    return st


EVENT_STRUCT = _event_struct()
EVENT_FIELDS: tuple[str, ...] = tuple(field[0] for field in Event._fields_)
# A record of our one event type: header (length, page offset) + the event.
RECORD_STRIDE = (_RINGBUF_HDR_SZ + EVENT_STRUCT.size + 7) & ~7
RECORD_STRUCT = struct.Struct(
    "=II" + EVENT_STRUCT.format[1:] + "x" * (RECORD_STRIDE - _RINGBUF_HDR_SZ - EVENT_STRUCT.size)
)


_STRIDE_WORDS = RECORD_STRIDE // 4
assert Event.kind.offset % 4 == 0 and _RINGBUF_HDR_SZ % 4 == 0
_KIND_WORD = (_RINGBUF_HDR_SZ + Event.kind.offset) // 4  # the event's kind, in 32-bit words of a record


class RecordRun:
    """``n`` whole ring records read in place from ring position ``pos``, as
    the kernel wrote them: each RECORD_STRIDE bytes, an 8-byte header and
    the event.  The journal keeps the rejects among them as bytes, so a
    record costs no per-field decoding on the way (only the newest few are
    decoded, for the screen)."""

    __slots__ = ("data", "n", "pos")

    def __init__(self, pos: int, data: bytes, n: int) -> None:
        self.pos, self.data, self.n = pos, data, n

    @property
    def end(self) -> int:
        return self.pos + self.n * RECORD_STRIDE

    @staticmethod
    def position_index(pos: int, start: int) -> int:
        """Index of the first record at or after ring position ``start`` in a run from ``pos``."""
        return max(0, -(-(start - pos) // RECORD_STRIDE))

    def kinds(self) -> list[int]:
        return memoryview(self.data).cast("I")[_KIND_WORD::_STRIDE_WORDS].tolist()

    def records_of_kind(self, kind: int, start: int = 0) -> tuple[bytes, int]:
        """(the records of ``kind`` from index ``start`` on, whole and back to
        back; how many).  Cut only at the records of other kinds (few: the
        tape ring holds rejects and 1-in-N sampled updates), so a run costs a
        few slices, not one per record."""
        kinds = self.kinds()[start:]
        stride = RECORD_STRIDE
        if kinds.count(kind) == len(kinds):
            return self.data[start * stride :], len(kinds)
        pieces, lo = [], start
        for hi in [i + start for i, k in enumerate(kinds) if k != kind] + [self.n]:
            if hi > lo:
                pieces.append(self.data[lo * stride : hi * stride])
            lo = hi + 1
        return b"".join(pieces), sum(len(p) for p in pieces) // stride

    def tuples(self, start: int = 0) -> list[tuple[int, tuple]]:
        """(ring position, event tuple in layout.Event order) of records ``start``.. (decoded)."""
        off = start * RECORD_STRIDE
        return [
            (self.pos + off + i * RECORD_STRIDE, rec[2:])
            for i, rec in enumerate(RECORD_STRUCT.iter_unpack(self.data[off:]))
        ]


def event_from_tuple(t: tuple) -> EngineEvent:
    """An EngineEvent from an unpacked record, decoded by events.py itself."""
    return EngineEvent.from_record(EVENT_STRUCT.pack(*t))


# Reading another CPU's producer position and records without barriers is
# correct on x86-64 (TSO); elsewhere the controller uses libbpf's reader.
IN_PLACE_READER = platform.machine() in ("x86_64", "AMD64")


class RingDrain:
    """One BPF_MAP_TYPE_RINGBUF read in place, committed explicitly.

    ``read()`` returns the records after the consumer position without
    moving it; ``commit(pos)`` moves it once they are safe.  Positions are
    byte offsets since the ring was made: unique for the ring's life.
    """

    def __init__(self, map_fd: int, *, owns_fd: bool = False) -> None:
        self.fd = map_fd
        self._owns = owns_fd
        cons = None
        try:
            self.size = libbpf.map_info(map_fd).max_entries
            self._mask = self.size - 1
            page = mmap.PAGESIZE
            # The layout libbpf uses: the consumer page (ours to write), then the
            # producer page and the data pages, mapped twice so a record that
            # wraps around the end reads as one piece.
            cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._data = mmap.mmap(map_fd, page + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:  # not a ring this can map: nothing of it kept open
            if cons is not None:
                cons.close()
            if owns_fd:
                os.close(map_fd)
            raise
        self._cons = cons
        self._base = page
        self._cons_pos = memoryview(self._cons)[:8].cast("Q")

    @property
    def consumer_pos(self) -> int:
        return self._cons_pos[0]

    @property
    def producer_pos(self) -> int:
        return _U64.unpack_from(self._data, 0)[0]

    def pending(self) -> int:
        """Bytes written by the kernel and not yet committed."""
        return self.producer_pos - self.consumer_pos

    def read(self, max_records: int) -> tuple[list[tuple[int, tuple]], int]:
        """([(position, event tuple in layout.Event order)], position after
        them); nothing moves until :meth:`commit`."""
        # Fast path: a run of plain event records, unpacked in one call.
        run = self.read_run(max_records)
        out: list[tuple[int, tuple]] = run.tuples() if run else []
        pos = run.end if run else self.consumer_pos
        prod = self.producer_pos
        data, base, mask = self._data, self._base, self._mask
        # The careful path: a record still being written, discarded, or not ours.
        while pos < prod and len(out) < max_records:
            off = base + (pos & mask)
            hdr = _U32.unpack_from(data, off)[0]
            if hdr & _RINGBUF_BUSY_BIT:
                break  # the kernel is still writing it; it comes next time
            size = hdr & ~(_RINGBUF_BUSY_BIT | _RINGBUF_DISCARD_BIT)
            if not hdr & _RINGBUF_DISCARD_BIT:
                if size != EVENT_STRUCT.size:
                    raise EngineError(
                        f"a {size}-byte ring-buffer record, this hft-tui reads "
                        f"{EVENT_STRUCT.size}: the engine is another version"
                    )
                out.append((pos, EVENT_STRUCT.unpack_from(data, off + _RINGBUF_HDR_SZ)))
            pos += (size + _RINGBUF_HDR_SZ + 7) & ~7
        return out, pos

    def read_run(self, max_records: int) -> RecordRun | None:
        """The committed records after the consumer position, up to the first
        one still being written (or not a plain event), as one RecordRun;
        None when the first is such a record (:meth:`read` handles those).
        Nothing moves until :meth:`commit`."""
        pos = self.consumer_pos
        n = min((self.producer_pos - pos) // RECORD_STRIDE, max_records)
        if n <= 0:
            return None
        off = self._base + (pos & self._mask)
        data = self._data[off : off + n * RECORD_STRIDE]  # mapped twice: a run never wraps
        headers = memoryview(data).cast("I")[0::_STRIDE_WORDS].tolist()
        if headers.count(EVENT_STRUCT.size) != n:
            n = next(i for i, h in enumerate(headers) if h != EVENT_STRUCT.size)
            data = data[: n * RECORD_STRIDE]
        return RecordRun(pos, data, n) if n else None

    def commit(self, pos: int) -> None:
        if pos > self.consumer_pos:
            self._cons_pos[0] = pos  # one store: the kernel never sees another value

    def close(self) -> None:
        self._cons_pos.release()
        self._cons.close()
        self._data.close()
        if self._owns:
            os.close(self.fd)


class EngineRings:
    """The engine's two rings (orders+kills, and the tape), drained together.

    ``keep_orders``: the orders ring is left as it is, never read nor moved
    (a controller with no journal: what is in it waits for one that has a
    journal, and a full ring is the kernel's counted drop); only the tape is
    drained.  The libbpf reader (off x86-64) cannot leave one ring unread.
    """

    NAMES = ("events", "tape_events")

    def __init__(self, pin_dir: Path, *, keep_orders: bool = False) -> None:
        self.drains: list[RingDrain] = []
        self.reader: EventReader | None = None
        self.keep_orders = keep_orders
        self._poll = select.epoll()
        self._wake_fd: int | None = None
        try:
            if IN_PLACE_READER:
                for name in self.NAMES:
                    d = RingDrain(libbpf.obj_get(str(pin_dir / name)), owns_fd=True)
                    self.drains.append(d)
                for d in self._drained():
                    # Level-triggered: readable while uncommitted data exists.
                    self._poll.register(d.fd, select.EPOLLIN)
            else:
                self.reader = EventReader.open_pinned(pin_dir)
        except OSError as exc:
            self.close()
            raise EngineError(f"cannot open the engine's ring buffers in {pin_dir}: {exc.strerror or exc}") from None

    def _drained(self) -> list[RingDrain]:
        """The rings this drain reads: both, or the tape alone (keep_orders)."""
        return self.drains[1:] if self.keep_orders else self.drains

    def wait(self, timeout_ms: int, wake_fd: int | None = None) -> None:
        """Returns when a ring holds records, ``wake_fd`` is readable (a stop
        request), or after ``timeout_ms``."""
        if timeout_ms <= 0 or self.pending():
            return
        if self.reader is not None:  # libbpf's reader polls on its own: only the stop can wake us
            select.select([wake_fd] if wake_fd is not None else [], [], [], timeout_ms / 1000)
            return
        if wake_fd is not None and wake_fd != self._wake_fd:
            self._poll.register(wake_fd, select.EPOLLIN)
            self._wake_fd = wake_fd
        with contextlib.suppress(InterruptedError):
            self._poll.poll(timeout_ms / 1000)

    def read(self, max_records: int, timeout_ms: int = 0):
        """(records, runs, commit function).  In-place reader: records are
        (position, event tuple) from the orders ring (orders first: the
        lossless ring is never starved; none with keep_orders) and runs the
        tape ring's records as read (RecordRun); libbpf reader: EngineEvents
        and no runs."""
        if self.reader is not None:
            return self.reader.poll(timeout_ms), [], lambda: None
        orders, tape = self.drains
        drains = self._drained()
        records: list = []
        ends, runs = [], []  # one end for each of drains, in order
        if not self.keep_orders:
            records, end = orders.read(max_records)
            ends.append(end)
        run = tape.read_run(max_records)
        if run is not None:
            runs.append(run)
            ends.append(run.end)
        else:  # a record still being written, or discarded: the careful path
            recs, end = tape.read(max_records)
            records.extend(recs)
            ends.append(end)

        def commit() -> None:
            for d, end in zip(drains, ends):
                d.commit(end)

        return records, runs, commit

    def pending(self) -> bool:
        return any(d.pending() for d in self._drained())

    def behind(self, records: int) -> bool:
        """A ring holds at least ``records`` undrained records (a tick's batch):
        the caller should drain now, whatever its own rate, before it fills."""
        return any(d.pending() >= records * RECORD_STRIDE for d in self._drained())

    def close(self) -> None:
        for d in self.drains:
            with contextlib.suppress(Exception):
                self._poll.unregister(d.fd)  # (a kept ring was never registered)
            d.close()
        self.drains = []
        if self._wake_fd is not None:
            with contextlib.suppress(Exception):
                self._poll.unregister(self._wake_fd)
        self._poll.close()
        if self.reader is not None:
            self.reader.close()
            self.reader = None
