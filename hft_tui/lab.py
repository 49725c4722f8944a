"""The lab: an exchange in a network namespace, joined by a veth pair.

    root namespace                      namespace hft-lab
    hft0 198.18.0.1  <---- veth ---->   hftx0 198.18.0.2
    (the engine attaches here)          (the exchange simulator lives here)

Addresses come from 198.18.0.0/15, the range reserved for benchmarks.  With
native XDP on veth, frames sent with XDP_TX are dropped unless the peer has
an XDP program too, so hftx0 gets a one-instruction XDP_PASS program.

Entering the namespace: ``ip netns exec`` remounts /sys, which hides the
bpffs pins, so the lab uses pyroute2's NetNS for netlink and
``nsenter --net=/run/netns/hft-lab`` (setns only) for processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pyroute2 import IPRoute, NetNS, netns

from . import engine

NAMESPACE = "hft-lab"
ENGINE_IFACE = "hft0"
EXCHANGE_IFACE = "hftx0"
ENGINE_IP = "198.18.0.1"
EXCHANGE_IP = "198.18.0.2"
PREFIX = 24
NETNS_PATH = Path("/run/netns") / NAMESPACE
PASS_PROGRAM = b"int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }"


class LabError(RuntimeError):
    pass


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

    def as_dict(self) -> dict:
        return asdict(self)


def _mac(ipr, ifname: str) -> str | None:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        return None
    return ipr.link("get", index=found[0])[0].get_attr("IFLA_ADDRESS")


def is_up() -> bool:
    if NAMESPACE not in netns.listnetns():
        return False
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=ENGINE_IFACE))


def status() -> LabStatus:
    up = is_up()
    engine_mac = exchange_mac = peer = None
    if up:
        with IPRoute() as ipr:
            engine_mac = _mac(ipr, ENGINE_IFACE)
        with NetNS(NAMESPACE) as ns:
            exchange_mac = _mac(ns, EXCHANGE_IFACE)
            found = ns.link_lookup(ifname=EXCHANGE_IFACE)
            if found:
                xdp = ns.link("get", index=found[0])[0].get_attr("IFLA_XDP")
                peer = xdp.get_attr("IFLA_XDP_ATTACHED") if xdp else None
    return LabStatus(
        up=up,
        namespace=NAMESPACE,
        engine_iface=ENGINE_IFACE,
        engine_ip=ENGINE_IP,
        engine_mac=engine_mac,
        exchange_iface=EXCHANGE_IFACE,
        exchange_ip=EXCHANGE_IP,
        exchange_mac=exchange_mac,
        peer_xdp=peer,
        engine_attached=ENGINE_IFACE in engine.attached_ifaces(),
    )


def _attach_peer_pass(ns: NetNS, idx: int) -> None:
    bcc = engine.require_bcc()
    b = bcc.BPF(text=PASS_PROGRAM)
    fn = b.load_func(b"xdp_pass", bcc.BPF.XDP)
    # The netlink socket lives in the namespace; the fd is ours, so this works.
    ns.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", fn.fd), ("IFLA_XDP_FLAGS", 4)]})
    b.cleanup()  # the attachment holds the program


def up() -> LabStatus:
    """Creates the lab; running it again on a lab that is up changes nothing."""
    engine.require_root()
    if is_up():
        return status()
    down(quiet=True)  # half-built leftovers
    netns.create(NAMESPACE)
    with IPRoute() as ipr:
        ipr.link("add", ifname=ENGINE_IFACE, kind="veth", peer=EXCHANGE_IFACE)
        peer_idx = ipr.link_lookup(ifname=EXCHANGE_IFACE)[0]
        ipr.link("set", index=peer_idx, net_ns_fd=NAMESPACE)
        idx = ipr.link_lookup(ifname=ENGINE_IFACE)[0]
        ipr.addr("add", index=idx, address=ENGINE_IP, prefixlen=PREFIX)
        ipr.link("set", index=idx, state="up")
    with NetNS(NAMESPACE) as ns:
        idx = ns.link_lookup(ifname=EXCHANGE_IFACE)[0]
        ns.addr("add", index=idx, address=EXCHANGE_IP, prefixlen=PREFIX)
        ns.link("set", index=idx, state="up")
        lo = ns.link_lookup(ifname="lo")[0]
        ns.link("set", index=lo, state="up")
        _attach_peer_pass(ns, idx)
    # Wait for carrier on both ends so the first packet is not lost.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with IPRoute() as ipr:
            msg = ipr.link("get", index=ipr.link_lookup(ifname=ENGINE_IFACE)[0])[0]
            if msg.get_attr("IFLA_OPERSTATE") == "UP":
                break
        time.sleep(0.05)
    return status()


def _netns_inode() -> int | None:
    try:
        return os.stat(NETNS_PATH).st_ino
    except FileNotFoundError:
        return None


def lab_pids() -> list[int]:
    """Processes whose network namespace is the lab's (simulators, bots)."""
    ino = _netns_inode()
    if ino is None:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino == ino and int(entry.name) != os.getpid():
                    pids.append(int(entry.name))
    return pids


def down(quiet: bool = False) -> list[str]:
    """Removes everything the lab made: processes, engine, links, namespace."""
    engine.require_root()
    done = []
    pids = lab_pids()
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
    if ENGINE_IFACE in engine.attached_ifaces():
        done.extend(engine.detach(ENGINE_IFACE))
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ENGINE_IFACE)
        if found:
            ipr.link("del", index=found[0])
            done.append(f"deleted {ENGINE_IFACE}/{EXCHANGE_IFACE}")
    if NAMESPACE in netns.listnetns():
        netns.remove(NAMESPACE)
        done.append(f"removed namespace {NAMESPACE}")
    if not done and not quiet:
        done.append("the lab was not up")
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def enter_namespace() -> None:
    """setns(2) this process (one thread) into the lab's network namespace.

    Only the network namespace changes, so /sys/fs/bpf stays visible.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_PATH, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise LabError(f"setns {NAMESPACE}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def nsenter_argv(argv: list[str]) -> list[str]:
    """argv that runs a command in the lab namespace without remounting /sys."""
    return ["nsenter", f"--net={NETNS_PATH}", "--", *argv]
