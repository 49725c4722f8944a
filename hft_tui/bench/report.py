"""Statistics, ratios, targets and the three outputs (JSON, Markdown, SVG).

Percentiles are nearest-rank (a value that was measured, never an
interpolation).  The plot is a CDF of every variant's round trips, drawn
as plain SVG from the samples of the same run: latency on a log x axis,
the fraction of round trips at or below it on a "nines" y axis (50%, 90%,
99%, 99.9%) so that the tail, where the variants differ most, is visible.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence

PATTERNS = ("pingpong", "paced")
ENGINE = "engine-native"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(samples_ns: list[int], *, lost: int, invalid: int, late: int) -> dict:
    v = sorted(samples_ns)
    us = lambda ns: round(ns / 1000, 3)
    return {
        "count": len(v),
        "p50_us": us(percentile(v, 0.50)),
        "p99_us": us(percentile(v, 0.99)),
        "p999_us": us(percentile(v, 0.999)),
        "max_us": us(v[-1]),
        "min_us": us(v[0]),
        "mean_us": us(sum(v) / len(v)),
        "lost": lost,
        "invalid": invalid,
        "late": late,
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def ratios(variants: dict) -> dict:
    """numerator/denominator of p50, p99 and p99.9, per pattern."""
    pairs = [(name, ENGINE) for name in variants if "bot" in name]
    pairs += [(ENGINE, "bare"), ("engine-generic", "bare"), ("engine-generic", ENGINE)]
    out = {}
    for num, den in pairs:
        if num in variants and den in variants:
            out[f"{num}/{den}"] = {
                pat: {
                    k: _ratio(variants[num][pat][f"{k}_us"], variants[den][pat][f"{k}_us"])
                    for k in ("p50", "p99", "p999")
                }
                for pat in PATTERNS
            }
    return out


def targets(result: dict) -> list[dict]:
    """The issue's targets, each with the measured figure and whether it was met (reported, not enforced)."""
    v, r, tr = result["variants"], result["ratios"], result["test_run_ns"]
    out = []

    def add(text: str, measured: str, met: bool) -> None:
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
    return out


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2)


