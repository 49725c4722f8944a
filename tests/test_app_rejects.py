"""Every reason the kernel refuses an order shows as an alert in the app within 5 s (labs 67 and 154).

MiFID II RTS 6 asks for alerts within five seconds.  Each reason is produced
for real: updates sent from the lab's exchange side to the engine, with a
config that has one symbol per reason, and the reject counted by the kernel
before the alert is awaited.  The reasons only a real feed can give (a halt,
a price beyond the engine's range, more decisions in a packet than its batch
allows) come from an engine built for IEX TOPS (lab 154) fed IEX-TP
segments, which also requires its sender: a packet from another address of
the exchange side is a foreign source.  The one reason that cannot fire while the app
supervises, the dead-man switch, is produced by stopping the app's
supervisor process (SIGSTOP) past the deadline: its alert comes once it runs
again, and the 5 s are counted from then.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time

import pytest
from pyroute2 import IPRoute

from hft_tui.app.app import HftApp
from hft_tui.app.session import EngineSession
from hft_tui.constants import DEFAULT_FEED_PORT, KILL_OFF, OFFSETS, REJECT_REASONS
from hft_tui.demo.lab_session import LabEngine
from hft_tui.feeds import iex
from hft_tui.lab import Lab, in_namespace, lab_socket
from hft_tui.protocol import Update, encode_update

SIZE = (160, 48)
ALERT_WITHIN_S = 5.0
P = 10_000  # $1 in price units

CONFIG = """
[engine]
feed_port = 9000
update_sample = 1
deadman_ms = 500

[symbols.OK]
buy_target = 100.00
base_qty = 1
max_position = 1000000

[symbols.DIS]
buy_target = 100.00
enabled = false

[symbols.POS]
buy_target = 100.00
base_qty = 100
max_order_qty = 100
max_position = 100

[symbols.ZERO]
buy_target = 100.00
base_qty = 0
scale_qty = 0

[symbols.NOTL]
buy_target = 100.00
max_notional = 1

[symbols.THR]
buy_target = 100.00
base_qty = 1
rate_per_sec = 1
burst = 1
max_position = 1000000

[symbols.COL]
buy_target = 100.00
reference_price = 50.00
collar_bps = 100

[symbols.JMP]
buy_target = 100.00
"""
# Engine-wide: a symbol's sequence may jump at most this far (hft1: per symbol).
CONFIG = CONFIG.replace("deadman_ms = 500\n", "deadman_ms = 500\nmax_seq_jump = 1000\n", 1)

IEX_LAB = 154
IEX_CONFIG = f"""
[engine]
feed = "iex"
feed_port = 9000
update_sample = 1
deadman_ms = 500
max_orders_per_packet = 1
feed_sources = ["{Lab.numbered(IEX_LAB).exchange_ip}/32"]

[symbols.HALT]
buy_target = 100.00
base_qty = 1
max_position = 1000000

[symbols.BIG]
buy_target = 100.00

[symbols.B1]
buy_target = 100.00
base_qty = 1
max_position = 1000000

[symbols.B2]
buy_target = 100.00
base_qty = 1
max_position = 1000000
"""
MULTICAST_GROUP = "239.1.1.1"

_seq: dict[str, itertools.count] = {}


def next_seq(symbol: str) -> int:
    return next(_seq.setdefault(symbol, itertools.count(1)))


class Exchange:
    """Sends updates to the engine from the lab's exchange side."""

    def __init__(self, le: LabEngine) -> None:
        self.le = le
        self.sock = lab_socket(le.lab)
        self.sock.bind((le.lab.exchange_ip, 0))

    def send(self, payload: bytes) -> None:
        self.sock.sendto(payload, (self.le.lab.engine_ip, DEFAULT_FEED_PORT))

    def update(
        self, symbol: str, *, ask: int = 99 * P, bid: int = 98 * P, seq: int | None = None, qty: int = 1000
    ) -> int:
        seq = next_seq(symbol) if seq is None else seq
        self.send(encode_update(Update(symbol, seq, bid, qty, ask, qty)))
        return seq

    def multicast(self, symbol: str) -> None:
        """A buy sent to a multicast group: it cannot be answered (no gateway to send the order to)."""
        sock = lab_socket(self.le.lab)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.le.lab.exchange_ip))
            sock.sendto(
                encode_update(Update(symbol, next_seq(symbol), 98 * P, 1000, 99 * P, 1000)),
                (MULTICAST_GROUP, DEFAULT_FEED_PORT),
            )
        finally:
            sock.close()

    def close(self) -> None:
        self.sock.close()


