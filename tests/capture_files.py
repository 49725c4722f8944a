"""Captures made for the backtest and replay tests, and configs to run them with.

Frames are built by hft_tui.wire.udp_frame around payloads from the feed
codecs (hft_tui.feeds: the layouts of the program's own headers) and written
by hft_tui.capture.CaptureWriter (the pcap the lab records).  The lab's own
recordings (``hft-tui lab feed --pcap-out``) are made in the replay tests.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from hft_tui.capture import CaptureWriter
from hft_tui.config import Config, parse_config
from hft_tui.feeds import iex, itch
from hft_tui.protocol import Update, encode_update
from hft_tui.wire import Route, udp_frame

NS = 1_000_000_000
T0 = 1_706_279_400 * NS  # 2024-01-26 14:30:00 UTC
FEED_PORT = 10377
ROUTE = Route("02:00:00:00:b0:02", "02:00:00:00:b0:01", "198.18.176.2", "198.18.176.1", 10377, FEED_PORT)
GATEWAY = '[engine.gateway]\nip = "198.18.176.3"\nport = 9100\nmac = "02:00:00:00:b0:03"\n'

SYMBOL = """
[symbols."{name}"]
buy_target = {buy}
sell_target = {sell}
base_qty = {qty}
scale_qty = 1
tick_size = 0.01
max_order_qty = 100
max_position = {maxpos}
{extra}
"""


def config(
    feed: str = "iex",
    symbols: dict[str, tuple[str, str]] | None = None,
    *,
    engine: str = "",
    gateway: str | None = GATEWAY,
    port: int = FEED_PORT,
    maxpos: int = 1000,
    extra: str = "",
    qty: dict[str, int] | None = None,
) -> tuple[str, Config]:
    """(TOML, Config): ``symbols`` name -> (buy_target, sell_target); ``qty`` a symbol's base_qty (10)."""
    symbols = symbols or {"AAPL": ("100.00", "101.00"), "MSFT": ("200.00", "201.00")}
    text = f'[engine]\nfeed = "{feed}"\nfeed_port = {port}\non_no_trade = "drop"\n{engine}\n'
    if gateway:
        text += gateway
    for name, (buy, sell) in symbols.items():
        base = (qty or {}).get(name, 10)
        text += SYMBOL.format(name=name, buy=buy, sell=sell, maxpos=maxpos, extra=extra, qty=base)
    return text, parse_config(tomllib.loads(text, parse_float=Decimal))


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_capture(path: Path, frames: list[tuple[int, bytes]]) -> Path:
    with CaptureWriter(path) as w:
        for ts, frame in frames:
            w.write(frame, ts)
    return path


def deep_packets(
    n: int,
    *,
    per_packet: int = 20,
    start_ns: int = T0,
    step_ns: int = 1_000_000,
    seed_prices: tuple[int, int] = (1_000_000, 2_000_000),
    route: Route = ROUTE,
    vlan: int | None = None,
) -> list[tuple[int, bytes]]:
    """``n`` DEEP segments of ``per_packet`` messages: price levels of AAPL and
    MSFT walking across their targets (offers and bids), skipped types and an
    unknown symbol between them."""
    out = []
    seq = 1
    for k in range(n):
        ts = start_ns + k * step_ns
        msgs: list[bytes] = []
        for j in range(per_packet):
            i = k * per_packet + j
            if j % 4 == 3:
                msgs.append(b"E" + b"O" + ts.to_bytes(8, "little") + b"IBM     ")  # a security event: skipped
            elif j % 4 == 2:
                msgs.append(iex.encode_message(iex.PriceLevel("S", "ZZZZ", 500_000, 100, timestamp=ts)))
            else:
                name, base = ("AAPL", seed_prices[0]) if j % 2 == 0 else ("MSFT", seed_prices[1])
                swing = (i * 37) % 400 - 200  # -2.00 .. +1.99 around the buy target, and above the sell
                side = "S" if (i // 3) % 2 == 0 else "B"
                price = base + swing * 100 if side == "S" else base + 10_000 + swing * 100
                msgs.append(iex.encode_message(iex.PriceLevel(side, name, price, 100, timestamp=ts)))
        seg = iex.Segment(iex.PROTO_DEEP, 1, 1_150_681_088, seq, tuple(msgs), send_time=ts)
        seq += per_packet
        out.append((ts, udp_frame(route, iex.encode_segment(seg), vlan=vlan, ip_id=k)))
    return out


def hft1_packets(
    n: int, *, start_ns: int = T0, step_ns: int = 1_000_000, route: Route = ROUTE
) -> list[tuple[int, bytes]]:
    out = []
    for k in range(n):
        name, base = ("AAPL", 1_000_000) if k % 2 == 0 else ("MSFT", 2_000_000)
        swing = (k * 41) % 400 - 200
        u = Update(name, k + 1, base + swing * 100 - 100, 100, base + swing * 100, 100, start_ns + k * step_ns)
        out.append((start_ns + k * step_ns, udp_frame(route, encode_update(u), ip_id=k)))
    return out


def itch_packets(
    n: int, *, per_packet: int = 10, start_ns: int = T0, step_ns: int = 1_000_000
) -> list[tuple[int, bytes]]:
    out = []
    seq = 1
    for k in range(n):
        ts = start_ns + k * step_ns
        day = ts % (86_400 * NS)
        msgs = []
        for j in range(per_packet):
            i = k * per_packet + j
            name, base = ("AAPL", 1_000_000) if j % 2 == 0 else ("MSFT", 2_000_000)
            side = "S" if (i // 3) % 2 == 0 else "B"
            swing = (i * 37) % 400 - 200
            price = base + swing * 100 if side == "S" else base + 10_000 + swing * 100
            msgs.append(itch.encode_message(itch.AddOrder(side, name, price, 100, i + 1, day, 1, 0)))
        out.append((ts, udp_frame(ROUTE, itch.encode_packet(itch.MoldPacket("TESTSESS01", seq, tuple(msgs))), ip_id=k)))
        seq += per_packet
    return out
