"""The engine on a hostile network (issue 14, the kernel's half), through the real program.

Each test performs the attack and shows it fail:
  * anyone can trade it: a feed packet from outside feed_sources (or from a
    MAC outside feed_source_macs) is counted foreign_source and read no further;
    a frame to another host's MAC (a promiscuous NIC) is not the feed either;
  * one packet locks a symbol out: a sequence jump beyond max_seq_jump is
    refused and leaves the last sequence where it was; an operator reset
    (maps.reset_seq: the config's seq_epoch) takes the next sequence afresh,
    without user space writing the kernel's state;
  * one packet kills trading: a zero-size or far-below bid does not move the
    mark, so it can neither collapse the PnL nor latch the loss limit.
"""

from __future__ import annotations

import pytest
from feed_frames import GATEWAY, GROUP, GROUP_MAC, bid, feed_harness, iex_frame, offer
from frames import ENGINE_MAC, EXCHANGE_MAC, LAB, P, XdpAction, update_frame
from scapy.layers.l2 import Ether

from hft_tui.constants import KILL_OFF
from hft_tui.errors import MapsError
from hft_tui.maps import FeedSources
from hft_tui.protocol import Update

BASE = {"buy_target": "100.00", "sell_target": "101.00", "base_qty": 100, "max_position": 10_000}
U64_MAX = 2**64 - 1


@pytest.fixture(scope="module")
def hft1():
    with feed_harness("hft1") as h:
        yield h


@pytest.fixture(scope="module")
def iex_h():
    with feed_harness("iex") as h:
        yield h


ASK = P("99.00")


def update(h, bid_px=0, bid_qty=0, ask=ASK, ask_qty=100, *, seq, src=None, smac=None, dmac=None, symbol="AAPL"):
    frame = update_frame(Update(symbol, seq, bid_px, bid_qty, ask, ask_qty))
    if src or smac or dmac:
        pkt = Ether(frame)
        pkt.src = smac or pkt.src
        pkt.dst = dmac or pkt.dst
        pkt["IP"].src = src or pkt["IP"].src
        del pkt["IP"].chksum, pkt["UDP"].chksum
        frame = bytes(pkt)
    return h.run(frame)


# -- anyone can trade it -------------------------------------------------------------------

SOURCES = FeedSources(sources=(f"{LAB.exchange_ip}/32", "10.20.0.0/16"))
FOREIGN = [
    ("another host of the lab's network", {"src": "198.18.20.99"}),
    ("a host next to an allowed network", {"src": "10.21.0.1"}),
    ("a spoofed broadcast source", {"src": "255.255.255.255"}),
]


@pytest.mark.parametrize("sender", [s for _, s in FOREIGN], ids=[n for n, _ in FOREIGN])
def test_a_feed_packet_from_outside_feed_sources_is_not_traded(hft1, sender):
    hft1.reset({"AAPL": BASE}, gateway=None, sources=SOURCES)
    r = update(hft1, seq=1, **sender)
    assert (XdpAction(r.action), r.untouched) == (XdpAction.PASS, True)
    assert (r.counts, r.events, r.feed) == ({"foreign_source": 1}, [], {"foreign_source": 1})
    assert hft1.state("AAPL").updates == 0
    assert hft1.maps.feed_counts().foreign_source >= 1


@pytest.mark.parametrize("sender", [{}, {"src": "10.20.255.254"}], ids=["the exchange", "an allowed network"])
def test_a_feed_packet_from_feed_sources_trades(hft1, sender):
    hft1.reset({"AAPL": BASE}, sources=SOURCES)
    assert len(update(hft1, seq=1, **sender).orders) == 1


def test_the_source_mac_must_be_one_of_feed_source_macs_too(hft1):
    hft1.reset({"AAPL": BASE}, sources=FeedSources(sources=SOURCES.sources, macs=("02:00:00:00:00:77", EXCHANGE_MAC)))
    r = update(hft1, seq=1, smac="02:00:00:00:00:66")  # the right address from the wrong host
    assert r.counts == {"foreign_source": 1}
    assert len(update(hft1, seq=2).orders) == 1
    assert hft1.maps.read_feed_sources().macs == ("02:00:00:00:00:77", EXCHANGE_MAC)


def test_the_source_check_comes_before_the_feed_is_read(iex_h):
    # A malformed segment from outside: counted foreign, never malformed.
    iex_h.reset({"AAPL": BASE}, sources=SOURCES)
    frame = bytearray(iex_frame([bid("AAPL", P("101.00"))], 1, src="192.0.2.1"))
    frame[-40] ^= 0xFF
    r = iex_h.run(bytes(frame))
    assert (r.counts, r.feed) == ({"foreign_source": 1}, {"foreign_source": 1})
    assert iex_h.maps.channels("iex") == []


