"""``engine status`` as plain text: the same dict the JSON prints."""

from __future__ import annotations


def _money(v: float) -> str:
    return f"{v:,.2f}"


def render(st: dict) -> str:
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
        supervision = (f"NOT SUPERVISED: the controller's heartbeat is {dm['heartbeat_age_ms']} ms old "
                       f"(deadline {dm['deadline_ms']} ms): no order leaves until a controller starts")
    else:
        supervision = "UNSUPERVISED: no dead-man switch armed (engine attach --deadman MS, or engine run)"
    lines.append(supervision)
    lines.append(
        f"feed port {st['feed_port']}, on no trade {st['on_no_trade']}; updates {st['updates_seen']:,}, "
        f"orders {st['orders_sent']:,}, passed {st['passed']:,}, ring-buffer drops {st['ringbuf_drops']:,}"
    )
    lines.append(f"session PnL {_money(st['pnl'])}, open cost {_money(st['open_cost'])}")
    rejects = ", ".join(f"{k} {v:,}" for k, v in st["rejects"].items() if v)
    lines.append(f"rejects: {rejects or 'none'}")
    header = f"{'symbol':8} {'on':>3} {'buy@':>10} {'sell@':>10} {'pos':>7} {'bought':>9} {'sold':>9} " \
             f"{'bid':>10} {'ask':>10} {'orders':>7} {'PnL':>12}"
    lines.append(header)
    for name, sym in st["symbols"].items():
        c, s = sym["config"], sym["stats"]
        lines.append(
            f"{name:8} {'yes' if c['enabled'] else 'no':>3} {c['buy_target']:>10.4f} {c['sell_target']:>10.4f} "
            f"{s['position']:>7} {s['bought']:>9} {s['sold']:>9} {s['last_bid']:>10.4f} {s['last_ask']:>10.4f} "
            f"{s['buy_orders'] + s['sell_orders']:>7} {_money(s['pnl']):>12}"
        )
    return "\n".join(lines)
