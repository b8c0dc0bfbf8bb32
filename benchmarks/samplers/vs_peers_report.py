"""Tables, per-regime winners and targets of the sampler-peers benchmark (:mod:`benchmarks.samplers.vs_peers`).

The one table has the peers as rows (diffusers' solvers, k-diffusion's samplers per sigma grid, then inertia's best
setting per cell and its ``auto`` settings) and one column per (guidance, NFE) cell. Deterministic rows show the RMSE
to the ODE reference; stochastic rows (k-diffusion's ancestral and SDE samplers) the RMSE to the SDE reference on
their shared Brownian path, which is a different target: the ``vs`` column says which. The target: the
best inertia setting beats every diffusers and k-diffusion sampler at guidance >= 15, NFE 8-20.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.samplers.accuracy_grid import AUTO, DIFFUSERS
from benchmarks.samplers.vs_peers_grid import INERTIA, KDIFF, PeerRecord

__all__ = ["HIGH_GUIDANCE", "TARGET_NFE", "best", "evaluate_targets", "markdown_report", "winners", "write_outputs"]

HIGH_GUIDANCE = 15.0
TARGET_NFE = (8, 20)

Cell = tuple[float, int]


def _score(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _cells(records: Sequence[PeerRecord]) -> list[Cell]:
    return sorted({(r.guidance, r.nfe_budget) for r in records})


def _in_cell(records: Iterable[PeerRecord], cell: Cell) -> list[PeerRecord]:
    return [r for r in records if (r.guidance, r.nfe_budget) == cell]


def _ours(record: PeerRecord) -> bool:
    return record.family in (INERTIA, AUTO)


def _peer(record: PeerRecord) -> bool:
    return record.family in (DIFFUSERS, KDIFF)


def _label(record: PeerRecord) -> str:
    return record.name if record.grid == "trailing" else f"{record.name} ({record.grid})"


def best(records: Iterable[PeerRecord]) -> PeerRecord | None:
    """The record with the lowest RMSE (non-finite counts as infinite), or ``None``."""
    records = list(records)
    return min(records, key=lambda r: _score(r.rmse)) if records else None


def winners(records: Sequence[PeerRecord]) -> dict[Cell, dict[str, PeerRecord | None]]:
    """Per cell: the best deterministic peer, the best inertia setting and the best stochastic peer (vs its SDE)."""
    table = {}
    for cell in _cells(records):
        here = _in_cell(records, cell)
        table[cell] = {
            "peer": best(r for r in here if _peer(r) and not r.stochastic),
            "ours": best(r for r in here if _ours(r)),
            "auto": best(r for r in here if r.family == AUTO),
            "stochastic": best(r for r in here if r.stochastic),
        }
    return table


def evaluate_targets(records: Sequence[PeerRecord]) -> list[str]:
    """PASS/MISS per target cell (g >= 15, NFE 8-20): best inertia vs every deterministic diffusers/k-diffusion peer."""
    lines, misses, cells = [], [], 0
    for (g, n), best_of in winners(records).items():
        if g < HIGH_GUIDANCE or not TARGET_NFE[0] <= n <= TARGET_NFE[1]:
            continue
        ours, peer = best_of["ours"], best_of["peer"]
        if ours is None or peer is None:
            continue
        cells += 1
        ratio = _score(ours.rmse) / _score(peer.rmse)
        line = f"g={g:g} NFE={n}: {_label(ours)} {ours.rmse:.4g} vs {_label(peer)} {peer.rmse:.4g} ({ratio - 1:+.1%})"
        if not ratio < 1:
            misses.append(line)
        lines.append(("  win:  " if ratio < 1 else "  miss: ") + line)
    status = "PASS" if cells and not misses else "MISS" if cells else "SKIP"
    head = f"{status} g>={HIGH_GUIDANCE:g}, NFE {TARGET_NFE[0]}-{TARGET_NFE[1]}: best inertia beats every diffusers "
    head += f"and k-diffusion ODE sampler ({cells - len(misses)}/{cells} cells)"
    return [head, *lines]


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else "nan"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _rows(records: Sequence[PeerRecord]) -> list[tuple[str, str, str, list[PeerRecord | None]]]:
    """(label, grid, vs, one record per cell) for every displayed row, in display order."""
    cells = _cells(records)
    by_key: dict[tuple[str, str], dict[Cell, PeerRecord]] = {}
    order: list[tuple[str, str]] = []
    for r in records:
        key = (r.name, r.grid)
        if key not in by_key:
            by_key[key], _ = {}, order.append(key)
        by_key[key][(r.guidance, r.nfe_budget)] = r

    def group(keep) -> list[tuple[str, str]]:
        return [k for k in order if keep(next(iter(by_key[k].values())))]

    rows = []
    for key in group(lambda r: r.family == DIFFUSERS) + group(lambda r: r.family == KDIFF and not r.stochastic):
        first = next(iter(by_key[key].values()))
        rows.append((first.name, first.grid, "ODE", [by_key[key].get(c) for c in cells]))
    best_of = winners(records)
    rows.append(("**best inertia (per cell)**", "", "ODE", [best_of[c]["ours"] for c in cells]))
    for key in group(lambda r: r.family == AUTO):
        first = next(iter(by_key[key].values()))
        rows.append((first.name, first.grid, "ODE", [by_key[key].get(c) for c in cells]))
    for key in group(lambda r: r.stochastic):
        first = next(iter(by_key[key].values()))
        rows.append((first.name, first.grid, "SDE", [by_key[key].get(c) for c in cells]))
    return rows


def _table(records: Sequence[PeerRecord], metric: str, bold_best: bool) -> list[str]:
    cells = _cells(records)
    lines = [
        "| sampler | grid | vs | " + " | ".join(f"g {g:g}, NFE {n}" for g, n in cells) + " |",
        "|---|---|---|" + "---:|" * len(cells),
    ]
    best_value = {c: min((_score(getattr(r, metric)) for r in _in_cell(records, c) if not r.stochastic),
                         default=math.inf) for c in cells}  # fmt: skip
    for label, grid, vs, row in _rows(records):
        values = []
        for cell, r in zip(cells, row, strict=True):
            if r is None:
                values.append("")
                continue
            text = _fmt(getattr(r, metric)) + ("†" if r.nfe < r.nfe_budget else "")
            if bold_best and vs == "ODE" and _score(getattr(r, metric)) == best_value[cell]:
                text = f"**{text}**"
            values.append(text)
        lines.append(f"| {label} | {grid} | {vs} | " + " | ".join(values) + " |")
    return lines


def _winner_lines(records: Sequence[PeerRecord]) -> list[str]:
    lines = []
    for (g, n), b in winners(records).items():
        ours, peer, sde = b["ours"], b["peer"], b["stochastic"]
        if peer is None:
            continue
        leader = ours if ours is not None and _score(ours.rmse) < _score(peer.rmse) else peer
        text = f"- g {g:g}, NFE {n}: **{_label(leader)}** {_fmt(leader.rmse)}"
        if ours is not None:
            text += f"; best peer {_label(peer)} {_fmt(peer.rmse)}, best inertia {_label(ours)} {_fmt(ours.rmse)}"
            text += f" ({_score(ours.rmse) / _score(peer.rmse) - 1:+.0%})"
        if sde is not None:
            text += f"; best stochastic (vs its SDE) {_label(sde)} {_fmt(sde.rmse)}"
        lines.append(text)
    return lines


def markdown_report(records: Sequence[PeerRecord], meta: dict[str, Any]) -> str:
    """The report: how it was run, the table, per-cell winners, targets, and the data-distance table."""
    grid = meta["grid"]
    lines = [
        f"Guidance {', '.join(f'{g:g}' for g in grid['guidances'])}; NFE {', '.join(map(str, grid['nfes']))}; "
        f"batch {grid['batch']}; ODE reference: {meta['ode_reference']}; SDE reference: {meta['sde_reference']}; "
        f"{meta.get('seconds', '?')} s, {meta['model_calls']} model calls.",
        "",
    ]
    if meta.get("reference_checks"):
        lines.append(
            "Reference checks (RMSE): "
            + "; ".join(
                f"g {g}: " + ", ".join(f"{k} {v:.1e}" for k, v in checks.items())
                for g, checks in meta["reference_checks"].items()
            )
        )
        lines.append("")
    lines += [
        "RMSE to the reference (`vs`): ODE rows against the probability-flow ODE solution, SDE rows against the many-"
        "step SDE solution on their shared Brownian path. Bold: the best ODE row per column. †: a two-evaluation "
        "sampler that fits one call fewer than the budget (2·steps − 1 model calls).",
        "",
        *_table(records, "rmse", bold_best=True),
        "",
        "Winner per cell (ODE samplers; the SDE rows solve another problem and are listed for reference):",
        "",
        *_winner_lines(records),
        "",
        "Targets:",
        "",
        "```",
        *evaluate_targets(records),
        "```",
        "",
        "Median distance from a sample to the nearest data point (0 = every sample is a data point; the exact "
        "posterior ends on data points, so this flags blurred or off-data samples):",
        "",
        *_table(records, "data_distance", bold_best=False),
    ]
    return "\n".join(lines) + "\n"


def write_outputs(
    records: Sequence[PeerRecord], meta: dict[str, Any], out: str | Path, suffix: str
) -> dict[str, Path]:
    """``peers_samplers{suffix}.json``, ``.csv`` and ``.md`` under ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"peers_samplers{suffix}.{ext}" for ext in ("json", "csv", "md")}
    rows = [dataclasses.asdict(r) for r in records]
    paths["json"].write_text(json.dumps({"meta": meta, "records": rows}, indent=1, default=str))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["name"])
        writer.writeheader()
        writer.writerows(rows)
    paths["md"].write_text(markdown_report(records, meta))
    return paths
