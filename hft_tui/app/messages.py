"""Messages between the app's parts: the supervisor's views, and what a pane tells the app.

The background work (the supervisor's reader thread, the panes' worker
threads) talks to the UI only through these; none of them touches a widget.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..netlink import Interface
from .model import EngineView


@dataclass
class EngineTicked(Message):
    """A fresh view of the supervised engine (one controller tick)."""

    view: EngineView


@dataclass
class SupervisionStarted(Message):
    """The controller took the engine over (heartbeat beating, ring buffer drained here)."""

    iface: str
    tripped_on_start: bool
    journal_error: str | None = None


@dataclass
class SupervisionEnded(Message):
    """The supervisor stopped; ``error`` says why when it was not asked to."""

    iface: str
    error: str | None


@dataclass
class InterfacesListed(Message):
    interfaces: list[Interface]
    engines: dict[str, int]  # iface -> prog id of our pinned engines
    error: str | None = None


@dataclass
class AttachFinished(Message):
    """An attach or detach done in a thread: what it did, or the one-line error."""

    action: str  # "attach" or "detach"
    iface: str
    ok: bool
    detail: str


@dataclass
class TakeOverRequested(Message):
    """Supervise the engine attached on ``iface`` (just attached, or confirmed by the user)."""

    iface: str


@dataclass
class EngineDetached(Message):
    """The engine on ``iface`` was detached here."""

    iface: str
    detail: str


@dataclass
class Failed(Message):
    """A failure to show as the app's one line (status bar, alert log and a toast)."""

    text: str
    notify: bool = True


@dataclass
class Notice(Message):
    """A line for the alert log."""

    text: str
    severity: str = "information"


@dataclass
class StopSignalled(Message):
    """SIGHUP or SIGTERM came (shutdown.SignalWatch hands it over from its thread)."""

    signum: int
