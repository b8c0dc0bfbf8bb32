"""Analysis and report of the sampler benchmark: best settings, the PASS/MISS targets, tables and the RMSE plot.

Works on a :class:`~benchmarks.samplers.accuracy_grid.BenchmarkResult`: :func:`evaluate_targets` checks the three targets
(best inertia beats every diffusers solver at high guidance and NFE 8-20; the ``auto`` settings stay within
``TOLERANCE`` of the best sweep setting there and of the best diffusers solver at low guidance),
:func:`markdown_report` renders the RMSE / magnitude / median-error tables and the best setting per cell,
:func:`write_outputs` writes JSON, CSV, Markdown and :func:`plot_rmse`'s figure.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.samplers.accuracy_grid import AUTO, BenchmarkResult, Record, Solver

__all__ = [
    "HIGH_GUIDANCE",
    "LOW_GUIDANCE",
    "TARGET_NFE",
    "TOLERANCE",
    "Table",
    "best_in_cell",
    "best_setting",
    "evaluate_targets",
    "index_records",
    "inertia_families",
    "markdown_report",
    "plot_rmse",
    "write_outputs",
]

#: Region of the targets: guidance >= HIGH_GUIDANCE and NFE in TARGET_NFE (inclusive).
HIGH_GUIDANCE = 15.0
TARGET_NFE = (8, 20)
LOW_GUIDANCE = 7.5
TOLERANCE = 0.10


# ---------------------------------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------------------------------

Table = dict[tuple[str, float, int], Record]


def index_records(records: Iterable[Record]) -> Table:
    return {(r.solver, r.guidance, r.nfe): r for r in records}


def _score(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def _selection_nfes(nfes: Sequence[int]) -> list[int]:
    chosen = [n for n in nfes if TARGET_NFE[0] <= n <= TARGET_NFE[1]]
    return chosen or list(nfes)


def best_setting(table: Table, solvers: Sequence[Solver], family: str, guidance: float, nfes: Sequence[int]) -> Solver:
    """The family member with the lowest mean RMSE over NFE 8-20 (all NFE if the grid has none there)."""
    chosen = _selection_nfes(nfes)
    members = [s for s in solvers if s.family == family]

    def mean_rmse(solver: Solver) -> float:
        values = [
            _score(table[(solver.name, guidance, n)].rmse) for n in chosen if (solver.name, guidance, n) in table
        ]
        return statistics.fmean(values) if values else math.inf

    return min(members, key=mean_rmse)


def best_in_cell(table: Table, solvers: Iterable[Solver], guidance: float, nfe: int) -> tuple[Solver, float] | None:
    candidates = [
        (s, _score(table[(s.name, guidance, nfe)].rmse)) for s in solvers if (s.name, guidance, nfe) in table
    ]
    return min(candidates, key=lambda pair: pair[1]) if candidates else None


def inertia_families(solvers: Sequence[Solver]) -> list[str]:
    families: list[str] = []
    for solver in solvers:
        if solver.is_inertia and solver.family != AUTO and solver.family not in families:
            families.append(solver.family)
    return families


def _tolerance_misses(table, auto, pool, cells) -> list[str]:
    """Cells where ``auto``'s RMSE is more than ``TOLERANCE`` above the best of ``pool`` in that cell."""
    misses = []
    for g, n in cells:
        best = best_in_cell(table, pool, g, n)
        mine = table.get((auto.name, g, n))
        if best is None or mine is None:
            continue
        if not _score(mine.rmse) <= (1 + TOLERANCE) * best[1]:
            misses.append(
                f"g={g:g} NFE={n}: {auto.name} (β={mine.beta}) {mine.rmse:.4g} vs {best[0].name} "
                f"{best[1]:.4g} ({_score(mine.rmse) / best[1] - 1:+.1%})"
            )
    return misses


