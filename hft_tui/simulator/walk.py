"""The market: seeded quotes, whatever the feed format.

One seeded, mean-reverting random walk (discrete Ornstein-Uhlenbeck, in
ticks) per symbol around the midpoint of its buy and sell targets.  Its
standard deviation is 1.25 x (half the distance between the targets + 2
ticks), so the ask dips to buy_target or below and the bid reaches
sell_target or above on about a fifth of the updates each: the engine
trades both ways.  The quote's spread is 1 to 4 ticks; sizes are random up
to 1.25 x max_order_qty, so every term of the quantity formula wins
sometimes.  Which symbol an update quotes is random too.

The walk knows prices and sizes only: sequence numbers, timestamps and the
bytes on the wire are the feed format's (hft1.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Config, SymbolParams
from ..constants import PRICE_SCALE
from ..protocol import U32_MAX
from ..symbol import Symbol

DEFAULT_CENTER = 100 * PRICE_SCALE  # where a symbol without targets walks
MIN_HALF_RANGE_TICKS = 10

# The walk, in ticks from the center: x' = (1 - WALK_THETA) * x + sigma * N(0, 1),
# sigma chosen for a stationary deviation of WALK_STD_FACTOR * (half the target
# range + 2 ticks): each target is ~0.8 deviations away, reached ~20% of the time.
WALK_THETA = 0.05
WALK_STD_FACTOR = 1.25
MAX_SPREAD_TICKS = 4  # a power of two: drawn from 2 random bits
MAX_SIZE = 1_000_000


@dataclass(frozen=True)
class WalkShape:
    """How one symbol's quote moves (prices in 1e-4 units)."""

    center: int
    tick: int
    sigma: float  # shock per update, in ticks
    max_size: int


def walk_shape(p: SymbolParams | None) -> WalkShape:
    if p is None or p.buy_target == 0:
        tick = p.tick_size if p else 100
        center, half = DEFAULT_CENTER, MIN_HALF_RANGE_TICKS
    else:
        tick = max(p.tick_size, 1)
        half = max((p.sell_target - p.buy_target) // (2 * tick), 1) if p.sell_target else MIN_HALF_RANGE_TICKS
        center = p.buy_target + half * tick
    std = WALK_STD_FACTOR * (half + 2)
    keep = 1 - WALK_THETA
    sigma = std * math.sqrt(1 - keep * keep)
    max_size = min(max(2, (p.max_order_qty if p else 1000) * 5 // 4), MAX_SIZE)
    return WalkShape(center=center, tick=tick, sigma=sigma, max_size=max_size)


class MarketWalk:
    """Seeded quotes for a list of symbols; step() is the next update's fields.

    One 64-bit draw per update feeds every choice (symbol, shock, spread,
    sizes); the Gaussian shock comes from a seeded table of NORMALS values, so
    a step costs a fraction of what random.gauss would.
    """

    NORMALS = 1 << 16
    SIZE_BITS = 15

    def __init__(self, names: Sequence[str], config: Config, seed: int) -> None:
        self.names = list(names)
        self.keys = [Symbol(n).key for n in self.names]
        self.shapes = [walk_shape(config.params(n)) for n in self.names]
        self.rng = random.Random(seed)
        self.normals = [self.rng.gauss(0.0, 1.0) for _ in range(self.NORMALS)]
        self.x = [self.rng.gauss(0.0, s.sigma) for s in self.shapes]
        self._center = [s.center for s in self.shapes]
        self._tick = [s.tick for s in self.shapes]
        self._sigma = [s.sigma for s in self.shapes]
        self._size = [s.max_size for s in self.shapes]

    def step(self) -> tuple[int, int, int, int, int]:
        """(symbol index, bid, bid_qty, ask, ask_qty): never crossed, bid > 0."""
        r = self.rng.getrandbits(64)
        k = ((r & 0xFFFF) * len(self.names)) >> 16
        x = self.x[k] = self.x[k] * (1 - WALK_THETA) + self._sigma[k] * self.normals[(r >> 16) & 0xFFFF]
        spread = 1 + ((r >> 32) & (MAX_SPREAD_TICKS - 1))
        tick = self._tick[k]
        bid = self._center[k] + (round(x) - (spread >> 1)) * tick
        if bid < tick:
            bid = tick
        elif bid > U32_MAX - spread * tick:  # a price is a u32
            bid = U32_MAX - spread * tick
        size, bits = self._size[k], self.SIZE_BITS
        mask = (1 << bits) - 1
        return (
            k,
            bid,
            1 + ((((r >> 34) & mask) * size) >> bits),
            bid + spread * tick,
            1 + ((((r >> 49) & mask) * size) >> bits),
        )
