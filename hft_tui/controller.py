"""The controller: what supervises a running engine.

A controller (the TUI's worker, or ``hft-tui engine run``) is the one
process that
 - beats the heartbeat, which arms the kernel's dead-man switch: if the
   controller dies, the kernel sends no order once the heartbeat is older
   than the deadline;
 - owns the drain of the engine's two ring buffers (a ring buffer has one
   consumer position: two drains would split the events), writes every order
   and reject to the journal and fans the events out to its caller;
 - turns counter changes into alerts within one tick (MiFID II RTS 6 asks
   for alerts within five seconds);
 - journals every change of the config version and of the kill switch,
   whoever made it (TUI, CLI), with the program hash;
 - notices the interface disappearing or the engine being detached under it.

Restart rule: a controller that finds the switch armed and the heartbeat
already expired (its predecessor died) latches the kill switch before its
first heartbeat, so trading resumes only when an operator resumes it.

Lossless drain: the rings are read in place (mmap) and the consumer position
moves only after the journal has committed the records, so a controller
killed at any instant loses nothing; its successor reads the uncommitted
records again and the journal ignores the ones it already has.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import platform
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import libbpf, paths
from .config import MIN_DEADMAN_MS, money_to_str
from .constants import KILL_OFF, KILL_OPERATOR, KILL_STATES, NO_TRADE_ACTIONS
from .engine import EngineError, EngineHandle
from .events import EngineEvent, EventReader
from .layout import Event, as_dict
from .maps import Snapshot, symbol_params_from_map


@dataclass(frozen=True)
class Alert:
    """Something an operator must see: a reject reason firing, drops, a kill."""

    kind: str            # "reject", "ringbuf_drops", "tape_drops", "kill", "journal_gap", "journal", "engine"
    reason: str          # reject reason, kill state, ...
    count: int           # how many since the previous tick
    symbol: str = ""     # when one symbol caused it
    message: str = ""

    def text(self) -> str:
        where = f" {self.symbol}" if self.symbol else ""
        return self.message or f"{self.kind} {self.reason}{where}: {self.count}"


@dataclass
class Tick:
    """One controller step: what the kernel holds now and what happened since."""

    snapshot: Snapshot
    events: list[EngineEvent] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dropped_events: int = 0     # events not kept in memory (the journal still has them)
    ended: str | None = None    # supervision is over: "interface_gone" or "detached"
    backlog: bool = False       # records still wait in a ring: tick again without waiting


# -- reading a BPF ring buffer in place ---------------------------------------

# include/uapi/linux/bpf.h: a record's header is a u32 length with these two
# flag bits, then a u32 page offset; records are 8-byte aligned.
_RINGBUF_BUSY_BIT = 1 << 31
_RINGBUF_DISCARD_BIT = 1 << 30
_RINGBUF_HDR_SZ = 8
# Native formats: struct reads 4/8 bytes at once (one aligned load).  The
# consumer position is *written* through a memoryview item, one 8-byte store:
# Struct.pack_into zero-fills its target first, and a kernel reading that
# transient 0 sees a full ring and drops the event (measured: 12 in 400k).
_U32 = struct.Struct("I")
_U64 = struct.Struct("Q")


def _event_struct() -> struct.Struct:
    """The kernel's struct hft_event as a struct format, derived from its
    ctypes mirror (layout.Event), so no field is typed twice."""
    codes = {ctypes.c_uint64: "Q", ctypes.c_int64: "q", ctypes.c_uint32: "I", ctypes.c_int32: "i"}
    fmt = "="
    for _name, ctype in Event._fields_:
        fmt += f"{ctypes.sizeof(ctype)}s" if issubclass(ctype, ctypes.Array) else codes[ctype]
    st = struct.Struct(fmt)
    assert st.size == ctypes.sizeof(Event), "layout.Event has implicit padding"
    return st


EVENT_STRUCT = _event_struct()
EVENT_FIELDS = tuple(name for name, _ in Event._fields_)
# A record of our one event type: header (length, page offset) + the event.
RECORD_STRIDE = (_RINGBUF_HDR_SZ + EVENT_STRUCT.size + 7) & ~7
RECORD_STRUCT = struct.Struct("=II" + EVENT_STRUCT.format[1:] + "x" * (RECORD_STRIDE - _RINGBUF_HDR_SZ - EVENT_STRUCT.size))


_STRIDE_WORDS = RECORD_STRIDE // 4
assert Event.kind.offset % 4 == 0 and _RINGBUF_HDR_SZ % 4 == 0
_KIND_WORD = (_RINGBUF_HDR_SZ + Event.kind.offset) // 4   # the event's kind, in 32-bit words of a record


class RecordRun:
    """``n`` whole ring records read in place from ring position ``pos``, as
    the kernel wrote them: each RECORD_STRIDE bytes, an 8-byte header and
    the event.  The journal keeps the rejects among them as bytes, so a
    record costs no per-field decoding on the way (only the newest few are
    decoded, for the screen)."""

    __slots__ = ("pos", "data", "n")

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
            return self.data[start * stride:], len(kinds)
        pieces, lo = [], start
        for hi in [i + start for i, k in enumerate(kinds) if k != kind] + [self.n]:
            if hi > lo:
                pieces.append(self.data[lo * stride: hi * stride])
            lo = hi + 1
        return b"".join(pieces), sum(len(p) for p in pieces) // stride

    def tuples(self, start: int = 0) -> list[tuple[int, tuple]]:
        """(ring position, event tuple in layout.Event order) of records ``start``.. (decoded)."""
        off = start * RECORD_STRIDE
        return [(self.pos + off + i * RECORD_STRIDE, rec[2:])
                for i, rec in enumerate(RECORD_STRUCT.iter_unpack(self.data[off:]))]


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
        self.size = libbpf.map_info(map_fd).max_entries
        self._mask = self.size - 1
        page = mmap.PAGESIZE
        # The layout libbpf uses: the consumer page (ours to write), then the
        # producer page and the data pages, mapped twice so a record that
        # wraps around the end reads as one piece.
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._data = mmap.mmap(map_fd, page + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
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
                    raise EngineError(f"a {size}-byte ring-buffer record, this hft-tui reads "
                                      f"{EVENT_STRUCT.size}: the engine is another version")
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
        data = self._data[off: off + n * RECORD_STRIDE]   # mapped twice: a run never wraps
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


class _Rings:
    """The engine's two rings (orders+kills, and the tape), drained together."""

    NAMES = ("events", "tape_events")

    def __init__(self, pin_dir: Path) -> None:
        self.drains: list[RingDrain] = []
        self.reader: EventReader | None = None
        self._poll = select.epoll()
        try:
            if IN_PLACE_READER:
                for name in self.NAMES:
                    d = RingDrain(libbpf.obj_get(str(pin_dir / name)), owns_fd=True)
                    self.drains.append(d)
                    # Level-triggered: readable while uncommitted data exists.
                    self._poll.register(d.fd, select.EPOLLIN)
            else:
                self.reader = EventReader.open_pinned(pin_dir)
        except OSError as exc:
            self.close()
            raise EngineError(f"cannot open the engine's ring buffers in {pin_dir}: {exc.strerror or exc}") from None

    def wait(self, timeout_ms: int) -> None:
        if self.reader is not None or timeout_ms <= 0:
            return
        if any(d.pending() for d in self.drains):
            return
        with contextlib.suppress(InterruptedError):
            self._poll.poll(timeout_ms / 1000)

    def read(self, max_records: int, timeout_ms: int = 0):
        """(records, runs, commit function).  In-place reader: records are
        (position, event tuple) from the orders ring (orders first: the
        lossless ring is never starved) and runs the tape ring's records as
        read (RecordRun); libbpf reader: EngineEvents and no runs."""
        if self.reader is not None:
            return self.reader.poll(timeout_ms), [], lambda: None
        orders, tape = self.drains
        records, end = orders.read(max_records)
        ends, runs = [end], []
        run = tape.read_run(max_records)
        if run is not None:
            runs.append(run)
            ends.append(run.end)
        else:  # a record still being written, or discarded: the careful path
            recs, end = tape.read(max_records)
            records.extend(recs)
            ends.append(end)

        def commit() -> None:
            for d, end in zip(self.drains, ends):
                d.commit(end)

        return records, runs, commit

    def pending(self) -> bool:
        return any(d.pending() for d in self.drains)

    def behind(self, records: int) -> bool:
        """A ring holds at least ``records`` undrained records (a tick's batch):
        the caller should drain now, whatever its own rate, before it fills."""
        return any(d.pending() >= records * RECORD_STRIDE for d in self.drains)

    def close(self) -> None:
        for d in self.drains:
            with contextlib.suppress(Exception):
                self._poll.unregister(d.fd)
            d.close()
        self.drains = []
        self._poll.close()
        if self.reader is not None:
            self.reader.close()
            self.reader = None


