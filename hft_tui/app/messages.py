"""Messages the background work posts to the app (the only way it talks to the UI)."""

from __future__ import annotations

from textual.message import Message

from ..netlink import Interface
from .model import EngineView


class EngineTicked(Message):
    """A fresh view of the supervised engine (one controller tick)."""

    def __init__(self, view: EngineView) -> None:
        super().__init__()
        self.view = view


class SupervisionStarted(Message):
    """The controller took the engine over (heartbeat beating, ring buffer drained here)."""

    def __init__(self, iface: str, tripped_on_start: bool, journal_error: str | None = None) -> None:
        super().__init__()
        self.iface = iface
        self.tripped_on_start = tripped_on_start
        self.journal_error = journal_error


class SupervisionEnded(Message):
    """The worker stopped; ``error`` says why when it was not asked to."""

    def __init__(self, iface: str, error: str | None) -> None:
        super().__init__()
        self.iface = iface
        self.error = error


class InterfacesListed(Message):
    def __init__(self, interfaces: list[Interface], engines: dict[str, int], error: str | None = None) -> None:
        super().__init__()
        self.interfaces = interfaces
        self.engines = engines        # iface -> prog id of our pinned engines
        self.error = error


class AttachFinished(Message):
    """An attach or detach done in a thread: what it did, or the one-line error."""

    def __init__(self, action: str, iface: str, ok: bool, detail: str) -> None:
        super().__init__()
        self.action = action          # "attach" or "detach"
        self.iface = iface
        self.ok = ok
        self.detail = detail
