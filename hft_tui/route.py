"""Where orders go: the gateway's MAC and the source address, found at attach.

The kernel writes every order frame itself (XDP_TX), so it cannot ask the
network stack whom to send it to: the control plane works it out once,
before attach, and writes it to the route map.  For ``[engine.gateway]``:

 - the next hop is the gateway itself when it is on the interface's
   network, or the router the routing table names toward it;
 - its MAC is the config's ``mac``, else the neighbour table's entry, else
   the answer to an ARP request sent on the interface (a packet socket; a
   bounded wait); with none of them the attach is refused in one line;
 - the source is the config's ``src_ip`` or the interface's IPv4 address
   (the one on the next hop's network first), ``src_port`` or the feed's
   port, and the interface's own MAC.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .config import Gateway
from .errors import EngineError
from .netaddr import mac_bytes, mac_text
from .paths import check_ifname

# include/uapi/linux/if_ether.h and if_arp.h, include/uapi/linux/neighbour.h (kernel ABI, not ours)
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20
BROADCAST_MAC = b"\xff" * 6

#: how long an attach waits for the gateway's ARP reply, and how many requests it sends meanwhile
ARP_TIMEOUT_S = 1.0
ARP_REQUESTS = 3
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # htype, ptype, hlen, plen, op, sha, spa, tha, tpa


@dataclass(frozen=True)
class Route:
    """A gateway resolved for one interface: everything the kernel needs to send an order frame."""

    gateway: Gateway  # ip, port, mac, src_ip, src_port: all set
    src_mac: str  # the interface's own
    next_hop: IPv4Address  # whose MAC gateway.mac is: the gateway, or the router toward it
    mac_from: str  # "config", "neighbour table" or "ARP"

    def as_dict(self) -> dict[str, object]:
        return {
            **self.gateway.as_dict(),
            "src_mac": self.src_mac,
            "next_hop": str(self.next_hop),
            "mac_from": self.mac_from,
        }


def _ifindex(ipr: IPRoute, iface: str) -> int:
    found = ipr.link_lookup(ifname=check_ifname(iface))
    if not found:
        raise EngineError(f"interface {iface} does not exist")
    return int(found[0])


def link_mac(ipr: IPRoute, index: int) -> str | None:
    mac = ipr.link("get", index=index)[0].get_attr("IFLA_ADDRESS")
    return str(mac).lower() if mac else None


def ipv4_addresses(ipr: IPRoute, index: int) -> list[IPv4Interface]:
    """The interface's IPv4 addresses with their networks, primary first (the kernel's order)."""
    return [
        IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        for a in ipr.get_addr(family=socket.AF_INET, index=index)
    ]


def next_hop(ipr: IPRoute, index: int, dst: IPv4Address) -> IPv4Address:
    """The router the routing table sends ``dst`` to through this interface, or ``dst`` itself (on link)."""
    try:
        found = ipr.route("get", dst=str(dst), oif=index)
    except NetlinkError:
        return dst  # no route through it: the gateway must then answer on the link itself
    for msg in found:
        via = msg.get_attr("RTA_GATEWAY")
        if via and msg.get_attr("RTA_OIF") == index:
            return IPv4Address(via)
    return dst


def neighbour_mac(ipr: IPRoute, index: int, ip: IPv4Address) -> str | None:
    """The neighbour table's MAC for ``ip`` on the interface, when the entry holds one that is usable."""
    try:
        entries = ipr.get_neighbours(family=socket.AF_INET, ifindex=index, dst=str(ip))
    except NetlinkError:
        return None
    for n in entries:
        mac = n.get_attr("NDA_LLADDR")
        if mac and not n["state"] & (NUD_INCOMPLETE | NUD_FAILED) and mac_bytes(mac) != b"\0" * 6:
            return str(mac).lower()
    return None


