"""The engine's life cycle: attach, control, detach.

``attach`` compiles ebpf/strategy.c with BCC (program.py), writes the
configuration into the fresh maps, pins the maps and the program under
/sys/fs/bpf/hft_tui/IFACE/ (pins.py) and only then attaches it with
netlink, so the first packet the program sees already has its
configuration.  Afterwards the engine lives on without the process that
loaded it: every other operation opens the pins (:class:`EngineHandle`).

Control-plane writes take the control lock (locks.py), so the CLI and the
TUI writing at once cannot lose each other's config version bump.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TypeGuard

from pyroute2 import IPRoute

from . import libbpf, netlink, paths
from .config import (
    DEFAULT_DEADMAN_MS,
    JOURNAL_KEYS,
    Config,
    EngineParams,
    FeedParams,
    Gateway,
    SymbolParams,
    engine_params,
    journal_params,
    money_to_str,
    parse_deadman_ms,
    refuse_attach_only_keys,
    symbol_params,
)
from .constants import BPF_ANY, KILL_OFF, KILL_OPERATOR
from .errors import ConfigError, EngineError, MapsError
from .locks import control_lock, remove_control_lock
from .maps import FEEDS_WITH_CHANNELS, EngineMaps, FeedChannel, FeedSources, Snapshot, symbol_params_from_map
from .maps import Gateway as KernelGateway
from .pins import attached_ifaces, check_pin_dir, ensure_bpffs, pin_all, pinned_prog_id, unpin_all
from .preflight import require_root
from .program import bcc_map_fds, load_strategy, program_hash
from .route import Route, link_mac, resolve_gateway
from .state import EngineRecord as EngineRecord  # the state file, where callers have always found it
from .symbol import Symbol

# After a symbol's config is deleted, how long a packet already past the
# config lookup may take to finish (a few microseconds; this is generous).
REMOVE_SETTLE_S = 0.01


def resolve_iface(iface: str | None) -> str:
    if iface:
        return paths.check_ifname(iface)
    found = attached_ifaces()
    if len(found) == 1:
        return found[0]
    if not found:
        raise EngineError("no engine is attached (hft-tui engine attach IFACE)")
    raise EngineError(f"several engines are attached ({', '.join(found)}): name the interface")


# -- attach / detach ------------------------------------------------------


def _ours_attached(directory: Path, current: netlink.XdpState | None, rec: EngineRecord | None) -> bool:
    """The XDP program on the interface is the engine pinned here.  The pinned
    program decides, not only the state file: with the file lost, the pins
    are still the only way to reach a running engine's kill switch."""
    if not (current and current.mode):
        return False
    if rec is not None and current.prog_id == rec.prog_id:
        return True  # the common case: no pin to open
    return current.prog_id == pinned_prog_id(directory)


def attach(
    iface: str,
    config: Config,
    *,
    mode: str | None = None,
    force: bool = False,
    deadman_ms: int | None = None,
    config_path: str | None = None,
) -> EngineRecord:
    """Loads and attaches a fresh engine on ``iface``.

    ``deadman_ms`` arms the dead-man switch now (a supervised attach);
    without it the switch stays unarmed until a controller's first heartbeat.
    """
    require_root()
    paths.check_ifname(iface)
    if deadman_ms is not None:
        deadman_ms = parse_deadman_ms(deadman_ms)  # never a wrapped u32 in the kernel
    mode = mode or config.engine.mode
    ensure_bpffs()
    directory = paths.pin_dir(iface)
    with IPRoute() as ipr:
        idx = netlink.ifindex(ipr, iface)
        _refuse_taken(ipr, iface, directory, force)  # before anything is built: refused fast
        # Before anything is built: a gateway that cannot be resolved refuses the attach.
        route = resolve_gateway(iface, config.gateway, config.engine.feed_port) if config.gateway else None
        b, prog_fd = load_strategy(feed=config.feed.feed)  # only this feed's decoder is compiled in
        maps: EngineMaps | None = None
        try:
            maps = EngineMaps(bcc_map_fds(b), owns_fds=False)
            maps.write_global(config.engine, deadman_ms=deadman_ms or 0, version=1)
            # The route and the feed's filter are read without a lock: written here, before attach, only.
            # The interface's MAC, also without a gateway: a unicast frame to another is not the feed.
            maps.write_route(_kernel_gateway(route), iface_mac=None if route else _iface_mac(ipr, idx))
            maps.write_feed_sources(_kernel_sources(config.feed))
            maps.set_kill(KILL_OFF)
            if deadman_ms:
                maps.beat()
            for name, params in config.symbols.items():
                maps.write_symbol(name, params)
            with control_lock(iface):
                # Again, under the lock: another attach may have won meanwhile (its pins are not stale).
                _refuse_taken(ipr, iface, directory, force, clear_stale=True)
                pin_all(directory, maps.fds, prog_fd)
                state: netlink.XdpState | None = None
                try:
                    state = netlink.attach_xdp(ipr, iface, prog_fd, mode, force=force)
                    rec = EngineRecord(
                        iface=iface,
                        ifindex=idx,
                        mode=mode,
                        prog_id=state.prog_id,
                        program_hash=program_hash(feed=config.feed.feed),
                        config_path=str(config_path) if config_path else None,
                        deadman_ms=deadman_ms or config.engine.deadman_ms,
                        attached_at=time.time(),
                        **_feed_record(config, route),
                    )
                    rec.save()
                except BaseException as exc:
                    # Nothing half done: an engine attached without its state file (a full /run)
                    # would trade with nothing to say it is there.
                    if state is not None:
                        with contextlib.suppress(netlink.NetlinkFailure):
                            netlink.detach_xdp(ipr, iface, state.mode or mode)
                    unpin_all(directory)
                    if isinstance(exc, netlink.NetlinkFailure):
                        raise EngineError(str(exc)) from None
                    raise
        finally:
            if maps is not None:
                maps.close()  # the config stamps' mmap holds a map reference of its own
            b.cleanup()
    return rec


