"""Samplers against k-diffusion's: every diffusers and k-diffusion sampler next to inertia's.

The problem is §1's exact-denoiser problem (:mod:`benchmarks.common.exact_denoiser`: a finite latent data set under the
SD1.5 VP schedule, closed-form guided denoiser, so every error is the sampler's). Peers:

* diffusers' solvers from the §1 catalogue (:func:`benchmarks.samplers.accuracy_grid.diffusers_solvers`, trailing spacing), run
  as a pipeline runs them;
* k-diffusion 0.1.1's samplers (:mod:`benchmarks.peers.k_diffusion`, bit-identical to the real functions) on two
  sigma grids: the model's own discrete sigmas (k-diffusion's ``DiscreteSchedule.get_sigmas``, ComfyUI's "normal")
  and Karras et al.'s ρ = 7 grid between the model's σ_min and σ_max (ComfyUI's "karras"). The exact denoiser is
  wrapped as a k-diffusion denoiser (:class:`KDiffusionDenoiser`: x_ve = x_vp/α, σ = sqrt((1 − ᾱ)/ᾱ), returns x0);
  the start is the same VP noise, ``x = noise·sqrt(1 + σ_max²)`` (the VE state of the VP start, as ComfyUI scales
  txt2img noise);
* inertia: every §1 scheduler setting (HB/GHVB/HB-PLMS, HB-DPM++2M/3M β sweeps, the ``auto`` settings) and the
  k-diffusion-style functions ``sample_hb_dpmpp_2m``/``_3m`` (β sweep and the auto β) on both grids.

NFE is counted honestly: a sampler with two model calls per step (Heun, DPM2, DPM++ 2S, DPM++ SDE) gets the most
steps that fit the budget, ``2·steps − 1 <= NFE``, and the actual count is recorded (one fewer for even budgets).

Metrics: for deterministic samplers the RMSE of the final latents to the 1000-step DPM-Solver++(2M) ODE reference
from the same noise (§1's reference). Stochastic samplers (ancestral, SDE) do not solve the ODE, so RMSE to it is not
their error; they all get one seeded Brownian path in σ (:class:`benchmarks.peers.brownian.BrownianNoiseSampler`,
what k-diffusion's SDE samplers use by default) and are measured against a 1000-step DPM++ 2M SDE run on the same
path (its strong error: all of them converge to that one solution as steps shrink, tested in
``tests/bench_harness/peers``). The ``vs`` column says which reference a row is measured against. Every row
also gets the magnitude score, the median per-sample error and the median distance to the nearest data point.

Usage::

    python -m benchmarks.samplers.vs_peers            # full grid (about 30 min on one thread of a busy 2-core CPU)
    python -m benchmarks.samplers.vs_peers --quick    # smoke test (under 2 minutes)

Outputs (``--out``, default ``benchmarks/out/``): ``peers_samplers.json``, ``.csv`` and ``.md`` (also printed);
``--quick`` writes ``*_quick.*``. What runs (grids, function peers, records) is :mod:`benchmarks.samplers.vs_peers_grid`;
the tables and targets are made by :mod:`benchmarks.samplers.vs_peers_report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.common.cli_lists import comma_floats, comma_ints
from benchmarks.common.exact_denoiser import (
    ExactDenoiser,
    final_noise_level,
    initial_noise,
    magnitude_score,
    make_dataset,
    nonfinite_fraction,
    per_sample_error,
    rmse,
    sample,
    sd15_alphas_cumprod,
    steps_for_nfe,
    to_vp,
)
from benchmarks.peers import k_diffusion as K
from benchmarks.samplers.accuracy import FAR_ERROR, compute_reference
from benchmarks.samplers.accuracy_grid import (
    AUTO,
    DIFFUSERS,
    Solver,
    base_config,
    diffusers_solvers,
    inertia_solvers,
)
from benchmarks.samplers.vs_peers_grid import (
    FULL,
    INERTIA,
    KDIFF,
    QUICK,
    FunctionPeer,
    PeerGrid,
    PeerRecord,
    function_peers,
)
from benchmarks.samplers.vs_peers_report import write_outputs

__all__ = [
    "KDiffusionDenoiser",
    "PeerContext",
    "main",
    "run_function",
    "run_peers",
    "sample_on_sigmas",
    "sde_reference",
]


class KDiffusionDenoiser:
    """The exact guided denoiser as a k-diffusion model: ``model(x, sigma) -> x0`` in variance-exploding variables.

    ``x_ve = x0 + σ·ε`` is ``x_vp/α`` with ``σ = sqrt((1 − ᾱ)/ᾱ)``, so the VP model sees ``x_ve/sqrt(1 + σ²)`` at the
    (fractional) timestep whose noise-to-signal ratio is exactly σ (the inverse of the denoiser's own linear
    interpolation of the training ratios), and ``x0 = x_ve − σ·ε``. Arithmetic in float64, result in ``x``'s dtype.
    """

    def __init__(self, denoiser: ExactDenoiser, labels: torch.Tensor, guidance_scale: float) -> None:
        self.denoiser, self.labels, self.guidance_scale = denoiser, labels, guidance_scale

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The fractional timestep ``t`` with ``denoiser.noise_level(t)`` at noise-to-signal ratio ``sigma``."""
        ratios = self.denoiser.ratios
        s = sigma.to(torch.float64).clamp(float(ratios[0]), float(ratios[-1]))
        low = (torch.searchsorted(ratios, s, right=True) - 1).clamp(0, len(ratios) - 2)
        return low.to(torch.float64) + (s - ratios[low]) / (ratios[low + 1] - ratios[low])

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
        s = sigma.to(torch.float64).reshape(-1, *[1] * (x.ndim - 1))
        x64 = x.to(torch.float64)
        eps = self.denoiser(x64 / torch.sqrt(1 + s**2), self.timestep(sigma), self.labels, self.guidance_scale)
        return (x64 - s * eps).to(x.dtype)  # x0 = x_ve − σ·ε