def evaluate_targets(result: BenchmarkResult) -> list[str]:
    """PASS/MISS lines for the three targets (empty if the inertia solvers did not run)."""
    table = index_records(result.records)
    solvers = result.solvers
    stock = [s for s in solvers if not s.is_inertia]
    inertia = [s for s in solvers if s.is_inertia]
    autos = [s for s in solvers if s.family == AUTO]
    if not inertia:
        return []
    high = [
        (g, n)
        for g in result.grid.guidances
        if g >= HIGH_GUIDANCE
        for n in result.grid.nfes
        if TARGET_NFE[0] <= n <= TARGET_NFE[1]
    ]
    low = [(g, n) for g in result.grid.guidances if g <= LOW_GUIDANCE for n in result.grid.nfes]
    lines = []

    def verdict(label: str, misses: list[str], cells: int) -> None:
        if not cells:
            lines.append(f"SKIP {label}: no cells in this grid")
            return
        status = "PASS" if not misses else "MISS"
        lines.append(f"{status} {label} ({cells - len(misses)}/{cells} cells)")
        lines.extend(f"    miss: {m}" for m in misses)

    misses = []
    for g, n in high:
        best_i = best_in_cell(table, inertia, g, n)
        best_d = best_in_cell(table, stock, g, n)
        if best_i is None or best_d is None:
            continue
        if not best_i[1] < best_d[1]:
            misses.append(
                f"g={g:g} NFE={n}: best inertia {best_i[0].name} {best_i[1]:.4g} vs {best_d[0].name} {best_d[1]:.4g}"
                f" ({best_i[1] / best_d[1] - 1:+.1%})"
            )
    verdict(
        f"(1) g>={HIGH_GUIDANCE:g}, NFE {TARGET_NFE[0]}-{TARGET_NFE[1]}: best inertia beats every diffusers solver",
        misses,
        len(high),
    )

    for auto in autos:
        for versus, pool in (
            ("best inertia setting", inertia),
            (f"best {auto.auto_family} sweep setting", [s for s in inertia if s.family == auto.auto_family]),
        ):
            misses = _tolerance_misses(table, auto, pool, high)
            verdict(
                f"(2) g>={HIGH_GUIDANCE:g}, NFE {TARGET_NFE[0]}-{TARGET_NFE[1]}: {auto.name} within "
                f"{TOLERANCE:.0%} of the {versus}",
                misses,
                len(high),
            )

    for auto in autos:
        misses = _tolerance_misses(table, auto, stock, low)
        verdict(
            f"(3) g<={LOW_GUIDANCE:g}, all NFE: {auto.name} within {TOLERANCE:.0%} of the best diffusers solver",
            misses,
            len(low),
        )
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}"


def _table_rows(result: BenchmarkResult, guidance: float) -> list[tuple[str, str, Solver | None]]:
    """(label, setting, solver) rows of one guidance table: stock, best per family, auto, per-cell oracle."""
    table = index_records(result.records)
    rows: list[tuple[str, str, Solver | None]] = [(s.name, "", s) for s in result.solvers if not s.is_inertia]
    for family in inertia_families(result.solvers):
        best = best_setting(table, result.solvers, family, guidance, result.grid.nfes)
        rows.append((f"best {family}", best.setting, best))
    rows += [(s.name, s.setting, s) for s in result.solvers if s.family == AUTO]
    return rows