def _refuse_taken(ipr: IPRoute, iface: str, directory: Path, force: bool, *, clear_stale: bool = False) -> None:
    """Refuses an interface with an hft-tui engine attached, or another XDP program (unless
    ``force``).  ``clear_stale`` (under the control lock only): pins of an engine no longer
    attached are removed."""
    current = netlink.xdp_state(ipr, iface)
    if check_pin_dir(directory):  # refuses a pin root or directory that is not ours
        if _ours_attached(directory, current, EngineRecord.load(iface)):
            raise EngineError(f"an hft-tui engine is already attached to {iface} (hft-tui engine detach {iface})")
        if clear_stale:
            unpin_all(directory)
    if current.mode and not force:
        raise EngineError(
            f"{iface} already has an XDP program (id {current.prog_id}, {current.mode} mode): "
            "refusing to replace it; detach it or use --force"
        )


def _kernel_gateway(route: Route | None) -> KernelGateway | None:
    if route is None:
        return None
    gw = route.gateway
    if gw.mac is None or gw.src_ip is None or gw.src_port is None:
        raise EngineError(f"the gateway {gw.ip} is not resolved (no MAC or source)")  # resolve_gateway fills them
    return KernelGateway(
        ip=str(gw.ip), port=gw.port, mac=gw.mac, src_ip=str(gw.src_ip), src_port=gw.src_port, src_mac=route.src_mac
    )


def _iface_mac(ipr: IPRoute, index: int) -> str | None:
    """The interface's own MAC (None: it has none, as lo)."""
    mac = link_mac(ipr, index)
    return mac if mac and mac != "00:00:00:00:00:00" else None


def _kernel_sources(feed: FeedParams) -> FeedSources:
    return FeedSources(
        feed_addr=str(feed.feed_addr) if feed.feed_addr else None,
        sources=tuple(str(n) for n in feed.feed_sources or ()),
        macs=tuple(feed.feed_source_macs or ()),
    )


def _feed_record(config: Config, route: Route | None) -> dict:
    """The state file's fields for what the engine is attached for."""
    feed = config.feed.to_toml_values()
    return {
        **feed,
        "gateway": route.as_dict() if route else None,
        "journal_max_mb": config.journal.journal_max_mb,
        "journal_reject_rows_per_s": config.journal.journal_reject_rows_per_s,
    }


def detach(iface: str) -> list[str]:
    """Detaches our program and removes the pins; returns what it did."""
    require_root()
    iface = paths.check_ifname(iface)
    done = []
    rec = EngineRecord.load(iface)
    directory = paths.pin_dir(iface)
    if not check_pin_dir(directory) and not rec:
        raise EngineError(f"no hft-tui engine on {iface}")
    with control_lock(iface):
        with IPRoute() as ipr:
            try:
                current = netlink.xdp_state(ipr, iface)
            except netlink.NetlinkFailure:
                current = None
                done.append(f"{iface} is gone; its engine went with it")
            if _ours_attached(directory, current, rec):
                assert current is not None and current.mode is not None, "ours means attached, in a mode"
                netlink.detach_xdp(ipr, iface, current.mode)
                done.append(f"detached from {iface} ({current.mode})")
            elif current and current.mode:
                done.append(f"left {iface}'s XDP program id {current.prog_id} alone: it is not ours")
        unpin_all(directory)
        done.append(f"removed {directory}")
        with contextlib.suppress(FileNotFoundError):
            paths.state_file(iface).unlink()
        remove_control_lock(iface)  # held: a waiter on it sees it gone and takes a new one
    return done


