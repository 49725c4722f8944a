"""The lab: an exchange in a network namespace, joined by a veth pair.

    root namespace                      namespace hft-lab
    hft0 198.18.0.1  <---- veth ---->   hftx0 198.18.0.2  (the exchange's feed)
    (the engine attaches here)                198.18.0.3  (the order gateway)

Addresses come from 198.18.0.0/15, the range reserved for benchmarks; the
MACs are fixed (02:00:00:00:NN:01 and :02 for lab NN), so a config written
for a lab stays true when the lab is made again.  With native XDP on veth,
frames sent with XDP_TX are dropped unless the peer has an XDP program too,
so hftx0 gets a one-instruction XDP_PASS program.

The order gateway is a second address on the exchange's own interface, not
a second interface: XDP_TX sends a frame back out of the interface it came
in on, so on a veth pair the only host that can receive the engine's orders
is the peer.  An order to the gateway leaves hft0 with the gateway's MAC
(hftx0's) and IP, arrives on hftx0 and is delivered to the gateway address;
:func:`gateway` is the ``[engine.gateway]`` table for it.

Entering the namespace: ``ip netns exec`` remounts /sys, which hides the
bpffs pins, so the lab uses pyroute2's NetNS for netlink and
``nsenter --net=/run/netns/hft-lab`` (setns only) for processes, and
:func:`in_namespace` (setns on a helper thread) for work done in the lab by
a process that stays outside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute, NetNS, netns

from . import engine
from .errors import LabError
from .packet_io import PacketSocket
from .pins import attached_ifaces
from .preflight import require_bcc, require_root
from .wire import ETH_P_ALL

PREFIX = 24
GATEWAY_PORT = 9100  # where the lab's order gateway listens
PASS_PROGRAM = b"int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }"

T = TypeVar("T")


@dataclass(frozen=True)
class Lab:
    """One lab's names and addresses.  The default is the demo's lab; tests
    make their own (:func:`Lab.numbered`) so that parallel runs never share one."""

    namespace: str = "hft-lab"
    engine_iface: str = "hft0"
    exchange_iface: str = "hftx0"
    engine_ip: str = "198.18.0.1"
    exchange_ip: str = "198.18.0.2"
    gateway_ip: str = "198.18.0.3"
    engine_mac: str = "02:00:00:00:00:01"
    exchange_mac: str = "02:00:00:00:00:02"

    @classmethod
    def numbered(cls, n: int) -> Lab:
        """Lab number n (1..250): namespace hft-lab-n, veth hftN/hftxN, 198.18.n.0/24."""
        if not 1 <= n <= MAX_LAB_NUMBER:
            raise ValueError(f"lab number must be 1..{MAX_LAB_NUMBER}")
        net = f"198.18.{n}"
        return cls(
            f"hft-lab-{n}",
            f"hft{n}",
            f"hftx{n}",
            f"{net}.1",
            f"{net}.2",
            f"{net}.3",
            f"02:00:00:00:{n:02x}:01",
            f"02:00:00:00:{n:02x}:02",
        )

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.namespace


DEFAULT_LAB = Lab()
MAX_LAB_NUMBER = 250


def lab_number_arg(text: str) -> int:
    """``--lab N`` on the command line (an argparse type)."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= MAX_LAB_NUMBER:
        raise argparse.ArgumentTypeError(f"a lab number is 1..{MAX_LAB_NUMBER}")
    return n


@dataclass(frozen=True)
class Gateway:
    """The lab's order gateway, as ``[engine.gateway]`` wants it."""

    ip: str
    port: int
    mac: str

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)

    def toml(self) -> str:
        """A ready ``[engine.gateway]`` table (the engine's config takes it as it is)."""
        return f'[engine.gateway]\nip = "{self.ip}"\nport = {self.port}\nmac = "{self.mac}"'


def gateway(lab: Lab = DEFAULT_LAB, mac: str | None = None) -> Gateway:
    """The gateway of ``lab``: its address on the exchange interface (``mac``:
    that interface's MAC as the kernel reports it, when the lab is up)."""
    return Gateway(lab.gateway_ip, GATEWAY_PORT, mac or lab.exchange_mac)