def arp_request_frame(src_mac: str, src_ip: IPv4Address, target: IPv4Address) -> bytes:
    eth = BROADCAST_MAC + mac_bytes(src_mac) + struct.pack("!H", ETH_P_ARP)
    arp = _ARP.pack(
        ARPHRD_ETHER, ETH_P_IP, 6, 4, ARPOP_REQUEST, mac_bytes(src_mac), src_ip.packed, b"\0" * 6, target.packed
    )
    return eth + arp


def arp_reply_sender(frame: bytes, target: IPv4Address) -> str | None:
    """The MAC in ``frame`` when it is an ARP reply from ``target``."""
    if len(frame) < 14 + _ARP.size or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    htype, ptype, hlen, plen, op, sha, spa, _tha, _tpa = _ARP.unpack_from(frame, 14)
    if (htype, ptype, hlen, plen, op) != (ARPHRD_ETHER, ETH_P_IP, 6, 4, ARPOP_REPLY) or spa != target.packed:
        return None
    return mac_text(sha)


def arp_probe(
    iface: str, src_mac: str, src_ip: IPv4Address, target: IPv4Address, timeout_s: float = ARP_TIMEOUT_S
) -> str | None:
    """Asks the link who has ``target`` (a few ARP requests within ``timeout_s``); its MAC or None."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
        s.bind((iface, ETH_P_ARP))
        request = arp_request_frame(src_mac, src_ip, target)
        start = time.monotonic()
        deadline = start + timeout_s
        sent = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if sent < ARP_REQUESTS and now >= start + sent * timeout_s / ARP_REQUESTS:
                s.send(request)
                sent += 1
            s.settimeout(max(0.001, min(deadline, start + sent * timeout_s / ARP_REQUESTS) - now))
            try:
                frame = s.recv(2048)
            except TimeoutError:
                continue
            mac = arp_reply_sender(frame, target)
            if mac is not None:
                return mac


def choose_source_ip(iface: str, addresses: list[IPv4Interface], hop: IPv4Address) -> IPv4Address:
    if not addresses:
        raise EngineError(f"{iface} has no IPv4 address to send orders from: set [engine.gateway] src_ip")
    on_link = [a for a in addresses if hop in a.network]
    return (on_link or addresses)[0].ip


def resolve_gateway(iface: str, gateway: Gateway, feed_port: int, *, timeout_s: float = ARP_TIMEOUT_S) -> Route:
    """The gateway with its MAC and source filled in; EngineError (one line) when it cannot be."""
    with IPRoute() as ipr:
        index = _ifindex(ipr, iface)
        src_mac = link_mac(ipr, index)
        if not src_mac:
            raise EngineError(f"{iface} has no MAC address: orders to a gateway need an Ethernet interface")
        addresses = ipv4_addresses(ipr, index)
        if any(a.ip == gateway.ip for a in addresses):
            raise EngineError(f"engine.gateway ip {gateway.ip} is {iface}'s own address: give the gateway's")
        hop = next_hop(ipr, index, gateway.ip)
        src_ip = gateway.src_ip or choose_source_ip(iface, addresses, hop)
        mac, mac_from = gateway.mac, "config"
        if mac is None:
            mac, mac_from = neighbour_mac(ipr, index, hop), "neighbour table"
        if mac is None:
            state = ipr.link("get", index=index)[0].get_attr("IFLA_OPERSTATE")
            if state == "DOWN":
                raise EngineError(f"cannot resolve the gateway's MAC: {iface} is down (set [engine.gateway] mac)")
            mac, mac_from = arp_probe(iface, src_mac, src_ip, hop, timeout_s), "ARP"
    if mac is None:
        via = "" if hop == gateway.ip else f" (via the router {hop})"
        raise EngineError(
            f"cannot resolve the gateway {gateway.ip}'s MAC on {iface}{via}: not in the neighbour table and no "
            f"ARP reply within {timeout_s:g} s (set [engine.gateway] mac)"
        )
    resolved = replace(gateway, mac=mac, src_ip=src_ip, src_port=gateway.src_port or feed_port)
    return Route(gateway=resolved, src_mac=src_mac, next_hop=hop, mac_from=mac_from)
