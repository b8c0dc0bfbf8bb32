"""The problems and the runner of the `momentum_beta="auto"` study (:mod:`benchmarks.samplers.auto_beta_policy`).

A problem is an exact-denoiser data set (:func:`benchmarks.common.exact_denoiser.make_dataset`, its own seed, which also
seeds the noise) on a host schedule. The schedules are scheduler configs, the SD1.5/SDXL betas with diffusers'
timestep spacings, Karras et al.'s σ grid, and SD3's flow-matching sigmas:

* ``"sd15"``: ``timestep_spacing="trailing"`` (§1's benchmark), kind ``"vp"``;
* ``"sdxl"``: SDXL's own config, ``"leading"`` spacing with ``steps_offset=1``, kind ``"vp"``;
* ``"linspace"``: ``"linspace"`` spacing (DPM-Solver's default, the embedded digits models' config), kind ``"vp"``;
* ``"karras"``: ``use_karras_sigmas=True`` (k-diffusion's and ComfyUI's ``karras`` grid), kind ``"karras"``;
* ``"flow"``: ``use_flow_sigmas=True``, ``flow_shift=3`` and ``prediction_type="flow_prediction"`` (SD3), kind
  ``"flow"``.

Every sampler runs as a user runs it: a real diffusers scheduler (the stock `DPMSolverMultistepScheduler`, or
inertia's `MomentumDPMSolverMultistepScheduler` / `MomentumPLMSScheduler`, ``momentum_beta="auto"`` resolved by the
scheduler itself at ``set_timesteps``), its float32 state, one guided model call per step. The model is the exact
guided data prediction :class:`benchmarks.samplers.study_problems.GuidedX0`, evaluated at the scheduler's own noise
level ``scheduler.sigmas[i]`` and returned in the scheduler's prediction type (ε for VP configs, the flow velocity for
flow ones), so the result does not depend on how a schedule maps sigmas to timesteps. The error of a run is the RMSE
of its final sample to a 500-step DPM-Solver++(2M) solution in float64 (log-σ uniform) from the same noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DPMSolverMultistepScheduler

from benchmarks.common.exact_denoiser import initial_noise, magnitude_score, make_dataset
from benchmarks.samplers.accuracy_grid import base_config
from benchmarks.samplers.study_problems import GuidedX0
from benchmarks.samplers.study_solvers import reference_solution

__all__ = [
    "KIND",
    "SCHEDULES",
    "AutoProblem",
    "SamplerSpec",
    "host_config",
    "make_scheduler",
    "run_scheduler",
]

SCHEDULES = ("sd15", "sdxl", "linspace", "karras", "flow")
KIND = {"sd15": "vp", "sdxl": "vp", "linspace": "vp", "karras": "karras", "flow": "flow"}
"""The `schedule_kind` of :func:`inertia.core.samplers.beta_policy.auto_beta` each schedule belongs to."""


def host_config(schedule: str) -> dict[str, Any]:
    """The scheduler config of ``schedule`` (keyword arguments every scheduler of the study accepts)."""
    if schedule == "sd15":
        return dict(base_config("trailing"))
    if schedule == "sdxl":
        return {**base_config("leading"), "steps_offset": 1}
    if schedule == "linspace":
        return {**base_config("linspace"), "steps_offset": 0}
    if schedule == "karras":
        return {**base_config("trailing"), "use_karras_sigmas": True}
    if schedule == "flow":
        return {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}
    raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}.")


@dataclass(frozen=True)
class AutoProblem:
    """One problem: a data set and noise seed on a schedule."""

    seed: int
    schedule: str
    per_class: int = 128

    @property
    def name(self) -> str:
        return f"{self.schedule}-s{self.seed}"

    @property
    def kind(self) -> str:
        return KIND[self.schedule]


@dataclass(frozen=True)
class SamplerSpec:
    """A scheduler setting: ``"dpm"`` (DPM-Solver++ multistep) or a PLMS method, its order and β.

    ``beta=1.0`` with ``stock=True`` is the stock solver itself: diffusers' `DPMSolverMultistepScheduler` for
    ``"dpm"``, plain PLMS-k (`MomentumPLMSScheduler` at β = 1, whose three methods are bit-identical there) otherwise.
    ``beta="auto"`` is inertia's scheduler with ``momentum_beta="auto"`` and the guidance scale passed to it.
    """

    method: str  # "dpm", "hb", "nt" or "ghvb"
    order: int
    beta: float | str = 1.0

    @property
    def family(self) -> str:
        """``"hb-dpm++"`` or the PLMS method: the `sampler` of `auto_beta`."""
        return "hb-dpm++" if self.method == "dpm" else self.method

    @property
    def name(self) -> str:
        beta = "auto" if self.beta == "auto" else f"β{float(self.beta):g}"
        return f"{self.family}-{self.order} {beta}"


def make_scheduler(spec: SamplerSpec, schedule: str, guidance: float) -> Any:
    """A fresh scheduler for ``spec`` on ``schedule``; ``guidance`` reaches ``momentum_guidance_scale`` (auto only)."""
    from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

    config = host_config(schedule)
    auto: dict[str, Any] = {"momentum_guidance_scale": guidance} if spec.beta == "auto" else {}
    if spec.method == "dpm":
        if spec.beta == 1.0:
            return DPMSolverMultistepScheduler.from_config(config, solver_order=spec.order)
        return MomentumDPMSolverMultistepScheduler.from_config(
            config, solver_order=spec.order, momentum_beta=spec.beta, **auto
        )
    return MomentumPLMSScheduler.from_config(
        config, momentum_method=spec.method, solver_order=spec.order, momentum_beta=spec.beta, **auto
    )


def _levels(scheduler: Any, flow: bool) -> list[tuple[float, float]]:
    """(σ̄, α) of every entry of ``scheduler.sigmas``: VP sigmas are σ̄ = σ/α; flow sigmas are t with α = 1 − t."""
    out = []
    for s in scheduler.sigmas.tolist():
        if flow:
            out.append((s / (1.0 - s) if s < 1.0 else math.inf, 1.0 - s))
        else:
            out.append((s, 1.0 / math.sqrt(1.0 + s * s)))
    return out


def run_scheduler(
    scheduler: Any, model: GuidedX0, noise: torch.Tensor, labels: torch.Tensor, guidance: float, steps: int, flow: bool
) -> tuple[torch.Tensor, float]:
    """Samples with ``scheduler`` as a pipeline does (float32 state) from unit ``noise``.

    Returns the final sample in data variables (float64) and the first σ̄ (where the reference starts).
    """
    scheduler.set_timesteps(steps)
    levels = _levels(scheduler, flow)
    x = noise.to(torch.float32) * float(scheduler.init_noise_sigma)
    for i, t in enumerate(scheduler.timesteps):
        sigma_bar, alpha = levels[i]
        model_input = scheduler.scale_model_input(x, t)
        x_bar = model_input.to(torch.float64) / alpha  # x̄ = x/α = x0 + σ̄·ε
        denoised = model(x_bar, sigma_bar, labels, guidance)
        eps = (x_bar - denoised) / sigma_bar
        output = eps - denoised if flow else eps  # flow velocity v = ε − x0; VP configs predict ε
        x = scheduler.step(output.to(torch.float32), t, x).prev_sample
    sigma_end, alpha_end = levels[len(scheduler.timesteps)]
    if sigma_end != 0.0:
        raise ValueError(f"the schedule ends at σ̄ = {sigma_end}, not 0")
    return x.to(torch.float64) / alpha_end, levels[0][0]


class ProblemRun:
    """A problem's model, labels, noise and references (cached by starting σ̄ and guidance)."""

    def __init__(self, problem: AutoProblem, batch: int, reference_steps: int) -> None:
        self.problem = problem
        self.dataset = make_dataset(per_class=problem.per_class, seed=problem.seed)
        self.model = GuidedX0(self.dataset)
        self.labels = torch.arange(batch) % self.dataset.num_classes
        # float32 noise, as pipelines draw it (and §1's benchmark: with problem seed 0 on "sd15" this is §1's problem)
        self.noise = initial_noise(batch, self.dataset.shape, problem.seed, dtype=torch.float32).to(torch.float64)
        self.reference_steps = reference_steps
        self._references: dict[tuple[float, float], torch.Tensor] = {}
        # set_timesteps resets every solver and momentum state, so one scheduler serves every step count
        self._schedulers: dict[tuple[SamplerSpec, float], Any] = {}

    def scheduler(self, spec: SamplerSpec, guidance: float) -> Any:
        """The scheduler of ``spec`` on this problem's schedule (built once per guidance scale)."""
        key = (spec, guidance if spec.beta == "auto" else 0.0)
        if key not in self._schedulers:
            self._schedulers[key] = make_scheduler(spec, self.problem.schedule, guidance)
        return self._schedulers[key]

    def reference(self, sigma_start: float, guidance: float) -> torch.Tensor:
        """The float64 DPM-Solver++(2M) solution from the noise at ``sigma_start`` (x̄ = noise·√(1 + σ̄²))."""
        key = (round(sigma_start, 9), guidance)
        if key not in self._references:
            # x̄ = noise/α at the first level: VP 1/α = √(1 + σ̄²); flow 1/α = 1/(1 − t) = 1 + σ̄.
            scale = (1.0 + sigma_start) if self.problem.kind == "flow" else math.sqrt(1.0 + sigma_start**2)
            self._references[key] = reference_solution(
                self.model, self.noise * scale, sigma_start, self.labels, guidance, self.reference_steps
            )
        return self._references[key]

    def measure(self, spec: SamplerSpec, guidance: float, steps: int) -> tuple[float, float]:
        """RMSE of ``spec``'s final sample to the reference (inf if non-finite) and its divergence magnitude score
        (the paper's metric with the data set's statistics: 0 = nothing out of the data range; inf if non-finite)."""
        scheduler = self.scheduler(spec, guidance)
        out, sigma_start = run_scheduler(
            scheduler, self.model, self.noise, self.labels, guidance, steps, self.problem.kind == "flow"
        )
        diff = (out - self.reference(sigma_start, guidance)).pow(2).mean()
        if not bool(torch.isfinite(diff)):
            return math.inf, math.inf
        return float(diff.sqrt()), magnitude_score(out, self.dataset)

    def error(self, spec: SamplerSpec, guidance: float, steps: int) -> float:
        """RMSE of ``spec``'s final sample to the reference (inf if non-finite)."""
        return self.measure(spec, guidance, steps)[0]

    def resolved_beta(self, spec: SamplerSpec, guidance: float, steps: int) -> float:
        """The β the scheduler resolves for ``spec`` (1.0 for the stock solver)."""
        scheduler = self.scheduler(spec, guidance)
        scheduler.set_timesteps(steps)
        return float(getattr(scheduler, "_beta", 1.0))


ErrorTable = Mapping[tuple[str, float, int, str], float]
"""(problem name, guidance, steps, sampler name) → RMSE."""

Progress = Callable[[str], None]
