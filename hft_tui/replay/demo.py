"""``hft-tui --demo --replay CAPTURE [--config CFG]``: the demo fed by a capture.

The demo (hft_tui/demo/launch.py) asks :class:`DemoReplay` for the config
and for the feed's command line instead of the simulator's: the capture is
read first (a bad one stops the demo before the lab goes up); without
``--config`` a config is made from it (autoconfig.py) into a private file
under /run/hft-tui that :meth:`DemoReplay.cleanup` removes; the feed is
feeder.py, looping, which tells the app's status bar where it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import lab as lab_mod
from ..lab import Lab
from ..paths import RUN_DIR
from ..python_child import python_module_argv
from ..safefile import make_directories, write_file
from .autoconfig import config_text, profile
from .player import load_frames


class DemoReplay:
    def __init__(self, capture: str, config: str | None, the_lab: Lab, lab_number: int | None = None) -> None:
        self.capture = capture
        self.lab_number = lab_number
        frames = load_frames(capture, lab_mod.engine_mac(the_lab) if lab_mod.is_up(the_lab) else the_lab.engine_mac)
        self.frames = len(frames.frames)
        self.made: Path | None = None
        self.symbols: list[str] = []
        if config:
            self.config_path = str(config)
        else:
            text, self.symbols = config_text(profile(frames), the_lab)
            make_directories(RUN_DIR, 0o700)
            self.made = RUN_DIR / f"demo-replay-{os.getpid()}.toml"
            write_file(self.made, text)
            self.config_path = str(self.made)

    @property
    def auto_config(self) -> bool:
        return self.made is not None

    def describe(self) -> str:
        made = f", a config made from it for {' '.join(self.symbols)}" if self.made else ""
        return f"replaying {self.capture} ({self.frames:,} frames, looping){made}"

    def feed_argv(self) -> list[str]:
        # Isolated and from / (python_child): the capture path must not depend on the caller's directory.
        argv = python_module_argv("hft_tui.replay.feeder", str(Path(self.capture).resolve()))
        if self.lab_number:
            argv += ["--lab", str(self.lab_number)]
        if self.made is not None:
            argv.append("--auto-config")
        return argv

    def cleanup(self) -> None:
        if self.made is not None:
            self.made.unlink(missing_ok=True)
