"""The feed rules, through the real program built for each feed (BPF_PROG_TEST_RUN).

One table per rule, for IEX-TP and for MoldUDP64/ITCH where the rule is
theirs alike (the packet's messages, the channel's sequence), for one feed
where it is that feed's (DEEP's event flags, TOPS's halted flag, i64
prices).  Packets are made with hft_tui.feeds; every order frame is checked
whole (feed_frames.check_order_frame) and every order and reject is also an
event in its ring.
"""

from __future__ import annotations

import struct

import pytest
from feed_frames import bid, feed_harness, iex_frame, itch_frame, offer, skipped
from frames import P, XdpAction

from hft_tui.constants import MAX_MESSAGES
from hft_tui.feeds import iex, itch

BASE = {"buy_target": "100.00", "sell_target": "101.00", "base_qty": 10, "max_order_qty": 1000, "max_position": 100_000}


class Iex:
    name = "iex"
    len_size = 2
    hdr_len = iex.HDR_LEN

    @staticmethod
    def offer(symbol, price, size=100):
        return offer(symbol, price, size)

    @staticmethod
    def bid(symbol, price, size=100):
        return bid(symbol, price, size)

    @staticmethod
    def packet(messages, seq, **kw) -> bytes:
        return iex_frame(messages, seq, **kw)

    @staticmethod
    def other(length=30) -> bytes:
        return skipped(length, b"T")

    @staticmethod
    def block_len_format() -> str:
        return "<H"

    @staticmethod
    def new_session(seq, messages) -> bytes:
        return iex_frame(messages, seq, session=7)


class Itch:
    name = "itch"
    len_size = 2
    hdr_len = itch.HDR_LEN

    @staticmethod
    def offer(symbol, price, size=100):
        return itch.AddOrder("S", symbol, price, size)

    @staticmethod
    def bid(symbol, price, size=100):
        return itch.AddOrder("B", symbol, price, size)

    @staticmethod
    def packet(messages, seq, **kw) -> bytes:
        return itch_frame(messages, seq, **kw)

    @staticmethod
    def other(length=30) -> bytes:
        return skipped(length, b"E")

    @staticmethod
    def block_len_format() -> str:
        return ">H"

    @staticmethod
    def new_session(seq, messages) -> bytes:
        return itch_frame(messages, seq, session="OTHERSES02")


FEEDS = {"iex": Iex, "itch": Itch}


@pytest.fixture(scope="module")
def harnesses():
    with feed_harness("iex") as i, feed_harness("itch") as t:
        yield {"iex": i, "itch": t}


@pytest.fixture(params=list(FEEDS))
def fx(request, harnesses):
    """(feed, harness) for each feed, the engine reset: AAPL buys at or below 100.00."""
    feed, h = FEEDS[request.param], harnesses[request.param]
    h.reset({"AAPL": BASE})
    return feed, h


@pytest.fixture
def iex_h(harnesses):
    h = harnesses["iex"]
    h.reset({"AAPL": BASE})
    return h


def trades(r) -> list[tuple]:
    return [(o.side, o.symbol, o.price, o.qty, o.seq) for o in r.orders]


# -- every message of a packet, in order ------------------------------------------------


def test_every_message_is_decided_in_order_against_the_position_the_earlier_left(fx):
    feed, h = fx
    h.reset({"AAPL": {**BASE, "max_position": 25}, "MSFT": BASE})
    msgs = [
        feed.offer("AAPL", P("99.00")),
        feed.other(),
        feed.offer("MSFT", P("98.00")),
        feed.offer("AAPL", P("99.50")),
    ]
    msgs += [feed.offer("AAPL", P("99.40")), feed.offer("ZZZZ", P("1.00"))]
    r = h.run(feed.packet(msgs, 500))
    # AAPL: 10, then 10, then 5 (max_position 25); the unknown symbol and the other type read past.
    assert trades(r) == [
        ("B", "AAPL", P("99.00"), 10, 500),
        ("B", "MSFT", P("98.00"), 10, 502),
        ("B", "AAPL", P("99.50"), 10, 503),
        ("B", "AAPL", P("99.40"), 5, 504),
    ]
    assert [o.order_id for o in r.orders] == [1, 2, 3, 4]
    assert r.counts == {"updates": 5, "orders": 4, "unknown_symbol": 1}
    assert r.feed == {"packets": 1, "messages": 6}
    assert [(e.kind, e.seq, e.order_id) for e in r.events] == [
        ("order", s, i) for s, i in zip((500, 502, 503, 504), (1, 2, 3, 4))
    ]
    assert (h.state("AAPL").position, h.state("MSFT").position) == (25, 10)


def test_a_bid_is_sold_into_an_offer_is_bought(fx):
    feed, h = fx
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00"), 30), feed.bid("AAPL", P("101.50"), 7)], 1))
    assert trades(r) == [("B", "AAPL", P("99.00"), 10, 1), ("S", "AAPL", P("101.50"), 7, 2)]
    st = h.state("AAPL")
    assert (st.position, st.last_bid, st.last_bid_qty, st.last_ask, st.last_ask_qty) == (3, P("101.50"), 7, 0, 0)


def test_an_unknown_message_type_is_walked_past_by_its_length(fx):
    feed, h = fx
    odd = bytes([0x7A]) + bytes(range(1, 57))  # type 'z', 57 bytes: no feed's layout
    r = h.run(feed.packet([odd, feed.offer("AAPL", P("99.00")), feed.other(1), feed.offer("AAPL", P("99.10"))], 10))
    assert [o.seq for o in r.orders] == [11, 13]
    assert r.counts == {"updates": 2, "orders": 2} and r.feed == {"packets": 1, "messages": 4}


def test_a_block_running_past_the_packet_ends_it_and_the_decisions_before_stand(fx):
    feed, h = fx
    frame = bytearray(feed.packet([feed.offer("AAPL", P("99.00")), feed.other(30), feed.offer("AAPL", P("99.10"))], 20))
    # The second block claims 200 bytes: it runs past the datagram.
    at = len(frame) - (feed.len_size + 30) - (feed.len_size + len_of(feed, feed.offer("AAPL", P("99.10"))))
    struct.pack_into(feed.block_len_format(), frame, at, 200)
    r = h.run(bytes(frame))
    assert trades(r) == [("B", "AAPL", P("99.00"), 10, 20)]
    assert r.counts == {"updates": 1, "orders": 1, "malformed": 1}
    # Only what was read is claimed: another copy of the packet reads the rest.
    assert h.channel().next_seq == 21
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00")), feed.other(30), feed.offer("AAPL", P("99.10"))], 20))
    assert trades(r) == [("B", "AAPL", P("99.10"), 10, 22)]


def len_of(feed, message) -> int:
    return len(message) if isinstance(message, bytes) else len((iex if feed is Iex else itch).encode_message(message))


def test_a_known_type_shorter_than_its_layout_is_malformed_and_the_packet_goes_on(fx):
    feed, h = fx
    short = len_of(feed, feed.offer("AAPL", P("99.00"))) - 1
    cut = (iex if feed is Iex else itch).encode_message(feed.offer("AAPL", P("99.00")))[:short]
    r = h.run(feed.packet([cut, feed.offer("AAPL", P("99.20"))], 30))
    assert trades(r) == [("B", "AAPL", P("99.20"), 10, 31)]
    assert r.counts == {"updates": 1, "orders": 1, "malformed": 1}


def test_128_messages_are_read_the_rest_counted_truncated(fx):
    feed, h = fx
    last = feed.offer("AAPL", P("99.00"))
    r = h.run(feed.packet([feed.other(1)] * (MAX_MESSAGES - 1) + [last], 1000))
    assert trades(r) == [("B", "AAPL", P("99.00"), 10, 1000 + MAX_MESSAGES - 1)]
    assert r.feed == {"packets": 1, "messages": MAX_MESSAGES}
    r = h.run(feed.packet([feed.other(1)] * MAX_MESSAGES + [last, last], 2000))
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {})
    assert r.feed == {"packets": 1, "messages": MAX_MESSAGES, "truncated_packets": 1}


def test_a_heartbeat_is_no_message(fx):
    feed, h = fx
    r = h.run(feed.packet([], 1))
    assert (XdpAction(r.action), r.untouched, r.counts, r.feed) == (
        XdpAction.PASS,
        True,
        {},
        {"packets": 1, "heartbeats": 1},
    )


def test_an_end_of_session_packet_is_no_message(harnesses):
    h = harnesses["itch"]
    h.reset({"AAPL": BASE})
    frame = itch_frame([], 5)
    payload_at = len(frame) - itch.HDR_LEN
    end = bytearray(frame)
    struct.pack_into(">H", end, payload_at + 18, itch.COUNT_END_OF_SESSION)
    r = h.run(bytes(end))
    assert (r.counts, r.feed) == ({}, {"packets": 1, "heartbeats": 1})


# -- the batch: every order of a packet in one frame ----------------------------------


@pytest.mark.parametrize("cap,offers", [(8, 12), (1, 3), (32, 36)])
def test_the_batch_cap_refuses_further_decisions_which_change_nothing(fx, cap, offers):
    feed, h = fx
    h.reset({"AAPL": {**BASE, "base_qty": 1}}, engine={"max_orders_per_packet": cap})
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00") - i, 5) for i in range(offers)], 1))
    orders = r.orders
    assert [o.seq for o in orders] == list(range(1, cap + 1))
    assert [o.order_id for o in orders] == list(range(1, cap + 1))
    assert r.counts == {"updates": offers, "orders": cap, "batch_full": offers - cap}
    assert [e.reason for e in r.events if e.kind == "reject"] == ["batch_full"] * (offers - cap)
    st = h.state("AAPL")
    assert (st.position, st.bought, st.buy_orders, st.pending_buy) == (cap, cap, cap, 0)
    assert h.maps.totals().order_seq == cap


def test_the_frame_grows_to_hold_the_orders_and_shrinks_to_fit_them(fx):
    feed, h = fx
    small = feed.packet([feed.offer("AAPL", P("99.00") - i) for i in range(6)], 1)
    r = h.run(small)
    assert len(r.orders) == 6 and len(r.frame_out) == 42 + 6 * 44 > len(small)
    big = feed.packet([feed.other(200), feed.offer("AAPL", P("98.00"))], 10)
    r = h.run(big)
    assert len(r.orders) == 1 and len(r.frame_out) == 42 + 44 < len(big)


def test_a_packet_without_orders_leaves_unchanged_even_after_growing(fx):
    feed, h = fx
    h.reset({"AAPL": {**BASE, "max_position": 0}})  # every buy refused: position_limit
    frame = feed.packet([feed.offer("AAPL", P("99.00") - i) for i in range(6)], 1)
    r = h.run(frame)
    assert (XdpAction(r.action), r.untouched) == (XdpAction.PASS, True)
    assert r.counts == {"updates": 6, "position_limit": 6}


# -- the channel: duplicates, overlaps, gaps, jumps, sessions -----------------------------


def test_ab_lines_the_first_copy_trades_the_second_is_dropped_whole(fx):
    feed, h = fx
    frame = feed.packet([feed.offer("AAPL", P("99.00")), feed.other()], 500)
    a, b = h.run(frame), h.run(frame)
    assert trades(a) == [("B", "AAPL", P("99.00"), 10, 500)]
    assert (XdpAction(b.action), b.untouched, b.counts, b.feed) == (
        XdpAction.PASS,
        True,
        {},
        {"packets": 1, "dup_packets": 1},
    )
    ch = h.channel()
    assert (ch.packets, ch.messages, ch.dup_packets, ch.next_seq, ch.gaps) == (2, 2, 1, 502, 0)
    assert h.state("AAPL").position == 10