# -- Markdown ---------------------------------------------------------------


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
        "minus the send time echoed in it.",
        "",
        f"Placement: simulator (client) on CPU {pl['simulator_cpu']}; a bot's own core is CPU {pl['bot_own_cpu']}, "
        f"its shared core is the simulator's CPU {pl['simulator_cpu']}. XDP variants run in the softirq of the "
        "simulator's send, on its CPU.",
        "",
        "| variant | where it runs | pattern | p50 us | p99 us | p99.9 us | max us | count | lost | invalid |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in result["variants"].items():
        for pat in PATTERNS:
            s = v[pat]
            lines.append(
                f"| {name} | {v['placement']} | {pat} | {s['p50_us']} | {s['p99_us']} | {s['p999_us']} | "
                f"{s['max_us']} | {s['count']} | {s['lost']} | {s['invalid']} |"
            )
    lines += [
        "",
        "## Ratios (numerator / denominator)",
        "",
        "| ratio | pingpong p50 | pingpong p99 | pingpong p99.9 | paced p50 | paced p99 | paced p99.9 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["ratios"].items():
        cells = [r[p][k] for p in PATTERNS for k in ("p50", "p99", "p999")]
        lines.append(f"| {name} | " + " | ".join(f"{c}x" for c in cells) + " |")
    tr = result["test_run_ns"]
    lines += [
        "",
        f"## BPF_PROG_TEST_RUN (repeat {tr['repeat']}, median of {tr['runs']} runs)",
        "",
        "| frame | ns per run |",
        "|---|---:|",
    ]
    for name in ("trade", "no_trade", "non_feed", "trivial"):
        lines.append(f"| {name} | {tr[name]} |")
    lines += [
        "",
        f"All four go through the same harness (frame restored, fresh seq, tail call); the harness costs "
        f"{tr['harness_overhead']} ns (trivial program alone: {tr['direct']['trivial']} ns, non-feed frame "
        f"straight into the strategy: {tr['direct']['non_feed']} ns). The strategy figures come from a copy of "
        f"the program compiled with an orders ring of {tr.get('test_run_ring_pages', '?')} pages, big enough "
        f"for every order event of a {tr['repeat']}-run trade ({tr['ringbuf_drops']} dropped over all runs: "
        f"a drop would stop the bench); the deployed program, with its own ring, takes "
        f"{tr['trade_events_written']} ns per trade in a run of {tr['trade_events_written_repeat']} that "
        f"fits that ring.",
    ]
    th = result["throughput"]
    lines += [
        "",
        "## Throughput (engine native, exact accounting)",
        "",
        f"Highest rate held: **{th['max_rate_held']} updates/s**; limit: {th['limit']}. Sender on CPU "
        f"{th['send_cpu']}, order receiver on CPU {th['recv_cpu']}.",
        "",
        "| asked /s | achieved /s | sent | engine updates | engine orders | received | exact |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in th["steps"]:
        lines.append(
            f"| {s['target_rate']} | {s['achieved_rate']} | {s['sent']} | {s['engine_updates']} | "
            f"{s['engine_orders']} | {s['received']} | {'yes' if s['exact'] else 'NO'} |"
        )
    lines += ["", "## Targets (reported, not enforced)", "", "| target | measured | met |", "|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


# -- SVG ----------------------------------------------------------------------

COLORS = ("#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#8c564b", "#e377c2")
W, H = 1000, 900
PANEL_H = 360
LEFT, RIGHT = 70, 220


def _us_label(us: float) -> str:
    for unit, scale in (("s", 1e6), ("ms", 1e3)):
        if us >= scale:
            return f"{us / scale:g} {unit}"
    return f"{us:g} us"


def _nines(p: float) -> float:
    return -math.log10(1.0 - p)


def _curve(samples: list[int], max_points: int = 400) -> list[tuple[float, float]]:
    """(latency us, nines) points of the empirical CDF, thinned in the body, every point in the tail."""
    v = sorted(samples)
    n = len(v)
    step = max(1, n // max_points)
    idx = sorted(set(range(0, n, step)) | set(range(max(0, int(n * 0.99)), n)))
    return [(v[i] / 1000, _nines((i + 0.5) / n)) for i in idx]


def svg(result: dict, samples: dict[str, dict[str, list[int]]]) -> str:
    names = list(samples)
    all_us = [x / 1000 for s in samples.values() for pat in PATTERNS for x in s[pat]]
    lo = 10 ** math.floor(math.log10(max(min(all_us), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(all_us)))
    top = max(_nines((n - 0.5) / n) for s in samples.values() for pat in PATTERNS for n in [len(s[pat])])
    top = max(3.0, math.ceil(top * 2) / 2)
    m = result["machine"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="16">hft-tui bench: round-trip latency CDF '
        "per variant</text>",
        f'<text x="{W / 2}" y="40" text-anchor="middle" fill="#555">'
        + html.escape(
            f"kernel {m['kernel']}, {m['cpu_model']}, {m['cores']} cores; "
            f"{result['started_at']}; y: fraction of round trips at or below x"
        )
        + "</text>",
    ]
    for k, pat in enumerate(PATTERNS):
        y0 = 70 + k * (PANEL_H + 60)
        x0, x1 = LEFT, W - RIGHT
        y1 = y0 + PANEL_H

        def px(us: float, x0: float = x0, x1: float = x1) -> float:
            return x0 + (math.log10(us) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (x1 - x0)

        def py(nines: float, y0: float = y0, y1: float = y1) -> float:
            return y1 - nines / top * (y1 - y0)

        title = (
            "ping-pong (next update when the order arrives)"
            if pat == "pingpong"
            else f"paced ({result['config']['paced_rate']} updates/s, idle in between)"
        )
        out.append(f'<text x="{x0}" y="{y0 - 8}" font-size="14">{html.escape(title)}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{PANEL_H}" fill="none" stroke="#888"/>')
        mults = (1, 2, 5) if math.log10(hi / lo) <= 4 else (1,)
        decade = lo
        while decade <= hi * 1.0001:
            for mult in mults:
                x = decade * mult
                if lo <= x <= hi * 1.0001:
                    xx = px(x)
                    out.append(f'<line x1="{xx:.1f}" y1="{y0}" x2="{xx:.1f}" y2="{y1}" stroke="#eee"/>')
                    out.append(f'<text x="{xx:.1f}" y="{y1 + 15}" text-anchor="middle">{_us_label(x)}</text>')
            decade *= 10
        out.append(f'<text x="{(x0 + x1) / 2}" y="{y1 + 32}" text-anchor="middle">round trip (log scale)</text>')
        for p, label in ((0.0, "0%"), (0.5, "50%"), (0.9, "90%"), (0.99, "99%"), (0.999, "99.9%"), (0.9999, "99.99%")):
            if _nines(p) <= top:
                yy = py(_nines(p))
                out.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x1}" y2="{yy:.1f}" stroke="#eee"/>')
                out.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
        for i, name in enumerate(names):
            pts = _curve(samples[name][pat])
            path = " ".join(f"{px(max(us, lo)):.1f},{py(n):.1f}" for us, n in pts)
            color = COLORS[i % len(COLORS)]
            dash = ' stroke-dasharray="6,3"' if "shared" in name else ""
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{path}"/>')
            s = result["variants"][name][pat]
            ly = y0 + 14 + i * 34
            out.append(
                f'<line x1="{x1 + 12}" y1="{ly - 4}" x2="{x1 + 32}" y2="{ly - 4}" stroke="{color}" '
                f'stroke-width="3"{dash}/>'
            )
            out.append(f'<text x="{x1 + 38}" y="{ly}">{html.escape(name)}</text>')
            out.append(f'<text x="{x1 + 38}" y="{ly + 14}" fill="#555">p50 {s["p50_us"]:g} p99 {s["p99_us"]:g}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
