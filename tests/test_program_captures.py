"""Real exchange bytes through the real program (BPF_PROG_TEST_RUN).

Every capture of /work/shared/data/feeds (its README says what each frame
holds) goes through the program built for its feed, unchanged or with only
the framing fields the README names rewritten (addresses, port, MoldUDP64
session and sequence).  Each is checked against the published layout: the
fields the program read (the symbol's market data, its trading state), and
where it trades, every field of the order.  Orders go to a gateway (the
captures are multicast: reflected, they could not be answered).
"""

from __future__ import annotations

import pytest
from feed_frames import (
    capture,
    feed_harness,
    iex_frame,
    itch_frame,
    offer,
    payload_of,
    reframed,
)
from frames import P, XdpAction
from scapy.layers.l2 import Dot1Q, Ether

from hft_tui.feeds import iex, itch

IEX_TOPS_PORT, IEX_DEEP_PORT, ITCH_PORT = 10377, 32001, 26477


@pytest.fixture(scope="module")
def iex_h():
    with feed_harness("iex") as h:
        yield h


@pytest.fixture(scope="module")
def itch_h():
    with feed_harness("itch") as h:
        yield h


def segment_of(frame: bytes) -> iex.Segment:
    return iex.decode_segment(payload_of(frame))


def packet_of(frame: bytes) -> itch.MoldPacket:
    return itch.decode_packet(payload_of(frame))


# -- IEX-TP --------------------------------------------------------------------------------


def test_tops_quote_update_buys_at_the_published_ask(iex_h):
    (frame,) = capture("iex-tops-1.6-quote-update.pcap")
    seg = segment_of(frame)
    (quote,) = (iex.decode_message(m) for m in seg.messages)
    # README: ATSG bid 18773 @ 24.19, ask 60677 @ 24.25, flags 0
    assert (quote.symbol, quote.bid_size, quote.bid, quote.ask_size, quote.ask, quote.flags) == (
        "ATSG",
        18773,
        P("24.19"),
        60677,
        P("24.25"),
        0,
    )
    iex_h.reset({"ATSG": {"buy_target": "24.25", "base_qty": 100}}, engine={"feed_port": IEX_TOPS_PORT})
    r = iex_h.run(frame)
    (order,) = r.orders
    assert (order.side, order.symbol, order.price, order.qty, order.order_id) == ("B", "ATSG", P("24.25"), 100, 1)
    assert (order.seq, order.timestamp) == (seg.first_seq, quote.timestamp)
    st = iex_h.state("ATSG")
    assert (st.last_bid, st.last_bid_qty, st.last_ask, st.last_ask_qty) == (P("24.19"), 18773, P("24.25"), 60677)
    assert (st.last_seq, st.position, st.session_ref) == (seg.first_seq, 100, (P("24.19") + P("24.25")) // 2)
    assert r.counts == {"updates": 1, "orders": 1}
    assert r.feed == {"packets": 1, "messages": 1}
    assert iex_h.channel().id == f"{seg.session}/{seg.channel}" and iex_h.channel().next_seq == seg.first_seq + 1


def test_deep_price_levels_a_sell_side_level_is_an_offer_a_buy_side_level_a_bid(iex_h):
    (buy_side,) = capture("iex-deep-1.0-price-level-buy.pcap")
    (sell_side,) = capture("iex-deep-1.0-price-level-sell.pcap")
    bseg, sseg = segment_of(buy_side), segment_of(sell_side)
    (v,), (unh,) = ([iex.decode_message(m) for m in s.messages] for s in (bseg, sseg))
    # README: V buy side 190 @ 202.77, UNH sell side 82 @ 344.14, both event flags 1; one channel
    assert (v.side, v.symbol, v.size, v.price, v.flags) == ("B", "V", 190, P("202.77"), 1)
    assert (unh.side, unh.symbol, unh.size, unh.price, unh.flags) == ("S", "UNH", 82, P("344.14"), 1)
    assert (bseg.session, bseg.channel) == (sseg.session, sseg.channel) and bseg.first_seq < sseg.first_seq
    iex_h.reset(
        {
            "V": {"buy_target": "200.00", "sell_target": "202.00", "base_qty": 190},
            "UNH": {"buy_target": "350.00", "base_qty": 100},
        },
        engine={"feed_port": IEX_DEEP_PORT},
    )
    # V held first: an offer of our own on the capture's channel, just before its sequence.
    setup = iex_frame(
        [offer("V", P("199.00"), 500)],
        bseg.first_seq - 1,
        session=bseg.session,
        channel=bseg.channel,
        dport=IEX_DEEP_PORT,
    )
    assert [(o.side, o.qty) for o in iex_h.run(setup).orders] == [("B", 190)]
    # A bid: the sell rule, at the bid, for what the level shows.
    (sold,) = iex_h.run(buy_side).orders
    assert (sold.side, sold.symbol, sold.price, sold.qty) == ("S", "V", P("202.77"), 190)
    assert (sold.seq, sold.timestamp) == (bseg.first_seq, v.timestamp)
    # An offer: the buy rule, at the offer, for what it shows (82 < base_qty).
    (bought,) = iex_h.run(sell_side).orders
    assert (bought.side, bought.symbol, bought.price, bought.qty) == ("B", "UNH", P("344.14"), 82)
    assert (bought.seq, bought.timestamp) == (sseg.first_seq, unh.timestamp)
    assert (iex_h.state("V").position, iex_h.state("UNH").position) == (0, 82)
    assert [o.order_id for o in (sold, bought)] == [2, 3]
    ch = iex_h.channel()
    assert (ch.gaps, ch.gap_messages, ch.next_seq) == (1, sseg.first_seq - bseg.first_seq - 1, sseg.first_seq + 1)


def test_deep_heartbeat_sends_nothing_and_sets_the_channel(iex_h):
    (frame,) = capture("iex-deep-1.0-heartbeat.pcap")
    seg = segment_of(frame)
    assert seg.heartbeat  # README: message count 0
    iex_h.reset(engine={"feed_port": IEX_DEEP_PORT})
    r = iex_h.run(frame)
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {})
    assert r.feed == {"packets": 1, "heartbeats": 1}
    ch = iex_h.channel()
    assert (ch.id, ch.next_seq, ch.packets, ch.messages) == (f"{seg.session}/{seg.channel}", seg.first_seq, 1, 0)


