"""The control plane of a feed engine, against the real kernel in labs 110..115.

Through the real CLI (``engine attach``, ``status``, ``set-engine``,
``reset-seq``) and, for alerts, a real Controller with its journal:

 - an IEX engine whose gateway's MAC the attach asks for with ARP: the real
   IEX packets the exchange side sends with a packet socket give order frames
   to that MAC, ``engine status --json`` shows the feed, its channel, the
   gateway and the senders, the state file and the journal's attach record
   say the same, and a sequence gap is an alert and a control row;
 - a gateway's MAC given, or found in the neighbour table; a gateway nobody
   answers for, and an interface without an address, refuse the attach in
   one line and leave nothing attached;
 - ``set-engine`` refuses the attach-only keys in one line (the maps
   untouched) and changes the live ones;
 - a symbol locked out by a sequence jump trades again after ``reset-seq``,
   journaled by the command, or by the controller when one runs;
 - an open feed is said so on attach and in status.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from feed_frames import IEX_SESSION, ExchangePort, check_order_frame, iex_frame, offer
from frames import P
from pyroute2 import IPRoute

from hft_tui import journal, lab, libbpf, netlink, paths
from hft_tui.controller import Controller
from hft_tui.engine import EngineHandle, EngineRecord
from hft_tui.maps import Gateway as KernelGateway
from hft_tui.protocol import Update, decode_order, encode_update

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
PORT, GATEWAY_PORT = 9000, 9100
NUD_PERMANENT = 0x80  # linux/neighbour.h
SYMBOL = """
[symbols.AAPL]
buy_target = 100.00
sell_target = 101.00
base_qty = 10
max_position = 100000
"""


def cli(*argv: str, rc: int = 0) -> subprocess.CompletedProcess:
    p = subprocess.run([HFT_TUI, *argv], capture_output=True, text=True, timeout=120)
    assert p.returncode == rc, (argv, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    return p


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 1 and p.stderr.startswith("hft-tui: error: ") and p.stderr.count("\n") == 1, p.stderr
    return p.stderr


def status(iface: str) -> dict:
    return json.loads(cli("engine", "status", iface, "--json").stdout)


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "engine.toml"
    path.write_text(text)
    return str(path)


def mac_in_lab(L: lab.Lab) -> str:
    def read() -> str:
        with IPRoute() as ipr:
            return ipr.link("get", index=netlink.ifindex(ipr, L.exchange_iface))[0].get_attr("IFLA_ADDRESS")

    return lab.in_namespace(read, L)


def engine_mac(L: lab.Lab) -> str:
    with IPRoute() as ipr:
        return ipr.link("get", index=netlink.ifindex(ipr, L.engine_iface))[0].get_attr("IFLA_ADDRESS")


def nothing_attached(L: lab.Lab) -> bool:
    with IPRoute() as ipr:
        xdp = netlink.xdp_state(ipr, L.engine_iface)
    return (
        xdp.mode is None
        and not paths.pin_dir(L.engine_iface).exists()
        and not paths.state_file(L.engine_iface).exists()
    )


def fresh_journal(iface: str) -> Path:
    path = journal.journal_path(iface)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def control_rows(path: Path) -> list[dict]:
    with journal.Journal(path, readonly=True) as j:
        return [{**r, "detail": json.loads(r["detail"])} for r in j.rows("control")]


# -- an IEX engine, its gateway found by ARP ------------------------------------------------


@pytest.fixture
def iex_engine(make_lab, tmp_path):
    L = make_lab(110)
    jpath = fresh_journal(L.engine_iface)
    config = write_config(
        tmp_path,
        f"""