# ---------------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class PeerContext:
    """The state one run shares between its records: the exact denoiser, labels, grid and current references."""

    denoiser: ExactDenoiser
    labels: torch.Tensor
    grid: PeerGrid
    alphas_cumprod: torch.Tensor
    ode: Any = None  # accuracy.Reference of the current guidance
    sde: torch.Tensor | None = None  # the SDE reference of the current guidance


def _data_distance(x: torch.Tensor, denoiser: ExactDenoiser) -> float:
    """Median over samples of the RMSE to the nearest data point (0 = every sample is a data point)."""
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        return math.inf
    points = denoiser.dataset.latents.reshape(len(denoiser.dataset.labels), -1)
    distances = torch.cdist(flat, points).min(dim=1).values / math.sqrt(flat.shape[1])
    return float(distances.median())


def _metrics(x: torch.Tensor, reference: torch.Tensor, denoiser: ExactDenoiser) -> dict[str, float]:
    errors = per_sample_error(x, reference)
    return {
        "rmse": rmse(x, reference),
        "median_error": float(errors.median()),
        "far_fraction": float((errors > FAR_ERROR).to(torch.float64).mean()),
        "magnitude": magnitude_score(x, denoiser.dataset),
        "nonfinite": nonfinite_fraction(x),
        "data_distance": _data_distance(x, denoiser),
    }


def sample_on_sigmas(
    function: Callable[..., torch.Tensor],
    denoiser: ExactDenoiser,
    labels: torch.Tensor,
    guidance: float,
    sigmas: torch.Tensor,
    *,
    seed: int = 0,
    noise_seed: int | None = None,
    **options: Any,
) -> torch.Tensor:
    """Any k-diffusion-style sampler on any sigma grid, from the benchmark's shared start; returns the final latents.

    The start is the VP noise of ``seed`` in VE scaling, ``noise·sqrt(1 + sigmas[0]²)``; with ``noise_seed`` the
    sampler gets the shared Brownian path on the model's σ range as ``noise_sampler`` (stochastic samplers). With a
    final σ of 0 the result is in data scale, comparable with :func:`benchmarks.samplers.accuracy.compute_reference`.
    """
    noise = initial_noise(len(labels), denoiser.shape, seed)
    x = noise * math.sqrt(1.0 + float(sigmas[0]) ** 2)  # the VE state of the VP start x_T = noise
    if noise_seed is not None:
        ratios = denoiser.ratios  # the path covers every σ the model knows (a tiny margin for float32 rounding)
        low, high = float(ratios[0]) * (1 - 1e-6), float(ratios[-1]) * (1 + 1e-6)
        options["noise_sampler"] = K.BrownianNoiseSampler(x, low, high, seed=noise_seed)
    return function(KDiffusionDenoiser(denoiser, labels, guidance), x, sigmas, disable=True, **options)


