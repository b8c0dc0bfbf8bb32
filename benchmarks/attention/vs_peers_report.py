"""Curves, interpolation and the Markdown report of :mod:`benchmarks.attention.vs_peers`.

Every method family (ours, each cache peer, "fewer steps") is a curve of points ``(speed-up, RMSE, FD)`` through
its settings plus full computation ``(1, 0, FD_full)``. `at_speedup` reads the curve at a given speed-up (linear
between the neighbouring settings, None beyond the family's fastest setting); `speedup_at_error` gives the speed-up
at which the family's error first reaches a level. A value between full computation and the family's mildest
setting is a straight line to a point no setting measured: the tables mark it with ``*`` (`measured` is False) and
the winners and the verdict leave it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

__all__ = [
    "ERROR_TARGETS",
    "SPEEDUP_TARGETS",
    "at_speedup",
    "curve",
    "measured",
    "report",
    "speedup_at_error",
    "winners",
]

SPEEDUP_TARGETS = (1.1, 1.15, 1.2, 1.3, 1.5, 1.67, 2.0)
"""Speed-ups at which the families' errors are compared."""
ERROR_TARGETS = (0.005, 0.01, 0.02, 0.04)
"""RMSE levels at which the families' speed-ups are compared."""

Point = tuple[float, float, float]


def curve(rows: dict[str, dict], family: str, model: str, full: dict) -> list[Point]:
    """``(speed-up on model, RMSE, FD)`` of every setting of ``family`` and of full computation, by speed-up."""
    points = [(1.0, 0.0, full["fd_digits"])]
    points += [(r["speedup"][model], r["rmse"], r["fd_digits"]) for r in rows.values() if r["family"] == family]
    return sorted(points)


def at_speedup(points: Sequence[Point], speedup: float, index: int = 1) -> float | None:
    """Entry ``index`` (1: RMSE, 2: FD) interpolated at ``speedup``; None when no setting is that fast."""
    for (s0, *v0), (s1, *v1) in pairwise(points):
        if s0 <= speedup <= s1:
            if s1 == s0:
                return min(v0[index - 1], v1[index - 1])
            w = (speedup - s0) / (s1 - s0)
            return v0[index - 1] + w * (v1[index - 1] - v0[index - 1])
    return None


def measured(points: Sequence[Point], speedup: float) -> bool:
    """Whether ``speedup`` lies between two measured settings (not between full computation and the mildest one)."""
    return len(points) > 1 and speedup >= points[1][0]


def speedup_at_error(points: Sequence[Point], error: float) -> tuple[float, bool]:
    """The speed-up where the curve's RMSE first exceeds ``error`` (interpolated), and whether it was reached.

    Returns ``(speed-up, True)`` at the crossing, or ``(fastest speed-up, False)`` when every setting stays below
    ``error`` (the family's error at that level is "at least this fast").
    """
    for (s0, e0, _), (s1, e1, _) in pairwise(points):
        if e1 > error:
            if e0 >= error:
                return s0, True
            return s0 + (error - e0) / (e1 - e0) * (s1 - s0), True
    return points[-1][0], False


def winners(curves: dict[str, list[Point]]) -> tuple[dict[float, str | None], dict[float, str | None]]:
    """The family with the lowest RMSE at each speed-up target and the fastest one at each error target."""
    by_speed: dict[float, str | None] = {}
    for target in SPEEDUP_TARGETS:
        values = {f: at_speedup(c, target) for f, c in curves.items() if measured(c, target)}
        values = {f: v for f, v in values.items() if v is not None}
        by_speed[target] = min(values, key=values.get) if values else None
    by_error: dict[float, str | None] = {}
    for target in ERROR_TARGETS:
        values = {f: speedup_at_error(c, target)[0] for f, c in curves.items()}
        values = {f: v for f, v in values.items() if measured(curves[f], v)}
        by_error[target] = max(values, key=values.get) if values else None
    return by_speed, by_error


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _regime_tables(rows: dict[str, dict], families: Sequence[str], model: str, label: str) -> list[str]:
    full = rows["full"]
    curves = {f: curve(rows, f, model, full) for f in families}
    by_speed, by_error = winners(curves)
    head = " | ".join(f"{t:g}x" for t in SPEEDUP_TARGETS)
    lines = [
        f"### {label}: RMSE vs full computation (FD-digits) at equal speed-up",
        "",
        f"| method | {head} |",
        "|---|" + "---:|" * len(SPEEDUP_TARGETS),
    ]
    for f in families:
        cells = []
        for t in SPEEDUP_TARGETS:
            rmse, fd = at_speedup(curves[f], t, 1), at_speedup(curves[f], t, 2)
            star = "" if measured(curves[f], t) else "*"
            cell = "—" if rmse is None else f"{rmse:.4f}{star} ({fd:.2f})"
            cells.append(f"**{cell}**" if by_speed[t] == f else cell)
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    head = " | ".join(f"RMSE {t:g}" for t in ERROR_TARGETS)
    lines += [
        "",
        f"### {label}: speed-up at equal error",
        "",
        f"| method | {head} |",
        "|---|" + "---:|" * len(ERROR_TARGETS),
    ]
    for f in families:
        cells = []
        for t in ERROR_TARGETS:
            speedup, reached = speedup_at_error(curves[f], t)
            star = "" if measured(curves[f], speedup) else "*"
            cell = f"{speedup:.2f}x{star}" if reached else f">= {speedup:.2f}x"
            cells.append(f"**{cell}**" if by_error[t] == f else cell)
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines += ["", "`*`: between full computation and the family's mildest setting (not measured; not ranked).", ""]
    for t in SPEEDUP_TARGETS:
        if by_speed[t] is not None:
            lines.append(f"- {label}, {t:g}x: lowest error **{by_speed[t]}**.")
    for t in ERROR_TARGETS:
        if by_error[t] is not None:
            lines.append(f"- {label}, RMSE {t:g}: fastest **{by_error[t]}**.")
    return [*lines, ""]


