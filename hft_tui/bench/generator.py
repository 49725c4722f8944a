"""The throughput runs' sender: generator.c run by blast.c (BPF_PROG_TEST_RUN, live frames).

The generator is compiled for one frame (its length and where its seq and
symbol sit are -D defines) and parked on a spare veth pair inside the lab
(generic XDP, never up, never sees a packet): the kernel's XDP dispatcher
keeps a program that is attached somewhere, and without that every test
run of more than one frame re-patches the dispatcher (about 25 ms a call
here), which would make pacing impossible.

``send`` sets each CPU's seq range (and symbols), runs blast inside the
lab's namespace with the program's fd, and returns what was sent: blast's
count and the program's own, which must agree.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import NetNS

from .. import lab as lab_mod
from .. import libbpf
from ..constants import SYMBOL_LEN, XDP_FLAGS_SKB_MODE
from ..errors import EngineError
from ..program import compile_program
from . import BenchError

SOURCE = Path(__file__).resolve().with_name("generator.c")
PARKING = "hftpark"  # the spare veth pairs (hftpark0/hftpark1, hftpark2/hftpark3 ...), inside the lab's namespace
SHORT_FRAME = 256  # generator.c's GEN_SHORT_FRAME: longer frames are passed one byte longer and trimmed
PACED_RUNS = 1 << 16  # runs per call when paced: a few ms of a CPU (an idle run drops its frame)
PACED_TAIL_NS = 2_000_000  # calls go on this long after the last frame is due


@dataclass
class Sent:
    """What one step sent, from the program's own per-CPU counts."""

    frames: int
    asked: int
    first_ns: int  # bpf_ktime_get_ns of the first frame, the last (over every CPU)
    last_ns: int
    skipped: int  # frames given up to stay on schedule (a sender too slow for its rate)
    calls: int
    errors: int
    last_errno: int

    @property
    def rate(self) -> float:
        """Frames per second between the first frame and the last."""
        span = self.last_ns - self.first_ns
        return (self.frames - 1) / (span / 1e9) if span > 0 and self.frames > 1 else 0.0


