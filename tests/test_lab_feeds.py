"""The lab speaks the exchange feeds, end to end against the real engine.

Each test brings up its own lab (numbers 120..139), attaches the engine for
the feed with the lab's gateway, runs the simulator (hft_tui.simulator) and
asks of what it collected at the gateway: zero invalid orders, orders at
all, and the engine's own counters for the run's channel equal to what the
simulator did to the feed (packets sent twice, gaps made).  The simulator
checks every order frame (checksums, source MAC, route, VLAN, the batch
cap, ids) and every order against the strategy model and the feed's rules
(test_lab_feeds_units.py shows each check catching its fault).
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import threading
import time
import tomllib
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest

from hft_tui import engine, lab
from hft_tui.config import gateway_params, load_config, parse_config
from hft_tui.feeds import itch
from hft_tui.maps import EngineMaps
from hft_tui.packet_io import PacketSocket, mark_foreign_macs
from hft_tui.paths import DEMO_CONFIG, pin_dir
from hft_tui.protocol import Order, encode_order
from hft_tui.simulator import Simulator
from hft_tui.simulator.checker import OrderChecker, SentLog
from hft_tui.simulator.options import FeedOptions
from hft_tui.simulator.receiver import OrderReceiver
from hft_tui.simulator.sender import exchange_socket
from hft_tui.simulator.stats import RttRecorder
from hft_tui.wire import ETH_P_ALL, UDP_HLEN, Route, mac_bytes, multicast_mac, parse_udp_frame, udp_frame

HFT_TUI = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "hft-tui")
GROUP = "239.1.1.1"
FEEDS = {"iex-tops": "iex", "iex-deep": "iex", "itch": "itch", "hft1": "hft1"}
FOREIGN_MAC = "02:00:00:00:99:99"


def feed_config(L: lab.Lab, fmt: str, *, gateway: bool = True, group: str | None = GROUP, max_orders: int = 8):
    """The demo's config with the engine built for ``fmt``'s feed and the lab's
    gateway as ``lab up`` prints it, without the MAC: the engine resolves it."""
    table = tomllib.loads(DEMO_CONFIG.read_text(), parse_float=Decimal)
    table["engine"].update(feed=FEEDS[fmt], max_orders_per_packet=max_orders)
    if group:
        table["engine"]["feed_addr"] = group
    if gateway:
        table["engine"]["gateway"] = {"ip": L.gateway_ip, "port": lab.GATEWAY_PORT}
    return parse_config(table)


@pytest.fixture
def feed_lab(make_lab):
    """feed_lab(n, fmt, mode, **config) -> (Lab, Config): lab n up, the engine attached for fmt."""
    attached = []

    def factory(n: int, fmt: str, mode: str = "native", **kw):
        L = make_lab(n)
        cfg = feed_config(L, fmt, **kw)
        engine.attach(L.engine_iface, cfg, mode=mode)
        attached.append(L)
        return L, cfg

    yield factory
    for L in attached:
        if L.engine_iface in lab.attached_ifaces():
            engine.detach(L.engine_iface)


def run(L: lab.Lab, cfg, count: int = 3000, rate: float = 0, stop=None, **options):
    return Simulator(L, cfg, seed=options.pop("seed", 3), feed=FeedOptions(**options)).run(count, rate, stop=stop)


def engine_rejects(L: lab.Lab, feed: str) -> dict[str, int]:
    maps = EngineMaps.open_pinned(pin_dir(L.engine_iface))
    try:
        return dict(maps.snapshot(feed=feed).rejects)
    finally:
        maps.close()


def assert_clean(s, min_orders: int = 1) -> None:
    assert s.invalid_orders == 0, (s.invalid_reasons, s.invalid_examples)
    assert s.orders_received >= min_orders
    assert s.udp_csum_errors == 0


# -- every feed, native and generic: the gateway, multicast, A/B lines, gaps -------


@pytest.mark.parametrize("mode", ["native", "generic"])
@pytest.mark.parametrize("fmt,n", [("iex-tops", 120), ("iex-deep", 121), ("itch", 122)])
def test_a_feed_on_two_lines_with_gaps_trades_by_the_rules_and_the_engine_counts_what_was_done(feed_lab, fmt, n, mode):
    L, cfg = feed_lab(n, fmt, mode)
    s = run(L, cfg, batch=20, group=GROUP, ab=True, gap_rate=0.02, format=fmt)
    assert_clean(s, min_orders=20)
    assert s.gateway == {"ip": L.gateway_ip, "port": lab.GATEWAY_PORT, "mac": L.exchange_mac}
    assert s.dup_packets_sent == s.packets_sent > 100 and s.frames_sent == 2 * s.packets_sent
    assert s.gaps_made > 0 and s.gap_messages_made > 0
    e = s.engine_feed
    assert e is not None
    assert (e["dup_packets"], e["gaps"], e["gap_messages"]) == (s.dup_packets_sent, s.gaps_made, s.gap_messages_made)
    assert e["packets"] == 2 * s.packets_sent  # every copy reached the engine


@pytest.mark.parametrize("mode", ["native", "generic"])
@pytest.mark.parametrize("fmt,n", [("iex-tops", 123), ("iex-deep", 124), ("itch", 125)])
def test_a_feed_tagged_with_a_vlan_gets_its_orders_tagged_at_the_gateway(feed_lab, fmt, n, mode):
    L, cfg = feed_lab(n, fmt, mode)
    s = run(L, cfg, batch=10, group=GROUP, vlan=77, format=fmt)
    assert_clean(s, min_orders=10)
    assert s.order_frames > 0 and s.vlan == 77  # a frame on another VLAN (or none) would be invalid


def test_the_batch_cap_holds_and_a_packet_gives_several_orders(feed_lab):
    L, cfg = feed_lab(126, "iex-deep", max_orders=2)
    s = run(L, cfg, count=6000, batch=60, group=GROUP, format="iex-deep")
    assert_clean(s, min_orders=20)
    assert s.order_frames < s.orders_received  # some frames carried two orders, none more (checked per frame)
    assert engine_rejects(L, "iex").get("batch_full", 0) > 0


def test_a_unicast_feed_without_a_gateway_is_answered_by_reflection(feed_lab):
    L, cfg = feed_lab(127, "itch", gateway=False, group=None)
    s = run(L, cfg, batch=5, format="itch")
    assert_clean(s, min_orders=10)
    assert s.gateway is None
    # Without a gateway too the program knows the interface's MAC: a frame to another host's is not the feed.
    maps = EngineMaps.open_pinned(pin_dir(L.engine_iface))
    try:
        assert maps.interface_mac() == L.engine_mac
    finally:
        maps.close()


def test_a_multicast_feed_without_a_gateway_gets_no_order_and_is_counted_no_route(feed_lab):
    L, cfg = feed_lab(128, "iex-tops", gateway=False)
    s = run(L, cfg, batch=5, group=GROUP, format="iex-tops")
    assert s.invalid_orders == 0 and s.orders_received == 0
    assert engine_rejects(L, "iex")["no_route"] > 0


@pytest.mark.parametrize("vlan", [None, 30])
def test_hft1_to_the_gateway_is_todays_orders_in_frames(feed_lab, vlan):
    L, cfg = feed_lab(129, "hft1", group=None)
    s = run(L, cfg, count=4000, vlan=vlan)
    assert_clean(s, min_orders=50)
    assert s.order_frames == s.orders_received  # one order a frame, as today


def test_plain_hft1_keeps_the_fast_path(feed_lab):
    L, cfg = feed_lab(130, "hft1", gateway=False, group=None)
    s = run(L, cfg, count=20_000)
    assert_clean(s, min_orders=100)
    assert s.order_frames == 0 and s.frames_sent == s.packets_sent == 20_000  # sendmmsg, the UDP socket


# -- the capture -----------------------------------------------------------------


def test_a_recorded_feed_is_every_frame_as_sent(feed_lab, tmp_path):
    L, cfg = feed_lab(131, "itch")
    out = tmp_path / "itch.pcap"
    s = run(L, cfg, count=800, batch=8, group=GROUP, vlan=5, ab=True, gap_rate=0.05, format="itch", pcap_out=str(out))
    assert_clean(s)
    with open(out, "rb") as f:
        frames = [bytes(buf) for _ts, buf in dpkt.pcap.Reader(f)]
    assert len(frames) == s.frames_sent == 2 * s.packets_sent
    assert frames[0::2] == frames[1::2]  # the A and B copies
    seqs = []
    for raw in frames[0::2]:
        frame = parse_udp_frame(raw)
        assert frame is not None and frame.ok and frame.vlan == 5
        assert (frame.route.dst_mac, frame.route.dst_ip, frame.route.dst_port) == (multicast_mac(GROUP), GROUP, 9000)
        p = itch.decode_packet(frame.payload)
        seqs.append((p.seq, len(p.messages)))
    skipped = sum(b[0] - (a[0] + a[1]) for a, b in itertools.pairwise(seqs))
    assert skipped == s.gap_messages_made


# -- the source MAC (issue 14): an order from another MAC is not the engine's ----------


def forge(L: lab.Lab, route: Route, order: Order) -> None:
    """An order frame put on the wire from the engine's side of the veth with
    another MAC than the engine interface's (a packet socket in the root namespace)."""
    with PacketSocket(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0), L.engine_iface, ETH_P_ALL) as ps:
        ps.send(udp_frame(route, encode_order(order)))


