"""Sampler benchmark on the exact-denoiser problem: diffusers solvers vs the inertia momentum samplers.

Every solver runs from the same initial noise with the exact (closed-form) guided denoiser of
:mod:`benchmarks.common.exact_denoiser`, so all error is solver error. For each solver setting, guidance scale and number of
function evaluations (NFE) it records

* ``rmse``: root-mean-square distance of the final latents to a high-accuracy reference from the same noise
  (``DPMSolverMultistepScheduler`` 2nd order, 1000 steps; compared at the solver's own final noise level, see
  :func:`benchmarks.common.exact_denoiser.final_noise_level`),
* ``magnitude``: the divergence magnitude score of the momentum-sampling paper,
* ``nonfinite``: the fraction of samples with NaN/inf entries,
* ``median_error``: the median over samples of the per-sample RMSE, and ``far_fraction``: the fraction of samples
  whose RMSE exceeds ``FAR_ERROR`` (they ended on a visibly different data point than the reference). The exact
  denoiser of a finite set "memorises", so at high guidance ``rmse`` is dominated by the few samples that end on a
  different point; these two columns separate that from the typical sample's accuracy.

Usage::

    python -m benchmarks.samplers.accuracy            # full grid (a few minutes on 2 CPU cores)
    python -m benchmarks.samplers.accuracy --quick    # smoke test (< 30 s)

Outputs (``--out``, default ``benchmarks/out/``): ``samplers.json``, ``samplers.csv``, ``samplers.md`` (also printed)
and ``samplers_rmse.png``; the full run copies the plot to ``docs/figures/samplers_rmse.png``. The quick run
writes ``*_quick.*`` files and leaves the committed figure alone.

This module holds the run loop and the CLI; the solver catalogue and grids are in :mod:`benchmarks.samplers.accuracy_grid`,
the targets, tables and plot in :mod:`benchmarks.samplers.accuracy_report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from benchmarks.common.cli_lists import comma_floats, comma_ints
from benchmarks.common.exact_denoiser import (
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
from benchmarks.common.paths import FIGURE_DIR
from benchmarks.samplers.accuracy_grid import (
    FULL_GRID,
    QUICK_GRID,
    BenchmarkResult,
    Grid,
    Record,
    Solver,
    base_config,
    diffusers_solvers,
    inertia_solvers,
)
from benchmarks.samplers.accuracy_report import evaluate_targets, write_outputs

__all__ = ["FAR_ERROR", "Reference", "check_reference", "compute_reference", "main", "run_benchmark", "run_one"]

FIGURE_PATH = FIGURE_DIR / "samplers_rmse.png"

#: Per-sample RMSE above which a sample counts as "ended on a different data point" (the median distance between
#: two points of a class is ~0.9, the median nearest-neighbour distance ~0.03).
FAR_ERROR = 0.5


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
# CLI
# ---------------------------------------------------------------------------------------------------------------------


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
    parser.add_argument("--nfe", type=comma_ints, default=None, help="comma-separated NFE values (overrides the grid)")
    parser.add_argument("--guidance", type=comma_floats, default=None, help="comma-separated guidance scales")
    parser.add_argument("--batch", type=int, default=None, help="number of samples")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: tiny matmuls)")
    parser.add_argument("--no-figure-copy", action="store_true", help="do not copy the plot to docs/figures")
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
