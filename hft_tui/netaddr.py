"""Network values checked where they enter: IPv4 addresses, CIDRs, MACs.

A config file names the feed's address, the senders allowed to send it and
the order gateway; each is parsed here once, with one clear line when it is
not what the engine can use, and comes out as an ``ipaddress`` value (or a
MAC in one spelling: six lowercase hex pairs joined by ':').
"""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network

from .errors import ConfigError

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
#: 240.0.0.0/4 (and the broadcast 255.255.255.255 inside it): never a host
_RESERVED = IPv4Network("240.0.0.0/4")


def _text(value: object, key: str, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: give {what} as a string in quotes, not {value!r}")
    return value.strip()


def parse_ipv4(value: object, key: str) -> IPv4Address:
    text = _text(value, key, "an IPv4 address")
    try:
        return IPv4Address(text)
    except ValueError:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not an IPv4 address") from None
        raise ConfigError(f"{key}: {text} is an IPv6 address; the engine reads IPv4 only") from None


def _refuse_never_a_host(addr: IPv4Address, key: str) -> None:
    if addr.is_unspecified:
        raise ConfigError(f"{key}: {addr} is the unspecified address, no packet is sent to it")
    if addr in _RESERVED:
        what = "the broadcast address" if addr == IPv4Address("255.255.255.255") else "a reserved address (240/4)"
        raise ConfigError(f"{key}: {addr} is {what}")


def parse_unicast(value: object, key: str) -> IPv4Address:
    """One host's IPv4 address: never multicast, broadcast, unspecified or loopback."""
    addr = parse_ipv4(value, key)
    _refuse_never_a_host(addr, key)
    if addr.is_multicast:
        raise ConfigError(f"{key}: {addr} is a multicast address; give one host's IPv4 address")
    if addr.is_loopback:
        raise ConfigError(f"{key}: {addr} is a loopback address; give an address on the interface's network")
    return addr


def parse_feed_address(value: object, key: str) -> IPv4Address:
    """The feed's destination: a host's IPv4 address or a multicast group."""
    addr = parse_ipv4(value, key)
    _refuse_never_a_host(addr, key)
    return addr


def parse_source_network(value: object, key: str) -> IPv4Network:
    """A sender's network as CIDR (a bare address is a /32)."""
    text = _text(value, key, "an IPv4 CIDR such as '198.18.0.2/32'")
    try:
        net = IPv4Network(text, strict=True)
    except ValueError as exc:
        try:
            loose = IPv4Network(text, strict=False)
        except ValueError:
            if ":" in text:
                raise ConfigError(f"{key}: {text} is IPv6; the engine reads IPv4 only") from None
            raise ConfigError(f"{key}: {text!r} is not an IPv4 CIDR ({exc})") from None
        raise ConfigError(f"{key}: {text} has host bits set (the network is {loose})") from None
    if net.prefixlen == 0:
        raise ConfigError(f"{key}: {net} lets any sender trade; leave feed_sources out for an open feed")
    if net.network_address.is_multicast or net.network_address in _RESERVED:
        raise ConfigError(f"{key}: {net} is no sender's network (multicast or reserved)")
    return net


def parse_mac(value: object, key: str) -> str:
    """One station's MAC address: six hex pairs with ':', neither multicast nor all zeros."""
    text = _text(value, key, "a MAC address such as '02:00:00:00:00:03'")
    if not _MAC.fullmatch(text):
        raise ConfigError(f"{key}: {text!r} is not a MAC address (six hex pairs joined by ':')")
    mac = text.lower()
    if mac == "00:00:00:00:00:00":
        raise ConfigError(f"{key}: {mac} is the all-zeros MAC, no station has it")
    if int(mac[:2], 16) & 1:
        what = "the broadcast" if mac == "ff:ff:ff:ff:ff:ff" else "a multicast"
        raise ConfigError(f"{key}: {mac} is {what} MAC; give one station's address")
    return mac


def mac_bytes(mac: str) -> bytes:
    """A MAC as parse_mac spells it (or as netlink and the kernel do) to its 6 bytes."""
    return bytes.fromhex(mac.replace(":", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
