"""Interfaces and XDP attachment over rtnetlink (pyroute2).

pyroute2's ``link('set', xdp_fd=fd)`` sends no flags, so the kernel would
pick a mode and silently replace an existing program.  Here every attach
sends the nested IFLA_XDP attribute with an explicit mode and
XDP_FLAGS_UPDATE_IF_NOEXIST (unless forced), and the attached mode and
program id are read back and checked.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .constants import XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST
from .errors import NetlinkFailure
from .paths import check_ifname

MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
# IFLA_XDP_ATTACHED, as pyroute2 decodes it (names) or as numbers.
_ATTACHED = {
    None: None,
    0: None,
    "none": None,
    1: "native",
    "xdp": "native",
    "drv": "native",
    2: "generic",
    "xdpgeneric": "generic",
    "skb": "generic",
    3: "offload",
    "xdpoffload": "offload",
    "hw": "offload",
    4: "multi",
    "xdpmulti": "multi",
    "multi": "multi",
}


@dataclass
class XdpState:
    mode: str | None = None  # native, generic, offload, multi or None
    prog_id: int = 0


@dataclass
class Interface:
    name: str
    index: int
    state: str
    mac: str
    mtu: int
    kind: str
    addresses: list[str] = field(default_factory=list)
    xdp: XdpState = field(default_factory=XdpState)


def _xdp_state(msg) -> XdpState:
    xdp = msg.get_attr("IFLA_XDP")
    if not xdp:
        return XdpState()
    mode = _ATTACHED.get(xdp.get_attr("IFLA_XDP_ATTACHED"), "unknown")
    return XdpState(mode=mode, prog_id=int(xdp.get_attr("IFLA_XDP_PROG_ID") or 0))


def _kind(msg, name: str) -> str:
    info = msg.get_attr("IFLA_LINKINFO")
    if info and info.get_attr("IFLA_INFO_KIND"):
        return info.get_attr("IFLA_INFO_KIND")
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{name}/device/driver"))
    except OSError:
        return "loopback" if name == "lo" else "-"


def ifindex(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=check_ifname(ifname))
    if not found:
        raise NetlinkFailure(f"interface {ifname} does not exist")
    return found[0]


def interfaces(ipr: IPRoute | None = None) -> list[Interface]:
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        addrs: dict[int, list[str]] = {}
        for a in ipr.get_addr():
            addrs.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        out = []
        for msg in ipr.get_links():
            name = msg.get_attr("IFLA_IFNAME")
            out.append(
                Interface(
                    name=name,
                    index=msg["index"],
                    state=(msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
                    mac=msg.get_attr("IFLA_ADDRESS") or "",
                    mtu=msg.get_attr("IFLA_MTU") or 0,
                    kind=_kind(msg, name),
                    addresses=addrs.get(msg["index"], []),
                    xdp=_xdp_state(msg),
                )
            )
        return sorted(out, key=lambda i: i.index)
    finally:
        if own:
            ipr.close()


def xdp_state(ipr: IPRoute, ifname: str) -> XdpState:
    return _xdp_state(ipr.link("get", index=ifindex(ipr, ifname))[0])


def attach_xdp(ipr: IPRoute, ifname: str, prog_fd: int, mode: str, *, force: bool = False) -> XdpState:
    """Attaches in ``mode``; refuses to replace another program unless forced."""
    if mode not in MODE_FLAGS:
        raise NetlinkFailure(f"unknown XDP mode {mode!r} (native or generic)")
    idx = ifindex(ipr, ifname)
    current = xdp_state(ipr, ifname)
    if current.mode:
        if not force:
            raise NetlinkFailure(
                f"{ifname} already has an XDP program (id {current.prog_id}, {current.mode} mode); "
                "detach it first or use --force"
            )
        if current.mode != mode and current.mode in MODE_FLAGS:
            # The kernel refuses a second mode beside the first: remove it.
            detach_xdp(ipr, ifname, current.mode)
    flags = MODE_FLAGS[mode] | (0 if force else XDP_FLAGS_UPDATE_IF_NOEXIST)
    try:
        ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", flags)]})
    except NetlinkError as exc:
        reason = {
            errno.EBUSY: "another XDP program is attached",
            errno.EEXIST: "an XDP program is attached in the other mode",
            errno.EOPNOTSUPP: f"the driver does not support {mode} XDP (try --mode generic)",
            errno.EPERM: "permission denied (run as root)",
            errno.EINVAL: f"the kernel refused the program in {mode} mode (MTU too large for XDP?)",
        }.get(exc.code, os.strerror(exc.code))
        raise NetlinkFailure(f"cannot attach to {ifname}: {reason}") from None
    got = xdp_state(ipr, ifname)
    if got.mode != mode:
        # A request that landed in another mode is a failure, not a success.
        if got.mode in MODE_FLAGS:
            detach_xdp(ipr, ifname, got.mode)
        raise NetlinkFailure(f"asked for {mode} XDP on {ifname} but the kernel attached {got.mode}")
    return got


def detach_xdp(ipr: IPRoute, ifname: str, mode: str) -> None:
    idx = ifindex(ipr, ifname)
    try:
        ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", MODE_FLAGS[mode])]})
    except NetlinkError as exc:
        raise NetlinkFailure(f"cannot detach from {ifname}: {os.strerror(exc.code)}") from None