def test_an_order_frame_from_a_foreign_mac_at_the_gateway_is_flagged(feed_lab):
    L, cfg = feed_lab(132, "iex-deep")
    sending = threading.Event()  # the simulator's loop runs: its packet socket is open
    box = {}

    def simulate():
        box["s"] = run(L, cfg, count=2000, rate=4000, batch=4, group=GROUP, format="iex-deep", stop=sending.set)

    t = threading.Thread(target=simulate)
    t.start()
    assert sending.wait(30)
    forged = Route(FOREIGN_MAC, L.exchange_mac, L.engine_ip, L.gateway_ip, 9000, lab.GATEWAY_PORT)
    forge(L, forged, Order("B", "AAPL", 1, 1_902_000, 1, 999_999, 0))
    t.join(30)
    assert not t.is_alive()
    assert box["s"].invalid_reasons.get("source mac") == 1


def test_the_fast_paths_socket_empties_a_datagram_from_a_foreign_mac(make_lab):
    L = make_lab(133)
    sock = exchange_socket(L)
    try:
        mark_foreign_macs(sock, mac_bytes(lab.engine_mac(L)), UDP_HLEN)
        port = sock.getsockname()[1]
        order = Order("B", "AAPL", 1, 1_902_000, 1, 1, 0)
        for mac in (FOREIGN_MAC, lab.engine_mac(L)):
            forge(L, Route(mac, L.exchange_mac, L.engine_ip, L.exchange_ip, 9000, port), order)
        time.sleep(0.2)
        got = []
        while True:
            try:
                got.append(sock.recv(2048))
            except BlockingIOError:
                break
        assert got == [b"", encode_order(order)]
        checker = OrderChecker(load_config(DEMO_CONFIG), SentLog(1, 8))
        forge(L, Route(FOREIGN_MAC, L.exchange_mac, L.engine_ip, L.exchange_ip, 9000, port), order)
        time.sleep(0.1)
        OrderReceiver(sock, (L.engine_ip, 9000), checker, RttRecorder()).drain()
        assert checker.reasons == {"source mac": 1}
    finally:
        sock.close()


