"""``--from`` / ``--to``: which part of a capture is run, by capture time.

A TIME is one of

    2024-01-26T14:30:00[.123456789][Z|+01:00]   a moment (no zone: UTC)
    14:30[:00[.123456789]]                       a time of day (UTC) on the day
                                                 of the capture's first frame
    +90s, +1.5m, +250ms, +2h                     after the capture's first frame

Both ends are inclusive.  The last two forms need the first frame's time,
so a bound is kept as a function of it (:meth:`TimeBound.at`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from ..capture_reader import INT64_MAX, INT64_MIN  # the capture times' range
from ..errors import ConfigError

NS = 1_000_000_000
DAY_NS = 86_400 * NS
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}
_OFFSET = re.compile(r"^\+(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$")
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$")
_MOMENT = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$")


def _fraction_ns(digits: str | None) -> int:
    return int((digits or "").ljust(9, "0")) if digits else 0


@dataclass(frozen=True)
class TimeBound:
    """One bound: ``kind`` "moment" (``value`` ns since the epoch), "time_of_day"
    (ns since midnight UTC) or "offset" (ns after the first frame)."""

    text: str
    kind: str
    value: int

    def at(self, first_ns: int) -> int:
        """The bound in ns since the epoch, for a capture whose first frame is at ``first_ns``."""
        if self.kind == "moment":
            return self.value
        if self.kind == "offset":
            return first_ns + self.value
        return first_ns - first_ns % DAY_NS + self.value


def parse_time(text: str, what: str) -> TimeBound:
    """A TIME as the module doc lists them; ConfigError naming ``what`` otherwise."""
    t = text.strip()
    m = _OFFSET.match(t)
    if m:
        try:
            ns = int(Decimal(m[1]) * _UNITS[m[2]])
        except InvalidOperation:
            ns = -1
        if 0 <= ns <= INT64_MAX:
            return TimeBound(text, "offset", ns)
    m = _TIME_OF_DAY.match(t)
    if m:
        h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
        if h < 24 and mi < 60 and s < 60:
            return TimeBound(text, "time_of_day", ((h * 60 + mi) * 60 + s) * NS + _fraction_ns(m[4]))
    m = _MOMENT.match(t)
    if m:
        zone = m[6] or "Z"
        zone = "+00:00" if zone == "Z" else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
        try:
            day = datetime.fromisoformat(f"{m[1]}T{m[2]}:{m[3]}:{m[4] or '00'}{zone}")
        except ValueError:
            day = None
        if day is not None:
            seconds = int(day.astimezone(UTC).timestamp())
            return TimeBound(text, "moment", seconds * NS + _fraction_ns(m[5]))
    raise ConfigError(
        f"{what}: {text!r} is not a time (2024-01-26T14:30:00[.fff][Z|+hh:mm], 14:30[:00[.fff]] "
        "on the capture's first day, or +90s / +250ms / +2m / +1h after its first frame)"
    )


def window_ns(start: TimeBound | None, end: TimeBound | None, first_ns: int) -> tuple[int, int]:
    """(from, to) in ns since the epoch, inclusive; open ends are the int64 range, and so is a
    bound past it (before 1678 or after 2262: no capture time lies there).  A window that ends
    before it starts is refused (ConfigError): it would run nothing, and say nothing of why."""
    lo = min(max(start.at(first_ns), INT64_MIN), INT64_MAX) if start else INT64_MIN
    hi = min(max(end.at(first_ns), INT64_MIN), INT64_MAX) if end else INT64_MAX
    if start and end and lo > hi:
        raise ConfigError(f"--from {start.text} is after --to {end.text}: the window holds no frame")
    return lo, hi
