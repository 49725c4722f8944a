"""The exchange simulator: ``hft-tui lab feed``.

It lives in the lab's network namespace, sends market-data updates from the
exchange address to the engine's feed port and checks every order that comes
back on the same UDP socket.

The market
    One seeded, mean-reverting random walk (discrete Ornstein-Uhlenbeck, in
    ticks) per symbol around the midpoint of its buy and sell targets.  Its
    standard deviation is 1.25 x (half the distance between the targets + 2
    ticks), so the ask dips to buy_target or below and the bid reaches
    sell_target or above on about a fifth of the updates each: the engine
    trades both ways.  The quote's spread is 1 to 4 ticks; sizes are random
    up to 1.25 x max_order_qty, so every term of the quantity formula wins
    sometimes.  Which symbol an update quotes is random too.  Sequence
    numbers are one feed-wide counter from 1; the sender timestamp is
    time.time_ns() taken after the batch is packed, just before it goes out.

Sending fast
    Updates are packed with one precompiled struct (its layout is derived from
    the offsets in ebpf/hft_protocol.h) into a batch buffer that is sent with
    one sendmmsg(2) call (libc through ctypes: Python has no sendmmsg).  With
    ``rate`` 0 a batch is 64 updates; with a rate, a batch is whatever is due,
    so at low rates every update leaves on its own.  Orders are drained after
    every batch and while waiting for the next one.  The round trip is the
    socket's receive timestamp (SO_TIMESTAMPNS) minus the echoed sender
    timestamp; in a batch of many updates it includes the time the kernel
    spent on the updates sent before it in the same call.

What is checked, order by order (reasons in ``invalid_reasons``)
    format          not an order (decode_order fails) or not from engine:port
    length          the datagram's length differs from the update's
    gap             the order id skipped ids (the first id must be the
                    engine's last id + 1 when the engine's state is known)
    out of order    an id at or below one already seen (duplicate, reordered)
    unknown update  no update with this sequence number and symbol was sent
                    (or it is older than the last SENT_LOG_SLOTS updates)
    timestamp       the echoed timestamp is not the update's
    unexpected order  the model says this update must not trade (unknown or
                    disabled symbol, crossed, no target reached, position_limit,
                    zero_qty, a collar whose reference is known, a cap with no
                    room for one share)
    side            the model says the other side
    price           not the update's ask (buy) or bid (sell)
    qty             with qty_exact: not the formula's quantity; otherwise not
                    within 1..max_qty (a notional cap may cut the order)
    position        the position from the orders received leaves 0..max_position
    bad udp checksum  the lab's Udp InCsumErrors grew during the run (the
                    kernel drops such datagrams before any socket sees them)

What is not invalid: an update that gets no order.  The kill switch, the
dead-man switch, the throttles and a collar whose reference the simulator
cannot know may all stop an order, and none of them can change one, so the
simulator checks what arrives and never asks for more.  The position used for
an order is the start position plus every order received before it (ids are
assigned in processing order; the sender thread is pinned to one CPU so the
engine sees the updates in order).

The start
    An engine that already traded holds a position, an open cost, a last
    order id and per-symbol last sequence numbers.  When an engine is pinned
    on the lab's engine interface the simulator reads these from its maps and
    continues from them (sequence numbers then start after the engine's
    highest one, else at 1).  Without an engine it assumes a fresh one.  It
    assumes it is the engine's only feed and that the engine runs the config
    it was given (it warns when the engine's maps say otherwise): a symbol
    changed while it runs makes orders that the file does not predict.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import json
import math
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction

from . import lab as lab_mod
from . import engine, paths
from .config import Config, SymbolParams, load_config
from .constants import MAGIC, MSG_LEN, OFFSETS, PRICE_SCALE, SYMBOL_LEN, TYPE_UPDATE, VERSION
from .protocol import (
    U32_MAX,
    ProtocolError,
    Update,
    decode_order,
    decode_update,
    price_to_str,
)
from .maps import EngineMaps, MapsError, symbol_params_from_map
from .errors import SimulatorError
from .stopflag import StopFlag
from .strategy_model import BUY, EngineModel
from .symbol import Symbol

# asm-generic/socket.h; Python's socket module does not export these.
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
SO_TIMESTAMPNS = 35          # SO_TIMESTAMPNS_OLD == SCM_TIMESTAMPNS on 64-bit
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SOCKET_BUFFER = 16 << 20     # orders must not be lost while the sender is busy

MAX_BATCH = 64
SENT_LOG_SLOTS = 1 << 18     # updates remembered for matching orders
RTT_SAMPLES = 1 << 21        # beyond this, a seeded reservoir keeps the percentiles honest
GRACE_S = 0.2                # wait this long after the last update for its order
INVALID_EXAMPLES = 10
DEFAULT_CENTER = 100 * PRICE_SCALE   # where a symbol without targets walks
MIN_HALF_RANGE_TICKS = 10

# The walk, in ticks from the center: x' = (1 - WALK_THETA) * x + sigma * N(0, 1),
# sigma chosen for a stationary deviation of WALK_STD_FACTOR * (half the target
# range + 2 ticks): each target is ~0.8 deviations away, reached ~20% of the time.
WALK_THETA = 0.05
WALK_STD_FACTOR = 1.25
MAX_SPREAD_TICKS = 4          # a power of two: drawn from 2 random bits
MAX_SIZE = 1_000_000


# -- the wire format, packed fast -------------------------------------------

# Field widths are the protocol's (u16 magic, u8 version, ...); the offsets come
# from hft_protocol.h, so this struct moves with the header.
_FIELDS = (
    ("magic", "H"), ("version", "B"), ("type", "B"), ("symbol", f"{SYMBOL_LEN}s"), ("seq", "Q"),
    ("bid", "I"), ("bid_qty", "I"), ("ask", "I"), ("ask_qty", "I"), ("timestamp", "Q"),
)


def update_struct() -> struct.Struct:
    """A big-endian struct of the whole update, padded to the header's offsets."""
    fmt, pos = "!", 0
    for name, code in sorted(_FIELDS, key=lambda f: OFFSETS[f[0]]):
        if OFFSETS[name] < pos:
            raise ValueError(f"field {name} overlaps the one before it")
        fmt += f"{OFFSETS[name] - pos}x" if OFFSETS[name] > pos else ""
        fmt += code
        pos = OFFSETS[name] + struct.calcsize("!" + code)
    fmt += f"{MSG_LEN - pos}x" if MSG_LEN > pos else ""
    packer = struct.Struct(fmt)
    if packer.size != MSG_LEN:
        raise ValueError(f"update struct is {packer.size} bytes, the protocol says {MSG_LEN}")
    return packer


