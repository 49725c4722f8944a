"""``engine status``: the engine's state as a dict (the JSON contract) and as text.

Kernel values are integers (prices and money in 1e-4 units, PRICE_SCALE);
this is where they become the decimals a person reads.
"""

from __future__ import annotations

from .config import PRICE_KEYS
from .constants import KILL_OFF, KILL_STATES, PRICE_SCALE
from .engine import EngineHandle
from .layout import SymbolConfig, SymbolState
from .locks import controller_pid
from .maps import Snapshot, symbol_params_from_map

#: the feed counters `engine status` shows (foreign_source is a reject reason, under rejects)
FEED_COUNTS = (
    "messages",
    "in_transition",
    "truncated_packets",
    "packets",
    "dup_packets",
    "heartbeats",
    "channels_full",
    "grow_failed",
    "frame_errors",
    "not_for_us",
)


def _dollars(units: int) -> float:
    """Price or money units (1e-4) as the float the JSON has always carried."""
    return units / PRICE_SCALE


def _symbol_status(cfg: SymbolConfig, st: SymbolState) -> dict[str, dict[str, object]]:
    p = symbol_params_from_map(cfg)
    params: dict[str, object] = dict(p.to_toml_values())
    for key in (*PRICE_KEYS, "max_notional"):
        params[key] = _dollars(getattr(p, key))
    held = st.bought - st.sold
    return {
        "config": params,
        "stats": {
            "position": st.position,
            "bought": st.bought,
            "sold": st.sold,
            "capital_spent": _dollars(st.capital_spent),
            "proceeds": _dollars(st.proceeds),
            "buy_orders": st.buy_orders,
            "sell_orders": st.sell_orders,
            "updates": st.updates,
            "rejects": st.rejects,
            "last_bid": _dollars(st.last_bid),
            "last_bid_qty": st.last_bid_qty,
            "last_ask": _dollars(st.last_ask),
            "last_ask_qty": st.last_ask_qty,
            "last_seq": st.last_seq,
            "open_cost": _dollars(st.open_cost),
            "realised_pnl": _dollars(st.proceeds - (st.capital_spent - st.open_cost)),
            "unrealised_pnl": _dollars(held * st.mark - st.open_cost),
            "pnl": _dollars(st.pnl),
        },
    }


def status_dict(handle: EngineHandle, snap: Snapshot | None = None) -> dict:
    """The engine's state as `engine status --json` prints it (a JSON contract: keys only grow)."""
    snap = snap if snap is not None else handle.snapshot()
    xdp = handle.xdp()
    rec = handle.record
    g = snap.global_config
    ours = xdp if handle.attached_as(xdp) else None  # the interface's XDP state, when it runs this engine
    # The snapshot's clock is read just before the heartbeat: a beat in between is "now".  A
    # heartbeat further ahead than the deadline is as stale as one behind it (the kernel's rule).
    hb_age = abs(snap.taken_ns - snap.heartbeat_ns) / 1e6 if snap.heartbeat_ns else None
    armed = g.deadman_ms != 0
    # Supervised: armed and a controller beating now.  Armed with a stale
    # heartbeat means the controller is gone and the kernel is holding orders.
    fresh = hb_age is not None and hb_age <= g.deadman_ms
    return {
        "iface": handle.iface,
        "interface_present": xdp is not None,
        "attached": ours is not None,
        "mode": (ours.mode if ours else None),
        "prog_id": (ours.prog_id if ours else None),
        "program_hash": rec.program_hash if rec else None,
        "config_version": g.config_version,
        "kill": snap.kill != KILL_OFF,
        "kill_state": KILL_STATES.get(snap.kill, str(snap.kill)),
        "feed_port": g.feed_port,
        "on_no_trade": "drop" if g.on_no_trade else "pass",
        "orders_sent": snap.totals.order_seq,
        "updates_seen": snap.counters["updates"],
        "passed": snap.counters["passed"],
        "rejects": dict(snap.rejects),
        "ringbuf_drops": snap.counters["ringbuf_drops"],
        "tape_drops": snap.counters["tape_drops"],
        "pnl": _dollars(snap.totals.pnl),
        "open_cost": _dollars(snap.totals.open_cost),
        "risk": {
            "max_notional": _dollars(g.max_notional),
            "loss_limit": _dollars(g.loss_limit),
            "rate_per_sec": g.rate_per_sec,
            "burst": g.burst,
            "loss_trips": snap.counters["loss_trips"],
            "reject_counters": {
                k: snap.rejects[k] for k in ("notional", "throttle", "collar", "stale", "deadman", "position_limit")
            },
        },
        "deadman": {
            "armed": armed,
            "supervised": armed and fresh,
            "controller_pid": controller_pid(handle.iface),
            "deadline_ms": g.deadman_ms or (rec.deadman_ms if rec else None),
            "heartbeat_age_ms": round(hb_age, 1) if hb_age is not None else None,
            "skipped": snap.rejects["deadman"],
        },
        "symbols": {name: _symbol_status(cfg, st) for name, (cfg, st) in snap.symbols.items()},
        # issue 11 and 14: the feed, its senders, where orders go
        **_feed_status(handle, snap),
    }