def run_function(
    peer: FunctionPeer, ctx: PeerContext, guidance: float, steps: int, options: Mapping[str, Any] | None = None
) -> torch.Tensor:
    """Run ``peer`` with ``steps`` steps on its grid from the shared noise; returns the final (σ = 0) latents."""
    sigmas = K.get_sigmas(peer.grid, steps, ctx.alphas_cumprod)
    kwargs = dict(peer.options(guidance, steps) if options is None else options)
    noise_seed = ctx.grid.noise_seed if peer.stochastic else None
    return sample_on_sigmas(
        peer.function, ctx.denoiser, ctx.labels, guidance, sigmas, seed=ctx.grid.seed, noise_seed=noise_seed, **kwargs
    )


def _function_record(peer: FunctionPeer, ctx: PeerContext, guidance: float, budget: int) -> PeerRecord:
    steps = peer.steps_for(budget)
    options = peer.options(guidance, steps)
    calls, start = ctx.denoiser.num_calls, time.perf_counter()
    x = run_function(peer, ctx, guidance, steps, options)
    seconds = time.perf_counter() - start
    nfe = ctx.denoiser.num_calls - calls
    if nfe > budget:
        raise RuntimeError(f"{peer.name}: {nfe} model calls for a budget of {budget}")
    reference = ctx.sde if peer.stochastic else ctx.ode.at(0.0)
    return PeerRecord(
        name=peer.name,
        family=peer.family,
        grid=peer.grid,
        stochastic=peer.stochastic,
        reference="SDE" if peer.stochastic else "ODE",
        guidance=guidance,
        nfe_budget=budget,
        nfe=nfe,
        steps=steps,
        beta=options.get("beta"),
        seconds=seconds,
        **_metrics(x, reference, ctx.denoiser),
    )


def _scheduler_record(solver: Solver, ctx: PeerContext, guidance: float, budget: int) -> PeerRecord | None:
    """A diffusers-type scheduler run as a pipeline runs it (as in §1), or ``None`` if no step count gives ``budget``."""
    config = base_config("trailing")
    steps = steps_for_nfe(solver.factory(config, guidance), budget)
    if steps is None:
        return None
    scheduler = solver.factory(config, guidance)
    calls, start = ctx.denoiser.num_calls, time.perf_counter()
    x = sample(scheduler, ctx.denoiser, ctx.labels, guidance, steps, ctx.grid.seed)
    seconds = time.perf_counter() - start
    if ctx.denoiser.num_calls - calls != budget:
        raise RuntimeError(f"{solver.name}: {ctx.denoiser.num_calls - calls} model calls for a budget of {budget}")
    reference = ctx.ode.at(final_noise_level(scheduler))  # DDIM/PLMS end at σ_min: compared there, as in §1
    beta = getattr(scheduler, "momentum_beta", None)
    return PeerRecord(
        name=solver.name,
        family=solver.family if solver.family in (DIFFUSERS, AUTO) else INERTIA,
        grid="trailing",
        stochastic=False,
        reference="ODE",
        guidance=guidance,
        nfe_budget=budget,
        nfe=budget,
        steps=steps,
        beta=None if beta is None else float(beta),
        seconds=seconds,
        **_metrics(to_vp(x, scheduler), reference, ctx.denoiser),
    )


def sde_reference(ctx: PeerContext, guidance: float, name: str = "dpmpp_2m_sde") -> torch.Tensor:
    """The many-step solution of the reverse SDE on the shared Brownian path (karras grid)."""
    peer = FunctionPeer(name, KDIFF, "karras", K.SAMPLERS[name].function, stochastic=True)
    return run_function(peer, ctx, guidance, ctx.grid.reference_steps)