UPDATE = update_struct()
_U64 = struct.Struct("!Q")


def pack_update(buf, offset: int, key: bytes, seq: int, bid: int, bid_qty: int, ask: int, ask_qty: int,
                ts: int) -> None:
    UPDATE.pack_into(buf, offset, MAGIC, VERSION, TYPE_UPDATE, key, seq, bid, bid_qty, ask, ask_qty, ts)


# -- the market ---------------------------------------------------------------

@dataclass(frozen=True)
class WalkShape:
    """How one symbol's quote moves (prices in 1e-4 units)."""

    center: int
    tick: int
    sigma: float          # shock per update, in ticks
    max_size: int


def walk_shape(p: SymbolParams | None) -> WalkShape:
    if p is None or p.buy_target == 0:
        tick = p.tick_size if p else 100
        center, half = DEFAULT_CENTER, MIN_HALF_RANGE_TICKS
    else:
        tick = max(p.tick_size, 1)
        if p.sell_target:
            half = max((p.sell_target - p.buy_target) // (2 * tick), 1)
        else:
            half = MIN_HALF_RANGE_TICKS
        center = p.buy_target + half * tick
    std = WALK_STD_FACTOR * (half + 2)
    keep = 1 - WALK_THETA
    sigma = std * math.sqrt(1 - keep * keep)
    max_size = min(max(2, (p.max_order_qty if p else 1000) * 5 // 4), MAX_SIZE)
    return WalkShape(center=center, tick=tick, sigma=sigma, max_size=max_size)


class MarketWalk:
    """Seeded quotes for a list of symbols; step() is the next update's fields.

    One 64-bit draw per update feeds every choice (symbol, shock, spread,
    sizes); the Gaussian shock comes from a seeded table of NORMALS values, so
    a step costs a fraction of what random.gauss would.
    """

    NORMALS = 1 << 16
    SIZE_BITS = 15

    def __init__(self, names: list[str], config: Config, seed: int) -> None:
        self.names = list(names)
        self.keys = [Symbol(n).key for n in self.names]
        self.shapes = [walk_shape(config.symbols.get(n)) for n in self.names]
        self.rng = random.Random(seed)
        self.normals = [self.rng.gauss(0.0, 1.0) for _ in range(self.NORMALS)]
        self.x = [self.rng.gauss(0.0, s.sigma) for s in self.shapes]
        self._center = [s.center for s in self.shapes]
        self._tick = [s.tick for s in self.shapes]
        self._sigma = [s.sigma for s in self.shapes]
        self._size = [s.max_size for s in self.shapes]

    def step(self) -> tuple[int, int, int, int, int]:
        """(symbol index, bid, bid_qty, ask, ask_qty): never crossed, bid > 0."""
        r = self.rng.getrandbits(64)
        k = ((r & 0xFFFF) * len(self.names)) >> 16
        x = self.x[k] = self.x[k] * (1 - WALK_THETA) + self._sigma[k] * self.normals[(r >> 16) & 0xFFFF]
        spread = 1 + ((r >> 32) & (MAX_SPREAD_TICKS - 1))
        tick = self._tick[k]
        bid = self._center[k] + (round(x) - (spread >> 1)) * tick
        if bid < tick:
            bid = tick
        elif bid > U32_MAX - spread * tick:   # a price is a u32
            bid = U32_MAX - spread * tick
        size, bits = self._size[k], self.SIZE_BITS
        mask = (1 << bits) - 1
        return (k, bid, 1 + ((((r >> 34) & mask) * size) >> bits), bid + spread * tick,
                1 + ((((r >> 49) & mask) * size) >> bits))


# -- what the engine held when the run began ---------------------------------

@dataclass
class SymbolStart:
    position: int = 0
    updates: int = 0
    last_seq: int = 0
    session_ref: int = 0
    open_cost: int = 0


@dataclass
class EngineStart:
    """A running engine's state, read from its pins (see the module doc)."""

    last_order_id: int = 0
    open_cost: int = 0
    symbols: dict[str, SymbolStart] = field(default_factory=dict)
    params: dict[str, SymbolParams] = field(default_factory=dict)
    engine_max_notional: int = 0
    feed_port: int = 0

    @classmethod
    def read(cls, iface: str) -> "EngineStart | None":
        """None when no engine is pinned on ``iface``."""
        directory = paths.pin_dir(iface)
        if not directory.is_dir():
            return None
        try:
            maps = EngineMaps.open_pinned(directory)
        except MapsError as exc:
            raise SimulatorError(f"cannot read the engine on {iface}: {exc}") from None
        try:
            snap = maps.snapshot()
        finally:
            maps.close()
        start = cls(
            last_order_id=snap.totals.order_seq,
            open_cost=snap.totals.open_cost,
            engine_max_notional=snap.global_config.max_notional,
            feed_port=snap.global_config.feed_port,
        )
        for name, (cfg, st) in snap.symbols.items():
            start.symbols[name] = SymbolStart(st.position, st.updates, st.last_seq, st.session_ref, st.open_cost)
            start.params[name] = symbol_params_from_map(cfg)
        return start

    def next_seq(self) -> int:
        return 1 + max((s.last_seq for s in self.symbols.values()), default=0)


def config_warnings(config: Config, start: EngineStart | None, names: list[str],
                    port: int | None = None) -> list[str]:
    """Where the engine's maps disagree with the config the orders are checked against."""
    if start is None:
        return []
    out = []
    for name in names:
        mine, theirs = config.symbols.get(name), start.params.get(name)
        if mine == theirs:
            continue
        why = "not in the engine" if theirs is None else "not in the config" if mine is None else "other parameters"
        out.append(f"the engine's {name} differs from the config ({why})")
    if start.engine_max_notional != config.engine.max_notional:
        out.append("the engine's max_notional differs from the config")
    if port is not None and start.feed_port and start.feed_port != port:
        out.append(f"the engine's feed port is {start.feed_port}, updates go to {port}")
    return out


# -- the orders ---------------------------------------------------------------

class SentLog:
    """The last ``slots`` updates' payloads, found again by sequence number."""

    def __init__(self, first_seq: int, slots: int = SENT_LOG_SLOTS) -> None:
        self.first_seq = first_seq
        self.slots = slots
        self.buf = bytearray(slots * MSG_LEN)
        self.next_seq = first_seq

    def add(self, batch: memoryview, count: int) -> None:
        """``count`` consecutive updates (seq next_seq...) packed in ``batch``."""
        done = 0
        while done < count:
            slot = (self.next_seq + done - self.first_seq) % self.slots
            n = min(count - done, self.slots - slot)
            self.buf[slot * MSG_LEN:(slot + n) * MSG_LEN] = batch[done * MSG_LEN:(done + n) * MSG_LEN]
            done += n
        self.next_seq += count

    def get(self, seq: int) -> Update | None:
        if not (self.first_seq <= seq < self.next_seq) or seq < self.next_seq - self.slots:
            return None
        slot = (seq - self.first_seq) % self.slots
        return decode_update(bytes(self.buf[slot * MSG_LEN:(slot + 1) * MSG_LEN]))


@dataclass
class SymbolCounts:
    buys: int = 0
    sells: int = 0
    bought: int = 0
    sold: int = 0
    position: int = 0


class OrderChecker:
    """Checks the orders of one run, in the order they arrive (see the module doc)."""

    def __init__(self, config: Config, log: SentLog, start: EngineStart | None = None,
                 payload_len: int = MSG_LEN) -> None:
        self.config = config
        self.log = log
        self.payload_len = payload_len
        self.model = EngineModel(config)
        self.counts: dict[str, SymbolCounts] = {}
        self.expected_id = start.last_order_id + 1 if start else None
        self.first_id = 0
        self.last_id = 0
        self.orders = 0
        self.invalid = 0
        self.reasons: dict[str, int] = {}
        self.examples: list[str] = []
        if start:
            mine = 0
            for name, s in start.symbols.items():
                if name in config.symbols:
                    self.model.start(name, position=s.position, updates=s.updates, last_seq=s.last_seq,
                                     session_ref=s.session_ref, open_cost=s.open_cost)
                    self.count(name).position = s.position
                    mine += s.open_cost
            self.model.other_cost = max(start.open_cost - mine, 0)

    def count(self, name: str) -> SymbolCounts:
        c = self.counts.get(name)
        if c is None:
            c = self.counts[name] = SymbolCounts()
        return c

    def sent(self, u: Update) -> None:
        """Market data the model needs before any order (the collar reference)."""
        if self.model.wants_market_data(u.symbol):
            self.model.observe(u)

    def flag(self, reason: str, detail: str) -> None:
        self.invalid += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.examples) < INVALID_EXAMPLES:
            self.examples.append(f"{reason}: {detail}")

    def check(self, payload: bytes) -> int | None:
        """Checks one order; returns its echoed timestamp when it answers an update."""
        self.orders += 1
        try:
            o = decode_order(payload)
        except ProtocolError as exc:
            self.flag("format", str(exc))
            return None
        if len(payload) != self.payload_len:
            self.flag("length", f"order {o.order_id} is {len(payload)} bytes, the update was {self.payload_len}")
        self._check_id(o.order_id)
        u = self.log.get(o.seq)
        if u is None or u.symbol != o.symbol:
            self.flag("unknown update", f"order {o.order_id} answers {o.symbol} seq {o.seq}, never sent")
            return None
        if o.timestamp != u.timestamp:
            self.flag("timestamp", f"order {o.order_id} echoes {o.timestamp}, the update had {u.timestamp}")
        self._check_rules(o, u)
        return u.timestamp

    def _check_id(self, order_id: int) -> None:
        if not self.first_id:
            self.first_id = order_id
        if self.expected_id is not None:
            if order_id > self.expected_id:
                self.flag("gap", f"order id {order_id} after {self.expected_id - 1}")
            elif order_id < self.expected_id:
                self.flag("out of order", f"order id {order_id} after {self.expected_id - 1}")
                return
        self.expected_id = order_id + 1
        self.last_id = order_id

    def _check_rules(self, o, u: Update) -> None:
        d = self.model.decision(u)
        what = f"order {o.order_id} {o.side} {o.qty}@{price_to_str(o.price)} on {u.symbol} seq {u.seq}"
        if not d.trades:
            self.flag("unexpected order", f"{what}: the model says {d.reason}")
        elif o.side != d.side:
            self.flag("side", f"{what}: the model says {d.side}")
        elif o.price != d.price:
            self.flag("price", f"{what}: the price must be {price_to_str(d.price)}")
        elif (o.qty != d.qty) if d.qty_exact else not (1 <= o.qty <= d.max_qty):
            want = d.qty if d.qty_exact else f"1..{d.max_qty}"
            self.flag("qty", f"{what}: the quantity must be {want}")
        # The engine's position moved whatever the verdict: follow it.
        c = self.count(o.symbol)
        if o.side == BUY:
            c.buys += 1
            c.bought += o.qty
            c.position += o.qty
        else:
            c.sells += 1
            c.sold += o.qty
            c.position -= o.qty
        self.model.fill(o.symbol, o.side, o.qty, o.price)
        p = self.config.symbols.get(o.symbol)
        if c.position < 0 or (p is not None and c.position > p.max_position):
            self.flag("position", f"{what}: the position becomes {c.position}")


# -- measuring ----------------------------------------------------------------

def percentile(sorted_values, q: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not sorted_values:
        return 0
    # Fraction(str(q)): 99.9 / 100 * 1000 is 999.0000000000001 in floats.
    rank = max(1, math.ceil(Fraction(str(q)) * len(sorted_values) / 100))
    return sorted_values[rank - 1]


class RttRecorder:
    """Round trips in ns; a seeded reservoir beyond RTT_SAMPLES of them."""

    def __init__(self, limit: int = RTT_SAMPLES, seed: int = 1) -> None:
        self.values = array.array("q")
        self.limit = limit
        self.seen = 0
        self.max = 0
        self.rng = random.Random(seed)

    def add(self, ns: int) -> None:
        self.seen += 1
        if ns > self.max:
            self.max = ns
        if len(self.values) < self.limit:
            self.values.append(ns)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.limit:
                self.values[j] = ns

    def summary_us(self) -> dict[str, float]:
        ordered = sorted(self.values)
        out = {name: round(percentile(ordered, q) / 1000, 3) for name, q in
               (("p50", 50), ("p99", 99), ("p999", 99.9))}
        out["max"] = round(self.max / 1000, 3)
        return out


def read_udp_snmp() -> dict[str, int]:
    """The Udp: counters of /proc/net/snmp for the calling thread's namespace."""
    with open("/proc/thread-self/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    if len(rows) < 2:
        raise SimulatorError("/proc/net/snmp has no Udp counters")
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


def in_lab(lab: lab_mod.Lab, fn):
    """fn() run by a helper thread inside the lab namespace (the caller stays put)."""
    box: dict = {}

    def work() -> None:
        try:
            lab_mod.enter_namespace(lab)
            box["value"] = fn()
        except Exception as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass
class FeedSummary:
    updates_sent: int
    orders_received: int
    invalid_orders: int
    invalid_reasons: dict[str, int]
    buys: int
    sells: int
    first_order_id: int
    last_order_id: int
    rtt_us: dict[str, float]
    rate: float
    duration_s: float
    udp_csum_errors: int
    udp_rcvbuf_errors: int = 0
    bought: int = 0
    sold: int = 0
    first_seq: int = 0
    last_seq: int = 0
    symbols: dict[str, dict] = field(default_factory=dict)
    invalid_examples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        r = self.rtt_us
        lines = [
            f"updates sent     {self.updates_sent} (seq {self.first_seq}..{self.last_seq}) in "
            f"{self.duration_s:.3f} s = {self.rate:,.0f}/s",
            f"orders received  {self.orders_received}: {self.buys} buys ({self.bought} shares), "
            f"{self.sells} sells ({self.sold} shares), ids {self.first_order_id}..{self.last_order_id}",
            f"round trip us    p50 {r['p50']}  p99 {r['p99']}  p99.9 {r['p999']}  max {r['max']}",
            f"udp errors       checksum {self.udp_csum_errors}, receive buffer {self.udp_rcvbuf_errors}",
            f"invalid orders   {self.invalid_orders}"
            + ("" if not self.invalid_reasons else " (" + ", ".join(
                f"{k}: {v}" for k, v in sorted(self.invalid_reasons.items())) + ")"),
        ]
        lines += [f"  {e}" for e in self.invalid_examples]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# -- sending ------------------------------------------------------------------

class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_Iovec)), ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


class BatchSender:
    """Up to MAX_BATCH datagrams of ``size`` bytes to one address in one sendmmsg(2)."""

    def __init__(self, sock: socket.socket, ip: str, port: int, size: int = MSG_LEN,
                 batch: int = MAX_BATCH) -> None:
        self.fd = sock.fileno()
        self.size = size
        self.batch = batch
        self._buf = (ctypes.c_char * (size * batch))()
        self.view = memoryview(self._buf).cast("B")
        self._addr = ctypes.create_string_buffer(
            struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_aton(ip)), 16)
        self._iov = (_Iovec * batch)()
        self._msgs = (_Mmsghdr * batch)()
        base = ctypes.addressof(self._buf)
        for i in range(batch):
            self._iov[i].base, self._iov[i].len = base + i * size, size
            h = self._msgs[i].hdr
            h.name, h.namelen = ctypes.addressof(self._addr), 16
            h.iov, h.iovlen = ctypes.pointer(self._iov[i]), 1
        libc = ctypes.CDLL(None, use_errno=True)
        self._sendmmsg = libc.sendmmsg
        self._sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._sendmmsg.restype = ctypes.c_int

    def send(self, count: int) -> None:
        """Sends the first ``count`` datagrams of the buffer, all of them."""
        done = 0
        while done < count:
            n = self._sendmmsg(self.fd, ctypes.byref(self._msgs, done * ctypes.sizeof(_Mmsghdr)),
                               count - done, 0)
            if n < 0:
                err = ctypes.get_errno()
                if err in (11, 4, 105):  # EAGAIN, EINTR, ENOBUFS: the queue is full, go again
                    continue
                raise OSError(err, f"sendmmsg: {os.strerror(err)}")
            done += n


def _pin_thread(cpu: int | None):
    """Pins the calling thread (one CPU keeps the updates in order); returns the
    old affinity to restore, or None when nothing changed."""
    if cpu is None:
        return None
    old = os.sched_getaffinity(0)
    if cpu not in old:
        raise SimulatorError(f"cpu {cpu} is not one this process may use ({sorted(old)})")
    os.sched_setaffinity(0, {cpu})
    return old


def current_cpu() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    cpu = libc.sched_getcpu()
    return cpu if cpu >= 0 else min(os.sched_getaffinity(0))


class Simulator:
    """The exchange of one lab, usable from the root namespace (tests) or from
    inside the lab (the CLI): its socket is made in the lab namespace."""

    def __init__(self, lab: lab_mod.Lab, config: Config, *, seed: int = 1, symbols: list[str] | None = None,
                 port: int | None = None, first_seq: int | None = None, start: str | EngineStart | None = "auto",
                 cpu: int | None | str = "auto", grace_s: float = GRACE_S) -> None:
        self.lab = lab
        self.config = config
        self.names = [Symbol(s) for s in (symbols or list(config.symbols))]
        if not self.names:
            raise SimulatorError("no symbols to trade: the config has none and --symbols gave none")
        if len(set(self.names)) != len(self.names):
            raise SimulatorError("a symbol is listed twice")
        self.seed = seed
        self.port = port or config.engine.feed_port
        self.first_seq = first_seq
        self.start_mode = start
        self.cpu = cpu
        self.grace_s = grace_s

    def _socket(self) -> socket.socket:
        if not self.lab.netns_path.exists():
            raise SimulatorError(f"lab {self.lab.namespace} is not up (hft-tui lab up)")
        sock = lab_mod.lab_socket(self.lab)
        try:
            sock.bind((self.lab.exchange_ip, 0))
        except OSError as exc:
            sock.close()
            raise SimulatorError(f"cannot bind to the exchange address {self.lab.exchange_ip}: {exc.strerror}") from None
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        sock.setblocking(False)
        return sock

    def run(self, count: int = 10_000, rate: float = 1000, *, duration: float | None = None,
            stop=None) -> FeedSummary:
        """Sends ``count`` updates (0: until ``stop()`` or ``duration``) at
        ``rate`` updates/s (0: as fast as it goes) and checks the orders."""
        if count < 0 or rate < 0 or (duration is not None and duration <= 0):
            raise SimulatorError("count and rate must be >= 0 and duration > 0")
        if count == 0 and duration is None and stop is None:
            raise SimulatorError("count 0 runs until stopped: give a duration or a stop function")
        start = self.start_mode
        warnings = []
        if start == "auto":
            start = EngineStart.read(self.lab.engine_iface)
            if start is None:
                warnings.append(f"no engine is pinned on {self.lab.engine_iface}: expect no orders")
        warnings += config_warnings(self.config, start, self.names, self.port)
        first_seq = self.first_seq or (start.next_seq() if start else 1)
        log = SentLog(first_seq, SENT_LOG_SLOTS if count == 0 else min(SENT_LOG_SLOTS, max(count, 1)))
        checker = OrderChecker(self.config, log, start)
        rtts = RttRecorder(seed=self.seed)
        walk = MarketWalk(self.names, self.config, self.seed)
        sock = self._socket()
        cpu = current_cpu() if self.cpu == "auto" else self.cpu
        try:
            old_affinity = _pin_thread(cpu)
            try:
                before = in_lab(self.lab, read_udp_snmp)
                sent, elapsed = self._loop(sock, walk, log, checker, rtts, count, rate, duration, stop)
                after = in_lab(self.lab, read_udp_snmp)
            finally:
                if old_affinity is not None:
                    os.sched_setaffinity(0, old_affinity)
        finally:
            sock.close()
        csum = after.get("InCsumErrors", 0) - before.get("InCsumErrors", 0)
        if csum:
            checker.invalid += csum
            checker.reasons["bad udp checksum"] = csum
        totals = SymbolCounts()
        for c in checker.counts.values():
            totals.buys += c.buys
            totals.sells += c.sells
            totals.bought += c.bought
            totals.sold += c.sold
        return FeedSummary(
            updates_sent=sent,
            orders_received=checker.orders,
            invalid_orders=checker.invalid,
            invalid_reasons=dict(sorted(checker.reasons.items())),
            buys=totals.buys,
            sells=totals.sells,
            first_order_id=checker.first_id,
            last_order_id=checker.last_id,
            rtt_us=rtts.summary_us(),
            rate=round(sent / elapsed, 1) if elapsed > 0 else 0.0,
            duration_s=round(elapsed, 6),
            udp_csum_errors=csum,
            udp_rcvbuf_errors=after.get("RcvbufErrors", 0) - before.get("RcvbufErrors", 0),
            bought=totals.bought,
            sold=totals.sold,
            first_seq=first_seq,
            last_seq=first_seq + sent - 1,
            symbols={n: asdict(c) for n, c in sorted(checker.counts.items())},
            invalid_examples=checker.examples,
            warnings=warnings,
        )

    def _loop(self, sock, walk, log, checker, rtts, count, rate, duration, stop):
        sender = BatchSender(sock, self.lab.engine_ip, self.port)
        view, keys, names = sender.view, walk.keys, walk.names
        engine_addr = (self.lab.engine_ip, self.port)
        step, pack = walk.step, UPDATE.pack_into
        stamp, ts_off = _U64.pack_into, OFFSETS["timestamp"]
        # Names whose collar reference the model still has to see taken.
        pending = {n for n in names if checker.model.wants_market_data(n)}
        seq = log.next_seq
        sent = 0
        recv = sock.recvmsg
        cmsg_space = socket.CMSG_SPACE(16)

        def drain() -> None:
            while True:
                try:
                    data, anc, _flags, addr = recv(2048, cmsg_space)
                except BlockingIOError:
                    return
                if addr != engine_addr:
                    checker.orders += 1
                    checker.flag("format", f"a datagram from {addr[0]}:{addr[1]}, not the engine")
                    continue
                echoed = checker.check(data)
                if echoed is None:
                    continue
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                        sec, nsec = struct.unpack("=qq", value[:16])
                        rtts.add(sec * 1_000_000_000 + nsec - echoed)

        t0 = time.monotonic()
        end = t0 + duration if duration else None
        while count == 0 or sent < count:
            if stop is not None and stop():
                break
            now = time.monotonic()
            if end is not None and now >= end:
                break
            if rate:
                n = min(int((now - t0) * rate) + 1 - sent, MAX_BATCH)
                if n <= 0:
                    wait = (sent / rate) - (now - t0)
                    if end is not None:
                        wait = min(wait, end - now)
                    if select.select([sock], [], [], max(wait, 0))[0]:
                        drain()
                    continue
            else:
                n = MAX_BATCH
            if count:
                n = min(n, count - sent)
            for i in range(n):
                k, bid, bq, ask, aq = step()
                pack(view, i * MSG_LEN, MAGIC, VERSION, TYPE_UPDATE, keys[k], seq + i, bid, bq, ask, aq, 0)
                if pending and names[k] in pending:
                    checker.sent(Update(names[k], seq + i, bid, bq, ask, aq, 0))
                    if not checker.model.wants_market_data(names[k]):
                        pending.discard(names[k])
            # The timestamp goes in last, as close to the send as Python gets.
            ts = time.time_ns()
            for i in range(n):
                stamp(view, i * MSG_LEN + ts_off, ts)
            sender.send(n)
            log.add(view, n)
            seq += n
            sent += n
            drain()
        elapsed = time.monotonic() - t0
        deadline = time.monotonic() + self.grace_s
        while (left := deadline - time.monotonic()) > 0:
            if select.select([sock], [], [], left)[0]:
                drain()
        return sent, elapsed


# -- the command line ---------------------------------------------------------

def _nonneg_int(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is below 0")
    return n


def _positive_int(text: str) -> int:
    n = _nonneg_int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _port(text: str) -> int:
    n = _nonneg_int(text)
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError("a port is 1..65535")
    return n


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return v


def add_arguments(parser) -> None:
    parser.add_argument("--rate", type=_nonneg_int, default=1000, help="updates per second, 0 = as fast as possible (default 1000)")
    parser.add_argument("--count", type=_nonneg_int, default=10_000, help="updates to send, 0 = until Ctrl-C/SIGTERM (default 10000)")
    parser.add_argument("--symbols", nargs="+", metavar="SYM", help="symbols to quote (default: the config's)")
    parser.add_argument("--seed", type=_nonneg_int, default=1, help="random seed of the market (default 1)")
    parser.add_argument("--config", help="engine config the orders are checked against (default configs/demo.toml)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--lab", type=lab_mod.lab_number_arg, metavar="N", help="numbered lab N (default: the demo lab)")
    parser.add_argument("--port", type=_port, help="engine feed port (default: the config's feed_port)")
    parser.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    parser.add_argument("--first-seq", type=_positive_int, metavar="N",
                        help="first sequence number (default: 1, or after the engine's last one)")
    parser.add_argument("--cpu", type=_nonneg_int, help="CPU to run on (default: the one it starts on)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors (the exit code tells)")


def run(args) -> int:
    engine.require_root()        # it enters the lab's namespace: one clear line, not EPERM from setns
    lab = lab_mod.Lab.numbered(args.lab) if args.lab else lab_mod.Lab()
    config = load_config(args.config or paths.DEMO_CONFIG)
    for name in args.symbols or ():
        Symbol(name)
    if not lab.netns_path.exists():
        raise lab_mod.LabError(f"lab {lab.namespace} is not up (hft-tui lab up)")
    count = args.count
    stopping = StopFlag()             # set from the signal handler: no lock taken
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    # The simulator is its own process: all of it moves into the lab.
    lab_mod.enter_namespace(lab)
    try:
        sim = Simulator(lab, config, seed=args.seed, symbols=args.symbols, port=args.port,
                        first_seq=args.first_seq,
                        cpu="auto" if args.cpu is None else args.cpu)
        summary = sim.run(count, args.rate, duration=args.duration, stop=stopping.is_set)
    except SimulatorError as exc:
        raise lab_mod.LabError(str(exc)) from None
    if not args.quiet:
        if args.json:
            print(json.dumps(summary.as_dict()))
        else:
            print(summary.text())
            sys.stdout.flush()
    return 0 if summary.invalid_orders == 0 else 1
