"""A lab with an engine attached: what the app's tests, benchmark and screenshots run on.

    with LabEngine(31, TEST_CONFIG) as le:
        le.feed(count=400)              # a deterministic walk, sent and seen
        app = HftApp(EngineSession(), iface=le.iface, take_over=True)

Everything is real: a numbered lab (netns + veth), the engine compiled and
attached by hft_tui.engine, UDP updates sent from inside the namespace.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .. import engine, lab
from ..config import Config, load_config
from ..engine import EngineHandle
from .configs import demo_symbols_toml
from .walk import WalkFeed

# The demo's symbols (configs/demo.toml) without the time-dependent limits
# (token buckets), and every update sampled (the per-CPU sampling counter
# depends on which CPU ran the packet): the same feed then always leaves the
# same kernel state.
DETERMINISTIC_ENGINE = """\
[engine]
feed_port = 9000
update_sample = 1
deadman_ms = 500
rate_per_sec = 0
max_notional = 5000000
loss_limit = 250000
"""
DETERMINISTIC_CONFIG = DETERMINISTIC_ENGINE + "\n" + demo_symbols_toml()


def write_config(text: str = DETERMINISTIC_CONFIG) -> Path:
    """The config as a file (the app and ``engine attach`` take paths)."""
    with tempfile.NamedTemporaryFile("w", prefix="hft-tui-app-", suffix=".toml", delete=False) as f:
        f.write(text)
    return Path(f.name)


class LabEngine:
    """Lab ``number`` up, and (unless ``attach=False``) an engine attached to it."""

    def __init__(
        self, number: int, config_text: str = DETERMINISTIC_CONFIG, *, attach: bool = True, mode: str = "native"
    ) -> None:
        self.lab = lab.Lab.numbered(number)
        self.config_path = write_config(config_text)
        self.config: Config = load_config(self.config_path)
        self.attach_now = attach
        self.mode = mode
        self._feeds: list[WalkFeed] = []

    @property
    def iface(self) -> str:
        return self.lab.engine_iface

    def __enter__(self) -> LabEngine:
        lab.down(self.lab, quiet=True)
        lab.up(self.lab)
        if self.attach_now:
            engine.attach(self.iface, self.config, mode=self.mode, config_path=str(self.config_path))
        return self

    def __exit__(self, *exc) -> None:
        for f in self._feeds:
            f.stop()
        lab.down(self.lab, quiet=True)
        self.config_path.unlink(missing_ok=True)

    def handle(self) -> EngineHandle:
        return EngineHandle(self.iface)

    def feed(self, count: int, rate: float = 2000.0, seed: int = 7, timeout: float = 20.0) -> int:
        """Sends ``count`` updates and waits until the engine has counted them all."""
        with self.handle() as h:
            before = h.snapshot().counters["updates"]
        walk = WalkFeed(self.lab, self.config, seed=seed)
        walk.run(count, rate)
        walk.stop()
        deadline = time.monotonic() + timeout
        with self.handle() as h:
            while h.snapshot().counters["updates"] < before + count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the engine saw fewer than {count} updates")
                time.sleep(0.02)
        return count

    def start_feed(self, rate: float = 2000.0, seed: int = 7) -> WalkFeed:
        """A continuous feed in a thread of this process (stopped on exit)."""
        walk = WalkFeed(self.lab, self.config, seed=seed).start(rate)
        self._feeds.append(walk)
        return walk
