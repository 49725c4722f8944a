"""The bench's CDF plot, drawn as plain SVG from the samples of the same run.

Four panels, one a row: the round trip (ping-pong, paced) and tick-to-trade
on the wire (ping-pong, paced), each with every variant: latency on a log x
axis, the fraction of trips at or below it on a "nines" y axis (50%, 90%,
99%, 99.9%) so that the tail, where the variants differ most, is visible.
"""

from __future__ import annotations

import html
import math

PANELS = (
    ("pingpong", "pingpong", "round trip, ping-pong (next update when the order arrives)"),
    ("paced", "paced", "round trip, paced ({rate} updates/s, idle in between)"),
    ("wire_pingpong", "pingpong", "tick-to-trade on the wire, ping-pong"),
    ("wire_paced", "paced", "tick-to-trade on the wire, paced"),
)
COLORS = ("#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#8c564b", "#e377c2")
PANEL_H = 360
W, H = 1000, 70 + len(PANELS) * (PANEL_H + 60)
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


def _stats(result: dict, name: str, key: str, pat: str) -> dict | None:
    v = result["variants"][name]
    return v["wire"][pat] if key.startswith("wire_") else v[pat]


def svg(result: dict, samples: dict[str, dict[str, list[int]]]) -> str:
    """``samples``: variant -> {"pingpong", "paced", "wire_pingpong", "wire_paced"} -> ns."""
    names = list(samples)
    all_us = [x / 1000 for s in samples.values() for key, *_ in PANELS for x in s.get(key, []) if x > 0]
    lo = 10 ** math.floor(math.log10(max(min(all_us), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(all_us)))
    top = max(_nines((n - 0.5) / n) for s in samples.values() for key, *_ in PANELS for n in [len(s.get(key, []))] if n)
    top = max(3.0, math.ceil(top * 2) / 2)
    m = result["machine"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="16">hft-tui bench: latency CDF per variant</text>',
        f'<text x="{W / 2}" y="40" text-anchor="middle" fill="#555">'
        + html.escape(
            f"kernel {m['kernel']}, {m['cpu_model']}, {m['cores']} cores; "
            f"{result['started_at']}; y: fraction of trips at or below x"
        )
        + "</text>",
    ]
    for k, (key, pat, title) in enumerate(PANELS):
        y0 = 70 + k * (PANEL_H + 60)
        x0, x1 = LEFT, W - RIGHT
        y1 = y0 + PANEL_H

        def px(us: float, x0: float = x0, x1: float = x1) -> float:
            return x0 + (math.log10(us) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (x1 - x0)

        def py(nines: float, y0: float = y0, y1: float = y1) -> float:
            return y1 - nines / top * (y1 - y0)

        title = title.format(rate=result["config"]["paced_rate"])
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
        axis = "tick-to-trade on the wire" if key.startswith("wire_") else "round trip"
        out.append(f'<text x="{(x0 + x1) / 2}" y="{y1 + 32}" text-anchor="middle">{axis} (log scale)</text>')
        for p, label in ((0.0, "0%"), (0.5, "50%"), (0.9, "90%"), (0.99, "99%"), (0.999, "99.9%"), (0.9999, "99.99%")):
            if _nines(p) <= top:
                yy = py(_nines(p))
                out.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x1}" y2="{yy:.1f}" stroke="#eee"/>')
                out.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
        for i, name in enumerate(names):
            values = [x for x in samples[name].get(key, []) if x > 0]
            if not values:
                continue
            pts = _curve(values)
            path = " ".join(f"{px(max(us, lo)):.1f},{py(n):.1f}" for us, n in pts)
            color = COLORS[i % len(COLORS)]
            dash = ' stroke-dasharray="6,3"' if "shared" in name else ""
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{path}"/>')
            s = _stats(result, name, key, pat)
            ly = y0 + 14 + i * 34
            out.append(
                f'<line x1="{x1 + 12}" y1="{ly - 4}" x2="{x1 + 32}" y2="{ly - 4}" stroke="{color}" '
                f'stroke-width="3"{dash}/>'
            )
            out.append(f'<text x="{x1 + 38}" y="{ly}">{html.escape(name)}</text>')
            if s and s.get("count"):
                out.append(
                    f'<text x="{x1 + 38}" y="{ly + 14}" fill="#555">p50 {s["p50_us"]:g} p99 {s["p99_us"]:g}</text>'
                )
    out.append("</svg>")
    return "\n".join(out) + "\n"
