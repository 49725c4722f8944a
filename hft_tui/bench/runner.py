"""The benchmark's sequence: set up, latency rounds, test runs, throughput, clean up.

Set-up: one lab (its own number, one veth queue per CPU the bench uses), the
strategy and the reflector loaded once each with BCC (variants switch by
attaching and detaching over netlink, no recompiling), the measured copy of
the strategy (testrun.MeasuredCopy: rings for every event of a test run or
a throughput step), the wire taps on the exchange's end, the throughput
sender, the C programs built into a temporary directory, the three bot
processes started once in the root namespace and bound to the lab's engine
address (each on its own port: feed_port + 1, + 2, + 3, because two sockets
cannot share one), and the client's socket in the lab namespace.

Latency: latency.py.  Test runs: testrun.py.  Throughput: throughput.py.

Everything the run made is removed in ``finally`` and then checked: the
lab is gone, the bots are gone, the programs are freed, the temporary
directory is gone.  The result records that check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from .. import lab as lab_mod
from .. import libbpf, netlink
from ..constants import OFFSETS
from ..errors import HftError
from ..maps import EngineMaps
from ..paths import EBPF_DIR
from ..preflight import require_bcc, require_root
from ..program import bcc_map_fds, compile_program, load_strategy
from ..protocol import Update, encode_update
from . import BenchError, bots, multimsg, report, testrun, throughput, workload
from .client import Client
from .generator import Generator
from .latency import PATTERNS, Rounds
from .machine import exclusive, machine, netns_inode, verify_cleanup, write_outputs
from .options import BOT_NAMES, BOT_PORT_OFFSET, VARIANTS, Options
from .testrun import MeasuredCopy, Rings
from .wiretap import WireTap

REFLECTOR_SOURCE = EBPF_DIR / "reflector.c"


class _Run:
    def __init__(self, opts: Options, say) -> None:
        self.o = opts
        self.say = say
        # run() makes a run only after Options.check(), which chose both CPUs.
        assert opts.sim_cpu is not None and opts.bot_cpu is not None, "Options.check() first: it picks the CPUs"
        self.sim_cpu: int = opts.sim_cpu
        self.bot_cpu: int = opts.bot_cpu
        self.lab = lab_mod.Lab.numbered(opts.lab_number)
        self.cfg = workload.config(opts.feed_port)
        self.bot_pids: list[int] = []
        self.prog_ids: list[int] = []
        self.tmp: Path | None = None

    def _load(self, stack: contextlib.ExitStack, source: Path | bytes, name: bytes, what: str, cflags=()) -> int:
        """A program loaded for the whole run: from a file (BCC, the ebpf/ headers on the path) or from text."""
        if isinstance(source, bytes):
            import bcc

            b = bcc.BPF(text=source)
        else:
            b = compile_program(source, cflags=cflags)
        stack.callback(b.cleanup)
        try:
            fd = b.load_func(name, b.XDP).fd
        except Exception as exc:
            raise BenchError(f"the verifier refused {what}: {exc}") from None
        self.prog_ids.append(libbpf.prog_info(fd).id)
        return fd

    def setup(self, stack: contextlib.ExitStack) -> None:
        o, say = self.o, self.say
        tmp = Path(tempfile.mkdtemp(prefix="hft-bench-"))
        self.tmp = tmp
        stack.callback(shutil.rmtree, tmp, True)
        say("compiling the C bot and the throughput sender")
        cbot = bots.compile_c(bots.CBOT_SOURCE, tmp / "cbot")
        self.blast = blast = bots.compile_c(bots.BLAST_SOURCE, tmp / "blast", "-pthread")

        say("loading the strategy, its measured copy and the reflector (BCC)")
        b, self.strategy_fd = load_strategy()
        stack.callback(b.cleanup)
        self.maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
        self.maps.write_global(self.cfg.engine, deadman_ms=0, version=1)
        for name, params in self.cfg.symbols.items():
            self.maps.write_symbol(name, params)
        self.ring = Rings(self.maps)
        stack.callback(self.ring.close)
        events = max(o.repeat, o.throughput_frames)
        self.copy = MeasuredCopy.load(o.feed_port, events)
        stack.callback(self.copy.close)
        self.scaling = self.copy
        if testrun.max_symbols_overridable():
            # The symbol counts past the engine's own limit, on a copy of their own: the other
            # figures keep a symbol map the size of the engine's.
            self.scaling = MeasuredCopy.load(o.feed_port, events, max_symbols=max(workload.SYMBOL_COUNTS))
            stack.callback(self.scaling.close)
            self.prog_ids.append(libbpf.prog_info(self.scaling.fd).id)
        self.reflector_fd = self._load(
            stack, REFLECTOR_SOURCE, b"xdp_reflector", "the reflector", (f"-DREFLECT_PORT={o.feed_port}",)
        )
        self.drop_fd = self._load(stack, throughput.DROP_PROGRAM, b"xdp_drop", "the drop program")
        self.prog_ids += [libbpf.prog_info(self.strategy_fd).id, libbpf.prog_info(self.copy.fd).id]

        say(
            f"lab {self.lab.namespace} up ({self.lab.engine_iface} {self.lab.engine_ip} <-> "
            f"{self.lab.exchange_iface} {self.lab.exchange_ip}, a queue per CPU)"
        )
        home = netns_inode()
        lab_mod.down(self.lab, quiet=True)
        stack.callback(lab_mod.down, self.lab, True)
        lab_mod.up(self.lab, queues=2)
        if netns_inode() != home:
            raise BenchError("bringing the lab up left this thread in another network namespace")
        say("the wire taps and the throughput sender")
        self.tap = WireTap(self.lab, range(o.feed_port, o.feed_port + max(BOT_PORT_OFFSET.values()) + 1))
        stack.callback(self.tap.close)
        self.prog_ids += self.tap.prog_ids
        p = self.cfg.symbols[workload.THROUGHPUT_SYMBOL]
        ask = p.buy_target - p.tick_size
        raw, off = testrun.frame(
            self.lab, encode_update(Update(workload.THROUGHPUT_SYMBOL, 1, ask - p.tick_size, 1, ask, 1, 0)), o.feed_port
        )
        self.generator = Generator(self.lab, raw, off + OFFSETS["seq"], off + OFFSETS["symbol"], blast)
        stack.callback(self.generator.close)
        self.prog_ids += self.generator.prog_ids

        self.rounds = Rounds(o, say, lab=self.lab, maps=self.maps, client=Client(self.lab), tap=self.tap)
        stack.callback(self.rounds.client.close)
        self.rounds.strategy_fd, self.rounds.reflector_fd = self.strategy_fd, self.reflector_fd
        strategy = workload.bot_argv(self.rounds.p)
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
            self.rounds.bots[key] = bot

    def attach_for_throughput(self, ipr, variant: str, engine: MeasuredCopy) -> None:
        fd = {"engine": engine.fd, "bare": self.reflector_fd, "sender_alone": self.drop_fd}[variant]
        netlink.attach_xdp(ipr, self.lab.engine_iface, fd, "native", force=True)

    def run(self) -> dict:
        o = self.o
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.machine = machine()
        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            self.setup(stack)
            from pyroute2 import IPRoute

            ipr = stack.enter_context(IPRoute())
            self.rounds.run(ipr, self.ring.discard)

            self.say(f"BPF_PROG_TEST_RUN, repeat {o.repeat}")
            tr = testrun.measure(self.copy, self.strategy_fd, self.maps, self.lab, o.feed_port, o.repeat)
            self.prog_ids += tr.pop("_prog_ids")
            counts = workload.symbol_counts(self.scaling.max_symbols)
            self.say(f"BPF_PROG_TEST_RUN against the number of symbols ({', '.join(map(str, counts))})")
            tr["symbols"] = testrun.measure_symbols(self.scaling, self.lab, o.feed_port, o.repeat, counts)

            self.say(f"throughput, {o.throughput_frames} updates a step")
            rig = throughput.Rig(
                lab=self.lab,
                maps=self.copy.maps,
                rings=self.copy.rings,
                attach=lambda variant: self.attach_for_throughput(ipr, variant, self.copy),
                generator=self.generator,
                tap=self.tap,
                frames=o.throughput_frames,
                one_cpu=self.sim_cpu,
                cpus=[self.sim_cpu, self.bot_cpu],
                max_symbols=self.copy.max_symbols,
            )
            th = throughput.measure(rig, progress=self.say)
            scaling_rig = dataclasses.replace(
                rig,
                maps=self.scaling.maps,
                rings=self.scaling.rings,
                attach=lambda variant: self.attach_for_throughput(ipr, variant, self.scaling),
                max_symbols=self.scaling.max_symbols,
            )
            th["symbols"] = throughput.measure_symbols(scaling_rig, counts, progress=self.say)
            th["multi_message"] = self.multi_message(stack, ipr)
            st = netlink.xdp_state(ipr, self.lab.engine_iface)
            if st.mode:
                netlink.detach_xdp(ipr, self.lab.engine_iface, st.mode)
        self.say("cleaned up")
        return self.assemble(started, time.monotonic() - t0, tr, th)

    def multi_message(self, stack: contextlib.ExitStack, ipr) -> dict:
        """IEX packets of many messages on the engine built for IEX: their cost and messages/s."""
        o = self.o
        repeat, packets = max(1000, o.repeat // 10), max(1000, o.throughput_frames // 5)
        self.say(f"IEX packets: loading the engine built for IEX; test runs, repeat {repeat}")
        copy = multimsg.load_copy(o.feed_port, max(repeat, packets))
        stack.callback(copy.close)
        self.prog_ids.append(libbpf.prog_info(copy.fd).id)
        cost = multimsg.measure_cost(copy, self.lab, o.feed_port, repeat)
        self.prog_ids += cost.pop("_prog_ids")
        rates = {}
        for kind in multimsg.RATE_KINDS:
            rate = multimsg.measure_rate(
                copy,
                self.lab,
                self.blast,
                self.tap,
                lambda: netlink.attach_xdp(ipr, self.lab.engine_iface, copy.fd, "native", force=True),
                self.sim_cpu,
                packets,
                kind,
            )
            self.prog_ids += rate.pop("_prog_ids")
            self.say(
                f"IEX {kind} packets of {rate['messages_per_packet']} messages on CPU {self.sim_cpu}: "
                f"{rate['messages_per_s']:,} messages/s{'' if rate['exact'] else ' NOT EXACT: ' + str(rate['why'])}"
            )
            rates[kind] = rate
        return {"feed": multimsg.FEED, "test_run": cost, "throughput": rates["one_trade"], "mixed": rates["mixed"]}

    def assemble(self, started: str, duration: float, tr: dict, th: dict) -> dict:
        o = self.o
        variants: dict[str, dict[str, object]] = {}
        for v in VARIANTS:
            variants[v.name] = {"placement": self.rounds.placement(v)}
            for pat in PATTERNS:
                s = self.rounds.samples[v.name][pat]
                variants[v.name][pat] = report.summarize(s.ns, lost=s.lost, invalid=s.invalid, late=s.late)
            variants[v.name]["wire"] = {
                pat: report.summarize_wire(
                    self.rounds.samples[v.name][pat].wire, missing=self.rounds.samples[v.name][pat].wire_missing
                )
                for pat in PATTERNS
            }
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
                "strategy": self.rounds.p.to_toml_values(),
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
            "order_errors": self.rounds.errors,
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
    "Wire tick-to-trade: the same trips, stamped by BPF programs on the exchange's end of the veth in the "
    "kernel's clock (bpf_ktime_get_ns): the update as it leaves the exchange's stack (tc egress), the order as it "
    "arrives (XDP on that end), matched by seq. It leaves out both of the client's system calls and its wake-up.",
    "Throughput: an XDP generator run by BPF_PROG_TEST_RUN in live-frames mode hands updates to the veth as a "
    "NIC's ring would; the program under test answers with XDP_TX; the arrival tap counts every answer (seq and "
    "order id bitmaps) and drops it. Sender, engine and tap share the core; 'sender alone' is the sender's own "
    "share (a program that drops every frame where the engine would run). Every step is checked exactly.",
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
    samples = {
        name: {**{pat: s.ns for pat, s in pats.items()}, **{f"wire_{pat}": s.wire for pat, s in pats.items()}}
        for name, pats in r.rounds.samples.items()
    }
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
