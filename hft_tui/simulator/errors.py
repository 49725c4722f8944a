"""The simulator's one error type."""

from __future__ import annotations


class SimulatorError(RuntimeError):
    """A reason the simulator cannot run; one line for the user."""
