"""Tables, ratios to plain generation, target checks and memory-growth exponents."""

from __future__ import annotations

import math
from typing import Sequence

# method -> (max time ratio, max memory ratio) over plain generation
TARGETS = {"attmean": (1.15, 1.10), "attraw": (1.15, 1.10), "attgrads": (2.5, 1.25)}
FIRST_TOKEN_TARGET = 1.10


def _fmt(value: float, spec: str = ".2f") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _check(ratio: float, limit: float) -> str:
    if math.isnan(ratio):
        return ""
    return "✓" if ratio <= limit else f"✗ (+{(ratio / limit - 1) * 100:.0f}%)"


def rows_for(run: dict) -> list[dict]:
    """Measurements of one context length with their ratios to plain generation."""
    plain = next(m for m in run["measurements"] if m["method"] == "plain")
    rows = []
    for m in run["measurements"]:
        ok = m["status"] == "ok"
        row = dict(m)
        row["time_ratio"] = m["wall_s"] / plain["wall_s"] if ok else float("nan")
        row["memory_ratio"] = m["peak_mb"] / plain["peak_mb"] if ok and plain["peak_mb"] > 0 else float("nan")
        row["first_token_ratio"] = m["first_token_s"] / plain["first_token_s"] if ok else float("nan")
        rows.append(row)
    return rows


def growth_exponent(points: Sequence[tuple[int, float]]) -> float:
    """Slope of log(memory) over log(context) between the shortest and longest context (1 = linear)."""
    points = sorted((c, m) for c, m in points if m > 0 and not math.isnan(m))
    if len(points) < 2 or points[0][0] == points[-1][0]:
        return float("nan")
    (c0, m0), (c1, m1) = points[0], points[-1]
    return math.log(m1 / m0) / math.log(c1 / c0)


def linear_fit(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares memory = a + b * context: (b in MB per 1000 tokens, R squared); NaN below 3 points."""
    points = [(c, m) for c, m in points if not math.isnan(m)]
    if len(points) < 3:
        return float("nan"), float("nan")
    n = len(points)
    mean_c = sum(c for c, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var_c = sum((c - mean_c) ** 2 for c, _ in points)
    slope = sum((c - mean_c) * (m - mean_m) for c, m in points) / var_c
    total = sum((m - mean_m) ** 2 for _, m in points)
    residual = sum((m - (mean_m + slope * (c - mean_c))) ** 2 for c, m in points)
    return slope * 1000, (1 - residual / total) if total > 0 else 1.0


def markdown(runs: Sequence[dict], title: str) -> str:
    lines = [f"### {title}", "",
             "| context | method | wall s | × plain | prefill s | s / token | first token s | × plain | added MB | × plain "
             "| targets |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        for r in rows_for(run):
            if r["status"] != "ok":
                lines.append(f"| {r['context']} | {r['method']} | {r['status']}: {r['note']} | | | | | | | | |")
                continue
            checks = []
            if r["method"] in TARGETS:
                t_max, m_max = TARGETS[r["method"]]
                checks = [f"time {_check(r['time_ratio'], t_max)}", f"mem {_check(r['memory_ratio'], m_max)}",
                          f"1st {_check(r['first_token_ratio'], FIRST_TOKEN_TARGET)}"]
            note = f" ({r['note']})" if r["note"] else ""
            lines.append(
                f"| {r['context']} | {r['method']}{note} | {_fmt(r['wall_s'])} | {_fmt(r['time_ratio'])} | "
                f"{_fmt(r.get('prefill_s', float('nan')))} | {_fmt(r['per_token_s'], '.3f')} | "
                f"{_fmt(r['first_token_s'])} | {_fmt(r['first_token_ratio'])} | "
                f"{_fmt(r['peak_mb'], '.0f')} | {_fmt(r['memory_ratio'])} | {', '.join(checks)} |")
    methods = []
    for run in runs:
        for m in run["measurements"]:
            if m["method"] not in methods:
                methods.append(m["method"])
    lines += ["", "Memory growth with context: exponent of added memory vs context (1 = linear, 2 = quadratic; a fixed "
              "part, the same for every method, pulls it below 1) and a linear fit:", ""]
    for method in methods:
        points = [(run["context"], m["peak_mb"]) for run in runs for m in run["measurements"]
                  if m["method"] == method and m["status"] == "ok"]
        slope, r2 = linear_fit(points)
        fit = f"; linear fit {slope:.0f} MB per 1k tokens, R² {r2:.2f}" if not math.isnan(slope) else ""
        lines.append(f"- {method}: exponent {_fmt(growth_exponent(points))} over {len(points)} lengths{fit}")
    return "\n".join(lines)