# -- one controller per engine ---------------------------------------------------

def _lock_path(iface: str) -> Path:
    return paths.RUN_DIR / f"{paths.check_ifname(iface)}.controller"


#: a controller that finds the lock file held by a process that is not a
#: controller (a status reader of an older hft-tui takes a shared lock for a
#: moment) tries again for this long before it gives up
LOCK_RETRY_S = 1.0
LOCK_RETRY_STEP_S = 0.01


def _flock_holders(fd: int) -> list[tuple[str, int]] | None:
    """(kind, pid) of every flock held on ``fd``'s file, kind "WRITE" (LOCK_EX)
    or "READ" (LOCK_SH), read from /proc/locks: no lock is taken to find out.
    None when /proc/locks cannot be read."""
    st = os.fstat(fd)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    exact, same_inode = [], []
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:56789 0 EOF"; a waiter has "->" after the number
        words = line.split()
        if len(words) < 6 or words[1] != "FLOCK" or not words[4].isdigit():
            continue
        where, _, ino = words[5].rpartition(":")
        if ino == str(st.st_ino):
            (exact if where == dev else same_inode).append((words[3], int(words[4])))
    if not exact and same_inode:
        # A stacked file system (overlayfs) shows the lower device: trust an
        # inode-only match only for the pid the controller wrote in the file.
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        exact = [(kind, pid) for kind, pid in same_inode if str(pid) == text]
    return exact


