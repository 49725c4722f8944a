"""A config made from a capture: for ``hft-tui --demo --replay CAPTURE`` without ``--config``.

The capture says which feed it is (:func:`detect_feed`: the packets decode
as IEX-TP segments, hft1 updates or MoldUDP64 packets, read by
hft_tui.feeds) and on which UDP port; its most active symbols (the most
quotes, price levels or add orders) are traded, each with its buy target
a little below the middle of the prices it had and its sell target a
little above, so the engine trades both ways as the capture plays; the
orders go to the lab's gateway.  The app's status bar says the config was
made this way.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from ..constants import MSG_LEN
from ..errors import HftError, ProtocolError
from ..feeds import iex, itch
from ..lab import Lab, gateway
from ..protocol import decode_update, price_to_str
from ..symbol import Symbol
from ..wire import parse_udp_frame
from .player import ReplayFrames

SYMBOLS = 4  # symbols traded
SAMPLE_FRAMES = 20_000  # frames looked at, from the start
PRICE_MAX = 2**32 - 1  # what the engine's prices hold
SPREAD = 0.0008  # targets at the middle price -/+ this share of it


class AutoConfigError(HftError):
    """The capture cannot give a config (no feed found, no symbol quoted)."""


@dataclass
class CaptureProfile:
    feed: str
    port: int
    prices: dict[str, list[int]] = field(default_factory=dict)  # symbol -> prices quoted
    counts: Counter[str] = field(default_factory=Counter)


def _payload_feed(payload: bytes) -> str | None:
    try:
        iex.decode_segment(payload)
        return "iex"
    except ProtocolError:
        pass
    if len(payload) >= MSG_LEN:
        try:
            decode_update(payload[:MSG_LEN])
            return "hft1"
        except ProtocolError:
            pass
    try:
        pkt = itch.decode_packet(payload)
    except ProtocolError:
        return None
    return "itch" if pkt.messages or pkt.end_of_session else None


def _quotes(feed: str, payload: bytes) -> list[tuple[str, int]]:
    """(symbol, price) of every priced message of a packet (0 prices and sizes left out)."""
    out: list[tuple[str, int]] = []
    try:
        if feed == "iex":
            for _seq, m in iex.decode_messages(iex.decode_segment(payload)):
                if isinstance(m, iex.QuoteUpdate):
                    out += [(m.symbol, p) for p, q in ((m.bid, m.bid_size), (m.ask, m.ask_size)) if p > 0 and q]
                elif isinstance(m, iex.PriceLevel) and m.size and m.price > 0:
                    out.append((m.symbol, m.price))
        elif feed == "itch":
            for _seq, a in itch.decode_messages(itch.decode_packet(payload)):
                if isinstance(a, itch.AddOrder) and a.shares and a.price > 0:
                    out.append((a.symbol, a.price))
        else:
            u = decode_update(payload[:MSG_LEN])
            out += [(u.symbol, p) for p, q in ((u.bid, u.bid_qty), (u.ask, u.ask_qty)) if p > 0 and q]
    except ProtocolError:
        pass
    return [(s, p) for s, p in out if p <= PRICE_MAX]


def profile(frames: ReplayFrames, sample: int = SAMPLE_FRAMES) -> CaptureProfile:
    """The capture's feed, port and quoted prices (module doc)."""
    parsed = [f for f in (parse_udp_frame(fr) for fr in frames.frames[:sample]) if f is not None]
    votes: Counter[tuple[str, int]] = Counter()
    for f in parsed:
        feed = _payload_feed(f.payload)
        if feed is not None:
            votes[(feed, f.route.dst_port)] += 1
    if not votes:
        raise AutoConfigError(f"{frames.path}: no packet of a feed the engine reads (hft1, IEX-TP, MoldUDP64/ITCH)")
    (feed, port), _n = votes.most_common(1)[0]
    prof = CaptureProfile(feed, port)
    for f in parsed:
        if f.route.dst_port != port:
            continue
        for symbol, price in _quotes(feed, f.payload):
            prof.counts[symbol] += 1
            prof.prices.setdefault(symbol, []).append(price)
    if not prof.counts:
        raise AutoConfigError(f"{frames.path}: no priced message in its {feed} packets")
    return prof


def config_text(prof: CaptureProfile, the_lab: Lab, symbols: int = SYMBOLS) -> tuple[str, list[str]]:
    """(TOML, the symbols chosen) of the config made from ``prof``."""
    chosen: list[str] = []
    tables: list[str] = []
    for name, _n in prof.counts.most_common():
        if len(chosen) == symbols:
            break
        try:
            Symbol(name)
        except HftError:
            continue  # not a name the engine can hold
        mid = int(statistics.median(prof.prices[name]))
        step = max(int(mid * SPREAD), 1)
        tick = 100 if mid >= 10_000 else 1  # a cent, or 0.0001 below a dollar
        buy = max(mid - step - (mid - step) % tick, tick)
        sell = buy + 2 * max(step - step % tick, tick)
        qty = 100 if mid < 1_000_000 else 10
        chosen.append(name)
        tables.append(
            f'[symbols."{name}"]\n'
            f"buy_target = {price_to_str(buy)}\n"
            f"sell_target = {price_to_str(sell)}\n"
            f"base_qty = {qty}\n"
            f"scale_qty = {qty // 10}\n"
            f"tick_size = {price_to_str(tick)}\n"
            f"max_order_qty = {qty * 10}\n"
            f"max_position = {qty * 50}\n"
        )
    if not chosen:
        raise AutoConfigError("no symbol of the capture is a name the engine can hold")
    gw = gateway(the_lab)
    head = (
        f"# Made by hft-tui --demo --replay from the capture's {len(chosen)} most active symbols:\n"
        f"# targets a little below and above the middle of the prices each had.\n"
        f"[engine]\n"
        f'feed = "{prof.feed}"\n'
        f"feed_port = {prof.port}\n"
        f'on_no_trade = "drop"\n'
        f"update_sample = 16\n"
        f"deadman_ms = 500\n"
        f"\n{gw.toml()}\n"
    )
    return head + "\n" + "\n".join(tables), chosen
