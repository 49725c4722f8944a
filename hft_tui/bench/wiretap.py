"""Tick-to-trade on the wire: the exchange side's taps (wiretap.c), loaded and read.

BCC compiles wiretap.c; its departure program is attached to the egress of
the exchange's end of the lab's veth (a clsact qdisc and a direct-action bpf
filter, over pyroute2's netlink: no ``tc`` binary needed) and its arrival
program replaces the lab's XDP_PASS program on that end (native XDP on a
veth needs a program on the peer anyway).  Both stamp with
bpf_ktime_get_ns, so an update's departure and its order's arrival are in
one clock, whatever CPU stamped them.

The stamps and the counting bitmaps are mmapable arrays: the bench reads a
block's stamps and clears a step's bitmaps in place.  Struct layouts come
from the C source through BCC's table types (``Leaf``), never retyped.
"""

from __future__ import annotations

import ctypes
import mmap
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import NetNS

from .. import lab as lab_mod
from .. import libbpf
from ..constants import XDP_FLAGS_DRV_MODE
from ..errors import EngineError
from ..program import compile_program
from . import BenchError

SOURCE = Path(__file__).resolve().with_name("wiretap.c")
TC_EGRESS = "ffff:fff3"  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)
COUNT_FIELDS = ("departures", "unreadable", "arrivals", "orders", "echoes", "bad", "dup_seqs", "dup_ids", "outside")


@dataclass
class TapCounts:
    """The taps' counters summed over CPUs (min/max ids across them)."""

    departures: int = 0
    unreadable: int = 0
    arrivals: int = 0
    orders: int = 0
    echoes: int = 0
    bad: int = 0
    dup_seqs: int = 0
    dup_ids: int = 0
    outside: int = 0
    min_id: int = 0
    max_id: int = 0


class _Mapped:
    """An mmapable BPF array seen as memory."""

    def __init__(self, table) -> None:
        self.stride = ctypes.sizeof(table.Leaf)
        self.entries = table.max_entries
        size = self.stride * self.entries
        size = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
        self.map = mmap.mmap(table.map_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.words = memoryview(self.map).cast("Q")

    def clear(self) -> None:
        self.map[:] = bytes(len(self.map))

    def close(self) -> None:
        self.words.release()
        self.map.close()


class WireTap:
    def __init__(self, lab: lab_mod.Lab, ports: range) -> None:
        import bcc

        self.lab = lab
        try:
            self.bpf = compile_program(SOURCE)
        except EngineError as exc:
            raise BenchError(f"the wire taps: {exc}") from None
        self._mapped: list[_Mapped] = []
        try:
            try:
                dep = self.bpf.load_func(b"tap_departure", bcc.BPF.SCHED_CLS)
                arr = self.bpf.load_func(b"tap_arrival", bcc.BPF.XDP)
            except Exception as exc:
                raise BenchError(f"the verifier refused a wire tap: {exc}") from None
            self.prog_ids = [libbpf.prog_info(dep.fd).id, libbpf.prog_info(arr.fd).id]
            self._config = self.bpf.get_table(b"tap_config")
            self._counts = self.bpf.get_table(b"tap_counts")
            cfg = self._config.Leaf()
            cfg.engine_ip = int.from_bytes(socket.inet_aton(lab.engine_ip), "little")  # __be32 as stored
            cfg.port_lo, cfg.port_hi = ports.start, ports.stop - 1
            self._config[ctypes.c_uint32(0)] = cfg
            tables = {n: self.bpf.get_table(n.encode()) for n in ("departures", "arrivals", "seen_seqs", "seen_ids")}
            self._departures, self._arrivals, self._seen_seqs, self._seen_ids = (
                self._map(tables[n]) for n in ("departures", "arrivals", "seen_seqs", "seen_ids")
            )
            leaf = tables["departures"].Leaf
            self._seq_word, self._ns_word = leaf.seq.offset // 8, leaf.ns.offset // 8
            self._slot_words = ctypes.sizeof(leaf) // 8
            self.slots = tables["departures"].max_entries
            self.window = tables["seen_seqs"].max_entries * 64
            self._attach(dep.fd, arr.fd)
        except BaseException:
            self.close()
            raise

    def _map(self, table) -> _Mapped:
        m = _Mapped(table)
        self._mapped.append(m)
        return m

    def _attach(self, departure_fd: int, arrival_fd: int) -> None:
        try:
            with NetNS(self.lab.namespace) as ns:
                idx = ns.link_lookup(ifname=self.lab.exchange_iface)[0]
                ns.tc("add", "clsact", idx)
                ns.tc(
                    "add-filter",
                    "bpf",
                    idx,
                    ":1",
                    fd=departure_fd,
                    name="hft_tap_departure",
                    parent=TC_EGRESS,
                    classid=1,
                    direct_action=True,
                )
                # Replaces the lab's XDP_PASS program (no UPDATE_IF_NOEXIST: a replacement is meant).
                attrs = [("IFLA_XDP_FD", arrival_fd), ("IFLA_XDP_FLAGS", XDP_FLAGS_DRV_MODE)]
                ns.link("set", index=idx, xdp={"attrs": attrs})
        except Exception as exc:
            raise BenchError(f"cannot attach the wire taps to {self.lab.exchange_iface}: {exc}") from None

    # -- stamping (the latency rounds) --

    def wire_ns(self, seqs: Iterable[int]) -> tuple[list[int], int]:
        """(arrival - departure for each seq with both stamps, how many seqs lacked one)."""
        dep, arr = self._departures.words, self._arrivals.words
        mask, sw, qw, nw = self.slots - 1, self._slot_words, self._seq_word, self._ns_word
        out, missing = [], 0
        for seq in seqs:
            base = (seq & mask) * sw
            if dep[base + qw] != seq or arr[base + qw] != seq:
                missing += 1
                continue
            out.append(arr[base + nw] - dep[base + nw])
        return out, missing

    # -- counting (the throughput runs) --

    def count_from(self, seq_lo: int, id_lo: int) -> None:
        """Counting mode from here on: answers are checked against seqs from seq_lo and ids from id_lo,
        counted and dropped; the counters and bitmaps start empty."""
        self._seen_seqs.clear()
        self._seen_ids.clear()
        self._counts[ctypes.c_uint32(0)] = self._counts.Leaf()
        cfg = self._config[ctypes.c_uint32(0)]
        cfg.counting, cfg.seq_lo, cfg.id_lo = 1, seq_lo, id_lo
        self._config[ctypes.c_uint32(0)] = cfg

    def stop_counting(self) -> None:
        cfg = self._config[ctypes.c_uint32(0)]
        cfg.counting = 0
        self._config[ctypes.c_uint32(0)] = cfg

    def counts(self) -> TapCounts:
        per_cpu = self._counts.getvalue(ctypes.c_uint32(0))
        t = TapCounts()
        for c in per_cpu:
            for name in COUNT_FIELDS:
                setattr(t, name, getattr(t, name) + getattr(c, name))
            if c.min_id and (not t.min_id or c.min_id < t.min_id):
                t.min_id = c.min_id
            t.max_id = max(t.max_id, c.max_id)
        return t

    def close(self) -> None:
        """Frees what this process holds; the attachments go with the lab."""
        for m in self._mapped:
            m.close()
        self._mapped = []
        if getattr(self, "bpf", None) is not None:
            self.bpf.cleanup()
            self.bpf = None
