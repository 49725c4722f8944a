"""The benchmark's sequence: set up, latency rounds, test runs, throughput, clean up.

Set-up: one lab (its own number), the strategy and the reflector loaded once
each with BCC (variants switch by attaching and detaching over netlink, no
recompiling), the C programs built into a temporary directory, the three
bot processes started once in the root namespace and bound to the lab's
engine address (each on its own port: feed_port + 1, + 2, + 3, because two
sockets cannot share one), and the client's socket in the lab namespace.

Latency: ``rounds`` rounds; in each, every variant in turn (A B C ... A B C
...) gets a warm-up, then its share of ping-pong trips, then its share of
paced trips.  The i-th measured update is the same for every variant; only
the seq grows, because an update with an old seq never trades.  Every
answer is checked against the client's model of the strategy.

Everything the run made is removed in ``finally`` and then checked: the
lab is gone, the bots are gone, the programs are freed, the temporary
directory is gone.  The result records that check.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import lab as lab_mod
from .. import libbpf, netlink
from ..errors import HftError, ProtocolError
from ..maps import EngineMaps
from ..paths import EBPF_DIR
from ..preflight import require_bcc, require_root
from ..program import bcc_map_fds, compile_program, load_strategy
from ..protocol import decode_order, encode_update
from . import BenchError, bots, report, testrun, throughput, workload
from .client import _U64, OFF_TIMESTAMP, Client, NoAnswer
from .machine import exclusive, machine, netns_inode, verify_cleanup, write_outputs
from .options import BOT_NAMES, BOT_PORT_OFFSET, VARIANTS, Options, Variant
from .testrun import Rings

REFLECTOR_SOURCE = EBPF_DIR / "reflector.c"
PATTERNS = report.PATTERNS


# -- the run ---------------------------------------------------------------------


@dataclass
class _Samples:
    ns: list[int] = field(default_factory=list)
    lost: int = 0
    invalid: int = 0
    late: int = 0


class _Run:
    def __init__(self, opts: Options, say) -> None:
        self.o = opts
        self.say = say
        # run() makes a run only after Options.check(), which chose both CPUs.
        assert opts.sim_cpu is not None and opts.bot_cpu is not None, "Options.check() first: it picks the CPUs"
        self.sim_cpu: int = opts.sim_cpu
        self.bot_cpu: int = opts.bot_cpu
        self.tmp: Path | None = None  # the run's scratch directory, once setup() made it
        self.lab = lab_mod.Lab.numbered(opts.lab_number)
        self.cfg = workload.config(opts.feed_port)
        self.p = workload.params(self.cfg)
        self.updates = [workload.update(i, 0, self.p) for i in range(max(opts.count, opts.warmup))]
        self.seq = 0
        self.bots: dict[str, bots.Bot] = {}
        self.bot_pids: list[int] = []
        self.prog_ids: list[int] = []
        self.last_id: dict[str, int] = {}  # actor -> last order id seen
        self.gap_ok: set[str] = set()  # actors that may skip ids (after a lost answer)
        self.errors: list[str] = []
        self.samples = {v.name: {pat: _Samples() for pat in PATTERNS} for v in VARIANTS}

    # -- helpers --
    def placement(self, v: Variant) -> str:
        if v.kind == "xdp":
            return f"XDP {v.mode}, softirq on CPU {self.sim_cpu} (the simulator's)"
        cpu = self.bot_cpu if v.own_core else self.sim_cpu
        how = "busy poll" if v.bot == "c-busy" else "blocking receive"
        return f"{BOT_NAMES[v.bot]}, {how}, CPU {cpu} ({'own core' if v.own_core else 'shared with the simulator'})"

    def activate(self, v: Variant, ipr) -> None:
        iface = self.lab.engine_iface
        if v.kind == "xdp":
            for b in self.bots.values():
                b.pause()
            fd = self.strategy_fd if v.program == "strategy" else self.reflector_fd
            netlink.attach_xdp(ipr, iface, fd, v.mode, force=True)
            self.client.target(self.o.feed_port)
            return
        st = netlink.xdp_state(ipr, iface)
        if st.mode:
            netlink.detach_xdp(ipr, iface, st.mode)
        for name, b in self.bots.items():
            if name != v.bot:
                b.pause()
        b = self.bots[v.bot]
        b.pin(self.bot_cpu if v.own_core else self.sim_cpu)
        b.resume()
        b.check()
        self.client.target(b.port)

    def trips(self, v: Variant, indices: list[int], pace_ns: int, into: _Samples | None) -> None:
        """Round trips for ``indices``; lost ones are sent again (fresh seqs) so ``into`` gets them all."""
        pending = list(indices)
        for _attempt in range(3):
            if not pending:
                return
            payloads, ups = [], []
            for i in pending:
                self.seq += 1
                u = replace(self.updates[i], seq=self.seq)
                payloads.append((bytearray(encode_update(u)), self.seq))
                ups.append(u)
            if v.actor == "engine":
                self.last_id["engine"] = self.maps.totals().order_seq
            try:
                res = self.client.run(payloads, pace_ns=pace_ns, timeout_s=self.o.timeout_s)
            except NoAnswer as exc:
                raise BenchError(f"{v.name}: {exc}") from None
            retry = []
            for i, (buf, _seq), u, trip in zip(pending, payloads, ups, res.trips):
                if not trip.rx_ns:
                    self.gap_ok.add(v.actor)  # its order (if any) took an id we never saw
                    retry.append(i)
                    if into:
                        into.lost += 1
                    continue
                rtt = self.check(v, buf, u, trip)
                if rtt is None:
                    if into:
                        into.invalid += 1
                elif into:
                    into.ns.append(rtt)
            if into:
                into.late += res.late + res.unstamped
            pending = retry
            if pending:
                self.client.drain()
        raise BenchError(f"{v.name}: {len(pending)} update(s) got no order in 3 attempts of {self.o.timeout_s} s")

    def check(self, v: Variant, buf: bytearray, u, trip) -> int | None:
        """The round trip in ns when the answer is right; None (and a note) when it is not."""

        def bad(why: str) -> None:
            if len(self.errors) < 20:
                self.errors.append(f"{v.name}: seq {u.seq}: {why}")

        if v.program == "reflector":
            if trip.payload != bytes(buf):
                bad("the reflected frame is not the update sent")
                return None
            return trip.rx_ns - _U64.unpack_from(trip.payload, OFF_TIMESTAMP)[0]
        try:
            o = decode_order(trip.payload)
        except ProtocolError as exc:
            bad(str(exc))
            return None
        why = workload.check_order(o, u, trip.sent_ns, self.p)
        last = self.last_id.get(v.actor, 0)
        if why is None and not (o.order_id == last + 1 or (v.actor in self.gap_ok and o.order_id > last)):
            why = f"order id {o.order_id} after {last}"
        self.last_id[v.actor] = o.order_id
        self.gap_ok.discard(v.actor)
        if why:
            bad(why)
            return None
        return trip.rx_ns - o.timestamp

    # -- phases --
    def setup(self, stack: contextlib.ExitStack) -> None:
        o, say = self.o, self.say
        tmp = Path(tempfile.mkdtemp(prefix="hft-bench-"))
        self.tmp = tmp
        stack.callback(shutil.rmtree, tmp, True)
        say("compiling the C bot and the throughput sender")
        cbot = bots.compile_c(bots.CBOT_SOURCE, tmp / "cbot")
        self.blast = bots.compile_c(bots.BLAST_SOURCE, tmp / "blast", "-pthread")

        say("loading the strategy and the reflector (BCC)")
        b, self.strategy_fd = load_strategy()
        stack.callback(b.cleanup)
        self.maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
        self.maps.write_global(self.cfg.engine, deadman_ms=0, version=1)
        for name, params in self.cfg.symbols.items():
            self.maps.write_symbol(name, params)
        self.ring = Rings(self.maps)
        stack.callback(self.ring.close)
        r = compile_program(REFLECTOR_SOURCE, cflags=(f"-DREFLECT_PORT={o.feed_port}",))
        stack.callback(r.cleanup)
        try:
            self.reflector_fd = r.load_func(b"xdp_reflector", r.XDP).fd
        except Exception as exc:
            raise BenchError(f"the verifier refused the reflector: {exc}") from None
        self.prog_ids += [libbpf.prog_info(self.strategy_fd).id, libbpf.prog_info(self.reflector_fd).id]

        say(
            f"lab {self.lab.namespace} up ({self.lab.engine_iface} {self.lab.engine_ip} <-> "
            f"{self.lab.exchange_iface} {self.lab.exchange_ip})"
        )
        home = netns_inode()
        lab_mod.down(self.lab, quiet=True)
        stack.callback(lab_mod.down, self.lab, True)
        lab_mod.up(self.lab)
        if netns_inode() != home:
            raise BenchError("bringing the lab up left this thread in another network namespace")

        strategy = workload.bot_argv(self.p)
        ip = self.lab.engine_ip
        say("starting the bots")
        for key in ("python", "c", "c-busy"):
            port = o.feed_port + BOT_PORT_OFFSET[key]
            argv = (
                bots.python_bot_argv(ip, port, strategy)
                if key == "python"
                else bots.cbot_argv(cbot, ip, port, strategy, busy=key == "c-busy")
            )
            bot = bots.Bot(BOT_NAMES[key], argv, self.bot_cpu, port)
            self.bot_pids.append(bot.pid)
            stack.callback(bot.stop)
            bot.pause()
            self.bots[key] = bot
        self.client = Client(self.lab)
        stack.callback(self.client.close)

    def latency(self, ipr) -> None:
        o = self.o
        rounds = min(o.rounds, o.count)
        shares = [o.count // rounds + (1 if r < o.count % rounds else 0) for r in range(rounds)]
        pace_ns = 1_000_000_000 // o.paced_rate
        start = 0
        gc.collect()
        gc.disable()
        try:
            for r, share in enumerate(shares):
                self.say(f"latency round {r + 1}/{rounds} ({share} trips per variant and pattern)")
                idx = list(range(start, start + share))
                for v in VARIANTS:
                    self.activate(v, ipr)
                    self.trips(v, list(range(o.warmup)), 0, None)
                    self.trips(v, idx, 0, self.samples[v.name]["pingpong"])
                    self.trips(v, idx, pace_ns, self.samples[v.name]["paced"])
                    self.ring.consume()
                start += share
        finally:
            gc.enable()
        for b in self.bots.values():
            b.check()
            b.pause()

    def run(self) -> dict:
        o = self.o
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.machine = machine()
        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            self.setup(stack)
            from pyroute2 import IPRoute

            ipr = stack.enter_context(IPRoute())
            self.latency(ipr)

            self.say(f"BPF_PROG_TEST_RUN, repeat {o.repeat}")
            tr = testrun.measure(self.strategy_fd, self.maps, self.lab, o.feed_port, o.repeat)
            self.prog_ids += tr.pop("_prog_ids")

            self.say("throughput rate ladder (engine native)")
            self.activate(VARIANTS[1], ipr)
            th = throughput.measure(
                self.blast,
                self.lab,
                self.maps,
                feed_port=o.feed_port,
                send_cpu=self.sim_cpu,
                recv_cpu=self.bot_cpu,
                step_s=o.throughput_step_s,
                seq_start=1,
                progress=self.say,
            )
            th.pop("next_seq")
            st = netlink.xdp_state(ipr, self.lab.engine_iface)
            if st.mode:
                netlink.detach_xdp(ipr, self.lab.engine_iface, st.mode)
        self.say("cleaned up")
        return self.assemble(started, time.monotonic() - t0, tr, th)

    def assemble(self, started: str, duration: float, tr: dict, th: dict) -> dict:
        o = self.o
        variants: dict[str, dict[str, object]] = {}
        for v in VARIANTS:
            variants[v.name] = {"placement": self.placement(v)}
            for pat in PATTERNS:
                s = self.samples[v.name][pat]
                variants[v.name][pat] = report.summarize(s.ns, lost=s.lost, invalid=s.invalid, late=s.late)
        result = {
            "machine": self.machine,
            "started_at": started,
            "duration_s": round(duration, 1),
            "config": {
                "count": o.count,
                "rounds": min(o.rounds, o.count),
                "warmup": o.warmup,
                "paced_rate": o.paced_rate,
                "timeout_s": o.timeout_s,
                "lab": self.lab.namespace,
                "feed_port": o.feed_port,
                "bot_ports": {BOT_NAMES[k]: o.feed_port + off for k, off in BOT_PORT_OFFSET.items()},
                "symbols": list(workload.SYMBOLS),
                "strategy": self.p.to_toml_values(),
            },
            "placement": {
                "simulator_cpu": self.sim_cpu,
                "bot_own_cpu": self.bot_cpu,
                "variants": {name: v["placement"] for name, v in variants.items()},
            },
            "variants": variants,
            "ratios": report.ratios(variants),
            "test_run_ns": tr,
            "throughput": th,
            "order_errors": self.errors,
            "notes": NOTES,
        }
        result["targets"] = report.targets(result)
        return result


NOTES = [
    "Same client, same updates for every variant: the i-th measured update has the same symbol, prices and "
    "quantities everywhere; only the seq grows (an old seq never trades). The bots listen on their own UDP ports "
    "(feed port + 1, + 2, + 3) because two sockets cannot share one; nothing else about the datagram differs.",
    "Send time: time.time_ns() written into the update just before send(); receive time: the kernel's "
    "SO_TIMESTAMPNS stamp of the order, taken when it enters the client's stack (CLOCK_REALTIME both).",
    "The XDP variants run in the softirq of the client's send, on the client's CPU; the bots are woken on their "
    "CPU. 'own core' is the deployed case, 'shared core' (the simulator's CPU) is a bot's best case in this lab.",
    "The C bot is measured blocking on both placements and busy-polling (recvmsg MSG_DONTWAIT spin) on its own "
    "core only: a spinning bot on the simulator's core would take the CPU from the simulator it waits for.",
    "Bots keep their own state (last seq and position per symbol, order ids 1, 2, 3 ...); the engine's limits, "
    "throttles and collars never bind with this config, so all answer every update with the same order. Every "
    "answer is checked (side, symbol, seq, price, qty from the buy rule, echoed timestamp, gap-free ids).",
    "BPF_PROG_TEST_RUN keeps what the program wrote between iterations, so every test-run figure goes through a "
    "harness that restores the frame and writes a fresh seq before tail-calling the program; harness_overhead "
    "is its cost.",
    "Bots are pinned with sched_setaffinity and stopped with SIGSTOP while other variants run; idle XDP "
    "variants cannot disturb them, since an attached XDP_TX program answers before any socket sees the update.",
]


def run_bench(opts: Options, progress=None) -> dict:
    """Runs the whole benchmark; returns the result (and writes it under opts.out_dir)."""
    say = progress or (lambda _line: None)
    try:
        require_root()
        require_bcc()
    except HftError as exc:
        raise BenchError(str(exc)) from None
    opts.check()
    r = _Run(opts, say)
    lock = exclusive(r.lab)
    old_affinity = os.sched_getaffinity(0)
    old_term = None
    global _BENCH_PID
    _BENCH_PID = os.getpid()
    if _main_thread():
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        os.sched_setaffinity(0, {r.sim_cpu})
        result = r.run()
    except HftError as exc:
        raise BenchError(str(exc)) from None
    except OSError as exc:
        raise BenchError(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")) from None
    finally:
        os.sched_setaffinity(0, old_affinity)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        lock.close()
    result["cleanup"] = verify_cleanup(r.lab, r.bot_pids, r.prog_ids, r.tmp)
    samples = {name: {pat: s.ns for pat, s in pats.items()} for name, pats in r.samples.items()}
    result["files"] = []
    if opts.out_dir is not None:
        write_outputs(result, samples, opts.out_dir)
    return result


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


_BENCH_PID = os.getpid()


def _raise_interrupt(signum, _frame):
    """SIGTERM ends the bench like Ctrl-C (so the clean-up runs); a forked
    helper (pyroute2 forks some) that inherited this handler just dies."""
    if os.getpid() != _BENCH_PID:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt
