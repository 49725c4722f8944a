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
from feed_frames import bid, feed_harness, iex_frame, itch_frame, offer, payload_of, skipped
from frames import P, XdpAction

from hft_tui.constants import IEX, ITCH, MAX_MESSAGES
from hft_tui.errors import ProtocolError
from hft_tui.feeds import iex, itch
from hft_tui.replay.messages import packet_meaning

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

    @staticmethod
    def status(symbol, state):
        return iex.TradingStatus(symbol, state)


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

    @staticmethod
    def status(symbol, state):
        return itch.TradingAction(symbol, state)


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


def test_a_symbol_padded_with_nuls_is_another_symbol_to_the_codec_as_to_the_engine(fx):
    feed, h = fx
    raw = (iex if feed is Iex else itch).encode_message(feed.offer("AAPL", P("99.00")))
    padded = raw.replace(b"AAPL    ", b"AAPL\0\0\0\0")
    assert padded != raw
    r = h.run(feed.packet([padded], 1))
    assert (XdpAction(r.action), r.counts, r.events) == (XdpAction.PASS, {"updates": 1, "unknown_symbol": 1}, [])
    decoded = (iex if feed is Iex else itch).decode_message(padded)
    assert decoded.symbol != "AAPL" and decoded.symbol.startswith("AAPL")  # not AAPL to the model either


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


def test_an_empty_block_is_malformed_and_the_packet_goes_on(fx):
    feed, h = fx
    r = h.run(feed.packet([b"", feed.offer("AAPL", P("99.20"))], 30))
    assert trades(r) == [("B", "AAPL", P("99.20"), 10, 31)]
    assert r.counts == {"updates": 1, "orders": 1, "malformed": 1}
    assert r.feed == {"packets": 1, "messages": 2}
    with pytest.raises(ProtocolError, match="empty"):  # the codec says the same of it
        (iex if feed is Iex else itch).decode_message(b"")


def test_128_messages_are_read_the_rest_counted_truncated(fx):
    feed, h = fx
    last = feed.offer("AAPL", P("99.00"))
    r = h.run(feed.packet([feed.other(1)] * (MAX_MESSAGES - 1) + [last], 1000))
    assert trades(r) == [("B", "AAPL", P("99.00"), 10, 1000 + MAX_MESSAGES - 1)]
    assert r.feed == {"packets": 1, "messages": MAX_MESSAGES}
    r = h.run(feed.packet([feed.other(1)] * MAX_MESSAGES + [feed.status("AAPL", "H"), last], 2000))
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {})
    assert r.feed == {"packets": 1, "messages": MAX_MESSAGES, "truncated_packets": 1}
    # Only what was read is claimed: the two messages past it are the channel's gap, the halt
    # among them never applied (and the replay's model, reading as the engine does, agrees).
    before = h.channel()
    assert before.next_seq == 2000 + MAX_MESSAGES
    r = h.run(feed.packet([feed.offer("AAPL", P("99.10"))], 2000 + MAX_MESSAGES + 2))
    assert [o.seq for o in r.orders] == [2000 + MAX_MESSAGES + 2]
    after = h.channel()
    assert (after.gaps - before.gaps, after.gap_messages - before.gap_messages) == (1, 2)
    m = packet_meaning(feed.name, payload_of(feed.packet([feed.other(1)] * MAX_MESSAGES + [last, last], 1)))
    assert m is not None and len(m.messages) == MAX_MESSAGES


def test_a_packet_whose_sequences_run_past_2_64_is_malformed_and_claims_nothing(fx):
    feed, h = fx
    wraps = feed.packet([feed.offer("AAPL", P("99.00"))], 2**64 - 1)
    r = h.run(wraps)
    assert (XdpAction(r.action), r.counts, r.events) == (XdpAction.PASS, {"malformed": 1}, [])
    assert packet_meaning(feed.name, payload_of(wraps)) is None  # the replay's model reads it so too
    r = h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 1))  # the channel is not locked
    assert [o.seq for o in r.orders] == [1]


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


def test_a_real_gap_beyond_max_seq_jump_stops_the_channel_until_it_is_reset(fx):
    # An outage longer than max_seq_jump looks like a spoofed jump: every later packet is
    # refused too and counted in the channel's seq_jumps (the desk's alert), until user space
    # forgets the channel (the control plane's reset).
    feed, h = fx
    h.reset({"AAPL": BASE}, engine={"max_seq_jump": 1000})
    h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 10))
    for k in range(3):
        assert h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 11 + 1001 + k)).counts == {"seq_jump": 1}
    ch = h.channel()
    assert (ch.next_seq, ch.seq_jumps, ch.as_dict()["seq_jumps"]) == (11, 3, 3)
    assert h.maps.reset_channel(ch)
    assert [o.seq for o in h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 1015)).orders] == [1015]


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


