"""What /run/hft-tui/IFACE.json remembers about an attached engine.

The state file is written at attach (and when ``engine set-engine`` changes
what only it holds: the dead-man deadline a controller arms, the journal's
settings) and read by every later command.  It is input like any other: a
file of an older hft-tui loads with the defaults of before, one that does
not parse is no record at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from . import paths
from .config import JournalParams, journal_params
from .errors import ConfigError


@dataclass
class EngineRecord:
    """What /run/hft-tui/IFACE.json remembers about an attached engine."""

    iface: str
    ifindex: int
    mode: str
    prog_id: int
    program_hash: str
    config_path: str | None
    deadman_ms: int  # the deadline a controller arms
    attached_at: float
    # What the engine was attached for (fixed until a re-attach); the defaults
    # are an engine of before the feeds: hft1, open, orders reflected.
    feed: str = "hft1"
    feed_addr: str | None = None
    feed_sources: list[str] | None = None
    feed_source_macs: list[str] | None = None
    gateway: dict | None = None  # route.Route.as_dict(): resolved at attach
    # How the controller keeps the journal (no map holds them).
    journal_max_mb: int = JournalParams.journal_max_mb
    journal_reject_rows_per_s: int = JournalParams.journal_reject_rows_per_s

    @property
    def open_feed(self) -> bool:
        return self.feed_sources is None

    def attach_detail(self) -> dict:
        """What the journal's attach record says about this engine."""
        return {
            "mode": self.mode,
            "prog_id": self.prog_id,
            "config": self.config_path,
            "feed": self.feed,
            "feed_addr": self.feed_addr,
            "feed_sources": self.feed_sources,
            "feed_source_macs": self.feed_source_macs,
            "open_feed": self.open_feed,
            "gateway": self.gateway,
        }

    def journal_params(self) -> JournalParams:
        try:  # a state file is input like any other
            return journal_params(
                {
                    "journal_max_mb": self.journal_max_mb,
                    "journal_reject_rows_per_s": self.journal_reject_rows_per_s,
                }
            )
        except ConfigError:
            return JournalParams()

    def save(self) -> None:
        paths.RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = paths.state_file(self.iface).with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, paths.state_file(self.iface))

    @classmethod
    def load(cls, iface: str) -> EngineRecord | None:
        """The record, or None when there is none or it is no record (it does not parse,
        is not UTF-8, is not a file, or a number of it is not one)."""
        try:
            rec = cls(**json.loads(paths.state_file(iface).read_text()))
        except (OSError, ValueError, TypeError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return None
        numbers = (rec.ifindex, rec.prog_id, rec.deadman_ms, rec.attached_at)
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
            return None
        return rec
