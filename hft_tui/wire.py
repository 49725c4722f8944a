"""Ethernet frames of UDP datagrams: built, parsed, their checksums.

What the lab puts on its veth and what it reads back there: an Ethernet
header, at most one 802.1Q/802.1ad tag, a 20-byte IPv4 header and UDP.
:func:`udp_frame` builds one with both checksums computed whole;
:func:`parse_udp_frame` takes one apart and says what is wrong with it (a
frame that is not IPv4/UDP, lengths that disagree, a bad checksum).  The
simulator sends the first and checks the engine's orders with the second;
the replay and the backtest use the same two.

The Ethernet and VLAN numbers are the kernel's own (linux/if_ether.h, read
once, as tests/frames.py does): nothing is typed twice.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

UAPI = Path("/usr/include/linux")
_DEFINE = re.compile(r"^#define[ \t]+(\w+)[ \t]+(\(?[^/\n]*?\)?)[ \t]*(?:/\*.*)?$", re.MULTILINE)
_SHIFT = re.compile(r"^\(\s*(\d+)\s*<<\s*(\d+)\s*\)$")


@cache
def uapi_defines(header: str) -> dict[str, int]:
    """The numeric ``#define``s of a kernel uapi header (``(1 << 4)`` and
    ``(-0x200000)`` included)."""
    out: dict[str, int] = {}
    for name, token in _DEFINE.findall((UAPI / header).read_text()):
        token = token.strip()
        shift = _SHIFT.match(token)
        try:
            out[name] = int(shift[1]) << int(shift[2]) if shift else int(token.strip("()"), 0)
        except ValueError:
            continue
    return out


_ETHER = uapi_defines("if_ether.h")
ETH_ALEN = _ETHER["ETH_ALEN"]
ETH_HLEN = _ETHER["ETH_HLEN"]
ETH_P_ALL = _ETHER["ETH_P_ALL"]
ETH_P_IP = _ETHER["ETH_P_IP"]
ETH_P_8021Q = _ETHER["ETH_P_8021Q"]
ETH_P_8021AD = _ETHER["ETH_P_8021AD"]
VLAN_TPIDS = (ETH_P_8021Q, ETH_P_8021AD)
VLAN_HLEN = 4
VLAN_VID_MASK = 0x0FFF
IPV4_HLEN = 20  # what the lab sends; a received header may carry options
UDP_HLEN = 8
IP_TTL = 64
IP_DF = 0x4000
IP_MF_OFFSET = 0x3FFF  # more fragments + fragment offset: a fragment
IPPROTO_UDP = socket.IPPROTO_UDP
MAX_VLAN_ID = 4094

_ETH = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")


# -- addresses ---------------------------------------------------------------


def mac_bytes(mac: str) -> bytes:
    """ "02:00:00:00:00:01" -> 6 bytes (ValueError when it is not a MAC)."""
    parts = mac.split(":")
    if len(parts) != ETH_ALEN or not all(len(p) == 2 for p in parts):
        raise ValueError(f"{mac!r} is not a MAC address")
    return bytes(int(p, 16) for p in parts)


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def multicast_mac(group: str) -> str:
    """The Ethernet address of an IPv4 multicast group (RFC 1112: 01:00:5e and
    the group's low 23 bits)."""
    addr = ipaddress.IPv4Address(group)
    if not addr.is_multicast:
        raise ValueError(f"{group} is not an IPv4 multicast group")
    low = int(addr) & 0x7FFFFF
    return mac_str(bytes((0x01, 0x00, 0x5E, low >> 16, (low >> 8) & 0xFF, low & 0xFF)))


# -- checksums -----------------------------------------------------------------


def ones_complement_sum(data: bytes) -> int:
    """The 16-bit one's complement sum of ``data`` (odd length padded), folded.

    The sum of big-endian 16-bit words is the bytes read as one big integer
    modulo 0xFFFF, since 0x10000 is 1 modulo 0xFFFF: one C-speed division
    instead of a Python loop over the words.
    """
    if len(data) & 1:
        data += b"\0"
    s = int.from_bytes(data, "big") % 0xFFFF
    return 0xFFFF if s == 0 and any(data) else s


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: 0 over data that carries it."""
    return ~ones_complement_sum(data) & 0xFFFF


def udp_checksum(src: bytes, dst: bytes, udp: bytes) -> int:
    """The UDP checksum over the IPv4 pseudo header and ``udp`` (header and
    payload); 0 comes out as 0xFFFF, since 0 means "no checksum"."""
    pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, len(udp))
    c = checksum(pseudo + udp)
    return c or 0xFFFF


# -- building ------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Who a UDP frame goes from and to: MACs, IPv4 addresses and ports."""

    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int


def udp_frame(
    route: Route,
    payload: bytes,
    *,
    vlan: int | None = None,
    ip_id: int = 0,
    ttl: int = IP_TTL,
    dont_fragment: bool = True,
) -> bytes:
    """One Ethernet frame carrying ``payload`` by UDP, checksums computed whole;
    ``vlan``: an 802.1Q tag with that VLAN id (priority 0)."""
    src, dst = socket.inet_aton(route.src_ip), socket.inet_aton(route.dst_ip)
    udp_len = UDP_HLEN + len(payload)
    udp = _UDP.pack(route.src_port, route.dst_port, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", udp_checksum(src, dst, udp)) + udp[8:]
    ip = _IPV4.pack(
        0x45, 0, IPV4_HLEN + udp_len, ip_id & 0xFFFF, IP_DF if dont_fragment else 0, ttl, IPPROTO_UDP, 0, src, dst
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    macs = mac_bytes(route.dst_mac) + mac_bytes(route.src_mac)
    if vlan is None:
        eth = macs + struct.pack("!H", ETH_P_IP)
    else:
        eth = macs + _TAG.pack(ETH_P_8021Q, vlan & VLAN_VID_MASK) + struct.pack("!H", ETH_P_IP)
    return eth + ip + udp


def insert_vlan_tag(frame: bytes, tpid: int, tci: int) -> bytes:
    """``frame`` with a VLAN tag put back after its MACs (a tag the receiving
    kernel moved into metadata: PACKET_AUXDATA)."""
    return frame[: 2 * ETH_ALEN] + _TAG.pack(tpid, tci) + frame[2 * ETH_ALEN :]


# -- parsing -------------------------------------------------------------------


@dataclass(frozen=True)
class UdpFrame:
    """A parsed frame: ``problems`` names every way it is not a good IPv4/UDP
    frame (empty: it is one); ``payload`` is the UDP payload."""

    route: Route
    vlan: int | None  # the VLAN id, None without a tag
    ttl: int
    payload: bytes
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_udp_frame(frame: bytes) -> UdpFrame | None:
    """The frame's route, VLAN and UDP payload with its problems; None when it
    is not IPv4/UDP at all (ARP, IPv6, another protocol: not ours to judge)."""
    if len(frame) < ETH_HLEN:
        return None
    dst_mac, src_mac, proto = _ETH.unpack_from(frame)
    off, vlan = ETH_HLEN, None
    if proto in VLAN_TPIDS:
        if len(frame) < ETH_HLEN + VLAN_HLEN:
            return None
        tci, proto = _TAG.unpack_from(frame, ETH_HLEN)
        vlan, off = tci & VLAN_VID_MASK, off + VLAN_HLEN
    if proto != ETH_P_IP or len(frame) < off + IPV4_HLEN:
        return None
    ver_ihl, _tos, total, _id, frag, ttl, ipproto, _csum, src, dst = _IPV4.unpack_from(frame, off)
    if ipproto != IPPROTO_UDP:
        return None
    problems: list[str] = []
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < IPV4_HLEN or len(frame) < off + ihl + UDP_HLEN:
        return None
    if checksum(frame[off : off + ihl]) != 0:
        problems.append("ip checksum")
    if frag & IP_MF_OFFSET:
        problems.append("ip fragment")
    if total < ihl + UDP_HLEN or off + total > len(frame):
        problems.append("ip length")
        total = len(frame) - off
    udp_off = off + ihl
    sport, dport, udp_len, udp_csum = _UDP.unpack_from(frame, udp_off)
    if udp_len != total - ihl:
        problems.append("udp length")
        udp_len = max(min(udp_len, total - ihl), UDP_HLEN)
    udp = frame[udp_off : udp_off + udp_len]
    if udp_csum == 0:
        problems.append("udp checksum missing")
    elif checksum(src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len) + udp) != 0:
        problems.append("udp checksum")
    route = Route(mac_str(src_mac), mac_str(dst_mac), socket.inet_ntoa(src), socket.inet_ntoa(dst), sport, dport)
    return UdpFrame(route, vlan, ttl, udp[UDP_HLEN:], tuple(problems))