def past_the_end(feed, messages, seq, index) -> bytes:
    """A packet of ``messages`` whose block ``index`` claims more bytes than the datagram holds."""
    frame = bytearray(feed.packet(messages, seq))
    at = 14 + 20 + 8 + feed.hdr_len + sum(feed.len_size + len_of(feed, m) for m in messages[:index])
    struct.pack_into(feed.block_len_format(), frame, at, 1000)
    return bytes(frame)


def test_a_malformed_copy_of_messages_already_read_never_moves_the_channel_back(fx):
    # The review's probe: a resend (or the other line, cut into packets differently) that
    # overlaps what was read, and whose bad block lies in the overlap, gives back nothing
    # below where it found the channel.  Else: a false gap, a late copy read again, messages
    # counted twice.
    feed, h = fx
    offers = [feed.offer("AAPL", P("99.00")) for _ in range(10)]
    assert [o.seq for o in h.run(feed.packet(offers[:5], 10)).orders] == [10, 11, 12, 13, 14]
    r = h.run(past_the_end(feed, offers, 10, 1))  # 10..19, its block of 11 runs past the end
    assert (r.counts, r.feed) == ({"malformed": 1}, {"packets": 1})
    ch = h.channel()
    assert (ch.next_seq, ch.messages, ch.gaps) == (15, 5, 0)
    late = h.run(feed.packet(offers[:5], 10))  # the B line's copy of the first packet
    assert (XdpAction(late.action), late.untouched, late.counts, late.feed) == (
        XdpAction.PASS,
        True,
        {},
        {"packets": 1, "dup_packets": 1},
    )
    r = h.run(feed.packet(offers[5:], 15))  # the next packet of the feed: no gap, read once
    assert [o.seq for o in r.orders] == [15, 16, 17, 18, 19]
    ch = h.channel()
    assert (ch.next_seq, ch.packets, ch.messages, ch.gaps, ch.gap_messages, ch.dup_packets) == (20, 4, 10, 0, 0, 1)


def test_a_malformed_packet_gives_back_only_what_it_claimed_and_never_read(fx):
    # Its new messages from the bad block on go back to the channel (the other line's copy reads
    # them), and leave the channel's message count.
    feed, h = fx
    offers = [feed.offer("AAPL", P("99.00")) for _ in range(10)]
    h.run(feed.packet(offers[:5], 10))
    r = h.run(past_the_end(feed, offers, 10, 7))  # 10..19: 15 and 16 read, 17 runs past the end
    assert [o.seq for o in r.orders] == [15, 16]
    ch = h.channel()
    assert (ch.next_seq, ch.messages, ch.gaps) == (17, 7, 0)
    r = h.run(feed.packet(offers, 10))  # the other line's whole copy: only 17..19 are new
    assert [o.seq for o in r.orders] == [17, 18, 19]
    assert (h.channel().next_seq, h.channel().messages) == (20, 10)


def test_a_malformed_overlap_never_reapplies_a_halt_the_exchange_lifted(fx):
    # The review's second probe: H at 11, T at 13; a malformed copy of 10..19 and then the
    # late B copy of 10..12 must not halt the symbol again.
    feed, h = fx
    first = [feed.offer("AAPL", P("101.00")), feed.status("AAPL", "H"), feed.offer("AAPL", P("101.00"))]
    h.run(feed.packet(first, 10))
    h.run(feed.packet([feed.status("AAPL", "T")], 13))
    assert [o.seq for o in h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 14)).orders] == [14]
    h.run(past_the_end(feed, [feed.offer("AAPL", P("101.00"))] * 10, 10, 1))
    h.run(feed.packet(first, 10))  # the B line's copy of the first packet, late
    assert [o.seq for o in h.run(feed.packet([feed.offer("AAPL", P("99.00"))], 20)).orders] == [20]
    assert h.state("AAPL").halted == 0


# -- trading status by sequence ------------------------------------------------------------


