"""The exchange simulator's pieces: packing, the market walk, the sent log,
the order checks, the measurements and the command line.

The checker is fed orders built with protocol.encode_order, the way the
engine writes them, so each invalid reason is shown on the one field it is
about.  The simulator against the real engine is in test_lab_engine.py.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from dataclasses import replace

import pytest

from hft_tui import cli, lab
from hft_tui.config import load_config, parse_config
from hft_tui.constants import MSG_LEN, OFFSETS
from hft_tui.paths import DEMO_CONFIG
from hft_tui.protocol import Order, Update, encode_order, encode_update, parse_price
from hft_tui.simulator import (
    UPDATE,
    EngineStart,
    FeedSummary,
    MarketWalk,
    OrderChecker,
    RttRecorder,
    SentLog,
    SymbolStart,
    config_warnings,
    pack_update,
    percentile,
    read_udp_snmp,
    walk_shape,
)

pytestmark = pytest.mark.pure  # no root, no kernel, but for the tests marked kernel

DEMO = load_config(DEMO_CONFIG)
CHECKER_LAB = 19  # one of this module's lab numbers; only ever checked to be down
COUNTERS_LAB = 18  # brought up to read a lab's own UDP counters


# -- packing ---------------------------------------------------------------

PACKED = [
    Update("AAPL", 1, parse_price("190.20"), 300, parse_price("190.25"), 400, 1_700_000_000_123_456_789),
    Update("BRK.B", 2**64 - 1, 0, 0, 2**32 - 1, 2**32 - 1, 0),
    Update("A", 7, 1, 1, 2, 2, 2**64 - 1),
]


@pytest.mark.parametrize("u", PACKED, ids=[u.symbol for u in PACKED])
def test_fast_packer_writes_exactly_what_protocol_encodes(u):
    buf = bytearray(MSG_LEN + 3)
    pack_update(buf, 3, u.symbol.encode().ljust(8), u.seq, u.bid, u.bid_qty, u.ask, u.ask_qty, u.timestamp)
    assert bytes(buf[3:]) == encode_update(u)


def test_fast_packer_is_one_update_long_at_the_header_offsets():
    assert UPDATE.size == MSG_LEN
    fields = UPDATE.unpack(encode_update(PACKED[0]))
    assert fields[-1] == struct.unpack_from("!Q", encode_update(PACKED[0]), OFFSETS["timestamp"])[0]


# -- the market ------------------------------------------------------------


def walk_updates(seed: int, n: int, names=None, config=DEMO):
    w = MarketWalk(names or list(config.symbols), config, seed)
    return [(w.names[k], bid, bq, ask, aq) for k, bid, bq, ask, aq in (w.step() for _ in range(n))]


def test_walk_is_the_same_for_the_same_seed_and_differs_for_another():
    assert walk_updates(7, 500) == walk_updates(7, 500)
    assert walk_updates(7, 500) != walk_updates(8, 500)


def test_walk_quotes_are_never_crossed_on_the_tick_grid_with_a_spread_of_a_few_ticks():
    for name, bid, _bq, ask, _aq in walk_updates(3, 20_000):
        tick = DEMO.symbols[name].tick_size
        assert 0 < bid < ask
        assert 1 <= (ask - bid) // tick <= 4 and (ask - bid) % tick == 0
        assert bid % tick == DEMO.symbols[name].buy_target % tick


def test_walk_sizes_stay_within_one_and_a_quarter_max_order_qty():
    for name, _bid, bq, _ask, aq in walk_updates(4, 20_000):
        top = walk_shape(DEMO.symbols[name]).max_size
        assert top == DEMO.symbols[name].max_order_qty * 5 // 4
        assert 1 <= bq <= top and 1 <= aq <= top


@pytest.mark.parametrize("name", sorted(DEMO.symbols))
def test_walk_reaches_both_targets_often_so_the_engine_trades_both_ways(name):
    p = DEMO.symbols[name]
    quotes = [q for q in walk_updates(5, 40_000) if q[0] == name]
    buys = sum(ask <= p.buy_target for _, _, _, ask, _ in quotes) / len(quotes)
    sells = sum(bid >= p.sell_target for _, bid, _, _, _ in quotes) / len(quotes)
    assert 0.05 < buys < 0.5 and 0.05 < sells < 0.5


@pytest.mark.parametrize("name", sorted(DEMO.symbols))
def test_walk_reverts_to_the_midpoint_of_the_targets(name):
    p = DEMO.symbols[name]
    mids = [(bid + ask) / 2 for n, bid, _, ask, _ in walk_updates(6, 40_000) if n == name]
    center = (p.buy_target + p.sell_target) / 2
    assert abs(sum(mids) / len(mids) - center) < (p.sell_target - p.buy_target) / 4
    assert max(mids) - min(mids) < 6 * (p.sell_target - p.buy_target)


def test_walk_quotes_stay_u32_prices_at_the_top_of_the_range():
    cfg = parse_config({"symbols": {"TOP": {"buy_target": "429496.00", "sell_target": "429496.7000"}}})
    for _name, bid, _bq, ask, _aq in walk_updates(1, 2000, config=cfg):
        assert 0 < bid < ask <= 2**32 - 1


def test_walk_of_a_symbol_without_targets_still_quotes():
    cfg = parse_config({"symbols": {}})
    for _name, bid, _bq, ask, _aq in walk_updates(1, 1000, ["ZZZ"], cfg):
        assert 0 < bid < ask


# -- the sent log ------------------------------------------------------------


def sent_log(first_seq: int, updates: list[Update], slots: int = 8) -> SentLog:
    log = SentLog(first_seq, slots)
    buf = b"".join(encode_update(u) for u in updates)
    log.add(memoryview(buf), len(updates))
    return log


def test_sent_log_finds_an_update_by_its_sequence_number():
    ups = [Update("AAPL", 10 + i, i, i, i + 1, i, i) for i in range(5)]
    log = sent_log(10, ups)
    assert [log.get(u.seq) for u in ups] == ups


@pytest.mark.parametrize("seq", [9, 15, 0, 2**64 - 1])
def test_sent_log_knows_nothing_it_did_not_send(seq):
    log = sent_log(10, [Update("AAPL", 10 + i, i, i, i + 1, i, i) for i in range(5)])
    assert log.get(seq) is None


def test_sent_log_forgets_updates_older_than_its_slots_across_the_wrap():
    ups = [Update("AAPL", 1 + i, i, i, i + 1, i, i) for i in range(13)]
    log = sent_log(1, ups[:6])
    log.add(memoryview(b"".join(encode_update(u) for u in ups[6:])), 7)
    assert [log.get(s) for s in range(1, 6)] == [None] * 5
    assert [log.get(s) for s in range(6, 14)] == ups[5:]


# -- the order checks --------------------------------------------------------

AAPL = DEMO.symbols["AAPL"]
BUY_UPDATE = Update("AAPL", 1, parse_price("190.15"), 500, parse_price("190.20"), 500, 111)  # buy 150
SELL_UPDATE = Update("AAPL", 2, parse_price("190.80"), 120, parse_price("190.85"), 500, 222)  # sell 120
IDLE_UPDATE = Update("AAPL", 3, parse_price("190.40"), 500, parse_price("190.50"), 500, 333)
SENT = [BUY_UPDATE, SELL_UPDATE, IDLE_UPDATE]

GOOD_BUY = Order("B", "AAPL", 1, parse_price("190.20"), 150, 1, 111)
GOOD_SELL = Order("S", "AAPL", 2, parse_price("190.80"), 120, 2, 222)


def check(orders, config=DEMO, start=None, raw=None):
    checker = OrderChecker(config, sent_log(1, SENT), start)
    for o in orders:
        checker.check(encode_order(o))
    for payload in raw or []:
        checker.check(payload)
    return checker


def bad_magic(order: Order) -> bytes:
    buf = bytearray(encode_order(order))
    buf[OFFSETS["magic"]] ^= 0xFF
    return bytes(buf)


# (rule, orders, raw payloads, expected reasons)
CHECKS = [
    ("a buy and a sell by the rules are valid", [GOOD_BUY, GOOD_SELL], [], {}),
    ("a payload that is not an order: format", [], [bad_magic(GOOD_BUY)], {"format": 1}),
    ("an update echoed back is not an order: format", [], [encode_update(BUY_UPDATE)], {"format": 1}),
    ("a datagram of another length: length", [], [encode_order(GOOD_BUY, MSG_LEN + 4)], {"length": 1}),
    ("ids that skip: gap", [GOOD_BUY, replace(GOOD_SELL, order_id=3)], [], {"gap": 1}),
    ("an id seen already: out of order", [GOOD_BUY, replace(GOOD_SELL, order_id=1)], [], {"out of order": 1}),
    ("a sequence number never sent: unknown update", [replace(GOOD_BUY, seq=99)], [], {"unknown update": 1}),
    ("another symbol on a sent seq: unknown update", [replace(GOOD_BUY, symbol="MSFT")], [], {"unknown update": 1}),
    ("a timestamp not echoed: timestamp", [replace(GOOD_BUY, timestamp=5)], [], {"timestamp": 1}),
    (
        "a second order for one update: duplicate order",
        [GOOD_BUY, replace(GOOD_BUY, order_id=2)],
        [],
        {"duplicate order": 1},
    ),
    (
        "an order on an idle quote: unexpected order",
        [GOOD_BUY, Order("B", "AAPL", 3, IDLE_UPDATE.ask, 100, 2, 333)],
        [],
        {"unexpected order": 1},
    ),
    ("a sell where the rule buys: side", [replace(GOOD_BUY, side="S")], [], {"side": 1, "position": 1}),
    ("a buy not at the ask: price", [replace(GOOD_BUY, price=parse_price("190.19"))], [], {"price": 1}),
    ("a buy of other than the formula: qty", [replace(GOOD_BUY, qty=151)], [], {"qty": 1}),
    (
        "a sell when flat: unexpected order and position",
        [replace(GOOD_SELL, order_id=1)],
        [],
        {"unexpected order": 1, "position": 1},
    ),
]


@pytest.mark.parametrize("rule,orders,raw,reasons", CHECKS, ids=[c[0] for c in CHECKS])
def test_checker_flags_each_broken_rule(rule, orders, raw, reasons):
    checker = check(orders, raw=raw)
    assert checker.reasons == reasons
    assert checker.invalid == sum(reasons.values())
    assert checker.orders == len(orders) + len(raw)


def test_checker_counts_buys_sells_and_the_position():
    c = check([GOOD_BUY, GOOD_SELL])
    aapl = c.counts["AAPL"]
    assert (aapl.buys, aapl.sells, aapl.bought, aapl.sold, aapl.position) == (1, 1, 150, 120, 30)
    assert (c.first_id, c.last_id) == (1, 2)


def test_checker_continues_from_the_engines_state():
    start = EngineStart(last_order_id=41, symbols={"AAPL": SymbolStart(position=5000, last_seq=0)})
    c = check([replace(GOOD_BUY, order_id=42)], start=start)
    assert c.reasons == {"unexpected order": 1, "position": 1}  # 5000 held: position_limit
    c = check([replace(GOOD_SELL, order_id=42)], start=start)
    assert c.reasons == {} and c.counts["AAPL"].position == 4880


def test_checker_wants_the_id_after_the_engines_last_one():
    start = EngineStart(last_order_id=41)
    assert check([GOOD_BUY], start=start).reasons == {"out of order": 1}
    assert check([replace(GOOD_BUY, order_id=43)], start=start).reasons == {"gap": 1}


@pytest.mark.parametrize("qty,reasons", [(1, {}), (52, {}), (53, {"qty": 1}), (150, {"qty": 1})])
def test_checker_only_bounds_the_quantity_under_a_notional_cap(qty, reasons):
    # 10000 $ of AAPL at 190.20 is 52 shares at most.
    capped = replace(DEMO, symbols={"AAPL": replace(AAPL, max_notional=parse_price("10000"))})
    assert check([replace(GOOD_BUY, qty=qty)], config=capped).reasons == reasons


def test_config_warnings_name_what_the_engine_runs_differently():
    start = EngineStart(
        params={"AAPL": AAPL, "MSFT": replace(DEMO.symbols["MSFT"], base_qty=1)},
        engine_max_notional=DEMO.engine.max_notional,
    )
    warnings = config_warnings(DEMO, start, ["AAPL", "MSFT", "NVDA"])
    assert len(warnings) == 2
    assert "MSFT" in warnings[0] and "other parameters" in warnings[0]
    assert "NVDA" in warnings[1] and "not in the engine" in warnings[1]
    assert config_warnings(DEMO, None, ["AAPL"]) == []
    assert config_warnings(DEMO, replace(start, feed_port=9001), ["AAPL"], 9000) == [
        "the engine's feed port is 9001, updates go to 9000"
    ]


# -- measurements ------------------------------------------------------------


@pytest.mark.parametrize(
    "values,q,expected",
    [
        ([], 50, 0),
        ([5], 99.9, 5),
        ([1, 2, 3, 4], 50, 2),
        ([1, 2, 3, 4], 75, 3),
        (list(range(1, 1001)), 99.9, 999),
        (list(range(1, 1001)), 99, 990),
        (list(range(1, 1001)), 100, 1000),
    ],
)
def test_percentile_is_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_rtt_keeps_the_maximum_and_a_bounded_sample():
    r = RttRecorder(limit=100, seed=1)
    for ns in range(1000, 1_001_000, 1000):
        r.add(ns)
    assert len(r.values) == 100 and r.seen == 1000
    s = r.summary_us()
    assert s["max"] == 1000.0 and set(s) == {"p50", "p99", "p999", "max"}
    assert 1 <= s["p50"] <= 1000


def net_namespace() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@pytest.mark.kernel  # a real lab (netns + veth): root
def test_the_labs_udp_counters_are_read_inside_the_lab_and_the_caller_stays_put(make_lab):
    L = make_lab(COUNTERS_LAB)
    home = net_namespace()
    assert lab.in_namespace(net_namespace, L) == os.stat(L.netns_path).st_ino != home
    assert net_namespace() == home
    # Only the network namespace changes: the engine's pins stay where they were.
    assert lab.in_namespace(lambda: os.stat("/sys/fs/bpf").st_dev, L) == os.stat("/sys/fs/bpf").st_dev
    before = lab.in_namespace(read_udp_snmp, L)
    with lab.lab_socket(L) as sock:
        sock.sendto(b"x", (L.exchange_ip, 9))
    after = lab.in_namespace(read_udp_snmp, L)
    assert after["OutDatagrams"] == before["OutDatagrams"] + 1


@pytest.mark.kernel  # a real lab (netns + veth): root
def test_an_error_inside_the_lab_is_raised_to_the_caller(make_lab):
    L = make_lab(COUNTERS_LAB)

    def connect_to_nobody() -> None:
        with socket.socket() as sock:
            sock.connect((L.exchange_ip, 9))

    with pytest.raises(ConnectionRefusedError):
        lab.in_namespace(connect_to_nobody, L)
    down = lab.Lab.numbered(CHECKER_LAB)
    lab.down(down, quiet=True)
    with pytest.raises(FileNotFoundError):
        lab.in_namespace(net_namespace, down)  # no namespace to enter


SUMMARY_KEYS = {
    "updates_sent",
    "orders_received",
    "invalid_orders",
    "invalid_reasons",
    "buys",
    "sells",
    "first_order_id",
    "last_order_id",
    "rtt_us",
    "rate",
    "duration_s",
    "udp_csum_errors",
}


def test_summary_has_every_field_the_brief_names_and_is_json():
    s = FeedSummary(
        10,
        2,
        1,
        {"qty": 1},
        1,
        1,
        1,
        2,
        {"p50": 1.0, "p99": 2.0, "p999": 3.0, "max": 4.0},
        10.0,
        1.0,
        0,
        invalid_examples=["qty: x"],
    )
    d = json.loads(json.dumps(s.as_dict()))
    assert set(d) >= SUMMARY_KEYS
    text = s.text()
    assert "invalid orders   1 (qty: 1)" in text and "p99.9 3.0" in text


# -- the command line: bad input is one line and changes nothing ------------


@pytest.mark.kernel  # the lab feed verb needs root
@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["--rate", "-5"], 2, "-5 is below 0"),
        (["--count", "ten"], 2, "'ten' is not a whole number"),
        (["--lab", "0"], 2, "a lab number is 1..250"),
        (["--port", "70000"], 2, "a port is 1..65535"),
        (["--duration", "0"], 2, "must be above 0"),
        (["--first-seq", "0"], 2, "must be at least 1"),
        (["--config", "/nonexistent/x.toml"], 1, "config file /nonexistent/x.toml not found"),
        (["--lab", str(CHECKER_LAB)], 1, f"lab hft-lab-{CHECKER_LAB} is not up"),
        (["--lab", str(CHECKER_LAB), "--symbols", "TOO-LONG-NAME"], 1, "invalid symbol"),
        (["--format", "fix"], 2, "invalid choice: 'fix'"),
        (["--batch", "0"], 2, "must be at least 1"),
        (["--gap-rate", "1.5"], 2, "is not a share of packets"),
        (["--lab", str(CHECKER_LAB), "--ab"], 1, "hft1 has no packet sequence"),
        (["--lab", str(CHECKER_LAB), "--batch", "2"], 1, "hft1 carries 1..1 messages a packet"),
        (["--lab", str(CHECKER_LAB), "--format", "itch", "--batch", "129"], 1, "itch carries 1..128 messages"),
        (["--lab", str(CHECKER_LAB), "--format", "itch", "--vlan", "4095"], 1, "a VLAN id is 1..4094"),
        (["--lab", str(CHECKER_LAB), "--format", "itch", "--group", "10.0.0.1"], 1, "not an IPv4 multicast group"),
        (["--lab", str(CHECKER_LAB), "--pcap-out", "/nonexistent/x.pcap"], 1, "/nonexistent does not exist"),
    ],
)
def test_bad_feed_arguments_get_one_line_and_no_traceback(argv, code, message, capsys):
    lab.down(lab.Lab.numbered(CHECKER_LAB), quiet=True)
    assert cli.main(["lab", "feed", *argv]) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    if code == 1:
        assert err.count("\n") == 1 and err.startswith("hft-tui: error: ")