@dataclass
class LabStatus:
    up: bool
    namespace: str
    engine_iface: str
    engine_ip: str
    engine_mac: str | None
    exchange_iface: str
    exchange_ip: str
    exchange_mac: str | None
    peer_xdp: str | None
    engine_attached: bool
    gateway: Gateway | None = None  # None while the lab is down

    def as_dict(self) -> dict:
        return asdict(self)


def _mac(ipr, ifname: str) -> str | None:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        return None
    return ipr.link("get", index=found[0])[0].get_attr("IFLA_ADDRESS")


def is_up(lab: Lab = DEFAULT_LAB) -> bool:
    if lab.namespace not in netns.listnetns():
        return False
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=lab.engine_iface))


def status(lab: Lab = DEFAULT_LAB) -> LabStatus:
    up_now = is_up(lab)
    engine_mac = exchange_mac = peer = None
    if up_now:
        with IPRoute() as ipr:
            engine_mac = _mac(ipr, lab.engine_iface)
        with NetNS(lab.namespace) as ns:
            exchange_mac = _mac(ns, lab.exchange_iface)
            found = ns.link_lookup(ifname=lab.exchange_iface)
            if found:
                xdp = ns.link("get", index=found[0])[0].get_attr("IFLA_XDP")
                peer = xdp.get_attr("IFLA_XDP_ATTACHED") if xdp else None
    return LabStatus(
        up=up_now,
        namespace=lab.namespace,
        engine_iface=lab.engine_iface,
        engine_ip=lab.engine_ip,
        engine_mac=engine_mac,
        exchange_iface=lab.exchange_iface,
        exchange_ip=lab.exchange_ip,
        exchange_mac=exchange_mac,
        peer_xdp=peer,
        engine_attached=lab.engine_iface in attached_ifaces(),
        gateway=gateway(lab, exchange_mac) if up_now else None,
    )


def _attach_peer_pass(ns: NetNS, idx: int) -> None:
    bcc = require_bcc()
    b = bcc.BPF(text=PASS_PROGRAM)
    fn = b.load_func(b"xdp_pass", bcc.BPF.XDP)
    # The netlink socket lives in the namespace; the fd is ours, so this works.
    ns.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", fn.fd), ("IFLA_XDP_FLAGS", 4)]})
    b.cleanup()  # the attachment holds the program


# The veths' MTU: the kernel's default for a veth, which up() keeps.  A frame whose IP
# packet is longer cannot be sent into the lab (packet sockets refuse it: EMSGSIZE).
MTU = 1500


def up(lab: Lab = DEFAULT_LAB, queues: int = 1) -> LabStatus:
    """Creates the lab; running it again on a lab that is up changes nothing.

    ``queues``: receive and transmit queues of each end of the veth (veth
    hands a frame to the queue of the CPU that sends it, so the benchmark
    spreads a feed over its CPUs with one queue each).
    """
    require_root()
    if is_up(lab):
        _add_gateway_address(lab)  # a lab made before the gateway existed gets it
        return status(lab)
    down(lab, quiet=True)  # half-built leftovers
    netns.create(lab.namespace)
    with IPRoute() as ipr:
        q = {"num_rx_queues": queues, "num_tx_queues": queues}
        ipr.link("add", ifname=lab.engine_iface, kind="veth", peer={"ifname": lab.exchange_iface, **q}, **q)
        peer_idx = ipr.link_lookup(ifname=lab.exchange_iface)[0]
        ipr.link("set", index=peer_idx, address=lab.exchange_mac)
        ipr.link("set", index=peer_idx, net_ns_fd=lab.namespace)
        idx = ipr.link_lookup(ifname=lab.engine_iface)[0]
        ipr.link("set", index=idx, address=lab.engine_mac)
        ipr.addr("add", index=idx, address=lab.engine_ip, prefixlen=PREFIX)
        ipr.link("set", index=idx, state="up")
    with NetNS(lab.namespace) as ns:
        idx = ns.link_lookup(ifname=lab.exchange_iface)[0]
        ns.addr("add", index=idx, address=lab.exchange_ip, prefixlen=PREFIX)
        ns.addr("add", index=idx, address=lab.gateway_ip, prefixlen=PREFIX)
        ns.link("set", index=idx, state="up")
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        _attach_peer_pass(ns, idx)
    # Wait for carrier on both ends so the first packet is not lost.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with IPRoute() as ipr:
            msg = ipr.link("get", index=ipr.link_lookup(ifname=lab.engine_iface)[0])[0]
            if msg.get_attr("IFLA_OPERSTATE") == "UP":
                break
        time.sleep(0.05)
    return status(lab)


