"""The Python bot: the strategy written the ordinary way.

A process reads the feed from a UDP socket with a blocking receive, decides
with the engine's rule and answers with an order in the engine's format
(hft_tui.protocol).  This is what the original write-up compared against.

    python -m hft_tui.bench.python_bot --bind IP --port PORT --buy-target N ...

Prints ``ready`` once bound.  It keeps its own state (last seq and position
per symbol, order ids 1, 2, 3, ...), so it is the engine's strategy without
the engine's throttles, collars and limits: the benchmark config never
triggers those.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

from ..errors import ProtocolError
from ..protocol import Order, decode_update, encode_order


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python_bot")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    for name in ("buy-target", "sell-target", "tick-size", "base-qty", "scale-qty", "max-order-qty", "max-position"):
        p.add_argument(f"--{name}", type=int, required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tick = max(a.tick_size, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((a.bind, a.port))
    print("ready", flush=True)

    state: dict[str, list[int]] = {}  # symbol -> [last seq, position]
    order_id = 0
    while True:
        data, addr = sock.recvfrom(2048)
        try:
            u = decode_update(data)
        except ProtocolError:
            continue
        st = state.setdefault(u.symbol, [0, 0])
        if st[0] and u.seq <= st[0]:
            continue  # duplicate or replay: never trade
        st[0] = u.seq
        side = None
        if u.ask and u.ask_qty and u.ask <= a.buy_target:
            qty = min(
                u.ask_qty,
                a.max_order_qty,
                a.base_qty + a.scale_qty * ((a.buy_target - u.ask) // tick),
                a.max_position - st[1],
            )
            side, price = "B", u.ask
        elif a.sell_target and st[1] and u.bid and u.bid_qty and u.bid >= a.sell_target:
            qty = min(u.bid_qty, a.max_order_qty, st[1])
            side, price = "S", u.bid
        if side is None or qty <= 0:
            continue
        st[1] += qty if side == "B" else -qty
        order_id += 1
        sock.sendto(encode_order(Order(side, u.symbol, u.seq, price, qty, order_id, u.timestamp)), addr)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
