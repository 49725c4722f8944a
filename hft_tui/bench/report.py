"""Statistics, ratios, targets and the JSON and Markdown outputs (the plot: plot.py).

Percentiles are nearest-rank (a value that was measured, never an
interpolation).  ``targets`` states each of the issues' targets with the
figure it was judged on and the verdict; they are reported, not enforced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from .plot import svg

__all__ = ["markdown", "ratios", "summarize", "summarize_wire", "svg", "targets", "to_json"]

PATTERNS = ("pingpong", "paced")
ENGINE = "engine-native"
# Issue 13 §1: the decision's cost as ratios to the trivial program in the same run, same harness.
TEST_RUN_TARGETS = (("trade", 4.0), ("no_trade", 3.0), ("unknown", 1.5), ("non_feed", 1.2))
THROUGHPUT_TARGET = 0.8  # issue 13 §3: engine >= 0.8x the bare reflector
# issue 11 §8: per message of a many-message IEX packet, against the trivial program through the same harness
MESSAGE_TARGETS = (("skipped", 0.2), ("unknown", 1.0))
FLAT = 1.2  # symbols: "flat" read as within 1.2x of the cost with the fewest symbols


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _us(ns: float) -> float:
    return round(ns / 1000, 3)


def _distribution(samples_ns: list[int]) -> dict:
    """Count, percentiles, max, min and mean (µs) of a non-empty list of ns."""
    v = sorted(samples_ns)
    return {
        "count": len(v),
        "p50_us": _us(percentile(v, 0.50)),
        "p99_us": _us(percentile(v, 0.99)),
        "p999_us": _us(percentile(v, 0.999)),
        "max_us": _us(v[-1]),
        "min_us": _us(v[0]),
        "mean_us": _us(sum(v) / len(v)),
    }


def summarize(samples_ns: list[int], *, lost: int, invalid: int, late: int) -> dict:
    return {**_distribution(samples_ns), "lost": lost, "invalid": invalid, "late": late}


def summarize_wire(samples_ns: list[int], *, missing: int) -> dict:
    """Tick-to-trade on the wire of the measured trips; ``missing``: trips without both stamps."""
    if not samples_ns:
        return {"count": 0, "missing": missing}
    return {**_distribution(samples_ns), "missing": missing}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def ratios(variants: dict) -> dict:
    """numerator/denominator of p50, p99 and p99.9, per pattern, of the round trip and (``wire``) of
    tick-to-trade on the wire."""
    pairs = [(name, ENGINE) for name in variants if "bot" in name]
    pairs += [(ENGINE, "bare"), ("engine-generic", "bare"), ("engine-generic", ENGINE)]
    out: dict[str, dict[str, dict]] = {}
    for num, den in pairs:
        if num in variants and den in variants:
            n, d = variants[num], variants[den]
            r: dict[str, dict] = {
                pat: {k: _ratio(n[pat][f"{k}_us"], d[pat][f"{k}_us"]) for k in ("p50", "p99", "p999")}
                for pat in PATTERNS
            }
            r["wire"] = {
                pat: {
                    k: _ratio(n["wire"][pat].get(f"{k}_us"), d["wire"][pat].get(f"{k}_us"))
                    for k in ("p50", "p99", "p999")
                }
                for pat in PATTERNS
            }
            out[f"{num}/{den}"] = r
    return out


def targets(result: dict) -> list[dict]:
    """The issues' targets, each with the measured figure and whether it was met (reported, not enforced)."""
    v, r, tr, th = result["variants"], result["ratios"], result["test_run_ns"], result["throughput"]
    out = []

    def add(text: str, measured: str, met: bool | None) -> None:
        out.append({"target": text, "measured": measured, "met": bool(met)})

    for pat in PATTERNS:
        x = r["python-bot-own-core/engine-native"][pat]["p50"]
        add(f"{pat}: engine p50 >= 20x lower than Python bot, own core", f"{x}x", x and x >= 20)
        x = r["python-bot-shared-core/engine-native"][pat]["p50"]
        add(f"{pat}: engine p50 >= 2.5x lower than Python bot, shared core", f"{x}x", x and x >= 2.5)
        x = r["engine-native/bare"][pat]["p50"]
        add(f"{pat}: engine p50 within 1.2x of the bare reflector", f"{x}x", x and x <= 1.2)
        for name in v:
            if name.startswith("c-bot"):
                e, c = v[ENGINE][pat], v[name][pat]
                add(
                    f"{pat}: engine faster than {name} at p50 and p99",
                    f"engine {e['p50_us']}/{e['p99_us']} us vs {c['p50_us']}/{c['p99_us']} us",
                    e["p50_us"] < c["p50_us"] and e["p99_us"] < c["p99_us"],
                )
    add("test_run: < 100 ns per trading decision", f"{tr['trade']} ns", tr["trade"] < 100)
    x = _ratio(tr["trade"], tr["trivial"])
    add("test_run: trading decision within 3x of the trivial program", f"{x}x", x is not None and x <= 3)
    for name, limit in TEST_RUN_TARGETS:
        x = _ratio(tr[name], tr["trivial"])
        add(
            f"test_run: {name} <= {limit:g}x the trivial program",
            f"{x}x ({tr[name]} vs {tr['trivial']} ns)",
            x is not None and x <= limit,
        )
    e, b = th["one_core"]["engine"], th["one_core"]["bare"]
    x = th["ratios"]["engine/bare, one core"]
    add(
        f"throughput: engine >= {THROUGHPUT_TARGET:g}x the bare reflector (one core, exact)",
        f"{x}x ({e['rate']:,} vs {b['rate']:,} updates/s)",
        x is not None and x >= THROUGHPUT_TARGET,
    )
    sym = [s for s in tr["symbols"] if s.get("ns")]
    if len(sym) >= 2:
        x = _ratio(sym[-1]["ns"], sym[0]["ns"])
        missing = [s["symbols"] for s in tr["symbols"] if not s.get("ns")]
        add(
            f"symbols: cost per trade flat (within {FLAT:g}x) from {sym[0]['symbols']} to the most measured",
            f"{x}x ({sym[0]['symbols']}: {sym[0]['ns']} ns, {sym[-1]['symbols']}: {sym[-1]['ns']} ns)"
            + (f"; not measured: {', '.join(map(str, missing))}" if missing else ""),
            x is not None and x <= FLAT and not missing,
        )
    mm = th.get("multi_message")
    if mm:
        mtr = mm["test_run"]
        for kind, limit in MESSAGE_TARGETS:
            k = mtr["kinds"][kind]
            x = _ratio(k["ns_per_message"], mtr["trivial"])
            add(
                f"IEX {kind} message <= {limit:g}x the trivial program (a {k['messages']}-message packet)",
                f"{x}x ({k['ns_per_message']} ns a message vs {mtr['trivial']} ns, the feed harness)",
                x is not None and x <= limit,
            )
    return out


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2)