def test_a_status_older_than_the_one_applied_changes_nothing(fx):
    # Two packets claimed on two CPUs are read in either order: the resume (T at 9) read after
    # the halt that followed it (H at 11) must not leave the symbol trading during the halt.
    # One CPU shows it: the channel forgotten in between lets the older packet be read.
    feed, h = fx
    h.run(feed.packet([feed.status("AAPL", "H")], 11))
    h.maps.reset_channel(h.channel())
    r = h.run(feed.packet([feed.status("AAPL", "T"), feed.offer("AAPL", P("99.00"))], 9))
    assert r.counts == {"updates": 1, "halted": 1}
    st = h.state("AAPL")
    assert (st.halted, st.status_seq) == (1, 11)
    r = h.run(feed.packet([feed.status("AAPL", "T"), feed.offer("AAPL", P("99.00"))], 12))  # a newer T
    assert [o.seq for o in r.orders] == [13]
    assert (h.state("AAPL").halted, h.state("AAPL").status_seq) == (0, 12)


def test_an_operator_reset_takes_the_next_status_whatever_its_sequence(fx):
    # After reset-seq (the config's seq_epoch) the order of statuses starts afresh too: a
    # status far ahead (a spoofed one, a feed replayed from its start) cannot pin the state.
    feed, h = fx
    h.run(feed.packet([feed.status("AAPL", "H")], 5000))
    h.maps.reset_channel(h.channel())
    h.maps.reset_seq("AAPL")
    r = h.run(feed.packet([feed.status("AAPL", "T"), feed.offer("AAPL", P("99.00"))], 1))
    assert [o.seq for o in r.orders] == [2]


@pytest.mark.parametrize("new", ["0100000000", "0000000002", "1000000000"])
def test_an_itch_session_is_another_whatever_its_digits_positions(harnesses, new):
    """Sessions whose words cancel in a fold ("0000000001", "0100000000") are two sessions:
    the new one's halt holds, whatever the old one's last status sequence."""
    h = harnesses["itch"]
    h.reset({"AAPL": BASE})
    h.run(itch_frame([itch.AddOrder("B", "AAPL", P("99.00"), 100)], 50, session="0000000001"))
    h.run(itch_frame([itch.TradingAction("AAPL", "T")], 100, session="0000000001"))
    h.run(itch_frame([itch.TradingAction("AAPL", "H")], 60, session=new))
    r = h.run(itch_frame([itch.AddOrder("S", "AAPL", P("99.00"), 100)], 70, session=new))
    assert (XdpAction(r.action), r.counts) == (XdpAction.PASS, {"updates": 1, "halted": 1})


def test_a_new_session_starts_without_the_last_ones_halt(fx):
    # The exchange sends every symbol's status again at a session's start: the old session's
    # halt, and the order of its statuses, are not the new one's.
    feed, h = fx
    h.run(feed.packet([feed.status("AAPL", "T")], 5000))
    h.run(feed.packet([feed.status("AAPL", "H")], 5001))
    r = h.run(feed.new_session(1, [feed.offer("AAPL", P("99.00"))]))
    assert [o.seq for o in r.orders] == [1]
    r = h.run(feed.new_session(2, [feed.status("AAPL", "H"), feed.offer("AAPL", P("99.00"))]))
    assert r.counts == {"updates": 1, "halted": 1}


# -- the collar's reference on one-sided feeds ----------------------------------------------


def test_a_one_sided_message_is_no_reference(fx):
    # The review's probe: joined mid-session, the first message of a symbol a resting bid deep
    # in the book.  It once became the reference, and every offer of the real market was
    # refused collar for the rest of the run (the next session too).
    feed, h = fx
    h.run(feed.packet([feed.bid("AAPL", P("80.00"))], 1))
    assert (h.state("AAPL").session_ref, h.state("AAPL").mark) == (0, 0)
    for seq, px in enumerate(["99.50", "99.90", "99.00"], start=2):  # far from the bid: still no reference
        assert [o.seq for o in h.run(feed.packet([feed.offer("AAPL", P(px))], seq)).orders] == [seq]
    assert h.state("AAPL").session_ref == 0


def test_the_reference_is_the_mid_of_the_last_bid_and_ask_once_both_are_within_the_collar(fx):
    feed, h = fx
    h.reset({"AAPL": {**BASE, "collar_bps": 10}})  # 0.1%
    h.run(feed.packet([feed.offer("AAPL", P("99.50"), 5)], 1))  # one side: no reference, no collar
    assert h.state("AAPL").session_ref == 0
    h.run(feed.packet([feed.bid("AAPL", P("99.40"))], 2))  # both, 0.1% apart: the mid 99.45
    st = h.state("AAPL")
    assert (st.session_ref, st.mark) == (P("99.45"), P("99.40"))
    r = h.run(feed.packet([feed.offer("AAPL", P("99.60")), feed.offer("AAPL", P("99.54"))], 3))
    assert r.counts == {"updates": 2, "collar": 1, "orders": 1}  # 99.60 > 99.45 + 0.1%
    assert [o.seq for o in r.orders] == [4]
    h.run(feed.packet([feed.bid("AAPL", P("90.00"))], 5))  # taken once: a later bid moves it no more
    assert h.state("AAPL").session_ref == P("99.45")