# -- a running engine -----------------------------------------------------


def _refuse_if_holding(name: str, st) -> None:
    if st.position or st.pending_buy or st.pending_sell or st.open_cost:
        raise EngineError(
            f"symbol {name} holds {st.position:,} shares: removing it would forget the position; "
            f"sell it down first, or stop trading it with 'hft-tui engine set {name} enabled=false'"
        )


def kill_pinned(iface: str) -> int:
    """Sets the kill switch through its own pin only, and returns what it reads
    back: it works on any engine, of this hft-tui or another version (whose
    other maps it may not read)."""
    require_root()
    path = paths.pin_dir(paths.check_ifname(iface)) / "kill_switch"
    check_pin_dir(path.parent)  # a pin root or directory that is not ours is refused, never followed
    try:
        fd = libbpf.obj_get(str(path))
    except OSError as exc:
        raise EngineError(f"no hft-tui engine on {iface} ({path}: {exc.strerror or exc})") from None
    try:
        libbpf.update(fd, ctypes.c_uint32(0), ctypes.c_uint64(KILL_OPERATOR), BPF_ANY)
        state = ctypes.c_uint64()
        libbpf.lookup(fd, ctypes.c_uint32(0), state)
    finally:
        os.close(fd)
    if state.value == KILL_OFF:
        raise EngineError(f"the kill switch of {iface} reads back as off")
    return state.value