# -- Markdown ---------------------------------------------------------------


def _latency_lines(result: dict) -> list[str]:
    lines = [
        "| variant | where it runs | pattern | p50 us | p99 us | p99.9 us | max us | wire p50 us | wire p99 us "
        "| wire p99.9 us | wire max us | count | lost | invalid |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in result["variants"].items():
        for pat in PATTERNS:
            s, w = v[pat], v["wire"][pat]
            wire = [w.get(k, "-") for k in ("p50_us", "p99_us", "p999_us", "max_us")]
            lines.append(
                f"| {name} | {v['placement']} | {pat} | {s['p50_us']} | {s['p99_us']} | {s['p999_us']} | "
                f"{s['max_us']} | " + " | ".join(map(str, wire)) + f" | {s['count']} | {s['lost']} | {s['invalid']} |"
            )
    return lines


def _throughput_lines(th: dict) -> list[str]:
    lines = [
        "| variant | cores | updates/s | ns per update | sent | answers | engine orders | order ids | "
        "events in ring | exact |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for where, cores in (("one_core", "one"), ("two_cores", "two")):
        for name, s in th[where].items():
            ids = f"{s['order_ids'][0]}..{s['order_ids'][1]}" if name == "engine" else "-"
            lines.append(
                f"| {name} | {cores} | {s['rate']:,} | {s['ns_per_update']} | {s['sent']} | {s['answers']} | "
                f"{s['engine_orders']} | {ids} | {s['ring_events']} | "
                f"{'yes' if s['exact'] else 'NO: ' + str(s['why'])} |"
            )
    return lines


def _multi_message_lines(mm: dict) -> list[str]:
    tr, rate = mm["test_run"], mm["throughput"]
    lines = [
        "",
        f"## Packets of many messages ({mm['feed'].upper()}-TP DEEP, the engine built for it)",
        "",
        f"BPF_PROG_TEST_RUN, repeat {tr['repeat']}, median of {tr['runs']} runs, through the feed harness "
        f"(frame and length restored, first sequence advanced): trivial program {tr['trivial']} ns. "
        "ns per message = (packet - trivial) / messages; marginal = (packet - half packet) / the messages "
        "between (one more message, the packet's own work taken out).",
        "",
        "| packet | frame bytes | messages | ns per packet | ns per message | marginal ns per message |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, k in tr["kinds"].items():
        lines.append(
            f"| {kind} | {k['frame_bytes']} | {k['messages']} | {k['packet_ns']} | {k['ns_per_message']} | "
            f"{k['marginal_ns_per_message']} |"
        )
    lines += [
        "",
        f"Throughput, one core (CPU {rate['cpu']}), the '{rate['packet']}' packet ({rate['messages_per_packet']} "
        f"messages, one order each): **{rate['messages_per_s']:,} messages/s** ({rate['packets_per_s']:,} "
        f"packets/s, {rate['ns_per_message']} ns a message for the whole chain), {rate['packets']} packets, "
        f"{rate['orders']} orders, ids {rate['order_ids'][0]}..{rate['order_ids'][1]}, exact: "
        f"{'yes' if rate['exact'] else 'NO: ' + str(rate['why'])}.",
    ]
    mixed = mm.get("mixed")
    if mixed:
        lines += [
            "",
            f"The same with the '{mixed['packet']}' packet ({mixed['messages_per_packet']} messages as a real DEEP "
            "packet carries them: most of types the engine walks past, a few levels of an unknown symbol and of a "
            f"quiet one, the last trading): **{mixed['messages_per_s']:,} messages/s** "
            f"({mixed['packets_per_s']:,} packets/s, {mixed['ns_per_message']} ns a message), {mixed['packets']} "
            f"packets, {mixed['orders']} orders, exact: {'yes' if mixed['exact'] else 'NO: ' + str(mixed['why'])}.",
        ]
    return lines


def markdown(result: dict) -> str:
    m, cfg, pl = result["machine"], result["config"], result["placement"]
    lines = [
        "# hft-tui bench",
        "",
        f"Machine: kernel {m['kernel']}, {m['cpu_model']}, {m['cores']} cores "
        f"(clocksource {m['clocksource']}; load average {m['loadavg_1m_at_start']} at the start). "
        f"Run {result['started_at']}, {result['duration_s']} s.",
        "",
        f"{cfg['count']} measured round trips per variant and pattern, in {cfg['rounds']} interleaved rounds "
        f"(A B C ... A B C ...), {cfg['warmup']} unmeasured warm-up trips per turn; paced at "
        f"{cfg['paced_rate']} updates/s. Round trip = kernel receive timestamp (SO_TIMESTAMPNS) of the order "
        "minus the send time echoed in it. Wire = tick-to-trade on the wire: the order's arrival at the "
        "exchange's end of the veth minus the update's departure from it (BPF stamps, bpf_ktime_get_ns).",
        "",
        f"Placement: simulator (client) on CPU {pl['simulator_cpu']}; a bot's own core is CPU {pl['bot_own_cpu']}, "
        f"its shared core is the simulator's CPU {pl['simulator_cpu']}. XDP variants run in the softirq of the "
        "simulator's send, on its CPU.",
        "",
        *_latency_lines(result),
        "",
        "## Ratios (numerator / denominator)",
        "",
        "| ratio | pingpong p50 | pingpong p99 | pingpong p99.9 | paced p50 | paced p99 | paced p99.9 "
        "| wire pingpong p50 | wire pingpong p99 | wire paced p50 | wire paced p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["ratios"].items():
        cells = [r[p][k] for p in PATTERNS for k in ("p50", "p99", "p999")]
        cells += [r["wire"][p][k] for p in PATTERNS for k in ("p50", "p99")]
        lines.append(f"| {name} | " + " | ".join(f"{c}x" for c in cells) + " |")
    tr = result["test_run_ns"]
    lines += [
        "",
        f"## BPF_PROG_TEST_RUN (repeat {tr['repeat']}, median of {tr['runs']} runs)",
        "",
        "| frame | ns per run | x trivial |",
        "|---|---:|---:|",
    ]
    for name in ("trade", "no_trade", "unknown", "non_feed", "trivial"):
        lines.append(f"| {name} | {tr[name]} | {_ratio(tr[name], tr['trivial'])}x |")
    lines += [
        "",
        f"All five go through the same harness (frame restored, fresh seq, tail call); the harness costs "
        f"{tr['harness_overhead']} ns (trivial program alone: {tr['direct']['trivial']} ns, non-feed frame "
        f"straight into the strategy: {tr['direct']['non_feed']} ns). The strategy figures come from a copy of "
        f"the program compiled with an orders ring of {tr.get('test_run_ring_pages', '?')} pages, big enough "
        f"for every order event of a {tr['repeat']}-run trade ({tr['ringbuf_drops']} dropped over all runs: "
        f"a drop would stop the bench); the deployed program, with its own ring, takes "
        f"{tr['trade_events_written']} ns per trade in a run of {tr['trade_events_written_repeat']} that "
        f"fits that ring.",
        "",
        "### Against the number of configured symbols",
        "",
        "The harness cycles the trading update through N symbols, the symbol map holding exactly those N.",
        "",
        "| symbols | ns per trade (test run) | updates/s, one core (throughput) |",
        "|---:|---:|---:|",
    ]
    rates = {s["symbols"]: s for s in result["throughput"]["symbols"]}
    for s in tr["symbols"]:
        t = rates.get(s["symbols"], {})
        rate = f"{t['rate']:,}" if t.get("rate") else t.get("why", "-")
        lines.append(f"| {s['symbols']} | {s['ns'] if s.get('ns') else s.get('why')} | {rate} |")
    th = result["throughput"]
    lines += [
        "",
        "## Throughput (exact accounting)",
        "",
        f"{th['frames_per_step']} updates a step, every one trading; sender, program and tap on the same core "
        f"(CPU {th['one_cpu']}), two cores: CPUs {', '.join(map(str, th['cpus']))}, a veth queue and a symbol "
        "each. 'sender_alone': the sender and the veth only (every frame dropped where the engine runs).",
        "",
        *_throughput_lines(th),
        "",
        "| ratio | value |",
        "|---|---:|",
        *[f"| {k} | {v}x |" for k, v in th["ratios"].items()],
    ]
    lines += _multi_message_lines(th["multi_message"])
    lines += ["", "## Targets (reported, not enforced)", "", "| target | measured | met |", "|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"