# -- the lab holds the gateway -----------------------------------------------------


def test_lab_up_prints_a_gateway_table_the_config_takes_and_status_shows_it(make_lab):
    L = make_lab(134)
    out = subprocess.run([HFT_TUI, "lab", "up", "--lab", "134"], capture_output=True, text=True, check=True).stdout
    table = out[out.index("[engine.gateway]") :]
    gw = gateway_params(tomllib.loads(table)["engine"]["gateway"])
    assert (str(gw.ip), gw.port, gw.mac) == (L.gateway_ip, lab.GATEWAY_PORT, L.exchange_mac)
    st = json.loads(subprocess.run([HFT_TUI, "lab", "status", "--lab", "134", "--json"], capture_output=True,
                                   text=True, check=True).stdout)  # fmt: skip
    assert st["gateway"] == {"ip": L.gateway_ip, "port": lab.GATEWAY_PORT, "mac": L.exchange_mac}
    assert st["exchange_mac"] == L.exchange_mac and st["engine_mac"] == L.engine_mac


def test_the_cli_runs_the_done_criterion_of_the_feeds_issue(feed_lab, tmp_path):
    L, _cfg = feed_lab(135, "iex-deep")
    config = tmp_path / "iex.toml"
    cfg_text = DEMO_CONFIG.read_text().replace("[engine]", f'[engine]\nfeed = "iex"\nfeed_addr = "{GROUP}"', 1)
    config.write_text(cfg_text + f'\n[engine.gateway]\nip = "{L.gateway_ip}"\nport = {lab.GATEWAY_PORT}\n')
    argv = [HFT_TUI, "lab", "feed", "--lab", "135", "--config", str(config), "--format", "iex-deep"]
    argv += ["--batch", "20", "--group", GROUP, "--ab", "--count", "20000", "--rate", "0", "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["invalid_orders"] == 0 and s["orders_received"] > 0
    assert s["engine_feed"]["dup_packets"] == s["dup_packets_sent"] == s["packets_sent"]