[engine]
feed = "iex"
feed_port = {PORT}
update_sample = 0
feed_sources = ["{L.exchange_ip}/32"]
[engine.gateway]
ip = "{L.exchange_ip}"
port = {GATEWAY_PORT}
{SYMBOL}""",
    )
    attach = cli("engine", "attach", L.engine_iface, "--config", config)
    ex = ExchangePort(L, GATEWAY_PORT)
    try:
        yield L, attach, jpath, ex
    finally:
        ex.close()


def test_an_iex_engine_sends_its_orders_to_the_gateway_whose_mac_the_attach_asked_for(iex_engine, tmp_path):
    L, attach, jpath, ex = iex_engine
    exchange_mac = mac_in_lab(L)
    assert "OPEN FEED" not in attach.stderr
    assert (
        f"orders go to the gateway {L.exchange_ip}:{GATEWAY_PORT} ({exchange_mac}, ARP) from {L.engine_ip}:{PORT}"
        in (attach.stdout)
    )
    gateway = KernelGateway(
        ip=L.exchange_ip,
        port=GATEWAY_PORT,
        mac=exchange_mac,
        src_ip=L.engine_ip,
        src_port=PORT,
        src_mac=engine_mac(L),
    )
    with EngineHandle(L.engine_iface) as h:
        assert h.maps.read_route() == gateway  # written before attach, read back from the kernel
    rec = EngineRecord.load(L.engine_iface)
    assert (rec.feed, rec.feed_sources, rec.gateway["mac"], rec.gateway["mac_from"]) == (
        "iex",
        [f"{L.exchange_ip}/32"],
        exchange_mac,
        "ARP",
    )
    (attached,) = control_rows(jpath)
    assert attached["kind"] == "attach" and attached["program_hash"] == rec.program_hash
    assert attached["detail"]["feed"] == "iex" and attached["detail"]["open_feed"] is False
    assert attached["detail"]["gateway"]["mac"] == exchange_mac

    # The A and the B line's copy of one packet: one order frame, the copy counted.
    to_engine = {"src": L.exchange_ip, "dst": L.engine_ip, "smac": exchange_mac, "dmac": engine_mac(L)}
    first = iex_frame([offer("AAPL", P("99.00")), offer("ZZZZ", P("1.00")), offer("AAPL", P("98.50"))], 1, **to_engine)
    ex.send(first)
    ex.send(first)
    (frame,) = ex.orders(want=1)
    assert [(o.side, o.symbol, o.seq, o.price) for o in check_order_frame(first, frame, gateway)] == [
        ("B", "AAPL", 1, P("99.00")),
        ("B", "AAPL", 3, P("98.50")),
    ]

    # A supervising controller: the next packet starts 6 messages beyond the channel's next.
    with EngineHandle(L.engine_iface) as h, journal.Journal(tmp_path / "ctl.journal.sqlite") as j:
        ctl = Controller(h, journal=j, supervise=False)
        ctl.start()
        try:
            gap = iex_frame([offer("AAPL", P("98.00")), offer("AAPL", P("97.50"))], 10, **to_engine)
            ex.send(gap)
            (frame,) = ex.orders(want=1)
            assert [o.seq for o in check_order_frame(gap, frame, gateway)] == [10, 11]
            alerts = ctl.tick().alerts
        finally:
            ctl.stop(detach=False)
        feed_alerts = [a for a in alerts if a.kind == "feed"]
        assert [(a.reason, a.count) for a in feed_alerts] == [("gap", 6)]
        assert feed_alerts[0].message.startswith(f"FEED GAP on channel {IEX_SESSION}/1: 1 gap, 6 message(s)")
        rows = [r for r in j.rows("control") if r["kind"] == "feed_gap"]
        assert [json.loads(r["detail"]) for r in rows] == [
            {
                "channel": f"{IEX_SESSION}/1",
                "gaps": 1,
                "gap_messages": 6,
                "next_seq": 12,
                "total_gaps": 1,
                "total_gap_messages": 6,
            }
        ]

    st = status(L.engine_iface)
    assert st["open_feed"] is False and st["feed_sources"] == [f"{L.exchange_ip}/32"]
    assert st["feed_source_macs"] is None
    assert st["gateway"] == {
        "ip": L.exchange_ip,
        "port": GATEWAY_PORT,
        "mac": exchange_mac,
        "src_ip": L.engine_ip,
        "src_port": PORT,
    }
    feed = st["feed"]
    assert (feed["format"], feed["port"], feed["addr"]) == ("iex", PORT, None)
    assert (feed["in_transition"], feed["truncated_packets"]) == (0, 0)
    assert feed["messages"] == 5  # the three of the first packet and the two of the second: the copy is not read
    assert feed["channels"] == [
        {
            "id": f"{IEX_SESSION}/1",
            "next_seq": 12,
            "packets": 3,
            "messages": 5,
            "gaps": 1,
            "gap_messages": 6,
            "dup_packets": 1,
            "seq_jumps": 0,
        }
    ]
    assert st["orders_sent"] == 4
    text = cli("engine", "status", L.engine_iface).stdout
    assert f"feed iex on UDP port {PORT}, from {L.exchange_ip}/32" in text
    assert f"channel {IEX_SESSION}/1: next seq 12, 3 packets, 5 messages, 1 gaps (6 messages missed)" in text
    assert "OPEN FEED" not in text


# -- the gateway's MAC given, from the neighbour table, or nowhere ----------------------------


def gateway_config(tmp_path: Path, L: lab.Lab, ip: str, extra: str = "") -> str:
    return write_config(
        tmp_path,
        f"""