def test_trading_status_halts_the_symbol_until_it_trades_again(iex_h):
    (frame,) = capture("iex-tops-1.5-trading-status.pcap")
    seg = segment_of(frame)
    (status,) = (iex.decode_message(m) for m in seg.messages)
    assert (status.symbol, status.status) == ("JHMU", "H")  # README: halted
    iex_h.reset({"JHMU": {"buy_target": "30.00"}}, engine={"feed_port": IEX_TOPS_PORT})
    r = iex_h.run(frame)
    assert (XdpAction(r.action), r.counts, r.events) == (XdpAction.PASS, {}, [])
    assert iex_h.state("JHMU").halted == 1
    on_channel = {"session": seg.session, "channel": seg.channel, "tops": True, "dport": IEX_TOPS_PORT}
    quote = iex.QuoteUpdate("JHMU", P("24.00"), 100, P("25.00"), 100)
    r = iex_h.run(iex_frame([quote], seg.first_seq + 1, **on_channel))
    assert (XdpAction(r.action), r.counts) == (XdpAction.PASS, {"updates": 1, "halted": 1})
    assert [(e.kind, e.reason, e.seq) for e in r.events] == [("reject", "halted", seg.first_seq + 1)]
    trading = iex.TradingStatus("JHMU", "T")
    (order,) = iex_h.run(iex_frame([trading, quote], seg.first_seq + 2, **on_channel)).orders
    assert (order.side, order.price, order.seq) == ("B", P("25.00"), seg.first_seq + 3)
    assert iex_h.state("JHMU").halted == 0


