"""The backtest's speed, as a benchmark figure (issue 12 §2: at least 200,000
frames a second on one core for a capture of multi-message IEX packets).

:func:`measure` writes a capture of IEX DEEP packets of 67 messages each
(1,468 bytes of UDP payload, the size real DEEP packets fill), runs the
backtest on it pinned to one CPU and returns the figures; ``hft-tui bench``
(the bench track) calls it, and so can anyone:

    python -m hft_tui.backtest.bench [--frames N] [--cpu C]

Each packet is what a quiet moment of a real DEEP feed looks like to an
engine trading a few symbols: 58 security events and a system event (types
it walks past), 4 price levels of symbols it does not trade and 4 of
symbols it does, whose prices now and then cross a target (so some frames
trade and the order frames are checked too).  The capture is made in a
private temporary directory and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import tempfile
import tomllib
from decimal import Decimal
from pathlib import Path

from ..capture import CaptureWriter
from ..config import Config, parse_config
from ..constants import IEX
from ..feeds import iex
from ..feeds.common import symbol_bytes
from ..wire import Route, udp_frame
from .runner import BacktestResult, run_backtest

TARGET_FRAMES_PER_S = 200_000
MESSAGES = 67
FRAMES = 200_000
POOL = 512  # distinct packets in a capture
TRADED = ("AAPL", "MSFT", "NVDA", "SPY")
OTHERS = ("IBM", "ORCL", "INTC", "AMD", "QQQ", "TSLA", "META", "GOOG")
T0_NS = 1_706_279_400_000_000_000  # 2024-01-26 14:30:00 UTC
ROUTE = Route("02:00:00:00:00:02", "01:00:5e:01:01:01", "198.18.0.2", "239.1.1.1", 10377, 10377)

BENCH_CONFIG = """\
[engine]
feed = "iex"
feed_port = 10377
on_no_trade = "drop"
[engine.gateway]
ip = "198.18.0.3"
port = 9100
mac = "02:00:00:00:00:03"
""" + "".join(
    f"""
[symbols.{name}]
buy_target = {100 + 10 * i}.00
sell_target = {100 + 10 * i}.50
base_qty = 10
tick_size = 0.01
max_order_qty = 100
max_position = 1000
"""
    for i, name in enumerate(TRADED)
)


def _security_event(rng: random.Random, ts: int) -> bytes:
    """An 18-byte DEEP Security Event ('E'): a type the engine walks past."""
    return b"E" + bytes((rng.choice(b"OC"),)) + struct.pack("<q", ts) + symbol_bytes(rng.choice(OTHERS), 8)


def _system_event(ts: int) -> bytes:
    """A 10-byte System Event ('S')."""
    return b"SR" + struct.pack("<q", ts)


def packet_payload(rng: random.Random, first_seq: int, ts: int) -> bytes:
    """One 67-message DEEP segment (module doc), its messages in a shuffled order."""
    msgs: list[bytes] = [_security_event(rng, ts) for _ in range(58)] + [_system_event(ts)]
    for name in rng.sample(OTHERS, 4):
        msgs.append(iex.encode_message(iex.PriceLevel("S", name, 500_000, 100, timestamp=ts)))
    for i, name in enumerate(TRADED):
        target = (100 + 10 * i) * 10_000
        # mostly off the targets; about one level in 40 crosses one of them
        price = target + rng.choice((-1, 1)) * (100 if rng.random() < 0.025 else 300 + rng.randrange(200))
        side = "S" if price < target + 2_500 and rng.random() < 0.5 else "B"
        msgs.append(iex.encode_message(iex.PriceLevel(side, name, price, 100, timestamp=ts)))
    rng.shuffle(msgs)
    seg = iex.Segment(iex.PROTO_DEEP, 1, 1_150_681_088, first_seq, tuple(msgs), send_time=ts)
    return iex.encode_segment(seg)


def write_capture(path: str | os.PathLike[str], frames: int = FRAMES, seed: int = 1) -> None:
    """``frames`` packets of 67 messages, a microsecond apart: a pool of
    POOL packets, each sent again with the next sequence numbers and time."""
    rng = random.Random(seed)
    pool = [bytearray(packet_payload(rng, 0, T0_NS)) for _ in range(POOL)]
    seq_at, time_at = IEX["IEX_OFF_FIRST_SEQ"], IEX["IEX_OFF_SEND_TIME"]
    with CaptureWriter(path) as w:
        for k in range(frames):
            ts = T0_NS + k * 1_000
            payload = pool[k % POOL]
            struct.pack_into("<Q", payload, seq_at, 1 + k * MESSAGES)
            struct.pack_into("<q", payload, time_at, ts)
            w.write(udp_frame(ROUTE, bytes(payload), ip_id=k), ts)


def bench_config() -> Config:
    return parse_config(tomllib.loads(BENCH_CONFIG, parse_float=Decimal))


def measure(frames: int = FRAMES, cpu: int | None = None, seed: int = 1) -> dict[str, object]:
    """The backtest of a fresh capture of ``frames`` 67-message DEEP packets,
    pinned to ``cpu`` (default: the highest this process may use); the figures as a dict."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu if cpu is not None else max(old)})
    try:
        with tempfile.TemporaryDirectory(prefix="hft-tui-bench-backtest-") as d:
            path = Path(d) / "deep67.pcap"
            write_capture(path, frames, seed)
            result: BacktestResult = run_backtest(path, bench_config())
    finally:
        os.sched_setaffinity(0, old)
    fps = result.frames_per_s
    return {
        "frames": result.frames,
        "messages_per_frame": MESSAGES,
        "payload_bytes": len(packet_payload(random.Random(seed), 1, T0_NS)),
        "orders": len(result.orders),
        "order_frames": result.actions.get("tx", 0),
        "elapsed_s": round(result.elapsed_s, 4),
        "frames_per_s": round(fps),
        "messages_per_s": round(fps * MESSAGES),
        "target_frames_per_s": TARGET_FRAMES_PER_S,
        "met": fps >= TARGET_FRAMES_PER_S,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hft_tui.backtest.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=FRAMES)
    ap.add_argument("--cpu", type=int, default=None)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.frames, args.cpu)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
