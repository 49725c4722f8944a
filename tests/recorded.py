"""Engine views recorded from a real engine, for the app tests that run without root.

tests/data/engine_views.json holds what the supervisor of a real engine sent
the app (EngineViews, in snapshot mode), the interfaces netlink listed and the
engine's state-file record, as JSON.  This module reads and writes it; run as
a script (root, BCC) it records it again, from lab 37 after the snapshot
tests' feed (seed 7, 1200 updates, the lab session's deterministic config):

    sudo .venv/bin/python tests/recorded.py

tests/data/engine_views_feed.json holds the same from an engine reading a
real feed (IEX TOPS, lab 153: in-order segments, a duplicate, a gap):

    sudo .venv/bin/python tests/recorded.py --feed
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
# A real feed: an engine built for IEX TOPS, no feed_sources (an open feed), one
# channel of IEX-TP segments sent from the lab: in order, a B-line copy, then a gap.
FEED_DATA = Path(__file__).parent / "data" / "engine_views_feed.json"
FEED_LAB = 153
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


class Views:
    """Stands where the app would: keeps the views the supervisor posts."""

    def __init__(self) -> None:
        self.views: list[EngineView] = []

    def post_message(self, message) -> bool:
        from hft_tui.app.messages import EngineTicked

        if isinstance(message, EngineTicked):
            self.views.append(message.view)
        return True

    def wait(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.views) < count:
            assert time.monotonic() < deadline, "no views from the supervisor"
            time.sleep(0.05)


def record() -> Recording:
    """The views a real supervisor sends for lab 37 after the snapshot tests' feed."""
    from hft_tui import engine, netlink
    from hft_tui.app.worker import EnginePoller
    from hft_tui.demo.lab_session import LabEngine

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


def iex_segments(first_seq: int, quotes: list[tuple[str, float, float]]) -> bytes:
    """One IEX-TP segment of TOPS quotes (symbol, bid, ask) on session 1, channel 1."""
    from hft_tui.feeds import iex

    messages = tuple(
        iex.encode_message(iex.QuoteUpdate(sym, round(bid * 10_000), 300, round(ask * 10_000), 200))
        for sym, bid, ask in quotes
    )
    return iex.encode_segment(iex.Segment(iex.PROTO_TOPS, channel=1, session=1, first_seq=first_seq, messages=messages))


def record_feed() -> Recording:
    """A real engine reading IEX TOPS: segments 1-3 and 4-5, the B line's copy of 4-5
    (a duplicate), then, once supervised, 10-11 (a gap: 6-9 never sent)."""
    import socket

    from hft_tui import engine, lab, netlink
    from hft_tui.app.worker import EnginePoller
    from hft_tui.demo.lab_session import DETERMINISTIC_ENGINE, LabEngine, demo_symbols_toml

    config = DETERMINISTIC_ENGINE + 'feed = "iex"\n\n' + demo_symbols_toml()
    with LabEngine(FEED_LAB, config) as le:
        the_lab = le.lab
        sock = lab.in_namespace(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM), the_lab)
        port = le.config.engine.feed_port

        def send(*segments: bytes) -> None:
            with le.handle() as h:
                before = h.snapshot().feed.packets
            for seg in segments:
                sock.sendto(seg, (the_lab.engine_ip, port))
            deadline = time.monotonic() + 10
            with le.handle() as h:
                while h.snapshot().feed.packets < before + len(segments):
                    assert time.monotonic() < deadline, "the engine did not count the segments"
                    time.sleep(0.02)

        first = iex_segments(1, [("AAPL", 190.10, 190.20), ("MSFT", 415.00, 415.05), ("NVDA", 120.50, 120.55)])
        second = iex_segments(4, [("SPY", 559.90, 559.95), ("AAPL", 190.15, 190.30)])
        send(first, second, second)  # the last one: the B line's copy
        got = Views()
        poller = EnginePoller(got, le.iface, deterministic=True)
        poller.start()
        try:
            got.wait(1)
            send(iex_segments(10, [("MSFT", 415.20, 415.25), ("NVDA", 120.30, 120.35)]))  # 6-9 missed
            got.wait(VIEWS)
        finally:
            poller.stop(detach=False)
            sock.close()
        interfaces = tuple(i for i in netlink.interfaces() if i.name in ("lo", le.iface))
        return Recording(
            views=tuple(got.views[:VIEWS]), interfaces=interfaces, record=engine.EngineRecord.load(le.iface)
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    if sys.argv[1:] == ["--feed"]:
        save(record_feed(), FEED_DATA)
        print(f"recorded {FEED_DATA}")
    else:
        save(record())
        print(f"recorded {DATA}")