def markdown_report(result: BenchmarkResult, targets: Sequence[str]) -> str:
    """The Markdown report: RMSE and magnitude tables per guidance, best settings per cell, targets."""
    table = index_records(result.records)
    nfes = result.grid.nfes
    inertia = [s for s in result.solvers if s.is_inertia]
    chosen = _selection_nfes(nfes)
    out = [
        "# Exact-denoiser sampler benchmark",
        "",
        f"Data: {result.meta['dataset']['num_points']} latents of shape {tuple(result.meta['dataset']['shape'])} in "
        f"{result.meta['dataset']['num_classes']} classes; {result.grid.batch} samples (labels cycling over the "
        f"classes), noise seed {result.meta['seed']}; timestep spacing `{result.meta['spacing']}` for every solver. "
        f"Reference: {result.meta['reference']}, same initial noise, compared at each solver's final noise level.",
        "",
        f"`best <family>` rows: the setting with the lowest mean RMSE over NFE {chosen[0]}-{chosen[-1]}. "
        "`best inertia (per cell)`: in every table, the inertia setting with the lowest RMSE in that cell. "
        "Bold: best in the column.",
        "",
        "Notes: (i) DDIM/PLMS (`set_alpha_to_one=False`) end at the noise level of t=0 (sigma ~0.029), the others at "
        "sigma=0; each is compared with the reference at its own end point. (ii) `trailing` spacing is used because "
        "DDIM and PNDM step to `t - 1000 // n`, which is inconsistent with `linspace` timesteps. (iii) The exact "
        "denoiser's posterior collapses onto one data point well before the last step, so a last step that returns "
        "the current x0 prediction (DPM-Solver++, DEIS, Euler) ends in range: out-of-range final latents "
        "(magnitude > reference) come from updates that combine several past predictions (PLMS, UniPC at 5-6 NFE, "
        "strongly damped momentum at 5 NFE); otherwise divergence shows as samples ending on a different data "
        "point (large RMSE).",
        "",
    ]
    if result.reference_check:
        out += [f"Reference check, RMSE of other {result.grid.reference_steps}-step solvers to the reference:", ""]
        for g, checks in result.reference_check.items():
            out.append(f"- g={g:g}: " + ", ".join(f"{name} {value:.1e}" for name, value in checks.items()))
        out.append("")
    for metric, title in (
        ("rmse", "RMSE to the reference"),
        ("magnitude", "Divergence magnitude score"),
        ("median_error", "Median per-sample RMSE (robust to the few samples that end on another data point)"),
    ):
        out += [f"## {title}", ""]
        for guidance in result.grid.guidances:
            rows = _table_rows(result, guidance)
            if inertia:
                rows.append(("best inertia (per cell)", "", None))
            values: dict[str, list[float]] = {}
            for label, _, solver in rows:
                if solver is None:
                    cells = []
                    for n in nfes:
                        best = best_in_cell(table, inertia, guidance, n)
                        rec = table.get((best[0].name, guidance, n)) if best else None
                        cells.append(getattr(rec, metric) if rec else math.nan)
                else:
                    cells = [
                        getattr(table[(solver.name, guidance, n)], metric)
                        if (solver.name, guidance, n) in table
                        else math.nan
                        for n in nfes
                    ]
                values[label] = cells
            column_best = [
                min((_score(v[i]) for v in values.values() if not math.isnan(v[i])), default=math.nan)
                for i in range(len(nfes))
            ]
            out += [
                f"### guidance {guidance:g}",
                "",
                "| solver | setting | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
                "|---|---|" + "---:|" * len(nfes),
            ]
            for label, setting, _ in rows:
                cells = []
                for i, v in enumerate(values[label]):
                    text = _fmt(v)
                    bold = metric != "magnitude" and _score(v) == column_best[i]
                    cells.append(f"**{text}**" if bold else text)
                out.append(f"| {label} | {setting} | " + " | ".join(cells) + " |")
            if metric == "magnitude":
                ref = _fmt(result.reference_magnitude[guidance])
                out.append(
                    f"| reference | {result.grid.reference_steps} steps | " + " | ".join([ref] * len(nfes)) + " |"
                )
            nonfinite = sorted({r.solver for r in result.records if r.guidance == guidance and r.nonfinite > 0})
            if metric == "rmse" and nonfinite:
                out += ["", "Non-finite samples: " + ", ".join(nonfinite)]
            out.append("")
    if inertia:
        out += [
            "## Best setting per (guidance, NFE) for each inertia family",
            "",
            "Cell: best setting (its RMSE); `auto:` the β the auto setting of that family picked.",
            "",
        ]
        for family in inertia_families(result.solvers):
            members = [s for s in result.solvers if s.family == family]
            auto = next((s for s in result.solvers if s.family == AUTO and s.auto_family == family), None)
            out += [
                f"### {family}",
                "",
                "| guidance | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
                "|---|" + "---|" * len(nfes),
            ]
            for guidance in result.grid.guidances:
                cells = []
                for n in nfes:
                    best = best_in_cell(table, members, guidance, n)
                    if best is None:
                        cells.append("")
                        continue
                    text = f"{best[0].setting} ({_fmt(best[1])})"
                    if auto is not None and (auto.name, guidance, n) in table:
                        text += f" auto: β={table[(auto.name, guidance, n)].beta}"
                    cells.append(text)
                out.append(f"| {guidance:g} | " + " | ".join(cells) + " |")
            out.append("")
        out += ["## Targets", "", "```", *targets, "```", ""]
    return "\n".join(out)