[engine]
feed = "iex"
feed_sources = ["{L.exchange_ip}/32"]
[engine.gateway]
ip = "{ip}"
port = {GATEWAY_PORT}
{extra}
{SYMBOL}""",
    )


def test_a_gateway_mac_and_source_given_are_written_as_given(make_lab, tmp_path):
    L = make_lab(111)
    ip = L.exchange_ip.rsplit(".", 1)[0] + ".3"  # no host: nobody is asked
    extra = 'mac = "02:00:00:00:6f:03"\nsrc_ip = "192.0.2.7"\nsrc_port = 9555'
    out = cli("engine", "attach", L.engine_iface, "--config", gateway_config(tmp_path, L, ip, extra)).stdout
    assert f"orders go to the gateway {ip}:{GATEWAY_PORT} (02:00:00:00:6f:03, config) from 192.0.2.7:9555" in out
    assert status(L.engine_iface)["gateway"] == {
        "ip": ip,
        "port": GATEWAY_PORT,
        "mac": "02:00:00:00:6f:03",
        "src_ip": "192.0.2.7",
        "src_port": 9555,
    }


def test_a_gateway_in_the_neighbour_table_is_taken_from_it(make_lab, tmp_path):
    L = make_lab(111)
    ip = L.exchange_ip.rsplit(".", 1)[0] + ".4"
    with IPRoute() as ipr:
        idx = netlink.ifindex(ipr, L.engine_iface)
        ipr.neigh("add", dst=ip, lladdr="02:00:00:00:6f:04", ifindex=idx, state=NUD_PERMANENT)
    out = cli("engine", "attach", L.engine_iface, "--config", gateway_config(tmp_path, L, ip)).stdout
    assert f"({'02:00:00:00:6f:04'}, neighbour table) from {L.engine_ip}:{PORT}" in out
    assert status(L.engine_iface)["gateway"]["mac"] == "02:00:00:00:6f:04"


def test_a_gateway_nobody_answers_for_refuses_the_attach_in_one_line(make_lab, tmp_path):
    L = make_lab(111)
    ip = L.exchange_ip.rsplit(".", 1)[0] + ".9"
    started = time.monotonic()
    p = cli("engine", "attach", L.engine_iface, "--config", gateway_config(tmp_path, L, ip), rc=1)
    assert time.monotonic() - started < 30  # a bounded wait (the compiler takes the rest)
    assert f"cannot resolve the gateway {ip}'s MAC on {L.engine_iface}: not in the neighbour table and no ARP" in (
        one_line_error(p)
    )
    assert "set [engine.gateway] mac" in p.stderr
    assert nothing_attached(L)


def test_an_interface_without_an_address_needs_src_ip(make_lab, tmp_path):
    L = make_lab(111)
    with IPRoute() as ipr:
        idx = netlink.ifindex(ipr, L.engine_iface)
        ipr.flush_addr(index=idx)
    p = cli("engine", "attach", L.engine_iface, "--config", gateway_config(tmp_path, L, L.exchange_ip), rc=1)
    assert f"{L.engine_iface} has no IPv4 address to send orders from: set [engine.gateway] src_ip" in (
        one_line_error(p)
    )
    assert nothing_attached(L)


# -- set-engine on a running engine ------------------------------------------------------------


def kernel_bytes(h: EngineHandle) -> tuple[bytes, ...]:
    """The engine-wide config, the route and the feed filter as the kernel holds them."""
    from hft_tui.layout import FeedFilter, Route

    out = []
    for name, value in (("route", Route()), ("feed_filter", FeedFilter())):
        libbpf.lookup(h.maps.fds[name], ctypes.c_uint32(0), value)
        out.append(bytes(value))
    return (bytes(h.maps.read_global()), *out)


REFUSED = [
    "feed=itch",
    "feed_addr=239.1.1.1",
    "feed_sources=198.18.0.0/15",
    "feed_source_macs=02:00:00:00:00:01",
    "gateway=198.18.0.3",
    "gateway.ip=198.18.0.3",
]


def test_set_engine_refuses_what_needs_a_re_attach_and_changes_the_live_keys(make_lab, tmp_path):
    L = make_lab(112)
    ip = L.exchange_ip.rsplit(".", 1)[0] + ".3"
    cli("engine", "attach", L.engine_iface, "--config", gateway_config(tmp_path, L, ip, 'mac = "02:00:00:00:70:03"'))
    with EngineHandle(L.engine_iface) as h:
        before = kernel_bytes(h)
        for word in REFUSED:
            key = word.partition("=")[0]
            p = cli("engine", "set-engine", word, "--iface", L.engine_iface, rc=1)
            assert f"engine: {key} is fixed at attach; changing it needs a re-attach" in one_line_error(p)
            # Refused whole, even beside a live key.
            cli("engine", "set-engine", "max_seq_jump=7", word, "--iface", L.engine_iface, rc=1)
            assert kernel_bytes(h) == before, word
        cli("engine", "set-engine", "max_seq_jump=7", "max_orders_per_packet=3", "--iface", L.engine_iface)
        g = h.maps.read_global()
        assert (g.max_seq_jump, g.max_orders_per_packet) == (7, 3)
        assert kernel_bytes(h)[1:] == before[1:]  # the route and the filter as they were


# -- reset-seq: a jump refused, reset, then accepted -------------------------------------------


def hft1_engine(L: lab.Lab, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""
[engine]
feed_port = {PORT}
update_sample = 0
max_seq_jump = 1000
feed_sources = ["{L.exchange_ip}/32"]
{SYMBOL}""",
    )
    cli("engine", "attach", L.engine_iface, "--config", config)