def _feed_status(handle: EngineHandle, snap: Snapshot) -> dict:
    """The feed as the kernel holds it: what it reads and from whom (the maps written at
    attach), its counters and channels, and the gateway (None: orders go back to the sender)."""
    feed = handle.feed_params()
    fc = snap.feed
    gateway = handle.gateway()
    return {
        "feed": {
            "format": handle.feed,
            "port": snap.global_config.feed_port,
            "addr": str(feed.feed_addr) if feed.feed_addr else None,
            **{key: getattr(fc, key) if fc else 0 for key in FEED_COUNTS},
            "channels": [ch.as_dict() for ch in snap.channels],
        },
        "gateway": gateway.as_dict() if gateway else None,
        "feed_sources": [str(n) for n in feed.feed_sources] if feed.feed_sources else None,
        "feed_source_macs": list(feed.feed_source_macs) if feed.feed_source_macs else None,
        "open_feed": feed.open_feed,
    }


def _money(v: float) -> str:
    return f"{v:,.2f}"


OPEN_FEED = "OPEN FEED: any sender can trade; set [engine] feed_sources"


def feed_line(feed: str | None, port: int, addr: str | None, sources: list[str] | None) -> str:
    """What the engine reads and from whom, in one line (attach and status print it)."""
    to = f"{addr}:{port}" if addr else f"port {port}"
    senders = "from " + ", ".join(sources) if sources else "from any sender"
    return f"feed {feed or '?'} on UDP {to}, {senders}"


def gateway_line(gateway: dict | None) -> str:
    if not gateway:
        return "orders go back to the sender of the update (no [engine.gateway])"
    how = f", {gateway['mac_from']}" if gateway.get("mac_from") else ""
    return (
        f"orders go to the gateway {gateway['ip']}:{gateway['port']} ({gateway['mac']}{how}) "
        f"from {gateway['src_ip']}:{gateway['src_port']}"
    )


def _feed_lines(st: dict) -> list[str]:
    feed = st["feed"]
    lines = [feed_line(feed["format"], feed["port"], feed["addr"], st["feed_sources"])]
    if st["open_feed"]:
        lines.append(OPEN_FEED)
    lines.append(
        f"feed: {feed['messages']:,} messages, {feed['in_transition']:,} in transition, "
        f"{feed['truncated_packets']:,} truncated packets"
    )
    if feed["not_for_us"]:
        lines.append(f"  {feed['not_for_us']:,} frames for other hosts passed (the NIC is promiscuous?)")
    if feed["channels_full"]:
        lines.append(f"  {feed['channels_full']:,} packets of new channels not traded: the channels map is full")
    for ch in feed["channels"]:
        gaps = f"{ch['gaps']:,} gaps ({ch['gap_messages']:,} messages missed)" if ch["gaps"] else "no gap"
        jumps = f", {ch['seq_jumps']:,} refused beyond max_seq_jump" if ch.get("seq_jumps") else ""
        lines.append(
            f"  channel {ch['id']}: next seq {ch['next_seq']:,}, {ch['packets']:,} packets, "
            f"{ch['messages']:,} messages, {gaps}, {ch['dup_packets']:,} duplicate packets{jumps}"
        )
    lines.append(gateway_line(st["gateway"]))
    return lines


def status_text(st: dict) -> str:
    """``engine status`` without --json: the same dict, for a person."""
    lines = []
    if not st["interface_present"]:
        state = "INTERFACE GONE (hft-tui engine detach cleans up)"
    elif not st["attached"]:
        state = "DETACHED"
    else:
        state = "KILLED (" + st["kill_state"] + ")" if st["kill"] else "trading"
    lines.append(
        f"engine on {st['iface']}: {state}, mode {st['mode'] or '-'}, program id {st['prog_id'] or '-'}, "
        f"hash {(st['program_hash'] or '-')[:12]}, config v{st['config_version']}"
    )
    dm = st["deadman"]
    if dm["supervised"]:
        pid = f" by pid {dm['controller_pid']}" if dm.get("controller_pid") else ""
        supervision = f"supervised{pid}: dead-man {dm['deadline_ms']} ms, heartbeat {dm['heartbeat_age_ms']} ms ago"
    elif dm["armed"]:
        supervision = (
            f"NOT SUPERVISED: the controller's heartbeat is {dm['heartbeat_age_ms']} ms old "
            f"(deadline {dm['deadline_ms']} ms): no order leaves until a controller starts"
        )
    else:
        supervision = "UNSUPERVISED: no dead-man switch armed (engine attach --deadman MS, or engine run)"
    lines.append(supervision)
    lines.append(
        f"feed port {st['feed_port']}, on no trade {st['on_no_trade']}; updates {st['updates_seen']:,}, "
        f"orders {st['orders_sent']:,}, passed {st['passed']:,}, ring-buffer drops {st['ringbuf_drops']:,}"
    )
    lines.extend(_feed_lines(st))
    lines.append(f"session PnL {_money(st['pnl'])}, open cost {_money(st['open_cost'])}")
    rejects = ", ".join(f"{k} {v:,}" for k, v in st["rejects"].items() if v)
    lines.append(f"rejects: {rejects or 'none'}")
    header = (
        f"{'symbol':8} {'on':>3} {'buy@':>10} {'sell@':>10} {'pos':>7} {'bought':>9} {'sold':>9} "
        f"{'bid':>10} {'ask':>10} {'orders':>7} {'PnL':>12}"
    )
    lines.append(header)
    for name, sym in st["symbols"].items():
        c, s = sym["config"], sym["stats"]
        lines.append(
            f"{name:8} {'yes' if c['enabled'] else 'no':>3} {c['buy_target']:>10.4f} {c['sell_target']:>10.4f} "
            f"{s['position']:>7} {s['bought']:>9} {s['sold']:>9} {s['last_bid']:>10.4f} {s['last_ask']:>10.4f} "
            f"{s['buy_orders'] + s['sell_orders']:>7} {_money(s['pnl']):>12}"
        )
    return "\n".join(lines)
