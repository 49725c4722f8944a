"""The engine attached to a real veth pair, in native and in generic mode.

Packets leave the lab namespace from a real UDP socket; orders come back
through the kernel.  Every expected order frame is built here, independently,
with scapy (addresses and ports swapped, checksums recomputed by scapy) and
compared byte for byte with the frame a packet socket captured on the
exchange's interface.

Labs 10..19 are this module's: a shared engine per mode (10 native, 11
generic) for the tests that only need fresh symbols (each test configures
its own, so symbol state never leaks between tests), fresh engines (12, 13)
where engine-wide state must start at zero (order ids 1, 2, 3, ...).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from hft_tui import engine, lab
from hft_tui.config import parse_config
from hft_tui.constants import MSG_LEN
from hft_tui.protocol import Order, Update, decode_order, encode_order, encode_update, parse_price
from hft_tui.simulator import Simulator
from hft_tui.status import status_dict
from hft_tui.strategy_model import EngineModel

MODES = ("native", "generic")
SHARED_LAB = {"native": 10, "generic": 11}
FRESH_LAB = {"native": 12, "generic": 13}
ETH_P_ALL = 0x0003  # linux/if_ether.h: every protocol, for the frame tap
PACKET_OUTGOING = 4  # linux/if_packet.h: a frame this host sent
NO_ORDER_WAIT_S = 0.2  # how long "no order" is waited for

ENGINE = {"on_no_trade": "pass", "update_sample": 64}
# buy 190.25, sell 190.75, 100 + 10 a tick below, no collar (10000 bps of a
# 190 reference never binds a buy under 380).
AAPL = {
    "buy_target": "190.25",
    "sell_target": "190.75",
    "base_qty": 100,
    "scale_qty": 10,
    "tick_size": "0.01",
    "max_order_qty": 1000,
    "max_position": 5000,
    "collar_bps": 10000,
}


# -- the lab side -------------------------------------------------------------


class Exchange:
    """A UDP socket on the exchange address and a frame tap on its interface."""

    def __init__(self, L: lab.Lab, port: int = 9000) -> None:
        self.lab, self.port = L, port
        self.udp = lab.lab_socket(L)
        self.udp.bind((L.exchange_ip, 0))
        self.tap = lab.lab_socket(L, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.tap.bind((L.exchange_iface, 0))
        self.tap.setblocking(False)

    def close(self) -> None:
        self.udp.close()
        self.tap.close()

    def send(self, u: Update, length: int = MSG_LEN) -> bytes:
        """Sends the update; bytes past the first 44 are a pattern, not zeros."""
        payload = encode_update(u)
        payload += bytes((7 * i + 1) & 0xFF for i in range(length - MSG_LEN))
        self.drain_tap()
        self.udp.sendto(payload, (self.lab.engine_ip, self.port))
        return payload

    def order(self, timeout: float = 2.0) -> bytes | None:
        """The next datagram back, or None when none comes within ``timeout``."""
        if not select.select([self.udp], [], [], timeout)[0]:
            return None
        data, addr = self.udp.recvfrom(2048)
        assert addr == (self.lab.engine_ip, self.port)
        return data

    def drain_tap(self) -> list[tuple[int, bytes]]:
        frames = []
        while True:
            try:
                data, addr = self.tap.recvfrom(65535)
            except BlockingIOError:
                return frames
            frames.append((addr[2], data))

    def feed_frames(self) -> tuple[list[Ether], list[Ether]]:
        """(updates this side sent, orders it received) since the last send."""
        sent, got = [], []
        for pkttype, data in self.drain_tap():
            f = Ether(data)
            if UDP not in f:
                continue
            if pkttype == PACKET_OUTGOING and f[UDP].dport == self.port:
                sent.append(f)
            elif pkttype != PACKET_OUTGOING and f[UDP].sport == self.port:
                got.append(f)
        return sent, got


@pytest.fixture
def exchange_for():
    made = []

    def factory(L: lab.Lab) -> Exchange:
        ex = Exchange(L)
        made.append(ex)
        return ex

    yield factory
    for ex in made:
        ex.close()


@dataclass
class Shared:
    lab: lab.Lab
    mode: str
    handle: engine.EngineHandle


@pytest.fixture(scope="module", params=MODES)
def shared(request):
    """One engine per mode for the tests that bring their own symbols.

    Module scope (unlike conftest's make_lab) so the program is compiled once
    per mode, not once per test; set up and torn down the same way."""
    mode = request.param
    L = lab.Lab.numbered(SHARED_LAB[mode])
    lab.down(L, quiet=True)
    lab.up(L)
    try:
        engine.attach(L.engine_iface, parse_config({"engine": ENGINE}), mode=mode)
        handle = engine.open_engine(L.engine_iface)
        try:
            yield Shared(L, mode, handle)
        finally:
            handle.close()
    finally:
        lab.down(L, quiet=True)


def fresh_symbol(h: engine.EngineHandle, name: str, values: dict) -> None:
    """A symbol with zero state: removed first if an earlier run left it."""
    if name in h.maps.symbol_names():
        h.remove_symbol(name)
    h.set_symbol(name, values)


def price(text: str) -> int:
    return parse_price(text)


def counters(h: engine.EngineHandle) -> dict:
    snap = h.snapshot()
    return {"orders": snap.totals.order_seq, **snap.counters, **{f"reject {k}": v for k, v in snap.rejects.items()}}


def diff(before: dict, after: dict, *, feed_only: bool = False) -> dict:
    """What changed; ``feed_only`` leaves out "passed" (ARP may cross at any time)."""
    return {k: after[k] - before[k] for k in after if after[k] != before[k] and not (feed_only and k == "passed")}


# -- independent checks of a frame -------------------------------------------


def expected_order_frame(update_frame: Ether, order_payload: bytes) -> bytes:
    """The update frame with MACs, IPs and ports swapped, the order as its
    payload and both checksums recomputed by scapy."""
    f = update_frame.copy()
    f.src, f.dst = update_frame.dst, update_frame.src
    f[IP].src, f[IP].dst = update_frame[IP].dst, update_frame[IP].src
    f[UDP].sport, f[UDP].dport = update_frame[UDP].dport, update_frame[UDP].sport
    f[UDP].remove_payload()
    f[UDP].add_payload(Raw(order_payload))
    del f[IP].chksum
    del f[UDP].chksum
    return bytes(f)


def checksums_verify(frame: Ether) -> tuple[bool, bool]:
    """(IPv4 header checksum right, UDP checksum right), recomputed by scapy."""
    again = frame.copy()
    del again[IP].chksum
    del again[UDP].chksum
    rebuilt = Ether(bytes(again))
    return rebuilt[IP].chksum == frame[IP].chksum, rebuilt[UDP].chksum == frame[UDP].chksum


# -- orders -------------------------------------------------------------------

# Rows run in order on one fresh engine (the position carries over):
# (rule, bid, bid_qty, ask, ask_qty, payload length, expected (side, price, qty) or None)
ORDER_SCENARIO = [
    ("ask 5 ticks below buy_target buys base + 5 * scale", "190.15", 500, "190.20", 800, MSG_LEN, ("B", "190.20", 150)),
    ("ask at buy_target buys base_qty", "190.20", 500, "190.25", 800, MSG_LEN, ("B", "190.25", 100)),
    ("ask above buy_target, bid below sell_target: no order", "190.40", 500, "190.45", 500, MSG_LEN, None),
    ("bid at sell_target sells the bid size", "190.75", 120, "190.80", 500, MSG_LEN, ("S", "190.75", 120)),
    ("bid above sell_target sells what is held", "190.90", 900, "190.95", 500, MSG_LEN, ("S", "190.90", 130)),
    ("bid above sell_target when flat: no order", "190.90", 900, "190.95", 500, MSG_LEN, None),
    ("a longer (odd) payload keeps its length and bytes", "190.10", 500, "190.15", 40, 101, ("B", "190.15", 40)),
    ("ask_qty caps a buy far below the target", "189.00", 500, "189.05", 333, 200, ("B", "189.05", 333)),
]


@pytest.mark.parametrize("mode", MODES)
def test_orders_follow_the_rules_and_are_well_formed_frames(mode, make_lab, exchange_for):
    L = make_lab(FRESH_LAB[mode])
    engine.attach(L.engine_iface, parse_config({"engine": ENGINE, "symbols": {"AAPL": AAPL}}), mode=mode)
    ex = exchange_for(L)
    next_id = 1
    for seq, (rule, bid, bq, ask, aq, length, expected) in enumerate(ORDER_SCENARIO, start=1):
        u = Update("AAPL", seq, price(bid), bq, price(ask), aq, time.time_ns())
        sent_payload = ex.send(u, length)
        got = ex.order(timeout=2.0 if expected else NO_ORDER_WAIT_S)
        if expected is None:
            assert got is None, rule
            continue
        side, px, qty = expected
        want = Order(side, "AAPL", seq, price(px), qty, next_id, u.timestamp)
        want_payload = encode_order(want)[:MSG_LEN] + sent_payload[MSG_LEN:]
        assert got == want_payload, rule
        assert decode_order(got) == want, rule
        sent, received = ex.feed_frames()
        assert len(sent) == 1 and len(received) == 1, rule
        order_frame = received[0]
        assert bytes(order_frame) == expected_order_frame(sent[0], want_payload), rule
        assert len(order_frame) == len(sent[0]), rule
        assert checksums_verify(order_frame) == (True, True), rule
        assert order_frame[UDP].chksum != 0, rule
        next_id += 1
    with engine.open_engine(L.engine_iface) as h:
        st = status_dict(h)
        assert st["orders_sent"] == next_id - 1 == 6
        assert st["symbols"]["AAPL"]["stats"]["position"] == 40 + 333


# (rule, symbol config changes, updates as (bid, ask) pairs, reason of the last one)
REFUSALS = [
    ("a crossed quote", {}, [("190.30", "190.20")], "crossed"),
    ("a repeated sequence number", {}, [("190.40", "190.50"), ("190.15", "190.20")], "stale"),
    ("a disabled symbol", {"enabled": False}, [("190.15", "190.20")], "disabled"),
    ("a formula of zero shares", {"base_qty": 0}, [("190.20", "190.25")], "zero_qty"),
    ("a buy outside the collar", {"collar_bps": 100, "reference_price": "180.00"}, [("190.15", "190.20")], "collar"),
    ("a cap with no room for one share", {"max_notional": "100"}, [("190.15", "190.20")], "notional"),
]


@pytest.mark.parametrize("rule,changes,quotes,reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_updates_send_nothing_and_count_their_reason(shared, exchange_for, rule, changes, quotes, reason):
    h = shared.handle
    fresh_symbol(h, "REFUSE", {**AAPL, **changes})
    model = EngineModel(parse_config({"symbols": {"REFUSE": {**AAPL, **changes}}}))
    ex = exchange_for(shared.lab)
    before = counters(h)
    for bid, ask in quotes:
        u = Update("REFUSE", 7, price(bid), 100, price(ask), 100, time.time_ns())  # same seq each time
        verdict = model.expect(u)
        ex.send(u)
        assert ex.order(timeout=NO_ORDER_WAIT_S) is None
    assert verdict.reason == reason
    changed = diff(before, counters(h))
    assert changed.get(f"reject {reason}") == 1
    assert "orders" not in changed


def test_unknown_symbol_is_counted_and_gets_no_order(shared, exchange_for):
    h = shared.handle
    ex = exchange_for(shared.lab)
    before = counters(h)
    ex.send(Update("NOSUCH", 1, price("1.00"), 1, price("1.01"), 1, 0))
    assert ex.order(timeout=NO_ORDER_WAIT_S) is None
    assert diff(before, counters(h), feed_only=True) == {"updates": 1, "reject unknown_symbol": 1}


# -- other traffic passes --------------------------------------------------------


def test_ping_crosses_the_attached_interface(shared):
    L, h = shared.lab, shared.handle
    before = counters(h)
    icmp = lab.lab_socket(L, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        icmp.settimeout(2)
        ident = os.getpid() & 0xFFFF
        icmp.sendto(bytes(ICMP(type=8, id=ident, seq=1) / b"hft-tui lab ping"), (L.engine_ip, 0))
        deadline = time.monotonic() + 2
        reply = None
        while reply is None and time.monotonic() < deadline:
            pkt = IP(icmp.recv(2048))
            if pkt.src == L.engine_ip and ICMP in pkt and pkt[ICMP].type == 0 and pkt[ICMP].id == ident:
                reply = pkt
    finally:
        icmp.close()
    assert reply is not None and bytes(reply[ICMP].payload) == b"hft-tui lab ping"
    assert diff(before, counters(h)).get("passed", 0) >= 1


def test_tcp_connection_crosses_the_attached_interface(shared):
    L, h = shared.lab, shared.handle
    before = counters(h)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((L.engine_ip, 0))
    server.listen(1)
    server.settimeout(5)

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    t = threading.Thread(target=echo)
    t.start()
    client = lab.lab_socket(L, socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.settimeout(5)
        client.connect((L.engine_ip, server.getsockname()[1]))
        client.sendall(b"order entry session")
        assert client.recv(100) == b"ORDER ENTRY SESSION"
    finally:
        client.close()
        t.join()
        server.close()
    assert diff(before, counters(h)).get("passed", 0) >= 3  # SYN, data, ACKs, FIN...


# -- control -----------------------------------------------------------------------


def test_kill_switch_stops_orders_at_the_next_packet_and_resume_restarts_them(shared, exchange_for):
    h = shared.handle
    fresh_symbol(h, "KILLME", AAPL)
    ex = exchange_for(shared.lab)
    first = counters(h)["orders"] + 1

    def buy(seq: int) -> bytes | None:
        ex.send(Update("KILLME", seq, price("190.20"), 100, price("190.25"), 100, seq))
        return ex.order(timeout=2.0 if h.maps.kill() == 0 else NO_ORDER_WAIT_S)

    assert decode_order(buy(1)).order_id == first
    h.kill()
    try:
        before = counters(h)
        assert buy(2) is None
        assert buy(3) is None
        assert diff(before, counters(h), feed_only=True) == {"updates": 2, "reject kill": 2}
    finally:
        h.resume()
    assert decode_order(buy(4)).order_id == first + 1


def test_config_change_applies_to_the_next_packet_without_reloading(shared, exchange_for):
    h = shared.handle
    fresh_symbol(h, "RETUNE", AAPL)
    ex = exchange_for(shared.lab)
    prog_before = h.xdp().prog_id
    ex.send(Update("RETUNE", 1, price("190.30"), 100, price("190.35"), 500, 1))
    assert ex.order(timeout=NO_ORDER_WAIT_S) is None  # above 190.25
    h.set_symbol("RETUNE", {"buy_target": "190.40"})
    ex.send(Update("RETUNE", 2, price("190.30"), 100, price("190.35"), 500, 2))
    o = decode_order(ex.order())
    assert (o.side, o.price, o.qty) == ("B", price("190.35"), 100 + 10 * 5)
    assert h.xdp().prog_id == prog_before == status_dict(h)["prog_id"]


def test_position_never_exceeds_max_position_and_position_limit_is_counted(shared, exchange_for):
    h = shared.handle
    fresh_symbol(h, "CAPPED", {**AAPL, "max_position": 250})
    ex = exchange_for(shared.lab)
    before = counters(h)
    sizes = []
    for seq in range(1, 7):
        ex.send(Update("CAPPED", seq, price("190.20"), 100, price("190.25"), 1000, seq))
        got = ex.order(timeout=2.0 if seq <= 3 else NO_ORDER_WAIT_S)
        sizes.append(decode_order(got).qty if got else None)
    assert sizes == [100, 100, 50, None, None, None]
    _cfg, st = h.maps.read_symbol("CAPPED")
    assert st.position == 250 == st.bought
    changed = diff(before, counters(h))
    assert changed["reject position_limit"] == 3 and changed["orders"] == 3


# -- the simulator against the engine ------------------------------------------

SIM_SYMBOLS = {
    # A throttle (fewer orders) and a notional cap (smaller ones): still checked.
    "SIMA": {**AAPL, "rate_per_sec": 200, "burst": 10},
    "SIMB": {**AAPL, "buy_target": "50.00", "sell_target": "50.40", "max_notional": "20000"},
    "SIMC": {**AAPL, "buy_target": "10.00", "sell_target": "10.20", "base_qty": 7, "scale_qty": 3, "max_position": 60},
}


def test_kernel_stats_equal_what_the_simulator_saw(shared):
    h = shared.handle
    for name, values in SIM_SYMBOLS.items():
        fresh_symbol(h, name, values)
    start = h.snapshot()
    before = start.totals.order_seq
    config = parse_config({"engine": ENGINE, "symbols": SIM_SYMBOLS})
    summary = Simulator(shared.lab, config, seed=11).run(4000, rate=0)
    assert summary.invalid_orders == 0, summary.invalid_examples
    assert summary.warnings == []
    assert summary.updates_sent == 4000
    assert summary.buys > 0 and summary.sells > 0
    snap = h.snapshot()
    assert snap.totals.order_seq - before == summary.orders_received
    assert (summary.first_order_id, summary.last_order_id) == (before + 1, snap.totals.order_seq)
    for limit in ("throttle", "notional"):  # the limits bit, and the checks still held
        assert snap.rejects[limit] > start.rejects[limit], limit
    for name in SIM_SYMBOLS:
        st = snap.symbols[name][1]
        seen = summary.symbols[name]
        assert (st.buy_orders, st.sell_orders, st.bought, st.sold, st.position) == (
            seen["buys"],
            seen["sells"],
            seen["bought"],
            seen["sold"],
            seen["position"],
        ), name


def test_lab_feed_command_reports_zero_invalid_orders(shared, tmp_path):
    h = shared.handle
    toml = tmp_path / "feed.toml"
    toml.write_text(
        '[engine]\non_no_trade = "pass"\n'
        "[symbols.CLIA]\nbuy_target = 20.00\nsell_target = 20.30\nbase_qty = 10\nscale_qty = 2\n"
        "max_position = 200\ncollar_bps = 10000\n"
        "[symbols.CLIB]\nbuy_target = 300.00\nsell_target = 300.80\nbase_qty = 5\nmax_position = 40\n"
        "collar_bps = 10000\n"
    )
    for name, values in (
        (
            "CLIA",
            {
                "buy_target": "20.00",
                "sell_target": "20.30",
                "base_qty": 10,
                "scale_qty": 2,
                "max_position": 200,
                "collar_bps": 10000,
            },
        ),
        (
            "CLIB",
            {"buy_target": "300.00", "sell_target": "300.80", "base_qty": 5, "max_position": 40, "collar_bps": 10000},
        ),
    ):
        fresh_symbol(h, name, values)
    before = h.snapshot().totals.order_seq
    n = SHARED_LAB[shared.mode]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hft_tui",
            "lab",
            "feed",
            "--count",
            "10000",
            "--rate",
            "0",
            "--json",
            "--lab",
            str(n),
            "--config",
            str(toml),
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["invalid_orders"] == 0 and out["invalid_reasons"] == {}
    assert out["updates_sent"] == 10000 and out["udp_csum_errors"] == 0
    assert out["warnings"] == []
    assert out["orders_received"] == h.snapshot().totals.order_seq - before > 0