class EngineHandle:
    """A running engine, opened from its pins by any process."""

    def __init__(self, iface: str) -> None:
        require_root()
        self.iface = paths.check_ifname(iface)
        self.pin_dir = paths.pin_dir(iface)
        if not check_pin_dir(self.pin_dir):
            raise EngineError(f"no hft-tui engine on {iface} ({self.pin_dir} is missing)")
        self.prog_id = pinned_prog_id(self.pin_dir)
        try:
            self.maps = EngineMaps.open_pinned(self.pin_dir)
        except MapsError as exc:
            raise EngineError(str(exc)) from None
        if pinned_prog_id(self.pin_dir) != self.prog_id:
            self.maps.close()
            raise EngineError(f"the engine on {iface} changed while it was being opened: try again")
        self.record = EngineRecord.load(iface)

    @contextlib.contextmanager
    def _control(self) -> Iterator[None]:
        """The control lock, and the engine still the one this handle opened: a write after a
        detach (and a new attach) would go into maps no engine reads, and say it was done."""
        with control_lock(self.iface):
            if self.prog_id is None or pinned_prog_id(self.pin_dir) != self.prog_id:
                raise EngineError(
                    f"the engine on {self.iface} was detached or replaced since it was opened here: nothing written"
                )
            yield

    def close(self) -> None:
        self.maps.close()

    def __enter__(self) -> EngineHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- state --
    def xdp(self) -> netlink.XdpState | None:
        """The interface's XDP state now; None when the interface is gone."""
        try:
            with IPRoute() as ipr:
                return netlink.xdp_state(ipr, self.iface)
        except netlink.NetlinkFailure:
            return None

    def attached(self) -> bool:
        return self.attached_as(self.xdp())

    def identity(self) -> tuple[int, float]:
        """(program id, attached_at): what the journal tells engine instances
        apart by.  From the state file; without one, from the pinned program
        (its id, and its load time in seconds since boot), so two engines
        whose state files were lost are never taken for one."""
        if self.record is not None:
            return self.record.prog_id, self.record.attached_at
        try:
            fd = libbpf.obj_get(str(self.pin_dir / "prog"))
        except OSError as exc:
            raise EngineError(f"{self.iface}: no state file and no pinned program ({exc.strerror or exc})") from None
        try:
            info = libbpf.prog_info(fd)
        finally:
            os.close(fd)
        return info.id, info.load_time / 1e9

    def attached_as(self, xdp: netlink.XdpState | None) -> TypeGuard[netlink.XdpState]:
        """``xdp`` (an interface's XDP state just read) runs this engine (so it is a state, not None)."""
        return _ours_attached(self.pin_dir, xdp, self.record)

    def engine_params(self) -> EngineParams:
        g = self.maps.read_global()
        values = {
            "feed_port": g.feed_port,
            "on_no_trade": "drop" if g.on_no_trade else "pass",
            "update_sample": g.update_sample,
            "rate_per_sec": g.rate_per_sec,
            "burst": g.burst,
        }
        base = engine_params(values)
        return replace(
            base,
            mode=self.record.mode if self.record else "native",
            deadman_ms=(self.record.deadman_ms if self.record else base.deadman_ms),
            max_notional=g.max_notional,
            loss_limit=g.loss_limit,
            max_orders_per_packet=g.max_orders_per_packet,
            max_seq_jump=g.max_seq_jump,
        )

    @property
    def feed(self) -> str | None:
        """The feed the program was built for (the state file's; None without one)."""
        return self.record.feed if self.record else None

    def feed_params(self) -> FeedParams:
        """The feed's address and senders as the kernel holds them (the feed's name from the state file)."""
        f = self.maps.read_feed_sources()
        return FeedParams(
            feed=self.feed or "?",
            feed_addr=IPv4Address(f.feed_addr) if f.feed_addr else None,
            feed_sources=tuple(IPv4Network(n) for n in f.sources) or None,
            feed_source_macs=f.macs or None,
        )

    def gateway(self) -> Gateway | None:
        """Where orders go, as the kernel's route map holds it; None: back to the sender."""
        gw = self.maps.read_route()
        if gw is None:
            return None
        return Gateway(
            ip=IPv4Address(gw.ip), port=gw.port, mac=gw.mac, src_ip=IPv4Address(gw.src_ip), src_port=gw.src_port
        )

    def symbol(self, name: Symbol) -> SymbolParams | None:
        got = self.maps.read_symbol(name)
        return symbol_params_from_map(got[0]) if got else None

    # -- control (each a single map write, validated first) --
    def set_symbol(self, name: Symbol, values: dict, *, new: bool | None = None) -> SymbolParams:
        """Validates ``values`` over the running config and writes it whole.  ``new``: True
        refuses a symbol already configured (an add), False one that is not (an edit: it may
        have been removed meanwhile, and must not come back from the defaults); None takes
        either (the CLI's ``engine set``)."""
        with self._control():
            base = self.symbol(name)
            if new is True and base is not None:
                raise EngineError(f"symbol {name} is configured already: edit it instead")
            if new is False and base is None:
                raise EngineError(f"symbol {name} is not configured (removed meanwhile?)")
            params = symbol_params(name, values, base=base)
            self.maps.write_symbol(name, params)
            self.maps.bump_version()
            written = self.symbol(name)  # read back under the lock, which every removal takes
        assert written is not None, f"symbol {name} written under the control lock, yet not there"
        return written

    def remove_symbol(self, name: Symbol) -> None:
        """Removes a flat symbol.  A symbol holding shares is refused, untouched:
        removing it would forget the position (the next buys could exceed
        max_position) and leave its open cost in the engine-wide total, which
        only the kernel writes."""
        with self._control():
            got = self.maps.read_symbol(name)
            if got is None:
                raise EngineError(f"symbol {name} is not configured")
            cfg, st = got
            _refuse_if_holding(name, st)
            # No new decision can trade it once its config is gone; a packet
            # already past the lookup finishes in microseconds: then look again.
            self.maps.delete_symbol_config(name)
            time.sleep(REMOVE_SETTLE_S)
            settled = self.maps.read_symbol_state(name)
            try:
                if settled is not None:
                    _refuse_if_holding(name, settled)
            except EngineError:
                self.maps.restore_symbol_config(name, cfg)
                raise
            self.maps.remove_symbol(name)
            self.maps.bump_version()

    def set_engine(self, values: dict) -> EngineParams:
        """Validates ``values`` over the running settings and writes them whole.  The
        feed, its senders and the gateway are the attach's: refused, nothing written."""
        if "mode" in values:
            raise ConfigError("engine: mode cannot change while attached (detach and attach again)")
        refuse_attach_only_keys(values)
        journal_values = {k: v for k, v in values.items() if k in JOURNAL_KEYS}
        engine_values = {k: v for k, v in values.items() if k not in JOURNAL_KEYS}
        with self._control():
            params = engine_params(engine_values, base=self.engine_params())
            if self.record is None and (journal_values or "deadman_ms" in values):
                what = "the dead-man deadline" if "deadman_ms" in values else "the journal settings"
                raise EngineError(f"{self.iface} has no state file to keep {what} in (nothing written)")
            kept: dict[str, int] = {}  # what the state file keeps, of this change
            if "deadman_ms" in values:
                kept["deadman_ms"] = params.deadman_ms
            if journal_values:
                assert self.record is not None  # refused above
                journal = journal_params(journal_values, base=self.record.journal_params())
                kept.update(
                    journal_max_mb=journal.journal_max_mb, journal_reject_rows_per_s=journal.journal_reject_rows_per_s
                )
            if kept:
                # The state file first: one that cannot be saved (a full /run) refuses the change
                # before the kernel holds any of it, so "nothing written" is what happened.
                self._save_record(**kept)
            if engine_values:
                g = self.maps.read_global()
                self.maps.write_global(params, deadman_ms=g.deadman_ms, version=g.config_version + 1)
                if "deadman_ms" in values and g.deadman_ms:
                    self.maps.set_deadman(params.deadman_ms)  # armed: the new deadline applies now
        return self.engine_params()

    def _save_record(self, **changes: int) -> None:
        """The state file with ``changes``, saved whole; the record unchanged when it cannot be."""
        assert self.record is not None
        before = {key: getattr(self.record, key) for key in changes}
        for key, value in changes.items():
            setattr(self.record, key, value)
        try:
            self.record.save()
        except BaseException:
            for key, value in before.items():
                setattr(self.record, key, value)
            raise

    def reset_seq(self, name: Symbol) -> int:
        """The symbol's next update sets its sequence, whatever it is (a symbol locked
        out by a refused jump trades again).  Returns the last sequence it had."""
        with self._control():
            got = self.maps.read_symbol(name)
            if got is None:
                raise EngineError(f"symbol {name} is not configured")
            self.maps.reset_seq(name)
            self.maps.bump_version()  # a controller sees the change and journals it
        return int(got[1].last_seq)

    def reset_channel(self, channel_id: str | None) -> list[FeedChannel]:
        """Forgets the sequence of a feed channel (``engine reset-channel``; None: every
        channel): its next packet sets it, whatever it is.  For an outage longer than
        max_seq_jump, after which the kernel refuses every packet of the channel (it cannot
        tell an outage from a spoofed sequence).  Returns the channels as they were."""
        if self.feed not in FEEDS_WITH_CHANNELS:
            raise EngineError(f"the engine on {self.iface} reads {self.feed}, which has no channels")
        with self._control():
            channels = self.maps.channels(self.feed)
            chosen = [ch for ch in channels if channel_id is None or ch.id == channel_id]
            if channel_id is not None and not chosen:
                there = ", ".join(ch.id for ch in channels) or "none yet"
                raise EngineError(f"no channel {channel_id!r} on {self.iface} (channels: {there})")
            for ch in chosen:
                self.maps.reset_channel(ch)
        return chosen

    def kill(self) -> None:
        self.maps.set_kill(KILL_OPERATOR)

    def resume(self) -> None:
        """Clears the kill switch, unless the loss limit would latch it again at
        the next update: then it says what to do instead."""
        with self._control():
            g = self.maps.read_global()
            pnl = self.maps.totals().pnl
            if g.loss_limit and pnl < -g.loss_limit:
                raise EngineError(
                    f"session PnL {money_to_str(pnl)} is below the loss limit -{money_to_str(g.loss_limit)}: "
                    f"resuming would latch the kill again at the next update; raise it first "
                    f"(hft-tui engine set-engine loss_limit=...)"
                )
            self.maps.set_kill(KILL_OFF)
            self.maps.bump_version()

    def arm_deadman(self, deadline_ms: int | None = None) -> int:
        """A controller's first heartbeat arms the switch.  Under the control
        lock: the engine-wide config is read, changed and written whole, and an
        ``engine set-engine`` at the same time must not undo it (or be undone)."""
        stored = self.record.deadman_ms if self.record else None
        try:
            # The state file may come from an older hft-tui, or a hand: checked like any input.
            deadline = parse_deadman_ms(deadline_ms or stored or DEFAULT_DEADMAN_MS)
        except ConfigError:
            deadline = DEFAULT_DEADMAN_MS
        with control_lock(self.iface):
            self.maps.beat()
            self.maps.set_deadman(deadline)
        return deadline

    def disarm_deadman(self) -> None:
        with control_lock(self.iface):
            self.maps.set_deadman(0)

    def snapshot(self) -> Snapshot:
        return self.maps.snapshot(feed=self.feed)


def open_engine(iface: str | None = None) -> EngineHandle:
    require_root()
    return EngineHandle(resolve_iface(iface))