def shares(count: int, n: int) -> list[int]:
    """How blast splits ``count`` frames over ``n`` threads (the same rule as blast.c)."""
    return [count // n + (1 if i < count % n else 0) for i in range(n)]


class Generator:
    def __init__(
        self,
        lab: lab_mod.Lab,
        frame: bytes,
        seq_off: int,
        symbol_off: int,
        blast: Path,
        *,
        seq_step: int = 1,
        seq_le: bool = False,
        park: int = 0,
    ) -> None:
        """``seq_step``: seqs a frame takes (its message count); ``seq_le``: the seq is little-endian;
        ``park``: which spare veth pair parks it (each generator its own)."""
        import bcc

        self.lab = lab
        self.frame = frame
        self.blast = blast
        self.seq_step = seq_step
        self.parking = (f"{PARKING}{2 * park}", f"{PARKING}{2 * park + 1}")
        cflags = [f"-DGEN_FRAME_LEN={len(frame)}", f"-DGEN_SEQ_OFF={seq_off}", f"-DGEN_SYMBOL_OFF={symbol_off}"]
        cflags += [f"-DGEN_SEQ_STEP={seq_step}", *(["-DGEN_SEQ_LE"] if seq_le else [])]
        try:
            self.bpf = compile_program(SOURCE, cflags=tuple(cflags))
        except EngineError as exc:
            raise BenchError(f"the feed generator: {exc}") from None
        try:
            try:
                self.fd = self.bpf.load_func(b"xdp_generate", bcc.BPF.XDP).fd
            except Exception as exc:
                raise BenchError(f"the verifier refused the feed generator: {exc}") from None
            self.prog_ids = [libbpf.prog_info(self.fd).id]
            template = self.bpf.get_table(b"gen_template")
            template[ctypes.c_uint32(0)] = template.Leaf((ctypes.c_uint8 * len(frame)).from_buffer_copy(frame))
            self._cpu = self.bpf.get_table(b"gen_cpu")
            self._symbols = self.bpf.get_table(b"gen_symbols")
            self._sym_parts: dict[int, tuple[int, int]] = {}
            self._park()
            with NetNS(lab.namespace) as ns:
                self.ifindex = ns.link_lookup(ifname=lab.exchange_iface)[0]
        except BaseException:
            self.close()
            raise

    def _park(self) -> None:
        try:
            with NetNS(self.lab.namespace) as ns:
                if not ns.link_lookup(ifname=self.parking[0]):
                    ns.link("add", ifname=self.parking[0], kind="veth", peer=self.parking[1])
                idx = ns.link_lookup(ifname=self.parking[0])[0]
                attrs = [("IFLA_XDP_FD", self.fd), ("IFLA_XDP_FLAGS", XDP_FLAGS_SKB_MODE)]
                ns.link("set", index=idx, xdp={"attrs": attrs})
        except Exception as exc:
            raise BenchError(f"cannot park the feed generator in {self.lab.namespace}: {exc}") from None

    def set_symbols(self, per_cpu: dict[int, list[str]]) -> None:
        """Each CPU's frames cycle through its list; an empty dict: the template's symbol everywhere."""
        total = sum(len(names) for names in per_cpu.values())
        if total > self._symbols.max_entries:
            raise BenchError(f"{total} symbols; the generator holds {self._symbols.max_entries}")
        self._sym_parts = {}
        at = 0
        for cpu, names in per_cpu.items():
            self._sym_parts[cpu] = (at, len(names))
            for name in names:
                if len(name) > SYMBOL_LEN:
                    raise BenchError(f"symbol {name!r} is longer than {SYMBOL_LEN}")
                sym = self._symbols.Leaf()
                sym.name = name.encode().ljust(SYMBOL_LEN)
                self._symbols[ctypes.c_uint32(at)] = sym
                at += 1

    def send(self, count: int, rate: int, cpus: list[int], seq_start: int) -> Sent:
        """``count`` frames at ``rate``/s in all (0: as fast as the CPUs go) from ``cpus``, the first with
        seq ``seq_start``, each next ``seq_step`` further (each CPU its own consecutive part)."""
        state = self._cpu.Leaf()
        nxt = seq_start
        per_cpu = shares(count, len(cpus))
        for cpu, share in zip(cpus, per_cpu):
            s = state[cpu]
            s.next_seq, s.limit, s.sent, s.due_ps, s.skipped = nxt, share, 0, 0, 0
            s.period_ps = 10**12 * len(cpus) // rate if rate else 0
            s.sym_first, s.sym_count = self._sym_parts.get(cpu, (0, 0))
            s.sym_next = 0
            nxt += share * self.seq_step
        self._cpu[ctypes.c_uint32(0)] = state
        if rate:
            runs, duration_ns = PACED_RUNS, count * 10**9 // rate + PACED_TAIL_NS
        else:
            runs, duration_ns = max(per_cpu), 0
        argv = [str(self.blast), "--prog-fd", str(self.fd), "--ifindex", str(self.ifindex)]
        data_in = len(self.frame) + (1 if len(self.frame) > SHORT_FRAME else 0)
        argv += ["--frame-len", str(data_in), "--runs", str(runs), "--duration-ns", str(duration_ns)]
        argv += ["--cpus", ",".join(map(str, cpus))]
        try:
            res = subprocess.run(
                lab_mod.nsenter_argv(argv, self.lab), capture_output=True, text=True, timeout=120, pass_fds=(self.fd,)
            )
        except subprocess.TimeoutExpired:
            raise BenchError("the throughput sender did not finish within 120 s") from None
        if res.returncode != 0:
            raise BenchError(f"the throughput sender failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
        got = json.loads(res.stdout.strip().splitlines()[-1])
        done = [c for c in self._cpu.getvalue(ctypes.c_uint32(0)) if c.sent]
        return Sent(
            frames=sum(c.sent for c in done),
            asked=count,
            first_ns=min((c.first_ns for c in done), default=0),
            last_ns=max((c.last_ns for c in done), default=0),
            skipped=sum(c.skipped for c in done),
            calls=got["calls"],
            errors=got["errors"],
            last_errno=got["last_errno"],
        )

    def close(self) -> None:
        if getattr(self, "bpf", None) is not None:
            self.bpf.cleanup()
            self.bpf = None