class Hft1Sender:
    """A UDP socket of the exchange: updates to the engine, orders back to it."""

    def __init__(self, L: lab.Lab) -> None:
        self.sock = lab.lab_socket(L)
        self.sock.bind((L.exchange_ip, 0))
        self.sock.settimeout(1.0)
        self.to = (L.engine_ip, PORT)

    def update(self, seq: int) -> int | None:
        """The order's seq an update at 99.00 gets back, or None."""
        self.sock.sendto(encode_update(Update("AAPL", seq, 0, 0, P("99.00"), 100)), self.to)
        try:
            return decode_order(self.sock.recv(2048)).seq
        except TimeoutError:
            return None


def locked_out_then_reset(L: lab.Lab, reset) -> None:
    sender = Hft1Sender(L)
    try:
        assert sender.update(1) == 1
        with EngineHandle(L.engine_iface) as h:
            before = h.snapshot().rejects["seq_jump"]
            assert sender.update(1_000_000) is None  # a jump beyond max_seq_jump: refused, the sequence unmoved
            assert h.snapshot().rejects["seq_jump"] == before + 1
            assert h.maps.read_symbol_state("AAPL").last_seq == 1
            reset(h)
            assert sender.update(1_000_000) == 1_000_000  # the first update after the reset sets it
            assert h.maps.read_symbol_state("AAPL").last_seq == 1_000_000
    finally:
        sender.sock.close()


def test_reset_seq_from_the_command_line_unlocks_a_symbol_and_is_journaled(make_lab, tmp_path):
    L = make_lab(113)
    jpath = fresh_journal(L.engine_iface)
    hft1_engine(L, tmp_path)

    def reset(_h: EngineHandle) -> None:
        out = cli("engine", "reset-seq", "AAPL", "--iface", L.engine_iface).stdout
        assert out == "AAPL: sequence reset (it was 1): the next update sets it\n"

    locked_out_then_reset(L, reset)
    kinds = [(r["kind"], r["detail"]) for r in control_rows(jpath)]
    assert kinds[-1] == ("reset_seq", {"by": "cli", "symbol": "AAPL", "last_seq": 1})
    p = cli("engine", "reset-seq", "MSFT", "--iface", L.engine_iface, rc=1)
    assert "symbol MSFT is not configured" in one_line_error(p)


