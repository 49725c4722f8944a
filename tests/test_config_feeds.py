"""The feed, its senders, the gateway and the journal keys of [engine]:
each rule a table of values and the one line a bad value gets.

Pure: nothing here needs root or the kernel.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from hft_tui.config import (
    ATTACH_ONLY_KEYS,
    FEEDS,
    MAX_FEED_SOURCE_MACS,
    MAX_FEED_SOURCES,
    MAX_ORDERS_PER_PACKET,
    ConfigError,
    EngineParams,
    FeedParams,
    Gateway,
    JournalParams,
    engine_params,
    load_config,
    parse_config,
    refuse_attach_only_keys,
)
from hft_tui.protocol import U64_MAX

pytestmark = pytest.mark.pure


def engine(**keys) -> dict:
    return {"engine": keys}


def refused(data: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    text = str(exc.value)
    assert "\n" not in text
    return text


# -- the decided config of P2, whole ---------------------------------------------

DECIDED = """\
[engine]
feed = "iex"
feed_port = 9000
feed_addr = "239.1.1.1"
feed_sources = ["198.18.0.2/32"]
feed_source_macs = ["aa:bb:cc:dd:ee:ff"]
max_orders_per_packet = 8
max_seq_jump = 1000000
journal_max_mb = 1024
journal_reject_rows_per_s = 5000

