"""Typed access to a running engine's maps, by file descriptor.

The same class serves the process that loaded the program (fds from BCC)
and any other process (fds from the pins under /sys/fs/bpf/hft_tui/IFACE).
Config values are written whole with BPF_F_LOCK and state is read with
BPF_F_LOCK, so neither side ever sees half of a value.

Every config write then publishes a fresh stamp at the config's slot of the
config_stamps map (:class:`ConfigStamps`, ebpf/hft_structs.h): the program
uses its per-CPU copy of a config without the config's lock only while the
slot holds the stamp the copy was made for, so a write is complete when its
stamp is published.  Writes are one at a time: within a process by this
module's lock, between processes by the control lock (locks.control_lock),
which every write to a running engine holds.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import libbpf
from .config import EngineParams, SymbolParams
from .config_stamps import ConfigStamps
from .constants import (
    BPF_ANY,
    BPF_F_LOCK,
    BPF_NOEXIST,
    COUNTERS,
    CTR_REJECT_BASE,
    MAX_FEED_SOURCES,
    MAX_SOURCE_MACS,
    NO_TRADE_ACTIONS,
    NUM_COUNTERS,
    REJECT_REASONS,
    ROUTE_GATEWAY,
    ROUTE_REFLECT,
    SESSION_LEN,
)
from .errors import MapsError
from .layout import (
    ChannelKey,
    ChannelState,
    FeedCounters,
    FeedFilter,
    GlobalConfig,
    GlobalState,
    KernelGlobalParams,
    KernelSymbolParams,
    Route,
    SymbolConfig,
    SymbolKey,
    SymbolState,
    Totals,
    key_name,
    symbol_key,
)
from .symbol import Symbol

# pin name -> value type (None: not read as a struct here)
MAP_VALUES: dict[str, type | None] = {
    "symbol_config": SymbolConfig,
    "symbol_state": SymbolState,
    "global_config": GlobalConfig,
    "global_state": GlobalState,
    "totals": Totals,
    "kill_switch": ctypes.c_uint64,
    "heartbeat": ctypes.c_uint64,
    "counters": ctypes.c_uint64,
    "feed_counters": FeedCounters,
    "channels": ChannelState,
    "route": Route,
    "feed_filter": FeedFilter,
    "events": None,
    "tape_events": None,
    "scratch": None,
    "config_stamps": None,  # mapped (ConfigStamps)
    "symbol_copies": None,  # the program's own (per CPU)
}
# Maps only some builds have: the backtest build's clock (-DHFT_BACKTEST).
OPTIONAL_MAP_VALUES: dict[str, type | None] = {
    "backtest_clock": ctypes.c_uint64,
}
_NO_TRADE_CODE = {name: code for code, name in NO_TRADE_ACTIONS.items()}
_REJECT_CODE = {name: code for code, name in REJECT_REASONS.items()}
FEEDS_WITH_CHANNELS = ("iex", "itch")


@dataclass(frozen=True)
class Gateway:
    """Where orders go instead of back to the sender (map route).  ``src_mac`` is
    the interface's MAC, ``src_ip``/``src_port`` what the orders leave from."""

    ip: str
    port: int
    mac: str
    src_ip: str
    src_port: int
    src_mac: str


@dataclass(frozen=True)
class FeedSources:
    """Which packets are the feed and who may send it (map feed_filter).
    Empty ``sources``: any sender (an open feed); empty ``macs``: any MAC."""

    feed_addr: str | None = None
    sources: tuple[str, ...] = ()  # IPv4 CIDRs
    macs: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedCounts:
    """The feed counters summed over the CPUs, and the feed packets refused by source."""

    packets: int
    messages: int
    in_transition: int
    truncated_packets: int
    dup_packets: int
    heartbeats: int
    channels_full: int
    grow_failed: int
    frame_errors: int
    not_for_us: int  # feed packets to another host's unicast MAC: passed, never read
    foreign_source: int


