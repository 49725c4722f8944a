"""``hft-tui replay``: a capture played into the lab."""

from __future__ import annotations
