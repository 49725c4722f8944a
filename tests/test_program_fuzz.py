"""Property-based fuzz of the real program through BPF_PROG_TEST_RUN.

Over 100,000 frames: mutations of valid updates (bit flips, truncations,
extensions, random bytes in headers and payload, random length fields,
EtherTypes, protocols, fragment bits, ports) and fully random frames, from
a seeded generator and from hypothesis.  For every frame:

- only a valid update of a configured symbol may come back with XDP_TX, and
  what comes back is a valid order of that update (frames.check_order:
  addresses and ports swapped, checksums right, nothing else changed) with
  a price and quantity the strategy allows and the next gap-free order id;
- anything else passes (on_no_trade = pass) byte-for-byte untouched.

For every batch the counters add up: each frame lands in exactly one of
updates / passed / malformed, with the same split as the reference parser
below (written from the protocol rules); orders == XDP_TX count ==
order_seq; every known-symbol update is exactly one event (an order in
`events`, a reject or sampled update in `tape_events`, sampling 1 in 1);
and each symbol's accounting equals the sum of its orders.
"""

from __future__ import annotations

import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass

import pytest
from frames import (
    ETH_LEN,
    ETH_P_IP,
    IP_LEN,
    REJECT_COUNTERS,
    TAG_LEN,
    UDP_LEN,
    VLAN_TYPES,
    Harness,
    XdpAction,
    check_order,
    update_frame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import Dot1AD, Dot1Q

from hft_tui.config import symbol_params
from hft_tui.constants import DEFAULT_FEED_PORT, MAX_UDP_LEN, MSG_LEN, OFFSETS, SYMBOL_LEN
from hft_tui.protocol import ProtocolError, Update, decode_update
from hft_tui.symbol import Symbol

SYMBOLS = {
    "AAPL": {
        "buy_target": "190.25",
        "sell_target": "190.75",
        "base_qty": 100,
        "scale_qty": 10,
        "max_order_qty": 1000,
        "max_position": 5000,
    },
    "MSFT": {
        "buy_target": "415.10",
        "sell_target": "415.60",
        "base_qty": 50,
        "scale_qty": 5,
        "max_order_qty": 500,
        "max_position": 2000,
    },
}
PARAMS = {name: symbol_params(name, values) for name, values in SYMBOLS.items()}
KNOWN = {Symbol(name).key: name for name in SYMBOLS}
ENGINE = {"feed_port": DEFAULT_FEED_PORT, "update_sample": 1}

SEEDED_FRAMES = 100_000  # alone enough for the 100,000; hypothesis adds its own
BATCH = 250  # small: a mutated seq far ahead makes the rest of a batch stale
HYPOTHESIS_EXAMPLES = 250
RANDOM_EXAMPLES = 150

# IPv4 / UDP header fields (RFC 791, RFC 768): offsets inside each header.
IP_VER_IHL, IP_TOT_LEN, IP_FRAG, IP_PROTO = 0, 2, 6, 9
UDP_DPORT, UDP_LENGTH = 2, 4
IP_FRAG_MASK = 0x3FFF  # MF flag and fragment offset; DF and the reserved bit do not fragment


# -- the reference parser ---------------------------------------------------------


def _u16(frame: bytes, at: int) -> int:
    return int.from_bytes(frame[at : at + 2], "big")


def classify(frame: bytes) -> tuple[str, Update | None]:
    """What the protocol rules make of a frame: ('malformed' | 'passed' |
    'unknown' | 'known', the update when it is one)."""
    n = len(frame)
    l3 = ETH_LEN
    etype = _u16(frame, ETH_LEN - 2)
    if etype in VLAN_TYPES:
        if n < l3 + TAG_LEN:
            return "malformed", None
        etype = _u16(frame, l3 + TAG_LEN - 2)
        l3 += TAG_LEN
        if etype in VLAN_TYPES:
            return "passed", None  # QinQ
    if etype != ETH_P_IP:
        return "passed", None
    if n < l3 + IP_LEN:
        return "malformed", None
    version, ihl = frame[l3 + IP_VER_IHL] >> 4, frame[l3 + IP_VER_IHL] & 0xF
    if version != 4 or ihl < 5 or l3 + ihl * 4 > n:
        return "malformed", None
    tot_len = _u16(frame, l3 + IP_TOT_LEN)
    if tot_len < ihl * 4 or l3 + tot_len > n:
        return "malformed", None
    if frame[l3 + IP_PROTO] != socket.IPPROTO_UDP or _u16(frame, l3 + IP_FRAG) & IP_FRAG_MASK:
        return "passed", None
    l4 = l3 + ihl * 4
    if l4 + UDP_LEN > n:
        return "malformed", None
    udp_len = _u16(frame, l4 + UDP_LENGTH)
    if udp_len < UDP_LEN or udp_len > tot_len - ihl * 4:
        return "malformed", None
    if _u16(frame, l4 + UDP_DPORT) != ENGINE["feed_port"]:
        return "passed", None
    if udp_len < UDP_LEN + MSG_LEN or udp_len > MAX_UDP_LEN:
        return "malformed", None
    payload = frame[l4 + UDP_LEN : l4 + UDP_LEN + MSG_LEN]
    try:
        u = decode_update(payload)
    except ProtocolError:
        return "malformed", None
    raw_symbol = payload[OFFSETS["symbol"] : OFFSETS["symbol"] + SYMBOL_LEN]
    if raw_symbol not in KNOWN:
        return "unknown", u
    return "known", Update(KNOWN[raw_symbol], u.seq, u.bid, u.bid_qty, u.ask, u.ask_qty, u.timestamp)


# -- templates: valid updates to mutate ----------------------------------------------


@dataclass(frozen=True)
class Template:
    frame: bytes
    l3: int  # IPv4 header offset
    l4: int  # UDP header offset

    @property
    def payload_at(self) -> int:
        return self.l4 + UDP_LEN


def _books(name: str) -> dict[str, tuple[int, int]]:
    p = PARAMS.get(name, PARAMS["AAPL"])
    tick = p.tick_size
    return {
        "buy": (p.buy_target - 10 * tick, p.buy_target - 5 * tick),
        "sell": (p.sell_target + 2 * tick, p.sell_target + 10 * tick),
        "between": (p.buy_target + tick, p.sell_target - tick),
    }


FRAMINGS = {
    "plain": {},
    "802.1Q": {"tags": (Dot1Q,)},
    "802.1ad": {"tags": (Dot1AD,)},
    "options": {"ip_options": b"\x01" * 8},
    "odd payload": {"length": MSG_LEN + 1},
    "long payload": {"length": 300},
}


def _templates() -> list[Template]:
    out = []
    for name in (*SYMBOLS, "ZZZZ"):
        for bid, ask in _books(name).values():
            for kw in FRAMINGS.values():
                frame = update_frame(Update(name, 0, bid, 500, ask, 500, 7), **kw)
                l3 = ETH_LEN + TAG_LEN * len(kw.get("tags", ()))
                l4 = l3 + IP_LEN + len(kw.get("ip_options", b""))
                out.append(Template(frame, l3, l4))
    return out


TEMPLATES = _templates()


# -- mutations: each takes the frame, its template and two random numbers -------------

INTERESTING_U16 = (0, 1, 7, 8, 19, 20, 51, 52, 53, 0x7FFF, 0xFFFF, MAX_UDP_LEN, MAX_UDP_LEN + 1)
ETHERTYPES = (ETH_P_IP, *VLAN_TYPES, 0x86DD, 0x0806, 0x0000, 0xFFFF)


def _put(f: bytearray, at: int, value: bytes) -> None:
    """Writes where the (possibly truncated) frame has room; elsewhere nothing."""
    if at + len(value) <= len(f):
        f[at : at + len(value)] = value


def _set16(f: bytearray, at: int, value: int) -> None:
    _put(f, at, (value & 0xFFFF).to_bytes(2, "big"))


def _length_value(current: int, a: int, b: int) -> int:
    choice = b % 4
    if choice == 0:
        return INTERESTING_U16[a % len(INTERESTING_U16)]
    if choice == 1:
        return current + (a % 9) - 4  # off by a few
    return a & 0xFFFF


def m_flip(f, t, a, b):
    for k in range(1 + b % 4):
        bit = (a + k * 7919 * (b + 1)) % (len(f) * 8)
        f[bit // 8] ^= 1 << (bit % 8)
    return f


def m_truncate(f, t, a, b):
    return f[: ETH_LEN + a % (len(f) - ETH_LEN)] if len(f) > ETH_LEN else f


def m_extend(f, t, a, b):
    return f + random.Random(a).randbytes(1 + b % 64)


def m_header_byte(f, t, a, b):
    _put(f, a % t.payload_at, bytes([b & 0xFF]))
    return f


def m_payload_byte(f, t, a, b):
    _put(f, t.payload_at + a % MSG_LEN, bytes([b & 0xFF]))
    return f


def m_ip_tot_len(f, t, a, b):
    _set16(f, t.l3 + IP_TOT_LEN, _length_value(_u16(f, t.l3 + IP_TOT_LEN), a, b))
    return f


def m_udp_len(f, t, a, b):
    _set16(f, t.l4 + UDP_LENGTH, _length_value(_u16(f, t.l4 + UDP_LENGTH), a, b))
    return f


def m_ihl_version(f, t, a, b):
    if t.l3 < len(f):
        f[t.l3 + IP_VER_IHL] = (4 << 4 | a % 16) if b % 2 else (a % 16) << 4 | (f[t.l3] & 0xF)
    return f


def m_ethertype(f, t, a, b):
    at = ETH_LEN - 2 if b % 2 or t.l3 == ETH_LEN else t.l3 - 2
    _set16(f, at, ETHERTYPES[a % len(ETHERTYPES)])
    return f


def m_proto_frag(f, t, a, b):
    if b % 2:
        _put(f, t.l3 + IP_PROTO, bytes([a & 0xFF]))
    else:
        _set16(f, t.l3 + IP_FRAG, a)
    return f


def m_port(f, t, a, b):
    _set16(f, t.l4 + UDP_DPORT, ENGINE["feed_port"] + (a % 3) - 1 if b % 2 else a)
    return f


def m_price(f, t, a, b):
    """A field of the book set to an interesting or random u32."""
    field = ("bid", "bid_qty", "ask", "ask_qty")[b % 4]
    value = (0, 1, 0xFFFFFFFF, a)[(b >> 2) % 4]
    _put(f, t.payload_at + OFFSETS[field], struct.pack("!I", value & 0xFFFFFFFF))
    return f


def m_random_payload(f, t, a, b):
    rest = len(f) - t.payload_at
    return f[: t.payload_at] + random.Random(a).randbytes(rest) if rest > 0 else f


def m_none(f, t, a, b):
    return f


MUTATIONS = {
    fn.__name__[2:]: fn
    for fn in (
        m_none,
        m_flip,
        m_truncate,
        m_extend,
        m_header_byte,
        m_payload_byte,
        m_ip_tot_len,
        m_udp_len,
        m_ihl_version,
        m_ethertype,
        m_proto_frag,
        m_port,
        m_price,
        m_random_payload,
    )
}


def mutate(template: Template, seq: int, ops) -> bytes:
    """The template with a fresh seq, then each (mutation, a, b) applied in turn."""
    f = bytearray(template.frame)
    struct.pack_into("!Q", f, template.payload_at + OFFSETS["seq"], seq)
    for name, a, b in ops:
        f = bytearray(MUTATIONS[name](f, template, a, b))
    return bytes(f)


# -- the checker -----------------------------------------------------------------------


@dataclass
class Tally:
    frames: int = 0
    orders: int = 0


@pytest.fixture(scope="module")
def tally(request):
    t = Tally()
    yield t
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nfuzz: {t.frames} frames through BPF_PROG_TEST_RUN, {t.orders} came back as orders")


def _check_decision(order, u: Update) -> None:
    p = PARAMS[u.symbol]
    if order.side == "B":
        assert order.price == u.ask and u.ask <= p.buy_target
        assert 0 < order.qty <= min(u.ask_qty, p.max_order_qty, p.max_position)
    else:
        assert order.side == "S"
        assert order.price == u.bid and p.sell_target and u.bid >= p.sell_target
        assert 0 < order.qty <= min(u.bid_qty, p.max_order_qty)


def run_batch(h: Harness, frames: list[bytes], tally: Tally) -> Counter:
    """Runs frames on a freshly configured engine and checks every property."""
    h.reset(symbols=SYMBOLS, engine=ENGINE)
    before = h.counters()
    seen: Counter = Counter()
    orders = []
    for frame in frames:
        kind, u = classify(frame)
        action, out = h.run_raw(frame)
        seen[kind] += 1
        if action == XdpAction.TX:
            assert kind == "known", f"reflected a {kind} frame: {frame.hex()}"
            try:
                order = check_order(frame, out)
                _check_decision(order, u)
                assert order.order_id == len(orders) + 1, "order ids not gap-free"
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n in:  {frame.hex()}\n out: {out.hex()}") from None
            orders.append(order)
        else:
            assert action == XdpAction.PASS, f"{XdpAction(action).name} for a {kind} frame: {frame.hex()}"
            assert out == frame, f"a {kind} frame changed without an order: {frame.hex()}"
    after = h.counters()
    moved = {k: after[k] - before[k] for k in after}

    # Each frame in exactly one bucket, the reference parser's.
    assert (moved["updates"], moved["passed"], moved["malformed"], moved["unknown_symbol"]) == (
        seen["known"] + seen["unknown"],
        seen["passed"],
        seen["malformed"],
        seen["unknown"],
    )
    assert moved["updates"] + moved["passed"] + moved["malformed"] == len(frames)
    # Orders: counter == XDP_TX count == order_seq.
    assert moved["orders"] == len(orders) == h.maps.totals().order_seq
    # Every known-symbol update is exactly one event, in its ring; nothing dropped.
    assert (moved["ringbuf_drops"], moved["tape_drops"]) == (0, 0)
    events = h.drain()
    kinds = Counter(e.kind for e in events)
    assert kinds["order"] == len(orders)
    assert kinds["order"] + kinds["reject"] + kinds["update"] == seen["known"]
    assert [e.order_id for e in events if e.kind == "order"] == [o.order_id for o in orders]
    not_of_a_known_symbol = ("malformed", "unknown_symbol")
    known_rejects = sum(moved[k] for k in REJECT_COUNTERS if k not in not_of_a_known_symbol)
    assert kinds["reject"] == known_rejects
    # Accounting per symbol is the sum of its orders.
    for name in SYMBOLS:
        st = h.state(name)
        buys = [o for o in orders if o.symbol == name and o.side == "B"]
        sells = [o for o in orders if o.symbol == name and o.side == "S"]
        assert (st.bought, st.sold) == (sum(o.qty for o in buys), sum(o.qty for o in sells))
        assert (st.buy_orders, st.sell_orders) == (len(buys), len(sells))
        assert st.capital_spent == sum(o.qty * o.price for o in buys)
        assert st.proceeds == sum(o.qty * o.price for o in sells)
        assert st.position == st.bought - st.sold <= PARAMS[name].max_position
    tally.frames += len(frames)
    tally.orders += len(orders)
    return seen


# -- the seeded generator -----------------------------------------------------------------


def seeded_frames(rng: random.Random, count: int, seq0: int) -> list[bytes]:
    frames = []
    names = list(MUTATIONS)
    for i in range(count):
        roll = rng.random()
        if roll < 0.05:
            frames.append(rng.randbytes(rng.randint(ETH_LEN, 1600)))  # fully random
            continue
        t = rng.choice(TEMPLATES)
        if roll < 0.10:  # valid headers, random rest
            frames.append(t.frame[: t.l4 + UDP_LEN] + rng.randbytes(rng.randint(0, 120)))
            continue
        ops = [(rng.choice(names), rng.getrandbits(32), rng.getrandbits(32)) for _ in range(rng.randint(0, 3))]
        frames.append(mutate(t, seq0 + i, ops))
    return frames


def test_seeded_mutations_and_random_frames(h, tally):
    rng = random.Random(20)
    total = Counter()
    for start in range(0, SEEDED_FRAMES, BATCH):
        total += run_batch(h, seeded_frames(rng, BATCH, 1 + start), tally)
    assert sum(total.values()) == SEEDED_FRAMES
    # The generator reaches every bucket, and plenty of orders.
    assert all(total[k] > SEEDED_FRAMES // 10 for k in ("known", "unknown", "passed", "malformed")), total
    assert tally.orders > SEEDED_FRAMES // 20


# -- hypothesis ------------------------------------------------------------------------------

mutation = st.tuples(st.sampled_from(list(MUTATIONS)), st.integers(0, 2**16), st.integers(0, 2**16))
frame_plan = st.tuples(st.integers(0, len(TEMPLATES) - 1), st.lists(mutation, max_size=3))
HYPOTHESIS = settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@HYPOTHESIS
@given(st.lists(frame_plan, min_size=50, max_size=100))
def test_hypothesis_mutations(h, tally, plans):
    run_batch(h, [mutate(TEMPLATES[i], 1 + n, ops) for n, (i, ops) in enumerate(plans)], tally)


@settings(
    max_examples=RANDOM_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.binary(min_size=ETH_LEN, max_size=120), min_size=20, max_size=60))
def test_hypothesis_random_frames(h, tally, frames):
    run_batch(h, frames, tally)
