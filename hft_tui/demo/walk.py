"""A seeded random-walk feed into a lab, for the app's demo fallback, tests and benchmark.

Each symbol's mid price walks in ticks between a little below its buy
target and a little above its sell target, so the engine buys and sells.
Packets are real UDP updates sent from inside the lab namespace to the
engine's interface.  Payloads are encoded once per walk step; sending only
patches the sequence number and timestamp, so one process can offer 100k
updates a second.

The engine answers an update it trades on with an order sent back to the
update's source: a feed started with :meth:`WalkFeed.start` reads them from
its socket and counts them (``orders_received``), as an exchange would.

The exchange simulator (``hft-tui lab feed``) is the full-featured feed; this
one exists so the app's tests and benchmark control exactly what is sent.

    python -m hft_tui.demo.walk --lab 31 --rate 100000 --count 0 --config configs/demo.toml
"""

from __future__ import annotations

import argparse
import math
import random
import select
import signal
import socket
import struct
import threading
import time

from ..config import Config, load_config
from ..constants import DEFAULT_FEED_PORT, OFFSETS
from ..errors import ProtocolError
from ..lab import DEFAULT_LAB, Lab, enter_namespace, lab_socket
from ..protocol import Update, decode_order, encode_update
from ..stopflag import StopFlag
from ..symbol import Symbol

_SEQ = struct.Struct("!Q")
STEPS = 4096  # distinct walk steps per symbol, replayed with growing sequence numbers
PERIOD = 256  # walk steps per swing from below the buy target to above the sell target
RCVBUF = 4 << 20  # room for the orders that arrive while the reader waits for the interpreter


def walk(config: Config, seed: int, steps: int = STEPS, period: int = PERIOD) -> list[Update]:
    """The walk: updates round-robin over the symbols, seq numbers per symbol from 1.

    Each mid swings around the middle of its targets (a sine of ``period``
    steps reaching a little past both) with random ticks on top, so the
    engine buys, then sells, again and again.
    """
    rng = random.Random(seed)
    paths: dict[Symbol, list[tuple[int, int, int, int]]] = {}
    for name, p in sorted(config.symbols.items()):
        tick = max(p.tick_size, 1)
        sell = p.sell_target if p.sell_target > p.buy_target else p.buy_target + 50 * tick
        center, swing = (p.buy_target + sell) / 2, (sell - p.buy_target) * 0.65
        phase = rng.random() * 2 * math.pi
        out = []
        for i in range(steps):
            mid = center + swing * math.sin(phase + 2 * math.pi * i / period) + tick * rng.randint(-4, 4)
            mid = max(2 * tick, int(mid) - int(mid) % tick)
            out.append((mid - tick, rng.randrange(1, 11) * 100, mid + tick, rng.randrange(1, 11) * 100))
        paths[name] = out
    updates = []
    for i in range(steps):
        for name in paths:
            bid, bq, ask, aq = paths[name][i]
            updates.append(Update(name, i + 1, bid, bq, ask, aq))
    return updates


class WalkFeed:
    """Sends a config's random walk to a lab's engine interface."""

    def __init__(self, lab: Lab, config: Config, *, seed: int = 1, port: int | None = None) -> None:
        self.lab = lab
        self.updates = walk(config, seed)
        self.payloads = [bytearray(encode_update(u)) for u in self.updates]
        self.nsym = max(1, len(config.symbols))
        self.port = port or config.engine.feed_port or DEFAULT_FEED_PORT
        self.sent = 0
        self.orders_received = 0  # orders the engine sent back (start() only)
        self._stop = StopFlag()  # the SIGTERM handler sets it
        self._thread: threading.Thread | None = None
        self._receiver: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def _socket(self, inside: bool) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if inside else lab_socket(self.lab)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        except OSError:
            pass  # the default buffer then
        sock.bind((self.lab.exchange_ip, 0))
        return sock

    def _receive(self, sock: socket.socket) -> None:
        """Counts the orders that come back to the feed's socket (the exchange's side)."""
        while not self._stop.is_set():
            try:
                # select, not a socket timeout: a timeout would apply to the sender's sendto too
                if not select.select([sock], [], [], 0.1)[0]:
                    continue
                data = sock.recv(2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return  # closed
            try:
                decode_order(data)
            except ProtocolError:
                continue  # not an order
            self.orders_received += 1

    def run(self, count: int = 0, rate: float = 1000.0, *, inside_namespace: bool = False) -> int:
        """Sends ``count`` updates (0: until stopped) at ``rate`` a second; returns how many."""
        sock = self._sock or self._socket(inside_namespace)
        self._sock = sock
        dest = (self.lab.engine_ip, self.port)
        seq_off, ts_off = OFFSETS["seq"], OFFSETS["timestamp"]
        n = len(self.payloads)
        batch = max(1, int(rate / 1000))  # sleep about every millisecond
        start = time.monotonic()
        i = self.sent
        while not self._stop.is_set() and (count == 0 or self.sent < count):
            for _ in range(batch):
                if count and self.sent >= count:
                    break
                buf = self.payloads[i % n]
                # Sequence numbers keep growing when the walk is replayed.
                _SEQ.pack_into(buf, seq_off, i // self.nsym + 1)
                _SEQ.pack_into(buf, ts_off, time.time_ns())
                try:
                    sock.sendto(buf, dest)
                except OSError:
                    # The lab went away or the socket buffer is full: count it as sent and go on.
                    pass
                i += 1
                self.sent += 1
            ahead = self.sent / rate - (time.monotonic() - start) if rate else 0
            if ahead > 0:
                time.sleep(ahead)
        return self.sent

    def start(self, rate: float = 1000.0, count: int = 0) -> WalkFeed:
        """Sends in a thread; another thread counts the orders that come back."""
        self._sock = self._socket(False)
        self._receiver = threading.Thread(target=self._receive, args=(self._sock,), daemon=True, name="walk-orders")
        self._receiver.start()
        self._thread = threading.Thread(target=self.run, args=(count, rate), daemon=True, name="walk-feed")
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._receiver is not None:
            self._receiver.join(5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return self.sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hft_tui.demo.walk", description=__doc__.splitlines()[0])
    parser.add_argument("--lab", type=int, help="lab number (default: the demo lab)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--count", type=int, default=0, help="0: until SIGINT/SIGTERM")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    lab = Lab.numbered(args.lab) if args.lab else DEFAULT_LAB
    feed = WalkFeed(lab, load_config(args.config), seed=args.seed)
    signal.signal(signal.SIGTERM, lambda *_: feed._stop.set())
    signal.signal(signal.SIGINT, lambda *_: feed._stop.set())
    enter_namespace(lab)  # this whole process sends from the lab
    sent = feed.run(args.count, args.rate, inside_namespace=True)
    print(f"sent {sent} updates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
