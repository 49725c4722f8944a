"""Engine views recorded from a real engine, for the app tests that run without root.

tests/data/engine_views.json holds what the supervisor of a real engine sent
the app (EngineViews, in snapshot mode), the interfaces netlink listed and the
engine's state-file record, as JSON.  This module reads and writes it; run as
a script (root, BCC) it records it again, from lab 37 after the snapshot
tests' feed (seed 7, 1200 updates, the lab session's deterministic config):

    sudo .venv/bin/python tests/recorded.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from hft_tui.app.model import ChannelView, EngineView, FeedView, SymbolView, TapeEntry
from hft_tui.config import EngineParams, SymbolParams
from hft_tui.engine import EngineRecord
from hft_tui.netlink import Interface, XdpState

DATA = Path(__file__).parent / "data" / "engine_views.json"
LAB = 37
FEED_COUNT = 1200
FEED_SEED = 7
VIEWS = 4


@dataclasses.dataclass(frozen=True)
class Recording:
    views: tuple[EngineView, ...]
    interfaces: tuple[Interface, ...]
    record: EngineRecord

    @property
    def iface(self) -> str:
        return self.record.iface


def view_from_json(d: dict) -> EngineView:
    return EngineView(
        **{
            **d,
            "engine": EngineParams(**d["engine"]),
            "symbols": tuple(SymbolView(**{**s, "params": SymbolParams(**s["params"])}) for s in d["symbols"]),
            "tape": tuple(TapeEntry(**t) for t in d["tape"]),
            "alerts": tuple(d["alerts"]),
            "pnl_history": tuple(tuple(p) for p in d["pnl_history"]),
            "sparklines": {name: tuple(points) for name, points in d["sparklines"].items()},
            "feed": feed_from_json(d["feed"]) if d.get("feed") else None,
        }
    )


def feed_from_json(d: dict) -> FeedView:
    return FeedView(
        **{
            **d,
            "sources": tuple(d["sources"]) if d["sources"] is not None else None,
            "channels": tuple(ChannelView(**ch) for ch in d["channels"]),
        }
    )


def interface_from_json(d: dict) -> Interface:
    return Interface(**{**d, "xdp": XdpState(**d["xdp"])})


def load(path: Path = DATA) -> Recording:
    d = json.loads(path.read_text())
    return Recording(
        views=tuple(view_from_json(v) for v in d["views"]),
        interfaces=tuple(interface_from_json(i) for i in d["interfaces"]),
        record=EngineRecord(**d["record"]),
    )


def save(rec: Recording, path: Path = DATA) -> None:
    d = {
        "views": [dataclasses.asdict(v) for v in rec.views],
        "interfaces": [dataclasses.asdict(i) for i in rec.interfaces],
        "record": dataclasses.asdict(rec.record),
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(d, indent=1) + "\n")
    assert load(path) == rec, "the JSON does not give back what was recorded"


def record() -> Recording:
    """The views a real supervisor sends for lab 37 after the snapshot tests' feed."""
    from hft_tui import engine, netlink
    from hft_tui.app.messages import EngineTicked
    from hft_tui.app.worker import EnginePoller
    from hft_tui.demo.lab_session import LabEngine

    class Views:
        def __init__(self) -> None:
            self.views: list[EngineView] = []

        def post_message(self, message) -> bool:
            if isinstance(message, EngineTicked):
                self.views.append(message.view)
            return True

    with LabEngine(LAB) as le:
        le.feed(count=FEED_COUNT, seed=FEED_SEED)
        got = Views()
        poller = EnginePoller(got, le.iface, deterministic=True)
        poller.start()
        try:
            deadline = time.monotonic() + 30
            while len(got.views) < VIEWS:
                assert time.monotonic() < deadline, "no views from the supervisor"
                time.sleep(0.05)
        finally:
            poller.stop(detach=False)
        interfaces = tuple(i for i in netlink.interfaces() if i.name in ("lo", le.iface))
        return Recording(
            views=tuple(got.views[:VIEWS]), interfaces=interfaces, record=engine.EngineRecord.load(le.iface)
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    save(record())
    print(f"recorded {DATA}")