def verdict(rows: dict[str, dict], families: Sequence[str], model: str, label: str) -> list[str]:
    """The issue's target on one speed model: ``extrapolate`` vs each peer at every reachable speed-up target."""
    full = rows["full"]
    curves = {f: curve(rows, f, model, full) for f in families}
    lines = []
    for t in SPEEDUP_TARGETS:
        ours = at_speedup(curves["extrapolate"], t)
        if ours is None or not measured(curves["extrapolate"], t):
            continue
        beaten, lost = [], []
        for f in families:
            theirs = at_speedup(curves[f], t)
            if f == "extrapolate" or theirs is None or not measured(curves[f], t):
                continue
            (beaten if ours < theirs else lost).append(f"{f} {theirs:.4f}")
        verdict_text = "beats every peer measured there" if not lost else "loses to " + ", ".join(lost)
        lines.append(
            f"- {label}, {t:g}x: `extrapolate` RMSE {ours:.4f}: {verdict_text}"
            + (f" (beats {', '.join(beaten)})" if beaten else "")
            + "."
        )
    return lines


def report(meta: dict, rows: dict[str, dict], costs: dict[str, dict], families: Sequence[str]) -> str:
    """The Markdown report: per-call costs, every setting, both regimes' comparisons and the target."""
    lines = [
        "# Caches against the peers",
        "",
        f"Command: `{meta['command']}`; {meta['machine']}; torch {meta['torch']}, diffusers {meta['diffusers']}; "
        f"{meta['date']}; {meta['seconds']:.0f} s in all. Quality: the embedded digits model, {meta['images']} images, "
        f"{meta['steps']} steps of DPM-Solver++(2M), guidance 3, seed {meta.get('seed', 0)}; `extrapolate` β = "
        f"{meta.get('extrapolate_beta', -0.4):g}.",
        "",
        "## Per-call costs (medians, seconds)",
        "",
        "| model | full call | attention skipped | FBC probe only | MagCache skip |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in costs.values():
        lines.append(f"| {c['label']} | {c['full']:.3f} | {c['attention']:.3f} | {c['probe']:.3f} | {c['none']:.3f} |")
    lines += [
        "",
        "## Every setting",
        "",
        "| method | setting | full calls | attention skipped | RMSE | max abs | FD-digits | accuracy | "
        + " | ".join(f"speed-up {c['short']}" for c in costs.values())
        + " |",
        "|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(costs),
    ]
    for r in rows.values():
        speed = " | ".join(f"{r['speedup'][m]:.2f}x" for m in costs)
        lines.append(
            f"| {r['family']} | {r['setting']} | {r['full_calls']} | {r['attention_skipped']:.1f} | "
            f"{r['rmse']:.4f} | {r['max_abs']:.3f} | {r['fd_digits']:.3f} | {r['class_accuracy']:.3f} | {speed} |"
        )
    if "fd_other_seed" in meta:
        other = meta.get("seed", 0) + 1
        lines += [
            "",
            f"FD-digits of full computation from seed {other}: {meta['fd_other_seed']:.3f} (the seed spread).",
        ]
    lines.append("")
    for model, c in costs.items():
        lines += _regime_tables(rows, families, model, c["short"])
    lines += ["## Target: `extrapolate` below every cache peer's error at equal speed-up", ""]
    for model, c in costs.items():
        lines += verdict(rows, families, model, c["short"])
    return "\n".join(lines) + "\n"
