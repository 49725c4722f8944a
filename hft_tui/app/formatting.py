"""How numbers and errors look on screen: prices with 4 decimals, money, ages, rates, one-line errors.

In snapshot mode (``deterministic``) the values that change from one run to
the next (ages, clock times, program ids and hashes) print as fixed
placeholders, so screenshots of the same feed compare equal.
"""

from __future__ import annotations

import time

from ..config import MONEY_KEYS, PRICE_KEYS, money_to_str
from ..protocol import price_to_str

PLACEHOLDER = "·"


def price(units: int) -> str:
    return price_to_str(units) if units else "-"


def money(units: int) -> str:
    """1e-4 $ units as dollars with cents and thousands separators."""
    return f"{units / 1e4:,.2f}"


def signed_money(units: int) -> str:
    return f"{units / 1e4:+,.2f}"


def qty(n: int) -> str:
    return f"{n:,}"


def param_value(key: str, value) -> str:
    """A parameter as the editor shows and accepts it (TOML units)."""
    if key == "enabled":
        return "true" if value else "false"
    if key in PRICE_KEYS:
        return price_to_str(value)
    if key in MONEY_KEYS:
        return money_to_str(value)
    return str(value)


class Display:
    """Formats the volatile bits; steady placeholders in snapshot mode."""

    def __init__(self, *, deterministic: bool = False) -> None:
        self.deterministic = deterministic

    def age(self, ms: float | None) -> str:
        if ms is None:
            return "never"
        if self.deterministic:
            return PLACEHOLDER
        # Tenths of a second: a live book would change this cell on every
        # frame if it showed milliseconds, for no information.
        if ms < 100:
            return "<0.1 s"
        if ms < 120_000:
            return f"{ms / 1000:.1f} s"
        return f"{ms / 60000:.0f} min"

    def rate(self, per_s: float) -> str:
        return f"{per_s:,.0f}"

    def clock(self, wall: float | None = None) -> str:
        if self.deterministic:
            return "--:--:--"
        return time.strftime("%H:%M:%S", time.localtime(wall or time.time()))

    def mono_clock(self, ts_ns: int) -> str:
        """A kernel CLOCK_MONOTONIC time as the wall-clock time it happened."""
        if self.deterministic or not ts_ns:
            return "--:--:--.---"
        wall = time.time() - (time.monotonic_ns() - ts_ns) / 1e9
        return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"

    def noise_count(self, n: int) -> str:
        """A count that background traffic moves (IPv6 neighbour discovery on the lab's veth)."""
        return PLACEHOLDER if self.deterministic else f"{n:,}"

    def program_hash(self, h: str | None) -> str:
        if not h:
            return "-"
        return PLACEHOLDER if self.deterministic else h[:12]

    def prog_id(self, prog_id: int | None) -> str:
        if not prog_id:
            return "-"
        return PLACEHOLDER if self.deterministic else str(prog_id)


def one_line(exc: BaseException) -> str:
    """An error as the one line the user sees."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
