"""hft-tui: a tick-to-order trading engine in the XDP hook, and its control plane."""

__version__ = "0.1.0"