def test_security_directory_packet_52_messages_read_none_traded(iex_h):
    (frame,) = capture("iex-tops-1.5-security-directory.pcap")
    seg = segment_of(frame)
    msgs = [iex.decode_message(m) for m in seg.messages]
    quotes = [m for m in msgs if isinstance(m, iex.QuoteUpdate)]
    assert len(msgs) == 52 and len(quotes) == 12 and all(q.bid == q.ask == 0 for q in quotes)  # pre-market
    iex_h.reset({"ZIEXT": {"buy_target": "1000.00", "sell_target": "1000.01"}}, engine={"feed_port": IEX_TOPS_PORT})
    r = iex_h.run(frame)
    assert (XdpAction(r.action), r.untouched) == (XdpAction.PASS, True)
    assert r.counts == {"updates": 12, "unknown_symbol": 11}  # no malformed: every block walked
    assert r.feed == {"packets": 1, "messages": 52}
    st = iex_h.state("ZIEXT")
    assert (st.updates, st.halted, st.last_seq, st.position) == (1, 0, 34135, 0)


def test_trade_report_is_walked_past_by_its_length(iex_h):
    (frame,) = capture("iex-tops-1.5-trade-report.pcap")
    (msg,) = (iex.decode_message(m) for m in segment_of(frame).messages)
    assert isinstance(msg, iex.OtherMessage) and chr(msg.type) == "T"
    iex_h.reset({"ZIEXT": {"buy_target": "1000.00"}}, engine={"feed_port": IEX_TOPS_PORT})
    r = iex_h.run(frame)
    assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {})
    assert r.feed == {"packets": 1, "messages": 1}
    assert iex_h.state("ZIEXT").updates == 0


# -- MoldUDP64 / ITCH 5.0 --------------------------------------------------------------------


def test_add_order_is_a_bid_sold_into_and_the_order_keeps_the_vlan_tag(itch_h):
    (frame,) = capture("itch50-add-order.pcap")
    p = packet_of(frame)
    (add,) = (itch.decode_message(m) for m in p.messages)
    # README: session 000010059B, seq 14757721: IVOO buy 1600 @ 87.39
    assert (p.session, p.seq, add.side, add.symbol, add.shares, add.price) == (
        "000010059B",
        14757721,
        "B",
        "IVOO",
        1600,
        P("87.39"),
    )
    vlan = Ether(frame)[Dot1Q].vlan
    itch_h.reset(
        {"IVOO": {"buy_target": "87.00", "sell_target": "87.30", "base_qty": 300}}, engine={"feed_port": ITCH_PORT}
    )
    held = itch.AddOrder("S", "IVOO", P("86.90"), 300)
    setup = itch_frame([held], p.seq - 1, session=p.session, dport=ITCH_PORT, vlan=vlan)
    assert [(o.side, o.qty) for o in itch_h.run(setup).orders] == [("B", 300)]
    r = itch_h.run(frame)
    (order,) = r.orders
    assert (order.side, order.symbol, order.price, order.qty) == ("S", "IVOO", P("87.39"), 300)
    assert (order.seq, order.timestamp) == (p.seq, add.timestamp)
    out = Ether(r.frame_out)
    assert (out[Dot1Q].vlan, out[Dot1Q].prio) == (vlan, Ether(frame)[Dot1Q].prio)
    assert itch_h.channel().id == "000010059B"


ZEROED = "0.0.0.0"  # the zeroed-framing captures' addresses: rewritten to the lab's


def zeroed(name: str, first_seq: int) -> list[bytes]:
    """A zeroed-framing capture with the README's framing fields written in: the lab's
    addresses, the feed port, a session and consecutive sequences; messages untouched."""
    return [
        reframed(
            f,
            src="198.18.20.2",
            dst="233.54.12.111",
            dport=ITCH_PORT,
            mold_session="TESTSESS01",
            mold_seq=first_seq + i,
        )
        for i, f in enumerate(capture(name))
    ]