def run_peers(
    grid: PeerGrid,
    solvers: Sequence[Solver],
    peers: Sequence[FunctionPeer],
    *,
    check: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[PeerRecord], dict[str, Any]]:
    """Every solver and function peer at every (guidance, NFE); returns the records and the run's metadata."""
    denoiser = ExactDenoiser(make_dataset())
    alphas_cumprod = sd15_alphas_cumprod()
    ctx = PeerContext(
        denoiser=denoiser,
        labels=torch.arange(grid.batch) % denoiser.dataset.num_classes,
        grid=grid,
        alphas_cumprod=alphas_cumprod,
    )
    records: list[PeerRecord] = []
    checks: dict[str, dict[str, float]] = {}
    for guidance in grid.guidances:
        start = time.perf_counter()
        ctx.ode = compute_reference(
            base_config("trailing"), denoiser, ctx.labels, guidance, grid.seed, grid.reference_steps
        )
        ctx.sde = sde_reference(ctx, guidance)
        message = f"guidance {guidance:g}: references in {time.perf_counter() - start:.1f}s"
        if check:
            # the VE wrapper against diffusers' VP reference, and a second SDE solver against the SDE reference
            ode_check = run_function(
                FunctionPeer("dpmpp_2m", KDIFF, "karras", K.sample_dpmpp_2m), ctx, guidance, grid.reference_steps
            )
            checks[f"{guidance:g}"] = {
                "k-diffusion dpmpp_2m vs ODE reference": rmse(ode_check, ctx.ode.at(0.0)),
                "dpmpp_3m_sde vs SDE reference": rmse(sde_reference(ctx, guidance, "dpmpp_3m_sde"), ctx.sde),
            }
            message += ", checks: " + ", ".join(f"{k} {v:.1e}" for k, v in checks[f"{guidance:g}"].items())
        log(message)
        start = time.perf_counter()
        for nfe in grid.nfes:
            for solver in solvers:
                record = _scheduler_record(solver, ctx, guidance, nfe)
                if record is not None:
                    records.append(record)
            for peer in peers:
                records.append(_function_record(peer, ctx, guidance, nfe))
        log(f"  {len(solvers)} schedulers + {len(peers)} functions x {len(grid.nfes)} NFE in "
            f"{time.perf_counter() - start:.1f}s")  # fmt: skip
    meta = {
        "grid": dataclasses.asdict(grid),
        "dataset": {"num_points": len(denoiser.dataset.labels), "shape": denoiser.shape},
        "ode_reference": f"DPMSolverMultistepScheduler(solver_order=2), {grid.reference_steps} trailing steps",
        "sde_reference": f"k-diffusion dpmpp_2m_sde (eta 1), {grid.reference_steps} karras steps, Brownian seed "
        f"{grid.noise_seed}",
        "reference_checks": checks,
        "model_calls": denoiser.num_calls,
    }
    return records, meta


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test grid (under 2 minutes)")
    parser.add_argument("--out", type=str, default="benchmarks/out", help="output folder")
    parser.add_argument("--guidance", type=comma_floats, default=None, help="comma-separated guidance scales")
    parser.add_argument("--nfe", type=comma_ints, default=None, help="comma-separated NFE budgets")
    parser.add_argument("--batch", type=int, default=None, help="number of samples")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else FULL
    grid = dataclasses.replace(
        grid, guidances=args.guidance or grid.guidances, nfes=args.nfe or grid.nfes, batch=args.batch or grid.batch
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        start = time.perf_counter()
        records, meta = run_peers(
            grid,
            diffusers_solvers() + inertia_solvers(),
            function_peers(),
            check=True,
            log=lambda m: print(m, flush=True),
        )
        meta["seconds"] = round(time.perf_counter() - start, 1)
        paths = write_outputs(records, meta, args.out, "_quick" if args.quick else "")
    finally:
        torch.set_num_threads(previous)
    print()
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}; total {meta['seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