OTHER_HOST = {"dst": "198.18.20.77", "dmac": "02:00:00:00:77:77"}


@pytest.mark.parametrize("gateway", [GATEWAY, None], ids=["to the gateway", "reflected"])
def test_a_frame_to_another_hosts_mac_is_not_the_feed(iex_h, gateway):
    # A promiscuous NIC (tcpdump, a bridge port, a macvlan parent) hands XDP frames meant for
    # other hosts: one to the feed port is someone else's data, and a reflected order would
    # leave as that host, from its MAC and address (the review's probe).
    iex_h.reset({"AAPL": BASE}, gateway=gateway)
    r = iex_h.run(iex_frame([offer("AAPL", P("99.00"))], 1, **OTHER_HOST))
    assert (XdpAction(r.action), r.untouched, r.counts, r.events) == (XdpAction.PASS, True, {}, [])
    assert r.feed == {"not_for_us": 1}
    assert iex_h.maps.channels("iex") == [] and iex_h.state("AAPL").updates == 0


DESTINATIONS = [
    ("the interface's MAC", {"dst": LAB.engine_ip, "dmac": ENGINE_MAC}),
    ("a multicast group", {"dst": GROUP, "dmac": GROUP_MAC}),
    ("broadcast", {"dst": "255.255.255.255", "dmac": "ff:ff:ff:ff:ff:ff"}),
]


@pytest.mark.parametrize("to", [d for _, d in DESTINATIONS], ids=[n for n, _ in DESTINATIONS])
def test_a_frame_to_our_mac_a_group_or_broadcast_is_the_feed(iex_h, to):
    iex_h.reset({"AAPL": BASE})
    r = iex_h.run(iex_frame([offer("AAPL", P("99.00"))], 1, **to))
    assert [o.seq for o in r.orders] == [1] and "not_for_us" not in r.feed


def test_an_hft1_update_to_another_hosts_mac_is_not_traded(hft1):
    hft1.reset({"AAPL": BASE}, gateway=None)  # reflection, the interface's MAC known
    r = update(hft1, seq=1, dmac=OTHER_HOST["dmac"])
    assert (XdpAction(r.action), r.untouched, r.counts, r.feed) == (XdpAction.PASS, True, {}, {"not_for_us": 1})
    assert len(update(hft1, seq=2).orders) == 1


@pytest.mark.parametrize("mac", ["01:00:5e:01:01:01", "00:00:00:00:00:00", "02:00:00:00:14"])
def test_the_interfaces_mac_must_be_a_unicast_one(hft1, mac):
    with pytest.raises(MapsError, match="the interface's MAC"):
        hft1.maps.write_route(None, iface_mac=mac)


def test_without_feed_sources_any_sender_trades(hft1):
    hft1.reset({"AAPL": BASE}, sources=FeedSources())
    assert len(update(hft1, seq=1, src="203.0.113.9").orders) == 1


# -- one packet locks a symbol out ---------------------------------------------------------


def test_a_sequence_jump_is_refused_and_the_last_sequence_stays(hft1):
    hft1.reset({"AAPL": BASE}, engine={"max_seq_jump": 1000})
    update(hft1, seq=10)
    r = update(hft1, seq=U64_MAX)  # the packet: every later update would be stale
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {"updates": 1, "seq_jump": 1})
    assert [(e.kind, e.reason, e.seq) for e in r.events] == [("reject", "seq_jump", U64_MAX)]
    st = hft1.state("AAPL")
    assert (st.last_seq, st.last_ask) == (10, P("99.00"))  # nothing of it recorded
    assert len(update(hft1, seq=11).orders) == 1
    assert update(hft1, seq=11 + 1001).counts == {"updates": 1, "seq_jump": 1}
    assert len(update(hft1, seq=11 + 1000).orders) == 1  # at the bound


def test_the_first_update_sets_the_sequence_whatever_it_is(hft1):
    hft1.reset({"AAPL": BASE}, engine={"max_seq_jump": 1000})
    assert len(update(hft1, seq=7_000_000_000).orders) == 1  # joined mid-session
    assert hft1.state("AAPL").last_seq == 7_000_000_000


def test_max_seq_jump_zero_bounds_nothing(hft1):
    hft1.reset({"AAPL": BASE}, engine={"max_seq_jump": 0})
    update(hft1, seq=1)
    assert len(update(hft1, seq=U64_MAX - 1).orders) == 1