def _add_gateway_address(lab: Lab) -> None:
    with NetNS(lab.namespace) as ns:
        idx = ns.link_lookup(ifname=lab.exchange_iface)[0]
        if lab.gateway_ip not in {a.get_attr("IFA_ADDRESS") for a in ns.get_addr(index=idx)}:
            ns.addr("add", index=idx, address=lab.gateway_ip, prefixlen=PREFIX)


def lab_pids(lab: Lab = DEFAULT_LAB) -> list[int]:
    """Processes whose network namespace is the lab's (simulators, bots)."""
    try:
        ino = os.stat(lab.netns_path).st_ino
    except FileNotFoundError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino == ino:
                    pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def down(lab: Lab = DEFAULT_LAB, quiet: bool = False) -> list[str]:
    """Removes everything the lab made: processes, engine, links, namespace."""
    require_root()
    done = []
    pids = lab_pids(lab)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if pids:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.02)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        done.append(f"stopped {len(pids)} lab process(es)")
    if lab.engine_iface in attached_ifaces():
        done.extend(engine.detach(lab.engine_iface))
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=lab.engine_iface)
        if found:
            ipr.link("del", index=found[0])
            done.append(f"deleted {lab.engine_iface}/{lab.exchange_iface}")
    if lab.namespace in netns.listnetns():
        netns.remove(lab.namespace)
        done.append(f"removed namespace {lab.namespace}")
    if not done and not quiet:
        done.append("the lab was not up")
    return done


def enter_namespace(lab: Lab = DEFAULT_LAB) -> None:
    """setns(2) the calling thread into the lab's network namespace.

    Only the network namespace changes, so /sys/fs/bpf stays visible.  In a
    multi-threaded process only the calling thread moves: sockets it creates
    afterwards belong to the lab, whichever thread uses them later.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(lab.netns_path, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise LabError(f"setns {lab.namespace}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def in_namespace(fn: Callable[[], T], lab: Lab = DEFAULT_LAB) -> T:
    """fn() run by a helper thread inside the lab's network namespace; its
    value is returned and its exception raised here.

    The helper thread enters with :func:`enter_namespace` (the network
    namespace only, so /sys/fs/bpf stays visible) and ends with fn, so the
    calling process and its threads stay where they are.  Sockets fn creates
    belong to the lab, whichever thread uses them later, and what fn reads
    from /proc/thread-self/net is the lab's.
    """
    box: dict = {}

    def work() -> None:
        try:
            enter_namespace(lab)
            box["value"] = fn()
        except Exception as exc:  # raised again in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=work, name=f"in-{lab.namespace}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def lab_socket(
    lab: Lab = DEFAULT_LAB, family: int = socket.AF_INET, type_: int = socket.SOCK_DGRAM, proto: int = 0
) -> socket.socket:
    """A socket created inside the lab namespace, usable from this process
    (made by :func:`in_namespace`'s helper thread)."""
    return in_namespace(lambda: socket.socket(family, type_, proto), lab)


def engine_mac(lab: Lab = DEFAULT_LAB) -> str:
    """The engine interface's MAC as the kernel has it (a lab made before the
    MACs were fixed has random ones).  Read from sysfs, which shows the root
    namespace's interfaces even to a thread that entered the lab."""
    try:
        return (Path("/sys/class/net") / lab.engine_iface / "address").read_text().strip()
    except OSError:
        return lab.engine_mac


def packet_socket(lab: Lab = DEFAULT_LAB, iface: str | None = None) -> PacketSocket:
    """A packet socket on the lab's exchange interface (or ``iface`` in the
    lab), for whole frames in and out (packet_io.PacketSocket)."""
    sock = lab_socket(lab, socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        return PacketSocket(sock, iface or lab.exchange_iface, ETH_P_ALL)
    except OSError as exc:
        sock.close()
        raise LabError(f"cannot open a packet socket on {iface or lab.exchange_iface}: {exc.strerror}") from None


def nsenter_argv(argv: list[str], lab: Lab = DEFAULT_LAB) -> list[str]:
    """argv that runs a command in the lab namespace without remounting /sys."""
    return ["nsenter", f"--net={lab.netns_path}", "--", *argv]
