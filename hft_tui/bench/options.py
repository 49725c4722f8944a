"""What the benchmark runs: its variants and its options, checked before anything is touched."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..constants import DEFAULT_FEED_PORT
from ..errors import PathError
from ..paths import REPO_DIR
from ..safefile import trusted_directory
from . import DEFAULT_COUNT, DEFAULT_LAB, BenchError

DEFAULT_OUT = REPO_DIR / "docs" / "bench"
MAX_THROUGHPUT_FRAMES = 2_000_000  # the measured copy's ring holds every order event of a step (256 MiB)


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "xdp" or "bot"
    program: str = ""  # xdp: "reflector" or "strategy"
    mode: str = ""  # xdp: "native" or "generic"
    bot: str = ""  # bot: "python", "c" or "c-busy"
    own_core: bool = True  # bot: own core, or the simulator's

    @property
    def actor(self) -> str:
        """Who numbers the orders (ids run 1, 2, 3 ... per actor)."""
        return "engine" if self.program == "strategy" else (self.bot or "")


VARIANTS = (
    Variant("bare", "xdp", program="reflector", mode="native"),
    Variant("engine-native", "xdp", program="strategy", mode="native"),
    Variant("engine-generic", "xdp", program="strategy", mode="generic"),
    Variant("python-bot-own-core", "bot", bot="python", own_core=True),
    Variant("python-bot-shared-core", "bot", bot="python", own_core=False),
    Variant("c-bot-own-core", "bot", bot="c", own_core=True),
    Variant("c-bot-shared-core", "bot", bot="c", own_core=False),
    Variant("c-bot-busy-poll-own-core", "bot", bot="c-busy", own_core=True),
)
BOT_PORT_OFFSET = {"python": 1, "c": 2, "c-busy": 3}
BOT_NAMES = {"python": "Python bot", "c": "C bot", "c-busy": "busy-polling C bot"}


@dataclass
class Options:
    count: int = DEFAULT_COUNT
    lab_number: int = DEFAULT_LAB
    rounds: int = 10
    paced_rate: int = 1000
    sim_cpu: int | None = None
    bot_cpu: int | None = None
    repeat: int = 1_000_000
    throughput_frames: int = 1_000_000
    out_dir: Path | None = DEFAULT_OUT
    warmup: int = 20
    timeout_s: float = 1.0
    feed_port: int = DEFAULT_FEED_PORT

    @classmethod
    def from_args(cls, args) -> Options:
        out = None if args.no_save else Path(args.out) if args.out else DEFAULT_OUT
        return cls(
            count=args.count,
            lab_number=args.lab,
            rounds=args.rounds,
            paced_rate=args.paced_rate,
            sim_cpu=args.sim_cpu,
            bot_cpu=args.bot_cpu,
            repeat=args.repeat,
            throughput_frames=args.throughput_frames,
            out_dir=out,
        )

    def check(self) -> None:
        """Fills in the CPUs; one clear error for anything that cannot run."""
        if not 1 <= self.lab_number <= 250:
            raise BenchError(f"--lab {self.lab_number}: a lab number is 1..250")
        if self.count < 1 or self.count > 1_000_000:
            raise BenchError(f"--count {self.count}: give 1 to 1000000 round trips")
        if self.rounds < 1:
            raise BenchError("--rounds must be at least 1")
        if not 1 <= self.paced_rate <= 100_000:
            raise BenchError(f"--paced-rate {self.paced_rate}: give 1 to 100000 updates/s")
        if self.repeat < 1 or self.repeat > 100_000_000:
            raise BenchError(f"--repeat {self.repeat}: give 1 to 100000000")
        if not 1000 <= self.throughput_frames <= MAX_THROUGHPUT_FRAMES:
            raise BenchError(f"--throughput-frames {self.throughput_frames}: give 1000 to {MAX_THROUGHPUT_FRAMES}")
        if not 1 <= self.feed_port <= 65535 - max(BOT_PORT_OFFSET.values()):
            raise BenchError(f"feed port {self.feed_port} leaves no room for the bots' ports")
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            raise BenchError(
                f"the bench needs 2 CPUs (a bot's own core and the simulator's); this process may use {allowed}"
            )
        sim = allowed[0] if self.sim_cpu is None else self.sim_cpu
        bot = next(c for c in allowed if c != sim) if self.bot_cpu is None else self.bot_cpu
        for what, cpu in (("--sim-cpu", sim), ("--bot-cpu", bot)):
            if cpu not in allowed:
                raise BenchError(f"{what} {cpu}: not one of the CPUs this process may use {allowed}")
        if sim == bot:
            raise BenchError("--sim-cpu and --bot-cpu must differ (the bot's own core is not the simulator's)")
        self.sim_cpu, self.bot_cpu = sim, bot
        if self.out_dir is not None:
            existing = self.out_dir
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                raise BenchError(f"--out {self.out_dir}: {existing} is not a directory")
            if not os.access(existing, os.W_OK):
                raise BenchError(f"--out {self.out_dir}: {existing} is not writable")
            try:
                trusted_directory(existing)  # checked again when written; said now, before a long run
            except PathError as exc:
                raise BenchError(f"--out {self.out_dir}: {exc}") from None