def _acquire_controller_lock(iface: str) -> int:
    """An flock held for the controller's life (the kernel drops it if the
    process dies): a second drain would split the events between journals.

    The file is removed when the controller stops (``_release_controller_lock``),
    so a lock taken on a file that was unlinked meanwhile is retried on the
    new one: two controllers can never hold locks on two different files.
    A lock held only as shared (a reader looking, not a controller) is
    retried for up to LOCK_RETRY_S: only a controller refuses a controller."""
    paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = _lock_path(iface)
    give_up = time.monotonic() + LOCK_RETRY_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
            holders = _flock_holders(fd)
            writers = [pid for kind, pid in holders or () if kind == "WRITE"]
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if not writers and time.monotonic() < give_up:
                time.sleep(LOCK_RETRY_STEP_S)     # a reader, for a moment: not a controller
                continue
            holder = writers[0] if writers else (text or "?")
            raise EngineError(
                f"{iface} already has a controller (pid {holder}): one process drains the events and "
                "writes the journal; stop it first"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)        # the last controller removed it between our open and flock
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release_controller_lock(iface: str, fd: int) -> None:
    """Removes the lock file while still holding it, then lets go: nothing is left in /run."""
    try:
        _lock_path(iface).unlink()
    except FileNotFoundError:
        pass
    os.close(fd)