def write_outputs(result: BenchmarkResult, targets: Sequence[str], out_dir: Path, suffix: str) -> dict[str, Path]:
    """Write JSON, CSV, Markdown and the plot; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / f"samplers{suffix}.json",
        "csv": out_dir / f"samplers{suffix}.csv",
        "md": out_dir / f"samplers{suffix}.md",
        "png": out_dir / f"samplers_rmse{suffix}.png",
    }
    records = [dataclasses.asdict(r) for r in result.records]
    payload = {
        "meta": result.meta,
        "grid": dataclasses.asdict(result.grid),
        "reference_magnitude": {str(k): v for k, v in result.reference_magnitude.items()},
        "reference_check_rmse": {str(k): v for k, v in result.reference_check.items()},
        "targets": list(targets),
        "records": records,
    }
    paths["json"].write_text(json.dumps(payload, indent=1, default=str) + "\n")
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in dataclasses.fields(Record)])
        writer.writeheader()
        writer.writerows(records)
    paths["md"].write_text(markdown_report(result, targets))
    plot_rmse(result, paths["png"])
    return paths


def plot_rmse(result: BenchmarkResult, path: Path) -> None:
    """RMSE vs NFE, one panel per guidance; diffusers dashed, inertia (best per family, auto) solid.

    The legend names the families; each panel lists the best setting per family at that guidance scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = index_records(result.records)
    guidances = result.grid.guidances
    fig, axes = plt.subplots(1, len(guidances), figsize=(3.3 * len(guidances) + 2.2, 3.6), sharey=True, squeeze=False)
    stock_colors = plt.get_cmap("tab10")
    inertia_colors = plt.get_cmap("Dark2")
    handles: dict[str, Any] = {}
    for ax, guidance in zip(axes[0], guidances):
        rows = _table_rows(result, guidance)
        stock_index = inertia_index = 0
        notes = []
        for label, setting, solver in rows:
            if solver is None:
                continue
            xs = [n for n in result.grid.nfes if (solver.name, guidance, n) in table]
            ys = [min(table[(solver.name, guidance, n)].rmse, 1e3) for n in xs]
            if solver.is_inertia:
                color, style, width = inertia_colors(inertia_index % 8), "-", 1.8
                inertia_index += 1
                if label.startswith("best"):
                    notes.append(f"{solver.family}: {setting}")
            else:
                color, style, width = stock_colors(stock_index % 10), "--", 1.1
                stock_index += 1
            (line,) = ax.plot(xs, ys, style, color=color, linewidth=width, marker="o", markersize=3)
            handles.setdefault(label, line)
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xticks(result.grid.nfes, [str(n) for n in result.grid.nfes])
        ax.minorticks_off()
        ax.set_ylim(top=3.0)
        ax.set_title(f"guidance {guidance:g}", fontsize=9)
        ax.set_xlabel("NFE", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.text(
            0.02,
            0.02,
            "best:\n" + "\n".join(notes),
            transform=ax.transAxes,
            fontsize=5.5,
            va="bottom",
            bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0},
        )
    axes[0][0].set_ylabel("RMSE to reference", fontsize=8)
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=7, frameon=False)
    fig.suptitle("Exact-denoiser benchmark: RMSE vs NFE (dashed: diffusers, solid: inertia)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / (3.3 * len(guidances) + 2.2), 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