@dataclass(frozen=True)
class FeedChannel:
    """One channel's sequence state.  ``id``: IEX "SESSION/CHANNEL" (decimal), MoldUDP64
    the session's 10 characters; ``key`` the raw map key (for reset_channel)."""

    id: str
    next_seq: int
    packets: int
    messages: int
    gaps: int
    gap_messages: int
    dup_packets: int
    seq_jumps: int
    key: bytes = field(repr=False, default=b"")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "key"}


@dataclass
class Snapshot:
    """One read of everything the kernel holds, for status and the TUI."""

    taken_ns: int
    global_config: GlobalConfig
    kill: int
    heartbeat_ns: int
    totals: Totals
    counters: dict[str, int]
    rejects: dict[str, int]
    symbols: dict[Symbol, tuple[SymbolConfig, SymbolState]] = field(default_factory=dict)
    feed: FeedCounts | None = None
    channels: list[FeedChannel] = field(default_factory=list)


# One config write (its locked update and its stamp) at a time in this process.
_WRITE_LOCK = threading.RLock()


class EngineMaps:
    def __init__(self, fds: dict[str, int], *, owns_fds: bool) -> None:
        missing = [n for n in MAP_VALUES if n not in fds]
        if missing:
            raise MapsError(f"engine maps missing: {', '.join(missing)}")
        self.fds = fds
        self._owns = owns_fds
        self._ncpus = libbpf.num_possible_cpus()
        for name, vtype in {**MAP_VALUES, **OPTIONAL_MAP_VALUES}.items():
            if vtype is None or name == "counters" or name not in fds:
                continue
            size = libbpf.map_info(fds[name]).value_size
            if size != ctypes.sizeof(vtype):
                raise MapsError(
                    f"map {name} holds {size}-byte values, this hft-tui expects {ctypes.sizeof(vtype)}: "
                    "the running engine is another version; detach it and attach again"
                )
        # The counters' values are u64s whatever the version: their number is what tells.
        held = libbpf.map_info(fds["counters"]).max_entries
        if held != NUM_COUNTERS:
            raise MapsError(
                f"map counters holds {held} counters, this hft-tui expects {NUM_COUNTERS}: "
                "the running engine is another version; detach it and attach again"
            )
        self.stamps = ConfigStamps(fds["config_stamps"])

    @classmethod
    def open_pinned(cls, directory: Path) -> EngineMaps:
        fds = {}
        try:
            for name in MAP_VALUES:
                fds[name] = libbpf.obj_get(str(directory / name))
        except OSError as exc:
            for fd in fds.values():
                os.close(fd)
            raise MapsError(f"cannot open the engine's maps in {directory}: {exc.strerror}") from None
        try:
            return cls(fds, owns_fds=True)
        except BaseException:  # another version's maps: refused, and nothing of them kept open
            for fd in fds.values():
                os.close(fd)
            raise

    def close(self) -> None:
        if self.fds:
            self.stamps.close()
        if self._owns:
            for fd in self.fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.fds = {}

    # -- engine-wide ----------------------------------------------------
    def read_global(self) -> GlobalConfig:
        value = GlobalConfig()
        libbpf.lookup(self.fds["global_config"], ctypes.c_uint32(0), value, lock=True)
        return value

    def _update_global(self, value: GlobalConfig) -> None:
        """One whole-value update of the engine-wide config, then its stamp published."""
        libbpf.update(self.fds["global_config"], ctypes.c_uint32(0), value, BPF_F_LOCK)
        self.stamps.publish(self.stamps.global_slot)

    def write_global(self, params: EngineParams, *, deadman_ms: int, version: int) -> None:
        value = GlobalConfig(p=global_params_to_map(params, deadman_ms=deadman_ms), config_version=version)
        with _WRITE_LOCK:
            self._update_global(value)

    def set_deadman(self, deadman_ms: int) -> None:
        with _WRITE_LOCK:
            g = self.read_global()
            g.deadman_ms = deadman_ms
            self._update_global(g)

    def bump_version(self) -> int:
        with _WRITE_LOCK:
            g = self.read_global()
            g.config_version += 1
            self._update_global(g)
        return g.config_version

    def kill(self) -> int:
        value = ctypes.c_uint64()
        libbpf.lookup(self.fds["kill_switch"], ctypes.c_uint32(0), value)
        return value.value

    def set_kill(self, state: int) -> None:
        libbpf.update(self.fds["kill_switch"], ctypes.c_uint32(0), ctypes.c_uint64(state), BPF_ANY)

    def heartbeat(self) -> int:
        value = ctypes.c_uint64()
        libbpf.lookup(self.fds["heartbeat"], ctypes.c_uint32(0), value)
        return value.value

    def beat(self, now_ns: int | None = None) -> None:
        """The controller's heartbeat: CLOCK_MONOTONIC, as bpf_ktime_get_ns."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        libbpf.update(self.fds["heartbeat"], ctypes.c_uint32(0), ctypes.c_uint64(now), BPF_ANY)

    def totals(self) -> Totals:
        value = Totals()
        libbpf.lookup(self.fds["totals"], ctypes.c_uint32(0), value)
        return value

    def counters(self) -> list[int]:
        """Per-CPU counters summed over the possible CPUs."""
        buf = (ctypes.c_uint64 * self._ncpus)()
        out = []
        for idx in range(NUM_COUNTERS):
            libbpf.lookup(self.fds["counters"], ctypes.c_uint32(idx), buf)
            out.append(sum(buf))
        return out

    # -- the feed -------------------------------------------------------
    def feed_counts(self) -> FeedCounts:
        """The feed counters summed over the possible CPUs (and foreign_source)."""
        buf = (FeedCounters * self._ncpus)()
        libbpf.lookup(self.fds["feed_counters"], ctypes.c_uint32(0), buf)
        sums = {f[0]: sum(getattr(cpu, f[0]) for cpu in buf) for f in FeedCounters._fields_}
        foreign = self.counters()[CTR_REJECT_BASE + _REJECT_CODE["foreign_source"]]
        return FeedCounts(**sums, foreign_source=foreign)

    def channels(self, feed: str) -> list[FeedChannel]:
        """Every channel the kernel has seen, by id (empty for hft1: it has none)."""
        if feed not in FEEDS_WITH_CHANNELS:
            return []
        out = []
        for key in libbpf.keys(self.fds["channels"], ChannelKey):
            st = ChannelState()
            if not libbpf.lookup(self.fds["channels"], key, st, lock=True):
                continue  # gone meanwhile (reset)
            out.append(
                FeedChannel(
                    id=channel_id(key, feed),
                    next_seq=st.next_seq,
                    packets=st.packets,
                    messages=st.messages,
                    gaps=st.gaps,
                    gap_messages=st.gap_messages,
                    dup_packets=st.dup_packets,
                    seq_jumps=st.seq_jumps,
                    key=bytes(key),
                )
            )
        return sorted(out, key=lambda c: c.id)

    def reset_channel(self, channel: FeedChannel) -> bool:
        """Forgets a channel's sequence: its next packet sets it, whatever it is (a
        feed that jumped more than max_seq_jump, on purpose).  False: not there."""
        return libbpf.delete(self.fds["channels"], ChannelKey.from_buffer_copy(channel.key))

    def reset_seq(self, name: Symbol) -> int:
        """Resets a symbol's sequence: its next update sets it whatever it is.  The
        kernel's state is not written here (the program writes it under its lock):
        the config's seq_epoch moves, and the program, finding the state's epoch
        different, takes the next sequence afresh.  Returns the new epoch."""
        key = symbol_key(name)
        cfg = SymbolConfig()
        with _WRITE_LOCK:
            if not libbpf.lookup(self.fds["symbol_config"], key, cfg, lock=True):
                raise MapsError(f"symbol {name} is not configured")
            cfg.seq_epoch = (cfg.seq_epoch + 1) & 0xFFFFFFFF
            self._update_symbol(name, cfg)
        return cfg.seq_epoch

    def write_route(self, gateway: Gateway | None, *, iface_mac: str | None = None) -> None:
        """Before attach only (the program reads it without a lock): orders to the
        gateway, or (None) reflected back to the sender.  The interface's MAC (the
        gateway's ``src_mac``, else ``iface_mac``) is also how the program knows a
        unicast frame to another host is not the feed; without it (reflection and no
        ``iface_mac``) every destination MAC is taken."""
        libbpf.update(self.fds["route"], ctypes.c_uint32(0), route_to_map(gateway, iface_mac), BPF_ANY)

    def read_route(self) -> Gateway | None:
        value = Route()
        libbpf.lookup(self.fds["route"], ctypes.c_uint32(0), value)
        return route_from_map(value)

    def interface_mac(self) -> str | None:
        """The interface's MAC the program checks a unicast frame's destination with
        (the route's, with or without a gateway); None: not written, nothing checked."""
        value = Route()
        libbpf.lookup(self.fds["route"], ctypes.c_uint32(0), value)
        return None if bytes(value.src_mac) == bytes(6) else _mac_text(value.src_mac)

    def write_feed_sources(self, sources: FeedSources) -> None:
        """Before attach only, like the route."""
        libbpf.update(self.fds["feed_filter"], ctypes.c_uint32(0), feed_filter_to_map(sources), BPF_ANY)

    def read_feed_sources(self) -> FeedSources:
        value = FeedFilter()
        libbpf.lookup(self.fds["feed_filter"], ctypes.c_uint32(0), value)
        return feed_filter_from_map(value)

    # -- the backtest build ---------------------------------------------
    def set_clock(self, now_ns: int) -> None:
        """The backtest build's clock (the next frame's capture time, in ns)."""
        if "backtest_clock" not in self.fds:
            raise MapsError("this engine has no backtest clock: it was not built with backtest=True")
        libbpf.update(self.fds["backtest_clock"], ctypes.c_uint32(0), ctypes.c_uint64(now_ns), BPF_ANY)

    # -- symbols --------------------------------------------------------
    def _update_symbol(self, name: Symbol, cfg: SymbolConfig) -> None:
        """One whole-value update of a symbol's config, then its slot's stamp published."""
        libbpf.update(self.fds["symbol_config"], symbol_key(name), cfg, BPF_F_LOCK)
        self.stamps.publish(self.stamps.symbol_slot(name))

    def _delete_symbol_config(self, name: Symbol) -> bool:
        """The config deleted, then its slot's stamp published: no copy of it is used again."""
        found = libbpf.delete(self.fds["symbol_config"], symbol_key(name))
        self.stamps.publish(self.stamps.symbol_slot(name))
        return found

    def symbol_names(self) -> list[Symbol]:
        return sorted(Symbol(key_name(k.name)) for k in libbpf.keys(self.fds["symbol_config"], SymbolKey))

    def read_symbol(self, name: Symbol) -> tuple[SymbolConfig, SymbolState] | None:
        key = symbol_key(name)
        cfg, st = SymbolConfig(), SymbolState()
        if not libbpf.lookup(self.fds["symbol_config"], key, cfg, lock=True):
            return None
        if not libbpf.lookup(self.fds["symbol_state"], key, st, lock=True):
            st = SymbolState()
        return cfg, st

    def write_symbol(self, name: Symbol, p: SymbolParams) -> None:
        """One whole-value update of the symbol's config (state created first).
        The config's seq_epoch is kept: a parameter change resets no sequence."""
        key = symbol_key(name)
        with _WRITE_LOCK:
            try:
                libbpf.update(self.fds["symbol_state"], key, SymbolState(), BPF_NOEXIST)
            except OSError as exc:
                if exc.errno == errno.E2BIG:  # a hash map refuses an insert past max_entries
                    held = libbpf.map_info(self.fds["symbol_state"]).max_entries
                    raise MapsError(f"symbol {name}: the engine holds at most {held} symbols") from None
                if exc.errno != errno.EEXIST:  # EEXIST: the symbol trades already, keep its state
                    raise
            old = SymbolConfig()
            epoch = old.seq_epoch if libbpf.lookup(self.fds["symbol_config"], key, old, lock=True) else 0
            self._update_symbol(name, SymbolConfig(seq_epoch=epoch, p=symbol_params_to_map(p)))

    def read_symbol_state(self, name: Symbol) -> SymbolState | None:
        st = SymbolState()
        return st if libbpf.lookup(self.fds["symbol_state"], symbol_key(name), st, lock=True) else None

    def delete_symbol_config(self, name: Symbol) -> bool:
        """The kernel stops deciding for the symbol (it becomes unknown); its state stays."""
        with _WRITE_LOCK:
            return self._delete_symbol_config(name)

    def restore_symbol_config(self, name: Symbol, cfg: SymbolConfig) -> None:
        with _WRITE_LOCK:
            self._update_symbol(name, cfg)

    def remove_symbol(self, name: Symbol) -> bool:
        with _WRITE_LOCK:
            found = self._delete_symbol_config(name)
            libbpf.delete(self.fds["symbol_state"], symbol_key(name))
        return found

    def snapshot(self, feed: str | None = None) -> Snapshot:
        """Everything at once; with ``feed`` (the format the engine was built for)
        the channels too."""
        ctr = self.counters()
        symbols = {}
        for name in self.symbol_names():
            got = self.read_symbol(name)
            if got:
                symbols[name] = got
        return Snapshot(
            taken_ns=time.monotonic_ns(),
            global_config=self.read_global(),
            kill=self.kill(),
            heartbeat_ns=self.heartbeat(),
            totals=self.totals(),
            counters={name: ctr[idx] for idx, name in COUNTERS.items()},
            rejects={name: ctr[CTR_REJECT_BASE + idx] for idx, name in REJECT_REASONS.items()},
            symbols=symbols,
            feed=self.feed_counts(),
            channels=self.channels(feed) if feed else [],
        )


def symbol_params_to_map(p: SymbolParams) -> KernelSymbolParams:
    """A symbol's validated parameters as the kernel holds them (the same fields, by name)."""
    return KernelSymbolParams(**asdict(p))


def symbol_params_from_map(cfg: SymbolConfig) -> SymbolParams:
    """The applied values, read back from the kernel."""
    return SymbolParams(**{f.name: getattr(cfg.p, f.name) for f in fields(SymbolParams)})


def global_params_to_map(params: EngineParams, *, deadman_ms: int) -> KernelGlobalParams:
    """The engine-wide parameters as the kernel holds them; the dead-man deadline is the
    controller's to arm, so it is given apart from the config's."""
    return KernelGlobalParams(
        feed_port=params.feed_port,
        on_no_trade=_NO_TRADE_CODE[params.on_no_trade],
        update_sample=params.update_sample,
        deadman_ms=deadman_ms,
        rate_per_sec=params.rate_per_sec,
        burst=params.burst,
        max_notional=params.max_notional,
        loss_limit=params.loss_limit,
        max_orders_per_packet=params.max_orders_per_packet,
        max_seq_jump=params.max_seq_jump,
    )


# -- the feed's fixed settings in kernel form --------------------------------


def _ip_be(text: str, what: str) -> int:
    """An IPv4 address as the u32 whose memory holds its network-order bytes."""
    try:
        packed = ipaddress.IPv4Address(text).packed
    except ValueError:
        raise MapsError(f"{what}: {text!r} is not an IPv4 address") from None
    return int.from_bytes(packed, "little" if socket.htonl(1) != 1 else "big")


def _ip_text(value: int) -> str:
    return str(ipaddress.IPv4Address(value.to_bytes(4, "little" if socket.htonl(1) != 1 else "big")))


def _mac_bytes(text: str, what: str) -> bytes:
    parts = text.split(":")
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raw = b""
    if len(parts) != 6 or len(raw) != 6 or any(len(p) != 2 for p in parts):
        raise MapsError(f"{what}: {text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return raw


def _unicast_mac(text: str, what: str) -> bytes:
    """A unicast MAC: the program compares it with a frame's destination (all zero: none)."""
    raw = _mac_bytes(text, what)
    if raw[0] & 1 or raw == bytes(6):
        raise MapsError(f"{what}: {text!r} is not a unicast MAC address")
    return raw


def _mac_text(raw) -> str:
    return ":".join(f"{b:02x}" for b in bytes(raw))


def _port_be(port: int, what: str) -> int:
    if not 1 <= port <= 65535:
        raise MapsError(f"{what}: {port} is not a UDP port (1-65535)")
    return socket.htons(port)


def route_to_map(gateway: Gateway | None, iface_mac: str | None = None) -> Route:
    if gateway is None:
        r = Route(mode=ROUTE_REFLECT)
        if iface_mac is not None:
            r.src_mac[:] = list(_unicast_mac(iface_mac, "the interface's MAC"))
        return r
    if iface_mac is not None and _mac_bytes(iface_mac, "the interface's MAC") != _mac_bytes(gateway.src_mac, "src_mac"):
        raise MapsError(f"the interface's MAC {iface_mac} is not the gateway's src_mac {gateway.src_mac}")
    r = Route(mode=ROUTE_GATEWAY)
    r.gw_mac[:] = list(_mac_bytes(gateway.mac, "gateway mac"))
    # All zero (the backtest's: no interface) checks no frame's destination, as a reflection without iface_mac.
    r.src_mac[:] = list(_mac_bytes(gateway.src_mac, "the interface's MAC"))
    r.gw_ip = _ip_be(gateway.ip, "gateway ip")
    r.src_ip = _ip_be(gateway.src_ip, "gateway src_ip")
    r.gw_port = _port_be(gateway.port, "gateway port")
    r.src_port = _port_be(gateway.src_port, "gateway src_port")
    return r


def route_from_map(r: Route) -> Gateway | None:
    if r.mode != ROUTE_GATEWAY:
        return None
    return Gateway(
        ip=_ip_text(r.gw_ip),
        port=socket.ntohs(r.gw_port),
        mac=_mac_text(r.gw_mac),
        src_ip=_ip_text(r.src_ip),
        src_port=socket.ntohs(r.src_port),
        src_mac=_mac_text(r.src_mac),
    )


def feed_filter_to_map(spec: FeedSources) -> FeedFilter:
    if len(spec.sources) > MAX_FEED_SOURCES:
        raise MapsError(f"feed_sources: {len(spec.sources)} networks, at most {MAX_FEED_SOURCES}")
    if len(spec.macs) > MAX_SOURCE_MACS:
        raise MapsError(f"feed_source_macs: {len(spec.macs)} addresses, at most {MAX_SOURCE_MACS}")
    f = FeedFilter(feed_addr=_ip_be(spec.feed_addr, "feed_addr") if spec.feed_addr else 0)
    for i, cidr in enumerate(spec.sources):
        try:
            net = ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            raise MapsError(f"feed_sources: {cidr!r} is not an IPv4 network (a.b.c.d/n)") from None
        f.src_net[i] = _ip_be(str(net.network_address), "feed_sources")
        f.src_mask[i] = _ip_be(str(net.netmask), "feed_sources")
    f.n_sources = len(spec.sources)
    for i, mac in enumerate(spec.macs):
        f.src_macs[i][:] = list(_mac_bytes(mac, "feed_source_macs"))
    f.n_macs = len(spec.macs)
    return f


def feed_filter_from_map(f: FeedFilter) -> FeedSources:
    sources = tuple(
        str(ipaddress.IPv4Network(f"{_ip_text(f.src_net[i])}/{_ip_text(f.src_mask[i])}"))
        for i in range(min(f.n_sources, MAX_FEED_SOURCES))
    )
    macs = tuple(_mac_text(f.src_macs[i]) for i in range(min(f.n_macs, MAX_SOURCE_MACS)))
    return FeedSources(feed_addr=_ip_text(f.feed_addr) if f.feed_addr else None, sources=sources, macs=macs)


def channel_id(key: ChannelKey, feed: str) -> str:
    """A channel as people name it: IEX "SESSION/CHANNEL", MoldUDP64 its session."""
    raw = bytes(key.session)
    if feed == "iex":
        return f"{int.from_bytes(raw[:4], 'little')}/{key.channel}"
    return raw[:SESSION_LEN].decode("ascii", "replace").rstrip(" \0") or raw.hex()