def controller_pid(iface: str) -> int | None:
    """The pid of the live controller of ``iface``, or None.

    Looks without locking (/proc/locks): a shared lock taken here, even for a
    moment, would make a controller starting at that instant refuse to start."""
    try:
        fd = os.open(_lock_path(iface), os.O_RDONLY)
    except (FileNotFoundError, PermissionError):
        return None
    try:
        holders = _flock_holders(fd)
        if holders is not None:
            writers = [pid for kind, pid in holders if kind == "WRITE"]
            return writers[0] if writers else None
        # No /proc/locks: ask the lock itself (a controller starting now may retry).
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        return None  # nobody holds it
    finally:
        os.close(fd)


def _config_view(snap: Snapshot) -> dict:
    """The config as an operator reads it, for journaling what changed."""
    g = as_dict(snap.global_config)
    g.pop("config_version", None)
    for key in ("max_notional", "loss_limit"):  # dollars, as the TOML and the CLI write them
        g[key] = money_to_str(g[key])
    g["on_no_trade"] = NO_TRADE_ACTIONS.get(g["on_no_trade"], g["on_no_trade"])
    view = {"engine": g}
    for name, (cfg, _st) in snap.symbols.items():
        view[name] = symbol_params_from_map(cfg).to_toml_values()
    return view


def _config_diff(old: dict, new: dict) -> dict:
    diff: dict = {}
    for name in sorted(set(old) | set(new)):
        if name not in new:
            diff[name] = "removed"
        elif name not in old:
            diff[name] = {"added": new[name]}
        else:
            changed = {k: [old[name].get(k), v] for k, v in new[name].items() if old[name].get(k) != v}
            if changed:
                diff[name] = changed
    return diff