_iex_seq = itertools.count(1)  # the channel's sequence, across the tests of the module (one engine)


class IexExchange(Exchange):
    """Sends IEX-TP segments of TOPS quotes (session 1, channel 1, in sequence)."""

    def segment(self, *quotes: iex.QuoteUpdate, sock: socket.socket | None = None) -> None:
        first = next(_iex_seq)
        for _ in quotes[1:]:
            next(_iex_seq)
        messages = tuple(iex.encode_message(q) for q in quotes)
        seg = iex.encode_segment(iex.Segment(iex.PROTO_TOPS, channel=1, session=1, first_seq=first, messages=messages))
        (sock or self.sock).sendto(seg, (self.le.lab.engine_ip, DEFAULT_FEED_PORT))

    def from_elsewhere(self) -> None:
        """A segment from another address of the exchange side (not in feed_sources)."""
        alias = self.le.lab.exchange_ip.rsplit(".", 1)[0] + ".3"

        def add_alias() -> None:
            with IPRoute() as ipr:
                index = ipr.link_lookup(ifname=self.le.lab.exchange_iface)[0]
                if alias not in [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)]:
                    ipr.addr("add", index=index, address=alias, prefixlen=24)

        in_namespace(add_alias, self.le.lab)
        sock = lab_socket(self.le.lab)
        try:
            sock.bind((alias, 0))
            self.segment(quote("B1"), sock=sock)
        finally:
            sock.close()


def quote(symbol: str, *, ask: int = 99 * P, bid: int = 98 * P, flags: int = 0) -> iex.QuoteUpdate:
    return iex.QuoteUpdate(symbol, bid, 1000, ask, 1000, flags=flags)


# What makes each reason fire: (symbol, what is sent).  A buy is an ask at or
# below the symbol's buy target; 101 is above it (no trade, no decision).
def buy(sym):
    return lambda ex: ex.update(sym)


def stale(ex):
    seq = ex.update("OK", ask=101 * P, bid=100 * P)
    ex.update("OK", ask=101 * P, bid=100 * P, seq=seq)  # the same sequence number again


def malformed(ex):
    payload = bytearray(encode_update(Update("OK", next_seq("OK"), 98 * P, 10, 99 * P, 10)))
    payload[OFFSETS["magic"]] ^= 0xFF  # not our protocol's magic
    ex.send(bytes(payload))


def throttle(ex):
    for _ in range(3):  # a bucket of one token a second
        ex.update("THR")


def position_limit(ex):
    ex.update("POS")  # fills the 100 shares allowed (once)
    ex.update("POS")  # no room left


def seq_jump(ex):
    ex.update("JMP", ask=101 * P, bid=100 * P)  # the first sets the symbol's sequence
    ex.update("JMP", seq=1_000_000)  # far beyond max_seq_jump: refused, the sequence stays