def test_an_overlapping_packet_reads_only_its_new_messages(fx):
    feed, h = fx
    lv = [feed.offer("AAPL", P("99.00") - i) for i in range(5)]
    assert [o.seq for o in h.run(feed.packet(lv, 10)).orders] == [10, 11, 12, 13, 14]
    r = h.run(feed.packet(lv, 12))  # 12..16: 15 and 16 are new
    assert [o.seq for o in r.orders] == [15, 16]
    assert r.counts == {"updates": 2, "orders": 2} and r.feed == {"packets": 1, "messages": 2}
    ch = h.channel()
    assert (ch.next_seq, ch.messages, ch.dup_packets) == (17, 7, 0)


def test_a_gap_is_counted_and_reading_goes_on(fx):
    feed, h = fx
    h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 10))
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 14))  # 11..13 lost
    assert trades(r) == [("B", "AAPL", P("99.00"), 10, 14)]
    h.run(feed.packet([], 20))  # a heartbeat ahead: 15..19 lost too
    ch = h.channel()
    assert (ch.gaps, ch.gap_messages, ch.next_seq) == (2, 3 + 5, 20)


def test_a_channel_jump_beyond_max_seq_jump_is_refused_and_moves_nothing(fx):
    feed, h = fx
    h.reset({"AAPL": BASE}, engine={"max_seq_jump": 1000})
    h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 100))
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 101 + 1001))  # a spoofed jump
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {"seq_jump": 1})
    assert (h.channel().next_seq, h.channel().seq_jumps) == (101, 1)
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 101))
    assert [o.seq for o in r.orders] == [101]
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 102 + 1000))  # at the bound: a gap
    assert [o.seq for o in r.orders] == [1102]
    h.reset({"AAPL": BASE}, engine={"max_seq_jump": 0})  # unlimited
    h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 1))
    assert [o.seq for o in h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 2**60)).orders] == [2**60]


def test_a_channel_reset_by_user_space_takes_the_next_sequence_afresh(fx):
    feed, h = fx
    h.reset({"AAPL": BASE}, engine={"max_seq_jump": 1000})
    h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 100))
    far = feed.packet([feed.offer("AAPL", P("99.00"))], 5_000_000)
    assert h.run(far).counts == {"seq_jump": 1}
    assert h.maps.reset_channel(h.channel())
    assert h.maps.channels(feed.name) == []
    assert [o.seq for o in h.run(far).orders] == [5_000_000]
    assert h.channel().next_seq == 5_000_001


def test_a_new_session_starts_its_channel_and_the_symbols_sequences_afresh(fx):
    feed, h = fx
    h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 1_000_000))
    assert h.state("AAPL").last_seq == 1_000_000
    r = h.run(feed.new_session(1, [feed.offer("AAPL", P("99.00"))]))  # sequence 1 of the next session
    assert trades(r) == [("B", "AAPL", P("99.00"), 10, 1)]
    assert h.state("AAPL").last_seq == 1
    assert len(h.maps.channels(feed.name)) == 2


def test_a_symbol_seen_again_on_the_channel_is_stale_when_its_sequence_went_back(fx):
    # The per-symbol check stays: the channel was reset, the old packet comes again.
    feed, h = fx
    frame = feed.packet([feed.offer("AAPL", P("99.00"))], 50)
    h.run(frame)
    h.maps.reset_channel(h.channel())
    r = h.run(frame)
    assert r.counts == {"updates": 1, "stale": 1}
    assert [(e.kind, e.reason) for e in r.events] == [("reject", "stale")]


# -- IEX's own rules ---------------------------------------------------------------------------


def test_a_deep_level_in_transition_is_counted_and_not_read(iex_h):
    r = iex_h.run(iex_frame([offer("AAPL", P("99.00"), flags=0), offer("AAPL", P("99.10"))], 1))
    assert [o.seq for o in r.orders] == [2]
    assert r.feed == {"packets": 1, "messages": 2, "in_transition": 1}
    assert iex_h.state("AAPL").updates == 1


def test_a_level_of_size_zero_never_trades(iex_h):
    r = iex_h.run(iex_frame([offer("AAPL", P("99.00"), 0), bid("AAPL", P("101.50"), 0)], 1))
    assert (XdpAction(r.action), r.counts, r.events) == (XdpAction.PASS, {}, [])
    assert iex_h.state("AAPL").updates == 0