def test_a_crossed_view_is_no_reference(fx):
    feed, h = fx
    h.run(feed.packet([feed.offer("AAPL", P("99.00"), 5), feed.bid("AAPL", P("99.10"))], 1))
    assert h.state("AAPL").session_ref == 0
    h.run(feed.packet([feed.offer("AAPL", P("99.20"), 5)], 3))
    assert h.state("AAPL").session_ref == P("99.15")


def test_reference_price_is_the_collars_reference_from_the_first_message(fx):
    feed, h = fx
    h.reset({"AAPL": {**BASE, "collar_bps": 10, "reference_price": "99.00"}})
    r = h.run(feed.packet([feed.offer("AAPL", P("99.50")), feed.offer("AAPL", P("99.05"))], 1))
    assert r.counts == {"updates": 2, "collar": 1, "orders": 1}
    assert [o.seq for o in r.orders] == [2]


def test_a_new_session_takes_its_own_reference(fx):
    feed, h = fx
    h.reset({"AAPL": {**BASE, "collar_bps": 10}})
    h.run(feed.packet([feed.offer("AAPL", P("99.50"), 5), feed.bid("AAPL", P("99.40"))], 1))
    assert h.state("AAPL").session_ref == P("99.45")
    r = h.run(feed.new_session(1, [feed.offer("AAPL", P("99.90"))]))  # beyond the old session's collar
    assert [o.seq for o in r.orders] == [1]
    assert h.state("AAPL").session_ref == 0


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


PAYLOAD_AT = 14 + 20 + 8  # the UDP payload in a frame without a VLAN tag


@pytest.mark.parametrize("delta", [-1, 1, -100_000], ids=["one short", "one over", "zero"])
def test_an_iex_payload_length_the_datagram_disagrees_with_is_malformed(iex_h, delta):
    # As hft_tui/feeds/iex.py has it: the segment's header and the datagram must agree.
    frame = bytearray(iex_frame([offer("AAPL", P("99.00"))], 1))
    at = PAYLOAD_AT + IEX["IEX_OFF_PAYLOAD_LEN"]
    (length,) = struct.unpack_from("<H", frame, at)
    struct.pack_into("<H", frame, at, max(length + delta, 0))
    r = iex_h.run(bytes(frame))
    assert (XdpAction(r.action), r.untouched, r.counts, r.feed) == (XdpAction.PASS, True, {"malformed": 1}, {})
    assert iex_h.maps.channels("iex") == []
    with pytest.raises(ProtocolError, match="payload length"):
        iex.decode_segment(bytes(frame[PAYLOAD_AT:]))


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


@pytest.mark.parametrize("length", [36, 39])
def test_an_itch_add_with_mpid_shorter_than_its_layout_is_malformed(harnesses, length):
    # 'F' is 40 bytes (the MPID at 36): as hft_tui/feeds/itch.py has it.
    h = harnesses["itch"]
    h.reset({"AAPL": BASE})
    cut = itch.encode_message(itch.AddOrder("S", "AAPL", P("99.00"), 100, mpid="ABCD"))[:length]
    r = h.run(itch_frame([cut, itch.AddOrder("S", "AAPL", P("99.10"), 100)], 1))
    assert [o.seq for o in r.orders] == [2]
    assert r.counts == {"updates": 1, "orders": 1, "malformed": 1}
    with pytest.raises(ProtocolError, match="add order of"):
        itch.decode_message(cut)


@pytest.mark.parametrize("side", ["X", "b", " "])
def test_an_itch_add_whose_side_is_neither_b_nor_s_is_malformed(harnesses, side):
    h = harnesses["itch"]
    h.reset({"AAPL": BASE})
    h.run(itch_frame([itch.AddOrder("S", "AAPL", P("99.00"), 100)], 1))  # holds 10: a bid could sell
    raw = bytearray(itch.encode_message(itch.AddOrder("B", "AAPL", P("101.50"), 100)))
    raw[ITCH["ITCH_ADD_OFF_SIDE"]] = ord(side)
    r = h.run(itch_frame([bytes(raw)], 2))
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {"malformed": 1})
    assert h.state("AAPL").position == 10
    with pytest.raises(ProtocolError, match="side"):
        itch.decode_message(bytes(raw))


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