[engine.gateway]
ip = "198.18.0.3"
port = 9100
mac = "02:00:00:00:00:03"
src_ip = "198.18.0.1"
src_port = 9000
"""


def test_the_decided_config_loads_whole(tmp_path):
    path = tmp_path / "feed.toml"
    path.write_text(DECIDED)
    c = load_config(path)
    assert c.feed == FeedParams(
        feed="iex",
        feed_addr=IPv4Address("239.1.1.1"),
        feed_sources=(IPv4Network("198.18.0.2/32"),),
        feed_source_macs=("aa:bb:cc:dd:ee:ff",),
    )
    assert not c.feed.open_feed
    assert c.gateway == Gateway(
        ip=IPv4Address("198.18.0.3"),
        port=9100,
        mac="02:00:00:00:00:03",
        src_ip=IPv4Address("198.18.0.1"),
        src_port=9000,
    )
    assert c.gateway.resolved
    assert (c.engine.feed_port, c.engine.max_orders_per_packet, c.engine.max_seq_jump) == (9000, 8, 1_000_000)
    assert c.journal == JournalParams(journal_max_mb=1024, journal_reject_rows_per_s=5000)


def test_without_the_new_keys_the_engine_is_todays_an_open_hft1_feed_reflecting_orders():
    c = parse_config({})
    assert c.feed == FeedParams(feed="hft1", feed_addr=None, feed_sources=None, feed_source_macs=None)
    assert c.feed.open_feed and c.gateway is None
    assert (c.engine.max_orders_per_packet, c.engine.max_seq_jump) == (8, 1_000_000)
    assert c.feed.to_toml_values() == {
        "feed": "hft1",
        "feed_addr": None,
        "feed_sources": None,
        "feed_source_macs": None,
    }


# -- feed -------------------------------------------------------------------------


@pytest.mark.parametrize("name", FEEDS)
def test_every_feed_is_a_choice(name):
    assert parse_config(engine(feed=name)).feed.feed == name


@pytest.mark.parametrize("value", ["IEX", "iex-tops", "", 1, ["iex"]])
def test_an_unknown_feed_is_refused_naming_the_three(value):
    assert "engine: feed: " in refused(engine(feed=value))
    assert "is not one of hft1, iex, itch" in refused(engine(feed=value))


# -- feed_addr: a host's IPv4 address or a multicast group ------------------------

GOOD_FEED_ADDRS = [("239.1.1.1", "multicast group"), ("198.18.0.1", "unicast"), ("224.0.0.251", "link-local group")]


@pytest.mark.parametrize("text,_what", GOOD_FEED_ADDRS, ids=[w for _, w in GOOD_FEED_ADDRS])
def test_feed_addr_is_unicast_or_multicast(text, _what):
    assert parse_config(engine(feed_addr=text)).feed.feed_addr == IPv4Address(text)


BAD_FEED_ADDRS = [
    ("0.0.0.0", "feed_addr: 0.0.0.0 is the unspecified address"),
    ("255.255.255.255", "feed_addr: 255.255.255.255 is the broadcast address"),
    ("240.0.0.1", "feed_addr: 240.0.0.1 is a reserved address (240/4)"),
    ("239.1.1", "feed_addr: '239.1.1' is not an IPv4 address"),
    ("239.1.1.1/32", "feed_addr: '239.1.1.1/32' is not an IPv4 address"),
    ("ff02::1", "feed_addr: ff02::1 is an IPv6 address; the engine reads IPv4 only"),
    ("feed.example", "feed_addr: 'feed.example' is not an IPv4 address"),
    (3925934337, "feed_addr: give an IPv4 address as a string in quotes"),
]


@pytest.mark.parametrize("value,message", BAD_FEED_ADDRS, ids=[repr(v) for v, _ in BAD_FEED_ADDRS])
def test_a_bad_feed_addr_is_one_line(value, message):
    text = refused(engine(feed_addr=value))
    assert text.startswith("engine: ") and message in text


# -- feed_sources: IPv4 CIDRs, at most MAX_FEED_SOURCES ----------------------------

GOOD_SOURCES = [
    (["198.18.0.2/32"], ["198.18.0.2/32"]),
    (["198.18.0.2"], ["198.18.0.2/32"]),  # a bare address is one host
    (["10.0.0.0/8", "198.18.0.0/24"], ["10.0.0.0/8", "198.18.0.0/24"]),
    ([f"10.0.{i}.0/24" for i in range(MAX_FEED_SOURCES)], [f"10.0.{i}.0/24" for i in range(MAX_FEED_SOURCES)]),
]


@pytest.mark.parametrize("value,nets", GOOD_SOURCES, ids=[repr(v)[:40] for v, _ in GOOD_SOURCES])
def test_feed_sources_are_networks(value, nets):
    feed = parse_config(engine(feed_sources=value)).feed
    assert [str(n) for n in feed.feed_sources] == nets and not feed.open_feed


BAD_SOURCES = [
    ("198.18.0.2/32", "feed_sources: give a list in brackets"),
    ([], "feed_sources: an empty list lets no sender trade; leave feed_sources out instead"),
    (["198.18.0.2/24"], "feed_sources: 198.18.0.2/24 has host bits set (the network is 198.18.0.0/24)"),
    (["198.18.0.0/33"], "feed_sources: '198.18.0.0/33' is not an IPv4 CIDR"),
    (["198.18.0"], "feed_sources: '198.18.0' is not an IPv4 CIDR"),
    (["0.0.0.0/0"], "feed_sources: 0.0.0.0/0 lets any sender trade; leave feed_sources out for an open feed"),
    (["239.1.1.0/24"], "feed_sources: 239.1.1.0/24 is no sender's network"),
    (["2001:db8::/32"], "feed_sources: 2001:db8::/32 is IPv6"),
    ([1], "feed_sources: give an IPv4 CIDR such as '198.18.0.2/32' as a string"),
    (["198.18.0.2", "198.18.0.2/32"], "feed_sources: 198.18.0.2/32 is listed twice"),
    (
        [f"10.0.{i}.0/24" for i in range(MAX_FEED_SOURCES + 1)],
        f"feed_sources: {MAX_FEED_SOURCES + 1} entries, the engine holds at most {MAX_FEED_SOURCES}",
    ),
]


@pytest.mark.parametrize("value,message", BAD_SOURCES, ids=[repr(v)[:40] for v, _ in BAD_SOURCES])
def test_bad_feed_sources_are_one_line(value, message):
    text = refused(engine(feed_sources=value))
    assert text.startswith("engine: ") and message in text


# -- MAC addresses (feed_source_macs, gateway mac) --------------------------------

GOOD_MACS = [("aa:bb:cc:dd:ee:fe", "aa:bb:cc:dd:ee:fe"), ("02:00:00:00:00:03", "02:00:00:00:00:03")]
GOOD_MACS += [("AA:BB:CC:DD:EE:FE", "aa:bb:cc:dd:ee:fe")]  # one spelling: lowercase


@pytest.mark.parametrize("text,mac", GOOD_MACS)
def test_a_mac_is_six_hex_pairs_kept_in_one_spelling(text, mac):
    assert parse_config(engine(feed_source_macs=[text])).feed.feed_source_macs == (mac,)
    gw = parse_config(engine(gateway={"ip": "198.18.0.3", "port": 9100, "mac": text})).gateway
    assert gw.mac == mac


BAD_MACS = [
    ("aa:bb:cc:dd:ee", "is not a MAC address (six hex pairs joined by ':')"),
    ("aa-bb-cc-dd-ee-fe", "is not a MAC address"),
    ("aabb.ccdd.eefe", "is not a MAC address"),
    ("gg:bb:cc:dd:ee:fe", "is not a MAC address"),
    ("00:00:00:00:00:00", "00:00:00:00:00:00 is the all-zeros MAC"),
    ("ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff is the broadcast MAC"),
    ("01:00:5e:01:01:01", "01:00:5e:01:01:01 is a multicast MAC"),
]


@pytest.mark.parametrize("value,message", BAD_MACS, ids=[v for v, _ in BAD_MACS])
def test_a_bad_mac_is_one_line_in_either_place(value, message):
    assert message in refused(engine(feed_source_macs=[value]))
    assert refused(engine(feed_source_macs=[value])).startswith("engine: feed_source_macs: ")
    text = refused(engine(gateway={"ip": "198.18.0.3", "port": 9100, "mac": value}))
    assert text.startswith("engine.gateway: mac: ") and message in text


def test_feed_source_macs_are_at_most_four_distinct():
    macs = [f"02:00:00:00:00:{i:02x}" for i in range(MAX_FEED_SOURCE_MACS + 1)]
    assert parse_config(engine(feed_source_macs=macs[:-1])).feed.feed_source_macs == tuple(macs[:-1])
    assert f"at most {MAX_FEED_SOURCE_MACS}" in refused(engine(feed_source_macs=macs))
    assert "is listed twice" in refused(engine(feed_source_macs=["02:00:00:00:00:01", "02:00:00:00:00:01"]))
    assert "an empty list checks nothing" in refused(engine(feed_source_macs=[]))


# -- [engine.gateway] --------------------------------------------------------------


def gateway(**keys) -> dict:
    return engine(gateway={"ip": "198.18.0.3", "port": 9100, **keys})


def test_a_gateway_needs_only_ip_and_port():
    gw = parse_config(gateway()).gateway
    assert gw == Gateway(ip=IPv4Address("198.18.0.3"), port=9100) and not gw.resolved
    assert gw.as_dict() == {"ip": "198.18.0.3", "port": 9100, "mac": None, "src_ip": None, "src_port": None}


BAD_GATEWAYS = [
    ({"gateway": "198.18.0.3"}, "[engine.gateway] must be a table"),
    ({"gateway": {"port": 9100}}, "engine.gateway: ip is required"),
    ({"gateway": {"ip": "198.18.0.3"}}, "engine.gateway: port is required"),
    ({"gateway": {"ip": "239.1.1.1", "port": 9100}}, "engine.gateway: ip: 239.1.1.1 is a multicast address"),
    ({"gateway": {"ip": "255.255.255.255", "port": 9100}}, "ip: 255.255.255.255 is the broadcast address"),
    ({"gateway": {"ip": "0.0.0.0", "port": 9100}}, "ip: 0.0.0.0 is the unspecified address"),
    ({"gateway": {"ip": "127.0.0.1", "port": 9100}}, "ip: 127.0.0.1 is a loopback address"),
    ({"gateway": {"ip": "2001:db8::1", "port": 9100}}, "ip: 2001:db8::1 is an IPv6 address"),
    ({"gateway": {"ip": "198.18.0.3", "port": 0}}, "engine.gateway: port: 0 is below 1"),
    ({"gateway": {"ip": "198.18.0.3", "port": 65536}}, "engine.gateway: port: 65536 is above 65535"),
    ({"gateway": {"ip": "198.18.0.3", "port": "fix"}}, "engine.gateway: port: 'fix' is not a whole number"),
    ({"gateway": {"ip": "198.18.0.3", "port": 9100, "src_port": 70000}}, "src_port: 70000 is above 65535"),
    ({"gateway": {"ip": "198.18.0.3", "port": 9100, "src_ip": "224.0.0.1"}}, "src_ip: 224.0.0.1 is a multicast"),
    ({"gateway": {"ip": "198.18.0.3", "port": 9100, "vlan": 5}}, "engine.gateway: unknown key 'vlan'"),
]


@pytest.mark.parametrize("table,message", BAD_GATEWAYS, ids=[m for _, m in BAD_GATEWAYS])
def test_a_bad_gateway_is_one_line(table, message):
    assert message in refused({"engine": table})


# -- the live keys ------------------------------------------------------------------

GOOD_LIVE = [
    ("max_orders_per_packet", "1", 1),
    ("max_orders_per_packet", MAX_ORDERS_PER_PACKET, MAX_ORDERS_PER_PACKET),
    ("max_seq_jump", "0", 0),  # unlimited
    ("max_seq_jump", U64_MAX, U64_MAX),
]


@pytest.mark.parametrize("key,value,parsed", GOOD_LIVE, ids=[f"{k}={v!r}" for k, v, _ in GOOD_LIVE])
def test_live_feed_keys_parse(key, value, parsed):
    assert getattr(engine_params({key: value}), key) == parsed


BAD_LIVE = [
    ({"max_orders_per_packet": 0}, "max_orders_per_packet: 0 is below 1"),
    ({"max_orders_per_packet": MAX_ORDERS_PER_PACKET + 1}, f"is above {MAX_ORDERS_PER_PACKET}"),
    ({"max_orders_per_packet": "8.5"}, "max_orders_per_packet: '8.5' is not a whole number"),
    ({"max_seq_jump": -1}, "max_seq_jump: -1 is below 0"),
    ({"max_seq_jump": U64_MAX + 1}, f"max_seq_jump: {U64_MAX + 1} is above {U64_MAX}"),
]


@pytest.mark.parametrize("values,message", BAD_LIVE, ids=[repr(v) for v, _ in BAD_LIVE])
def test_bad_live_feed_keys_are_one_line(values, message):
    with pytest.raises(ConfigError) as exc:
        engine_params(values)
    assert str(exc.value).startswith("engine: ") and message in str(exc.value)


# -- the journal keys ----------------------------------------------------------------

BAD_JOURNAL = [
    ({"journal_max_mb": 0}, "journal_max_mb: 0 is below 1"),
    ({"journal_max_mb": "1G"}, "journal_max_mb: '1G' is not a whole number"),
    ({"journal_reject_rows_per_s": -1}, "journal_reject_rows_per_s: -1 is below 0"),
]


@pytest.mark.parametrize("values,message", BAD_JOURNAL, ids=[repr(v) for v, _ in BAD_JOURNAL])
def test_bad_journal_keys_are_one_line(values, message):
    assert message in refused({"engine": values})


def test_journal_keys_parse():
    c = parse_config(engine(journal_max_mb=1, journal_reject_rows_per_s=0))
    assert c.journal == JournalParams(journal_max_mb=1, journal_reject_rows_per_s=0)


# -- the table as a whole --------------------------------------------------------------


def test_an_unknown_engine_key_names_every_known_one():
    text = refused(engine(feed_source=["198.18.0.2/32"]))
    assert "engine: unknown key 'feed_source'" in text
    for key in ("feed_sources", "max_seq_jump", "journal_max_mb", "[engine.gateway]"):
        assert key in text


@pytest.mark.parametrize("key", [*ATTACH_ONLY_KEYS, "gateway.ip", "gateway.mac"])
def test_a_running_engine_refuses_its_attach_only_keys_saying_it_needs_a_reattach(key):
    with pytest.raises(ConfigError) as exc:
        refuse_attach_only_keys({key: "x"})
    assert str(exc.value).startswith(f"engine: {key} is fixed at attach; changing it needs a re-attach")


@pytest.mark.parametrize("key", ["feed_port", "max_orders_per_packet", "max_seq_jump", "rate_per_sec"])
def test_the_live_keys_pass_the_attach_only_check(key):
    refuse_attach_only_keys({key: "1"})


def test_engine_params_recorded_before_the_feed_keys_still_load():
    # Recordings (tests/data) and state of older hft-tui carry the nine keys of before.
    old = {
        "feed_port": 9000,
        "mode": "native",
        "on_no_trade": "pass",
        "update_sample": 64,
        "deadman_ms": 500,
        "rate_per_sec": 0,
        "burst": 0,
        "max_notional": 0,
        "loss_limit": 0,
    }
    p = EngineParams(**old)
    assert (p.max_orders_per_packet, p.max_seq_jump) == (8, 1_000_000)