class Controller:
    """Supervises one engine by its pins.  Not thread-safe: one thread ticks."""

    #: keep at most this many events per tick in memory for the caller;
    #: the journal records all of them, the UI only needs the newest.
    MAX_EVENTS_PER_TICK = 2000
    #: records read per ring per tick: bounds a tick's work (2 x 8192 records
    #: at ~5 us is < 0.1 s), so ticks stay >= 10 Hz and the heartbeat fresh
    #: even when both rings are full.
    MAX_BATCH = 8192
    #: how often the controller asks netlink whether the engine is still attached
    ATTACH_CHECK_S = 1.0
    #: a controller beats at least this many times per dead-man deadline ...
    BEATS_PER_DEADLINE = 5
    #: ... and never less often than this, so that a deadline shortened live
    #: (even to the shortest the config accepts) is met from the next beat on
    MAX_BEAT_INTERVAL_S = MIN_DEADMAN_MS / 2 / 1000

    def __init__(self, handle: EngineHandle, *, journal=None, deadman_ms: int | None = None,
                 supervise: bool = True) -> None:
        self.handle = handle
        self.journal = journal
        self.deadman_ms = deadman_ms
        self.supervise = supervise
        self.rings = _Rings(handle.pin_dir)
        self._last: Snapshot | None = None
        self._config: dict = {}
        self._version = 0
        self._kernel_seen: tuple | None = None
        self._lock_fd: int | None = None
        self._next_attach_check = 0.0
        self._journal_failed = False
        self._drained = 0
        self.tripped_on_start = False
        self.deadline_ms: int | None = None
        self.ended: str | None = None

    @property
    def program_hash(self) -> str | None:
        return self.handle.record.program_hash if self.handle.record else None

    @property
    def config_version(self) -> int:
        """The config version last seen (and journaled)."""
        return self._version

    # -- life cycle ----------------------------------------------------------
    def start(self) -> Snapshot:
        """Takes over the engine: latches the kill if the last controller died, then arms."""
        self._lock_fd = _acquire_controller_lock(self.handle.iface)
        try:
            return self._start()
        except BaseException:
            self._release()
            raise

    def _start(self) -> Snapshot:
        snap = self.handle.snapshot()
        g = snap.global_config
        if self.supervise:
            # The kernel's rule: a heartbeat further than the deadline from now, either way, is stale.
            expired = g.deadman_ms and (
                not snap.heartbeat_ns or abs(time.monotonic_ns() - snap.heartbeat_ns) > g.deadman_ms * 1_000_000
            )
            if expired and snap.kill == KILL_OFF:
                self.handle.maps.set_kill(KILL_OPERATOR)
                self.tripped_on_start = True
            self.deadline_ms = self.handle.arm_deadman(self.deadman_ms)
        snap = self.handle.snapshot()
        if self.journal is not None:
            prog_id, attached_at = self.handle.identity()
            self.journal.begin_engine(iface=self.handle.iface, prog_id=prog_id, attached_at=attached_at,
                                      program_hash=self.program_hash)
            self.journal.record_control(
                "controller_start",
                program_hash=self.program_hash,
                config_version=snap.global_config.config_version,
                detail={"pid": os.getpid(), "tripped_on_start": self.tripped_on_start,
                        "deadman_ms": self.deadline_ms, "config": _config_view(snap)},
            )
            if self.tripped_on_start:
                self.journal.record_control(
                    "kill", program_hash=self.program_hash, config_version=snap.global_config.config_version,
                    detail={"state": KILL_STATES[KILL_OPERATOR],
                            "why": "the previous controller died: its heartbeat had expired"},
                )
        self._last = snap
        self._config = _config_view(snap)
        self._version = snap.global_config.config_version
        return snap

    def beat(self) -> None:
        if self.supervise and not self.ended:
            self.handle.maps.beat()

    def beat_interval_s(self, deadman_ms: int | None = None) -> float:
        """The longest this controller may wait before its next beat: a fifth of
        the dead-man deadline the kernel holds now (``deadman_ms`` when the
        caller has just read it, else read here: a deadline edited live, in the
        app or with ``engine set-engine``, applies from the next beat), and at
        most MAX_BEAT_INTERVAL_S."""
        if deadman_ms is None:
            deadman_ms = self.handle.maps.read_global().deadman_ms
        if not deadman_ms:
            return self.MAX_BEAT_INTERVAL_S
        return min(deadman_ms / 1000 / self.BEATS_PER_DEADLINE, self.MAX_BEAT_INTERVAL_S)

    def tick(self, timeout_ms: int = 0) -> Tick:
        """Heartbeat, drain, journal, alerts.  Between two calls the caller waits
        at most :meth:`beat_interval_s` (or calls :meth:`beat` meanwhile)."""
        if self.ended:
            return Tick(snapshot=self._last, ended=self.ended)
        self.beat()
        self.rings.wait(timeout_ms)
        events, alerts = self._drain(self.MAX_BATCH, timeout_ms)
        self.beat()  # a full batch takes a while
        snap = self.handle.snapshot()
        alerts.extend(self._alerts(snap, events))
        if self.journal is not None:
            alerts.extend(self._journal_changes(snap))
            alerts.extend(self.journal.take_alerts())
        alerts.extend(self._watch_interface())
        dropped = max(0, self._drained - len(events))
        self._last = snap
        backlog = not self.ended and self.rings.pending()
        return Tick(snapshot=snap, events=events, alerts=alerts, dropped_events=dropped, ended=self.ended,
                    backlog=backlog)

    def _drain(self, max_records: int, timeout_ms: int = 0) -> tuple[list[EngineEvent], list[Alert]]:
        """One batch from each ring into the journal; the rings move only
        after the commit.  Returns the newest events (decoded) for the caller."""
        self._drained = 0
        records, runs, commit = self.rings.read(max_records, timeout_ms)
        if self.journal is not None and (records or runs):
            from .journal import JournalError

            try:
                if self.rings.reader is None:
                    self.journal.record_raw(records, runs)
                else:
                    self.journal.record_events(records)
            except JournalError as exc:
                # Nothing is committed: the records stay in the ring for the next try.
                return [], self._journal_failure(exc)
            self._journal_failed = False
        commit()
        self._drained = len(records) + sum(r.n for r in runs)
        if self.rings.reader is not None:
            return records[-self.MAX_EVENTS_PER_TICK:], []
        # Only the newest events are decoded: the caller shows them, the journal has all.
        keep = self.MAX_EVENTS_PER_TICK
        for run in runs:
            records = records + run.tuples(max(0, run.n - keep))
        newest = sorted(records, key=lambda r: r[1][0])[-keep:]
        return [event_from_tuple(t) for _pos, t in newest], []

    def _journal_failure(self, exc: Exception) -> list[Alert]:
        """An order that cannot be journaled must not be sent: the kill latches."""
        if self._journal_failed:
            return []
        self._journal_failed = True
        if self.handle.maps.kill() == KILL_OFF:
            self.handle.maps.set_kill(KILL_OPERATOR)
        return [Alert("journal", "write_failed", 1, message=(
            f"JOURNAL WRITE FAILED ({exc}): kill switch latched; events stay in the ring buffer"))]

    def _alerts(self, snap: Snapshot, events: list[EngineEvent]) -> list[Alert]:
        prev = self._last
        if prev is None:
            return []
        alerts = []
        by_reason: dict[str, str] = {}
        for ev in events:
            if ev.kind == "reject" and ev.reason not in by_reason:
                by_reason[ev.reason] = ev.symbol
        for reason, count in snap.rejects.items():
            delta = count - prev.rejects.get(reason, 0)
            if delta > 0:
                alerts.append(Alert("reject", reason, delta, by_reason.get(reason, "")))
        if self.journal is None:  # with a journal, it reports drops (and records them)
            for key, what in (("ringbuf_drops", "order(s)"), ("tape_drops", "reject(s)/update(s)")):
                drops = snap.counters.get(key, 0) - prev.counters.get(key, 0)
                if drops > 0:
                    alerts.append(Alert(key, key, drops, message=f"ring buffer full: {drops} {what} lost"))
        if snap.kill != prev.kill:
            state = KILL_STATES.get(snap.kill, str(snap.kill))
            alerts.append(Alert("kill", state, 1, message=(
                "KILL SWITCH: " + state if snap.kill != KILL_OFF else "kill switch cleared: trading")))
        return alerts

    def _journal_changes(self, snap: Snapshot, *, final: bool = False) -> list[Alert]:
        """Kernel counts, config versions and kill changes, whoever made them."""
        j = self.journal
        counts = (snap.totals.order_seq, snap.counters.get("ringbuf_drops", 0), snap.counters.get("tape_drops", 0))
        try:
            if counts != self._kernel_seen or final:
                j.record_kernel(orders_sent=counts[0], ringbuf_drops=counts[1], tape_drops=counts[2], final=final)
                self._kernel_seen = counts
            version = snap.global_config.config_version
            kill_changed = self._last is not None and snap.kill != self._last.kill
            if version != self._version:
                new = _config_view(snap)
                if _config_diff(self._config, new) or not kill_changed:
                    self._record_config(snap, "config_change", {})
                else:  # a resume bumps the version: its own row below carries it
                    self._config, self._version = new, version
            if kill_changed:
                j.record_control("kill" if snap.kill != KILL_OFF else "resume", program_hash=self.program_hash,
                                 config_version=version,
                                 detail={"state": KILL_STATES.get(snap.kill, str(snap.kill))})
        except Exception as exc:  # noqa: BLE001 - a journal failure must not stop supervision
            from .journal import JournalError

            if not isinstance(exc, JournalError):
                raise
            return self._journal_failure(exc)
        return []

    def _record_config(self, snap: Snapshot, what: str, detail: dict) -> None:
        new = _config_view(snap)
        self.journal.record_control(
            what,
            program_hash=self.program_hash,
            config_version=snap.global_config.config_version,
            detail={**detail, "from_version": self._version, "changed": _config_diff(self._config, new)},
        )
        self._config = new
        self._version = snap.global_config.config_version

    def record_change(self, what: str, detail: dict) -> None:
        """Journals an operator's change (config, kill, resume) with the version it made."""
        if self.journal is not None:
            self._record_config(self.handle.snapshot(), what, detail)

    # -- the interface and the attachment --------------------------------------
    def _watch_interface(self) -> list[Alert]:
        rec = self.handle.record
        try:
            idx = socket.if_nametoindex(self.handle.iface)
        except OSError:
            idx = None
        if idx is None or (rec is not None and idx != rec.ifindex):
            what = "is gone" if idx is None else "was replaced by a new interface of the same name"
            return self._end("interface_gone", f"INTERFACE {self.handle.iface} {what}: its engine went with it")
        now = time.monotonic()
        if now >= self._next_attach_check:
            self._next_attach_check = now + self.ATTACH_CHECK_S
            st = self.handle.xdp()
            if st is None:
                return self._end("interface_gone", f"INTERFACE {self.handle.iface} is gone: its engine went with it")
            if not self.handle.attached_as(st):
                return self._end("detached", f"ENGINE DETACHED: {self.handle.iface} no longer runs this engine "
                                             "(detached or replaced by another program)")
        return []

    def _end(self, why: str, message: str) -> list[Alert]:
        """The engine is gone: journal what is left, clean the pins, stop supervising."""
        alerts = [Alert("engine", why, 1, message=message)]
        alerts.extend(self._final_drain())
        if self.journal is not None:
            alerts.extend(self._journal_changes(self.handle.snapshot(), final=True))
            with contextlib.suppress(Exception):
                self.journal.record_control(why, program_hash=self.program_hash,
                                            config_version=self._version, detail={"message": message})
            alerts.extend(self.journal.take_alerts())
        from .engine import detach as detach_engine

        with contextlib.suppress(EngineError):
            for line in detach_engine(self.handle.iface):
                alerts.append(Alert("engine", "cleanup", 1, message=line))
        self.ended = why
        self.rings.close()
        self._release()
        return alerts

    def _final_drain(self) -> list[Alert]:
        alerts = []
        while True:
            events, more = self._drain(self.MAX_BATCH)
            alerts.extend(more)
            if more or not events or not self.rings.pending():
                return alerts

    # -- stop ------------------------------------------------------------------
    def stop(self, *, detach: bool) -> list[str]:
        """Ends supervision; returns what it did.

        detach=True detaches the engine first (no packet is processed after
        it), then drains the rings into the journal and records the kernel's
        final counts.  detach=False drains and leaves the switch armed: with
        no heartbeat the kernel stops trading after the deadline, so the
        engine is never left trading unsupervised.
        """
        if self.ended:
            return []
        lines: list[str] = []
        try:
            if detach:
                from .engine import detach as detach_engine

                lines = detach_engine(self.handle.iface)
            self._final_drain()
            if self.journal is not None:
                self._journal_changes(self.handle.snapshot(), final=detach)
                self.journal.record_control(
                    "controller_stop", program_hash=self.program_hash, config_version=self._version,
                    detail={"detach": detach, "pid": os.getpid()},
                )
        finally:
            self.ended = "detached" if detach else "stopped"
            self.rings.close()
            self._release()
        if not detach:
            lines.append(f"left {self.handle.iface} attached with the dead-man switch armed: "
                         "without a controller it stops trading after the deadline")
        return lines

    def _release(self) -> None:
        if self._lock_fd is not None:
            _release_controller_lock(self.handle.iface, self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self._release()
