"""veth's own XDP counters, read for the throughput runs.

veth counts per queue what its XDP path did (the ethtool statistics, read
here through the SIOCETHTOOL ioctl: no ethtool binary needed): frames run,
sent back with XDP_TX, dropped, and, what says where a frame was lost, the
ones that did not fit the peer's 256-frame ring (``xdp_xmit_errors``,
``xdp_tx_errors``).
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

from .. import lab as lab_mod

SIOCETHTOOL = 0x8946  # linux/sockios.h
ETHTOOL_GSTRINGS = 0x1B  # linux/ethtool.h
ETHTOOL_GSSET_INFO = 0x37
ETHTOOL_GSTATS = 0x1D
ETH_SS_STATS = 1
ETH_GSTRING_LEN = 32


def _ethtool(sock: socket.socket, ifname: str, buf: ctypes.Array) -> None:
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


def _stats_here(ifname: str) -> dict[str, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        info = (ctypes.c_uint8 * 24)()  # struct ethtool_sset_info + one u32 of data
        struct.pack_into("IIQ", info, 0, ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_STATS)
        _ethtool(sock, ifname, info)
        n = struct.unpack_from("I", info, 16)[0]
        names_buf = (ctypes.c_uint8 * (12 + ETH_GSTRING_LEN * n))()
        struct.pack_into("III", names_buf, 0, ETHTOOL_GSTRINGS, ETH_SS_STATS, n)
        _ethtool(sock, ifname, names_buf)
        raw = bytes(names_buf)[12:]
        names = [raw[i * ETH_GSTRING_LEN : (i + 1) * ETH_GSTRING_LEN].split(b"\0")[0].decode() for i in range(n)]
        values_buf = (ctypes.c_uint8 * (8 + 8 * n))()
        struct.pack_into("II", values_buf, 0, ETHTOOL_GSTATS, n)
        _ethtool(sock, ifname, values_buf)
        return dict(zip(names, struct.unpack_from(f"{n}Q", values_buf, 8)))


def xdp_stats(lab: lab_mod.Lab) -> dict[str, int]:
    """veth's XDP counters of both ends, summed over queues, e.g. ``engine.rx_tx`` (frames the engine's
    program sent back), ``exchange.tx_xmit_errors`` (frames handed to the engine's end that did not fit
    its ring)."""
    out: dict[str, int] = {}
    for side, stats in (
        ("engine", _stats_here(lab.engine_iface)),
        ("exchange", lab_mod.in_namespace(lambda: _stats_here(lab.exchange_iface), lab)),
    ):
        for name, value in stats.items():
            # rx_queue_<n>_xdp_<what> and tx_queue_<n>_xdp_<what>
            if "_xdp_" not in name or not name.startswith(("rx_queue_", "tx_queue_")):
                continue
            key = f"{side}.{name[:2]}_{name.split('_xdp_', 1)[1]}"
            out[key] = out.get(key, 0) + value
    return out


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What changed (only the non-zero changes)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
