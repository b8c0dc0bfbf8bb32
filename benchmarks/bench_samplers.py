"""Sampler benchmark on the exact-denoiser problem: diffusers solvers vs the inertia momentum samplers.

Every solver runs from the same initial noise with the exact (closed-form) guided denoiser of
:mod:`benchmarks.exact_denoiser`, so all error is solver error. For each solver setting, guidance scale and number of
function evaluations (NFE) it records

* ``rmse``: root-mean-square distance of the final latents to a high-accuracy reference from the same noise
  (``DPMSolverMultistepScheduler`` 2nd order, 1000 steps; compared at the solver's own final noise level, see
  :func:`benchmarks.exact_denoiser.final_noise_level`),
* ``magnitude``: the divergence magnitude score of the momentum-sampling paper,
* ``nonfinite``: the fraction of samples with NaN/inf entries,
* ``median_error``: the median over samples of the per-sample RMSE, and ``far_fraction``: the fraction of samples
  whose RMSE exceeds ``FAR_ERROR`` (they ended on a visibly different data point than the reference). The exact
  denoiser of a finite set "memorises", so at high guidance ``rmse`` is dominated by the few samples that end on a
  different point; these two columns separate that from the typical sample's accuracy.

Usage::

    python -m benchmarks.bench_samplers            # full grid (a few minutes on 2 CPU cores)
    python -m benchmarks.bench_samplers --quick    # smoke test (< 30 s)

Outputs (``--out``, default ``benchmarks/out/``): ``samplers.json``, ``samplers.csv``, ``samplers.md`` (also printed)
and ``samplers_rmse.png``; the full run copies the plot to ``benchmarks/figures/samplers_rmse.png``. The quick run
writes ``*_quick.*`` files and leaves the committed figure alone.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)

from benchmarks.exact_denoiser import (
    ExactDenoiser,
    LatentDataset,
    final_noise_level,
    magnitude_score,
    make_dataset,
    nonfinite_fraction,
    per_sample_error,
    rmse,
    sample,
    steps_for_nfe,
    to_vp,
)

__all__ = [
    "FULL_GRID",
    "QUICK_GRID",
    "Grid",
    "Record",
    "Solver",
    "base_config",
    "diffusers_solvers",
    "evaluate_targets",
    "inertia_solvers",
    "main",
    "run_benchmark",
]

FIGURE_PATH = Path(__file__).resolve().parent / "figures" / "samplers_rmse.png"

#: Scheduler config shared by every solver: SD1.5's schedule (as in its DDIM/PNDM config).
SD15_BASE_KWARGS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}

DIFFUSERS = "diffusers"
AUTO = "auto"
#: Region of the targets: guidance >= HIGH_GUIDANCE and NFE in TARGET_NFE (inclusive).
HIGH_GUIDANCE = 15.0
TARGET_NFE = (8, 20)
LOW_GUIDANCE = 7.5
TOLERANCE = 0.10
#: Per-sample RMSE above which a sample counts as "ended on a different data point" (the median distance between
#: two points of a class is ~0.9, the median nearest-neighbour distance ~0.03).
FAR_ERROR = 0.5


@dataclass(frozen=True)
class Grid:
    """What to run: NFE values, guidance scales, batch size and seeds."""

    nfes: tuple[int, ...]
    guidances: tuple[float, ...]
    batch: int
    reference_steps: int = 1000
    check_reference: bool = True


FULL_GRID = Grid(nfes=(5, 6, 8, 10, 15, 20, 30), guidances=(1.0, 3.0, 7.5, 15.0, 22.5), batch=64)
QUICK_GRID = Grid(nfes=(6, 10), guidances=(3.0, 15.0), batch=16, reference_steps=250, check_reference=False)


@dataclass(frozen=True)
class Solver:
    """A named solver setting.

    Attributes:
        name: unique display name (e.g. ``"GHVB 3.8"``).
        family: ``"diffusers"``, an inertia family (``"HB-DPM++2M"``, ``"GHVB-PLMS"``, ...) or ``"auto"``.
        setting: the swept parameter in words (e.g. ``"β=0.8"``), empty for diffusers solvers.
        factory: ``factory(base_config, guidance_scale) -> scheduler`` (a fresh instance on every call).
        auto_family: for ``"auto"`` solvers, the family whose sweep it should match.
    """

    name: str
    family: str
    setting: str
    factory: Callable[[Mapping[str, Any], float], Any]
    auto_family: str = ""

    @property
    def is_inertia(self) -> bool:
        return self.family != DIFFUSERS


@dataclass
class Record:
    """One (solver, guidance, NFE) result."""

    solver: str
    family: str
    setting: str
    guidance: float
    nfe: int
    steps: int
    rmse: float
    magnitude: float
    nonfinite: float
    median_error: float
    far_fraction: float
    final_sigma: float
    beta: float | None
    seconds: float


def base_config(spacing: str = "trailing") -> Mapping[str, Any]:
    """The SD1.5 DDIM-style config every solver is built from (``from_config``), with ``timestep_spacing`` set."""
    return DDIMScheduler(**SD15_BASE_KWARGS, timestep_spacing=spacing).config


def _from_config(cls: type, **overrides: Any) -> Callable[[Mapping[str, Any], float], Any]:
    def factory(config: Mapping[str, Any], guidance_scale: float) -> Any:
        del guidance_scale
        return cls.from_config(config, **overrides)

    return factory


def diffusers_solvers() -> list[Solver]:
    """The stock diffusers solvers of the comparison."""
    return [
        Solver("DDIM", DIFFUSERS, "", _from_config(DDIMScheduler)),
        Solver("PLMS", DIFFUSERS, "", _from_config(PNDMScheduler, skip_prk_steps=True)),
        Solver("DPM++2M", DIFFUSERS, "", _from_config(DPMSolverMultistepScheduler, solver_order=2)),
        Solver("DPM++3M", DIFFUSERS, "", _from_config(DPMSolverMultistepScheduler, solver_order=3)),
        Solver("UniPC", DIFFUSERS, "", _from_config(UniPCMultistepScheduler)),
        Solver("DEIS", DIFFUSERS, "", _from_config(DEISMultistepScheduler)),
        Solver("Euler", DIFFUSERS, "", _from_config(EulerDiscreteScheduler)),
    ]


DPM_BETAS = (0.9, 0.8, 0.7, 0.6, 0.5)
GHVB_NUMBERS = (0.5, 0.8, 1.5, 1.8, 2.5, 2.8, 3.5, 3.8, 3.9, 4.0)
HB_NUMBERS = (1.8, 2.8, 3.8, 3.9)


def inertia_solvers() -> list[Solver]:
    """The inertia sweeps and "auto" settings. Raises ``ImportError`` if :mod:`inertia.samplers` is unavailable."""
    from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

    def number_factory(number: float, method: str) -> Callable[[Mapping[str, Any], float], Any]:
        def factory(config: Mapping[str, Any], guidance_scale: float) -> Any:
            del guidance_scale
            return MomentumPLMSScheduler.from_momentum_number(config, number, method=method)

        return factory

    def auto_factory(cls: type, **overrides: Any) -> Callable[[Mapping[str, Any], float], Any]:
        def factory(config: Mapping[str, Any], guidance_scale: float) -> Any:
            return cls.from_config(config, momentum_beta="auto", momentum_guidance_scale=guidance_scale, **overrides)

        return factory

    solvers = []
    for order in (2, 3):
        for beta in DPM_BETAS:
            solvers.append(
                Solver(
                    f"HB-DPM++{order}M β={beta}",
                    f"HB-DPM++{order}M",
                    f"β={beta}",
                    _from_config(MomentumDPMSolverMultistepScheduler, solver_order=order, momentum_beta=beta),
                )
            )
    solvers += [Solver(f"GHVB {r}", "GHVB-PLMS", f"r={r}", number_factory(r, "ghvb")) for r in GHVB_NUMBERS]
    solvers += [Solver(f"HB-PLMS {r}", "HB-PLMS", f"r={r}", number_factory(r, "hb")) for r in HB_NUMBERS]
    solvers += [
        Solver(
            "auto HB-DPM++2M",
            AUTO,
            "β=auto",
            auto_factory(MomentumDPMSolverMultistepScheduler, solver_order=2),
            auto_family="HB-DPM++2M",
        ),
        Solver(
            "auto GHVB-PLMS4",
            AUTO,
            "r=3+auto",
            auto_factory(MomentumPLMSScheduler, momentum_method="ghvb", solver_order=4),
            auto_family="GHVB-PLMS",
        ),
    ]
    return solvers


# ---------------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Reference:
    """Reference solutions of one guidance scale, keyed by their final VP noise level."""

    by_level: dict[float, torch.Tensor]
    magnitude: float

    def at(self, level: float) -> torch.Tensor:
        """The reference at final noise level ``level`` (must match one of the computed levels)."""
        best = min(self.by_level, key=lambda key: abs(key - level))
        if abs(best - level) > 1e-4:
            raise ValueError(f"no reference at final noise level {level:.5f} (have {sorted(self.by_level)})")
        return self.by_level[best]


def compute_reference(
    config: Mapping[str, Any],
    denoiser: ExactDenoiser,
    labels: torch.Tensor,
    guidance: float,
    seed: int,
    steps: int,
) -> Reference:
    """DPM-Solver++(2M) with ``steps`` steps, ending at sigma 0 and at sigma_min (the DDIM/PLMS end point)."""
    by_level = {}
    for final_sigmas_type in ("zero", "sigma_min"):
        scheduler = DPMSolverMultistepScheduler.from_config(
            config, solver_order=2, final_sigmas_type=final_sigmas_type
        )
        x = to_vp(sample(scheduler, denoiser, labels, guidance, steps, seed), scheduler)
        by_level[final_noise_level(scheduler)] = x
    return Reference(by_level=by_level, magnitude=magnitude_score(by_level[min(by_level)], denoiser.dataset))


def check_reference(
    config: Mapping[str, Any],
    denoiser: ExactDenoiser,
    labels: torch.Tensor,
    guidance: float,
    seed: int,
    steps: int,
    reference: Reference,
) -> dict[str, float]:
    """RMSE of independent ``steps``-step solutions (DDIM, UniPC) to the reference at the same final noise level."""
    checks = {}
    for name, scheduler in (
        ("DDIM", DDIMScheduler.from_config(config)),
        ("UniPC", UniPCMultistepScheduler.from_config(config)),
    ):
        x = to_vp(sample(scheduler, denoiser, labels, guidance, steps, seed), scheduler)
        checks[name] = rmse(x, reference.at(final_noise_level(scheduler)))
    return checks


def run_one(
    solver: Solver,
    config: Mapping[str, Any],
    denoiser: ExactDenoiser,
    labels: torch.Tensor,
    guidance: float,
    nfe: int,
    seed: int,
    reference: Reference,
) -> Record | None:
    """Sample with one solver setting at exactly ``nfe`` model calls; ``None`` if no step count gives ``nfe``."""
    steps = steps_for_nfe(solver.factory(config, guidance), nfe)
    if steps is None:
        return None
    scheduler = solver.factory(config, guidance)
    calls = denoiser.num_calls
    start = time.perf_counter()
    x = sample(scheduler, denoiser, labels, guidance, steps, seed)
    seconds = time.perf_counter() - start
    if denoiser.num_calls - calls != nfe:
        raise RuntimeError(f"{solver.name}: expected {nfe} model calls, got {denoiser.num_calls - calls}")
    level = final_noise_level(scheduler)
    x = to_vp(x, scheduler)
    reference_x = reference.at(level)
    errors = per_sample_error(x, reference_x)
    beta = getattr(scheduler, "momentum_beta", None)
    return Record(
        solver=solver.name,
        family=solver.family,
        setting=solver.setting,
        guidance=guidance,
        nfe=nfe,
        steps=steps,
        rmse=rmse(x, reference_x),
        magnitude=magnitude_score(x, denoiser.dataset),
        nonfinite=nonfinite_fraction(x),
        median_error=float(errors.median()),
        far_fraction=float((errors > FAR_ERROR).to(torch.float64).mean()),
        final_sigma=level,
        beta=None if beta is None else float(beta),
        seconds=seconds,
    )


@dataclass
class BenchmarkResult:
    """Everything a run produced."""

    records: list[Record]
    solvers: list[Solver]
    grid: Grid
    reference_magnitude: dict[float, float]
    reference_check: dict[float, dict[str, float]]
    meta: dict[str, Any]


def run_benchmark(
    grid: Grid,
    solvers: Sequence[Solver],
    *,
    dataset: LatentDataset,
    seed: int = 0,
    spacing: str = "trailing",
    log: Callable[[str], None] = print,
) -> BenchmarkResult:
    """Run every solver on the grid and return the records (one reference per guidance scale)."""
    config = base_config(spacing)
    # The reference visits every training timestep (999, 998, ..., 0) whatever the solvers' spacing: with
    # `linspace`, 1000 DPM-Solver steps would repeat timesteps (zero-length steps) and produce NaNs.
    reference_config = base_config("trailing")
    denoiser = ExactDenoiser(dataset)
    labels = torch.arange(grid.batch) % dataset.num_classes
    records: list[Record] = []
    reference_magnitude: dict[float, float] = {}
    reference_check: dict[float, dict[str, float]] = {}
    for guidance in grid.guidances:
        start = time.perf_counter()
        reference = compute_reference(reference_config, denoiser, labels, guidance, seed, grid.reference_steps)
        reference_magnitude[guidance] = reference.magnitude
        message = f"guidance {guidance:g}: reference in {time.perf_counter() - start:.1f}s"
        if grid.check_reference:
            reference_check[guidance] = check_reference(
                reference_config, denoiser, labels, guidance, seed, grid.reference_steps, reference
            )
            message += ", RMSE to reference: " + ", ".join(
                f"{name}-{grid.reference_steps} {value:.2e}" for name, value in reference_check[guidance].items()
            )
        log(message)
        start = time.perf_counter()
        for solver in solvers:
            for nfe in grid.nfes:
                record = run_one(solver, config, denoiser, labels, guidance, nfe, seed, reference)
                if record is None:
                    log(f"  {solver.name}: no step count gives NFE={nfe}; skipped")
                else:
                    records.append(record)
        log(f"  {len(solvers)} solvers x {len(grid.nfes)} NFE in {time.perf_counter() - start:.1f}s")
    meta = {
        "spacing": spacing,
        "seed": seed,
        "dataset": {"num_points": len(dataset.labels), "num_classes": dataset.num_classes, "shape": dataset.shape},
        "batch": grid.batch,
        "reference": f"DPMSolverMultistepScheduler(solver_order=2), {grid.reference_steps} steps",
        "model_calls": denoiser.num_calls,
    }
    return BenchmarkResult(records, list(solvers), grid, reference_magnitude, reference_check, meta)


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
            misses = []
            for g, n in high:
                best = best_in_cell(table, pool, g, n)
                mine = table.get((auto.name, g, n))
                if best is None or mine is None:
                    continue
                if not _score(mine.rmse) <= (1 + TOLERANCE) * best[1]:
                    misses.append(
                        f"g={g:g} NFE={n}: {auto.name} (β={mine.beta}) {mine.rmse:.4g} vs {best[0].name} "
                        f"{best[1]:.4g} ({_score(mine.rmse) / best[1] - 1:+.1%})"
                    )
            verdict(
                f"(2) g>={HIGH_GUIDANCE:g}, NFE {TARGET_NFE[0]}-{TARGET_NFE[1]}: {auto.name} within "
                f"{TOLERANCE:.0%} of the {versus}",
                misses,
                len(high),
            )

    for auto in autos:
        misses = []
        for g, n in low:
            best = best_in_cell(table, stock, g, n)
            mine = table.get((auto.name, g, n))
            if best is None or mine is None:
                continue
            if not _score(mine.rmse) <= (1 + TOLERANCE) * best[1]:
                misses.append(
                    f"g={g:g} NFE={n}: {auto.name} (β={mine.beta}) {mine.rmse:.4g} vs {best[0].name} "
                    f"{best[1]:.4g} ({_score(mine.rmse) / best[1] - 1:+.1%})"
                )
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


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test grid (< 30 s)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data set")
    parser.add_argument(
        "--spacing",
        default="trailing",
        choices=("trailing", "linspace", "leading"),
        help="timestep_spacing for every solver (default: trailing; see the report)",
    )
    parser.add_argument("--nfe", type=_ints, default=None, help="comma-separated NFE values (overrides the grid)")
    parser.add_argument("--guidance", type=_floats, default=None, help="comma-separated guidance scales")
    parser.add_argument("--batch", type=int, default=None, help="number of samples")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: tiny matmuls)")
    parser.add_argument("--no-figure-copy", action="store_true", help="do not copy the plot to benchmarks/figures")
    args = parser.parse_args(argv)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace) -> int:
    grid = QUICK_GRID if args.quick else FULL_GRID
    grid = dataclasses.replace(
        grid,
        nfes=args.nfe or grid.nfes,
        guidances=args.guidance or grid.guidances,
        batch=args.batch or grid.batch,
    )
    solvers = diffusers_solvers()
    try:
        solvers += inertia_solvers()
    except ImportError as error:
        print(f"NOTE: inertia samplers not importable ({error}); running the diffusers solvers only.")
    start = time.perf_counter()
    result = run_benchmark(
        grid,
        solvers,
        dataset=make_dataset(seed=args.data_seed),
        seed=args.seed,
        spacing=args.spacing,
        log=lambda message: print(message, flush=True),
    )
    result.meta["data_seed"] = args.data_seed
    result.meta["seconds"] = round(time.perf_counter() - start, 1)
    targets = evaluate_targets(result)
    suffix = "_quick" if args.quick else ""
    paths = write_outputs(result, targets, args.out, suffix)
    print()
    print(paths["md"].read_text())
    if not args.quick and not args.no_figure_copy:
        FIGURE_PATH.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["png"], FIGURE_PATH)
        print(f"figure copied to {FIGURE_PATH} ({FIGURE_PATH.stat().st_size / 1024:.0f} KB)")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(f"total {result.meta['seconds']:.1f}s, {result.meta['model_calls']} model calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