# Engine "hft1" (lab 67) unless named "iex" (lab 154).
PRODUCE = {
    "kill": buy("OK"),  # after ctrl+k
    "disabled": buy("DIS"),
    "unknown_symbol": buy("NOPE"),
    "crossed": lambda ex: ex.update("OK", bid=102 * P, ask=101 * P),
    "position_limit": position_limit,
    "malformed": malformed,
    "zero_qty": buy("ZERO"),
    "notional": buy("NOTL"),
    "throttle": throttle,
    "collar": buy("COL"),
    "stale": stale,
    "deadman": lambda ex: ex.update("OK", ask=101 * P, bid=100 * P),  # with the heartbeat stale
    "seq_jump": seq_jump,
    "no_route": lambda ex: ex.multicast("OK"),
    "halted": lambda ex: ex.segment(quote("HALT", flags=iex.FLAG_HALTED)),
    "price_range": lambda ex: ex.segment(quote("BIG", bid=1 << 40)),  # a buy, on a quote the engine cannot hold
    "batch_full": lambda ex: ex.segment(quote("B1"), quote("B2")),  # one order a packet: the second waits
    "foreign_source": lambda ex: ex.from_elsewhere(),
}
IEX_REASONS = ("halted", "price_range", "batch_full", "foreign_source")


@pytest.fixture(scope="module")
def lab67():
    with LabEngine(67, CONFIG) as le:
        yield le


@pytest.fixture(scope="module")
def lab154():
    with LabEngine(IEX_LAB, IEX_CONFIG) as le:
        yield le


@pytest.fixture
def engine_and_exchange(request, reason):
    """The engine that can give ``reason``, and its exchange side."""
    if reason in IEX_REASONS:
        le = request.getfixturevalue("lab154")
        ex: Exchange = IexExchange(le)
    else:
        le = request.getfixturevalue("lab67")
        ex = Exchange(le)
    yield le, ex
    ex.close()


def rejects(le: LabEngine, reason: str) -> int:
    with le.handle() as h:
        return h.snapshot().rejects[reason]


def alert_text(app: HftApp) -> str:
    return "\n".join(line.plain for line in app.main.query_one("#alerts").lines)


async def wait_until(pilot, predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await pilot.pause(0.05)


def test_the_table_covers_every_reject_reason_of_the_kernel():
    assert set(PRODUCE) == set(REJECT_REASONS.values())


@pytest.mark.parametrize("reason", list(PRODUCE))
async def test_every_reject_reason_shows_as_an_alert_within_5_s(engine_and_exchange, reason):
    le, exchange = engine_and_exchange  # lab 154 for the reasons of a real feed
    app = HftApp(EngineSession(), iface=le.iface, take_over=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.view is not None and app.session.poller.ticks > 1, "supervision", 20)
        with le.handle() as h:
            if h.maps.kill() != KILL_OFF:
                h.resume()  # the last test's app left it killed on its way out
        before = rejects(le, reason)
        if reason == "kill":
            await pilot.press("ctrl+k")
        if reason == "deadman":
            supervisor = app.session.poller.proc.pid
            os.kill(supervisor, signal.SIGSTOP)  # no heartbeat now: the switch stops orders
            try:
                with le.handle() as h:
                    deadline_ns = h.maps.read_global().deadman_ms * 1_000_000
                    give_up = time.monotonic() + 10
                    while time.monotonic_ns() - h.maps.heartbeat() <= deadline_ns + 50_000_000:
                        assert time.monotonic() < give_up, "the heartbeat did not go stale"
                        time.sleep(0.02)
                PRODUCE[reason](exchange)
                give_up = time.monotonic() + 10
                while rejects(le, reason) == before:
                    assert time.monotonic() < give_up, "the kernel did not refuse for the dead-man switch"
                    time.sleep(0.02)
            finally:
                os.kill(supervisor, signal.SIGCONT)
        else:
            PRODUCE[reason](exchange)
            await wait_until(pilot, lambda: rejects(le, reason) > before, f"the kernel counting {reason}", 10)
        # From the reject counted by the kernel (for the dead-man, from the supervisor running again):
        await wait_until(
            pilot, lambda: f"reject {reason}" in alert_text(app), f"the alert 'reject {reason}'", ALERT_WITHIN_S
        )