def test_an_operator_reset_takes_the_next_sequence_afresh(hft1):
    hft1.reset({"AAPL": BASE}, engine={"max_seq_jump": 0})
    update(hft1, seq=U64_MAX)  # locked out: every later sequence is stale ...
    assert update(hft1, seq=5).counts == {"updates": 1, "stale": 1}
    cfg_before = hft1.maps.read_symbol("AAPL")[0]
    epoch = hft1.maps.reset_seq("AAPL")  # ... until the operator resets it
    cfg_after = hft1.maps.read_symbol("AAPL")[0]
    assert epoch == cfg_before.seq_epoch + 1 == cfg_after.seq_epoch
    assert hft1.state("AAPL").last_seq == U64_MAX  # the kernel's state was not written
    assert len(update(hft1, seq=5).orders) == 1
    st = hft1.state("AAPL")
    assert (st.last_seq, st.seq_epoch) == (5, epoch)
    assert update(hft1, seq=5).counts == {"updates": 1, "stale": 1}  # and then on, as ever


def test_a_parameter_change_resets_no_sequence(hft1):
    hft1.reset({"AAPL": BASE})
    update(hft1, seq=50)
    hft1.maps.reset_seq("AAPL")
    update(hft1, seq=10)  # taken afresh
    hft1.set_symbol("AAPL", {**BASE, "base_qty": 5})  # a whole config write keeps the epoch
    assert update(hft1, seq=9).counts == {"updates": 1, "stale": 1}


def test_resetting_an_unknown_symbol_is_one_clear_error(hft1):
    from hft_tui.errors import MapsError

    hft1.reset({"AAPL": BASE})
    with pytest.raises(MapsError, match="symbol MSFT is not configured"):
        hft1.maps.reset_seq("MSFT")


# -- one packet kills trading ----------------------------------------------------------------


def holding(h, **engine):
    """100 AAPL bought at 100.00 with the bid at 100.00: a flat PnL (session reference 100.00)."""
    h.reset({"AAPL": BASE}, engine=engine)
    (o,) = update(h, P("100.00"), 100, P("100.00"), 100, seq=1).orders
    assert (o.side, o.qty) == ("B", 100) and h.maps.totals().pnl == 0


MARK_ATTACKS = [
    ("a bid of 1 with size 0", (1, 0)),
    ("a good bid with size 0", (P("99.90"), 0)),
    ("a bid far below the collar", (P("50.00"), 1000)),
    ("a bid of 1 with a size", (1, 1)),
]


@pytest.mark.parametrize("bid_px,bid_qty", [a for _, a in MARK_ATTACKS], ids=[n for n, _ in MARK_ATTACKS])
def test_a_bid_that_is_no_market_does_not_move_the_mark(hft1, bid_px, bid_qty):
    holding(hft1, loss_limit="10")
    r = update(hft1, bid_px, bid_qty, P("200.00"), 100, seq=2)
    assert (r.counts, r.events) == ({"updates": 1}, [])
    st = hft1.state("AAPL")
    assert (st.mark, st.pnl, st.last_bid, st.last_bid_qty) == (P("100.00"), 0, bid_px, bid_qty)
    assert (hft1.maps.kill(), hft1.maps.totals().pnl) == (KILL_OFF, 0)


def test_a_real_bid_within_the_collar_moves_the_mark(hft1):
    holding(hft1, loss_limit="10")
    r = update(hft1, P("99.50"), 10, P("200.00"), 100, seq=2)  # -$50: past the loss limit
    assert [(e.kind, e.reason) for e in r.events] == [("kill", "loss_limit")]
    assert (hft1.state("AAPL").mark, hft1.maps.totals().pnl) == (P("99.50"), -P("50"))


def test_reference_price_wins_over_the_sessions(hft1):
    hft1.reset({"AAPL": {**BASE, "reference_price": "60.00", "collar_bps": 1000}})
    update(hft1, P("100.00"), 100, P("100.00"), 100, seq=1)  # session reference 100.00; the config's 60.00
    assert hft1.state("AAPL").mark == P("100.00")  # above a reference's collar is not "far below"
    update(hft1, P("55.00"), 10, P("200.00"), 100, seq=2)  # within 10% of 60.00, far below 100.00
    assert hft1.state("AAPL").mark == P("55.00")
    update(hft1, P("53.00"), 10, P("200.00"), 100, seq=3)  # below 54.00
    assert hft1.state("AAPL").mark == P("55.00")


def test_on_a_feed_a_zero_size_bid_level_cannot_move_the_mark(iex_h):
    iex_h.reset({"AAPL": BASE})
    # The session's reference from a two-sided view (a bid alone is none), and the mark.
    iex_h.run(iex_frame([offer("AAPL", P("100.05")), bid("AAPL", P("100.00"), 10)], 1))
    iex_h.run(iex_frame([bid("AAPL", 1, 0)], 3))
    assert iex_h.state("AAPL").mark == P("100.00")