def test_reset_seq_under_a_controller_is_journaled_by_the_controller(make_lab, tmp_path):
    L = make_lab(114)
    hft1_engine(L, tmp_path)
    with EngineHandle(L.engine_iface) as h, journal.Journal(tmp_path / "ctl.journal.sqlite") as j:
        ctl = Controller(h, journal=j, supervise=False)
        ctl.start()
        try:

            def reset(_h: EngineHandle) -> None:
                cli("engine", "reset-seq", "AAPL", "--iface", L.engine_iface)
                ctl.tick()

            locked_out_then_reset(L, reset)
        finally:
            ctl.stop(detach=False)
        (row,) = [r for r in j.rows("control") if r["kind"] == "reset_seq"]
        detail = json.loads(row["detail"])
        assert detail["symbols"] == ["AAPL"] and detail["changed"] == {"AAPL": {"seq_epoch": [0, 1]}}
        assert row["config_version"] == h.maps.read_global().config_version


# -- an open feed ------------------------------------------------------------------------------


def test_an_open_feed_is_said_so_on_attach_and_in_status(make_lab, tmp_path):
    L = make_lab(115)
    p = cli("engine", "attach", L.engine_iface, "--config", write_config(tmp_path, f"[engine]\n{SYMBOL}"))
    assert p.stderr == "hft-tui: warning: OPEN FEED: any sender can trade; set [engine] feed_sources\n"
    st = status(L.engine_iface)
    assert st["open_feed"] is True and st["feed_sources"] is None and st["gateway"] is None
    assert st["feed"]["format"] == "hft1" and st["feed"]["channels"] == []
    assert (
        "OPEN FEED: any sender can trade; set [engine] feed_sources" in cli("engine", "status", L.engine_iface).stdout
    )
    assert EngineRecord.load(L.engine_iface).open_feed


# -- a channel locked out by a jump beyond max_seq_jump --------------------------------------------


def test_a_channel_refused_beyond_max_seq_jump_is_an_alert_and_reset_channel_lets_it_move(iex_engine, tmp_path):
    """An outage longer than max_seq_jump: the kernel refuses every later packet of the
    channel (it cannot tell an outage from a spoofed sequence); the controller says so, and
    `engine reset-channel` (journaled) lets the next packet set the sequence."""
    L, _attach, _jpath, ex = iex_engine
    cli("engine", "set-engine", "max_seq_jump=100", "--iface", L.engine_iface)
    to_engine = {"src": L.exchange_ip, "dst": L.engine_ip, "smac": mac_in_lab(L), "dmac": engine_mac(L)}
    ex.send(iex_frame([offer("AAPL", P("99.00"))], 1, **to_engine))
    assert len(ex.orders(want=1)) == 1
    channel = f"{IEX_SESSION}/1"
    with EngineHandle(L.engine_iface) as h, journal.Journal(tmp_path / "ctl.journal.sqlite") as j:
        ctl = Controller(h, journal=j, supervise=False)
        ctl.start()
        try:
            after_outage = iex_frame([offer("AAPL", P("98.00"))], 5_000, **to_engine)
            ex.send(after_outage)
            ex.send(after_outage)
            assert ex.orders(want=1, timeout=0.5) == []  # refused: nothing trades on the channel
            alerts = [a for a in ctl.tick().alerts if a.kind == "feed"]
            assert [(a.reason, a.count) for a in alerts] == [("seq_jump", 2)]
            assert f"hft-tui engine reset-channel --channel {channel}" in alerts[0].message
            (ch,) = status(L.engine_iface)["feed"]["channels"]
            assert (ch["id"], ch["next_seq"], ch["seq_jumps"]) == (channel, 2, 2)

            p = cli("engine", "reset-channel", "--channel", channel, "--iface", L.engine_iface)
            assert p.stdout.startswith(f"channel {channel}: sequence forgotten (next seq was 2, 2 packets refused")
            ex.send(after_outage)
            assert len(ex.orders(want=1)) == 1  # the next packet set the sequence
            resets = [a for a in ctl.tick().alerts if a.kind == "feed"]
            assert [a.reason for a in resets] == ["channel_reset"]
        finally:
            ctl.stop(detach=False)
        kinds = [r["kind"] for r in j.rows("control")]
        assert "feed_seq_jump" in kinds and "feed_channel_reset" in kinds
    p = cli("engine", "reset-channel", "--channel", "9/9", "--iface", L.engine_iface, rc=1)
    assert f"no channel '9/9' on {L.engine_iface} (channels: {channel})" in one_line_error(p)