def test_add_orders_with_and_without_mpid_offers_are_bought(itch_h):
    plain = zeroed("itch50-add-order-5-zeroed-framing.pcap", 1000)
    mpid = zeroed("itch50-add-order-mpid-5-zeroed-framing.pcap", 1005)
    adds = [itch.decode_message(packet_of(f).messages[0]) for f in plain + mpid]
    assert [(a.side, a.symbol, a.price, a.shares, a.mpid) for a in adds[:2] + adds[5:6]] == [
        ("B", "IVOO", P("87.39"), 1600, None),
        ("S", "RETL", P("7.17"), 100, None),
        ("S", "CASY", P("255.52"), 100, "FLTU"),
    ]
    itch_h.reset(
        {"RETL": {"buy_target": "7.20"}, "CASY": {"buy_target": "300.00"}, "XLF": {"buy_target": "33.00"}},
        engine={"feed_port": ITCH_PORT},
    )
    orders = []
    for f in plain + mpid:
        r = itch_h.run(f)
        if r.action == XdpAction.TX:
            orders += [(o.side, o.symbol, o.price, o.qty, o.seq) for o in r.orders]
    assert orders == [("B", "RETL", P("7.17"), 100, 1001), ("B", "CASY", P("255.52"), 100, 1005)]
    assert itch_h.state("XLF").updates == 2 and itch_h.state("XLF").position == 0  # 33.95 above 33.00


def test_trading_actions_halt_and_the_real_t_resumes(itch_h):
    actions = zeroed("itch50-trading-action-5-zeroed-framing.pcap", 1)
    states = [(a.symbol, a.state) for a in (itch.decode_message(packet_of(f).messages[0]) for f in actions)]
    assert states == [("ZXZZT", "P"), ("ZVZZT", "P"), ("CAML", "H"), ("LTRY", "P"), ("CSMD", "H")]
    (resume,) = capture("itch50-stock-trading-action.pcap")
    p = packet_of(resume)
    assert [(a.symbol, a.state) for _, a in itch.decode_messages(p)] == [("AMC", "T")]
    itch_h.reset({name: {"buy_target": "10.00"} for name in ("ZXZZT", "CAML", "AMC")}, engine={"feed_port": ITCH_PORT})
    for f in actions:
        assert itch_h.run(f).counts == {}
    assert [itch_h.state(s).halted for s in ("ZXZZT", "CAML")] == [1, 1]
    # AMC halted by an action of our own on the real session, then the capture's 'T'.
    on_session = {"session": p.session, "dport": ITCH_PORT}
    itch_h.run(itch_frame([itch.TradingAction("AMC", "H")], p.seq - 2, **on_session))
    r = itch_h.run(itch_frame([itch.AddOrder("S", "AMC", P("9.00"), 100)], p.seq - 1, **on_session))
    assert r.counts == {"updates": 1, "halted": 1}
    itch_h.run(resume)
    assert itch_h.state("AMC").halted == 0
    (order,) = itch_h.run(itch_frame([itch.AddOrder("S", "AMC", P("9.00"), 100)], p.seq + 1, **on_session)).orders
    assert (order.side, order.symbol, order.qty) == ("B", "AMC", 100)


def test_deletes_executions_and_luld_collars_are_walked_past(itch_h):
    frames = capture("itch50-order-delete.pcap") + capture("itch50-order-executed.pcap")
    frames += zeroed("itch50-luld-collar-5-zeroed-framing.pcap", 1)
    kinds = [chr(m.type) for f in frames for _, m in itch.decode_messages(packet_of(f))]
    assert kinds == ["D", "E", "J", "J", "J", "J", "J"]
    itch_h.reset({"ZXZZT": {"buy_target": "100.00"}}, engine={"feed_port": ITCH_PORT})
    for f in frames:
        r = itch_h.run(f)
        assert (XdpAction(r.action), r.untouched, r.counts) == (XdpAction.PASS, True, {})
        assert r.feed == {"packets": 1, "messages": len(packet_of(f).messages)}
    assert itch_h.state("ZXZZT").updates == 0