PRICES = [
    ("negative", -1),
    ("negative, large", -(2**63)),
    ("one past a u32", 2**32),
    ("the largest i64", 2**63 - 1),
]


@pytest.mark.parametrize("price", [p for _, p in PRICES], ids=[n for n, _ in PRICES])
def test_a_price_the_engine_cannot_hold_is_refused(iex_h, price):
    r = iex_h.run(iex_frame([offer("AAPL", price), iex.QuoteUpdate("AAPL", P("98.00"), 10, price, 10)], 1))
    assert (XdpAction(r.action), r.untouched) == (XdpAction.PASS, True)
    assert r.counts == {"updates": 2, "price_range": 2}
    assert [(e.kind, e.reason) for e in r.events] == [("reject", "price_range")] * 2


def test_the_largest_u32_price_is_one_the_engine_holds(iex_h):
    iex_h.reset({"AAPL": {**BASE, "buy_target": "429496.7295", "sell_target": "0", "collar_bps": 10000}})
    (o,) = iex_h.run(iex_frame([offer("AAPL", 2**32 - 1)], 1)).orders
    assert o.price == 2**32 - 1


def test_a_quote_flagged_halted_is_refused(iex_h):
    quote = iex.QuoteUpdate("AAPL", P("98.00"), 10, P("99.00"), 10, flags=iex.FLAG_HALTED)
    r = iex_h.run(iex_frame([quote], 1, tops=True))
    assert r.counts == {"updates": 1, "halted": 1}
    assert iex_h.state("AAPL").last_ask == P("99.00")  # market data kept: the book is real


HALTING = [("H", True), ("O", True), ("P", True), ("T", False)]


@pytest.mark.parametrize("status,halts", HALTING, ids=[s for s, _ in HALTING])
def test_a_trading_status_halts_until_trading(iex_h, status, halts):
    r = iex_h.run(iex_frame([iex.TradingStatus("AAPL", status), offer("AAPL", P("99.00"))], 1))
    if halts:
        assert r.counts == {"updates": 1, "halted": 1}
        r = iex_h.run(iex_frame([iex.TradingStatus("AAPL", "T"), offer("AAPL", P("99.00"))], 3))
    assert [o.seq for o in r.orders] == [4 if halts else 2]


@pytest.mark.parametrize("state,halts", [("H", True), ("P", True), ("Q", True), ("T", False)], ids=["H", "P", "Q", "T"])
def test_an_itch_trading_action_halts_until_trading(harnesses, state, halts):
    h = harnesses["itch"]
    h.reset({"AAPL": BASE})
    add = itch.AddOrder("S", "AAPL", P("99.00"), 100)
    r = h.run(itch_frame([itch.TradingAction("AAPL", state), add], 1))
    assert r.counts == ({"updates": 1, "halted": 1} if halts else {"updates": 1, "orders": 1})
    r = h.run(itch_frame([itch.TradingAction("AAPL", "T"), add], 3))
    assert [o.seq for o in r.orders] == [4]


def test_a_status_of_an_unknown_symbol_changes_nothing(iex_h):
    r = iex_h.run(iex_frame([iex.TradingStatus("ZZZZ", "H"), offer("AAPL", P("99.00"))], 1))
    assert [o.seq for o in r.orders] == [2]
    assert r.counts == {"updates": 1, "orders": 1}


def test_a_quiet_symbol_far_apart_on_its_channel_is_no_sequence_jump(fx):
    # On a channel feed a symbol's sequence is the channel's: between two of its
    # messages the channel may carry millions.  The channel's bound holds for all.
    feed, h = fx
    h.reset({"AAPL": BASE}, engine={"max_seq_jump": 1000})
    h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 1))
    seq = 2
    for _ in range(30):  # 3,000 messages of other kinds, each packet within the channel's bound
        h.run(feed.packet([feed.other(1)] * 100, seq))
        seq += 100
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00"))], seq))
    assert trades(r) == [("B", "AAPL", P("99.00"), 10, seq)]
    assert h.state("AAPL").last_seq == seq == 3002
