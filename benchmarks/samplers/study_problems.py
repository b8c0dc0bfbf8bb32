"""The sampler-study problems: exact-denoiser data sets, noise seeds and host schedules.

A problem is an exact-denoiser data set (:func:`benchmarks.common.exact_denoiser.make_dataset` with its own seed), a noise
seed and a host schedule: ``"sd15"`` (SD1.5's and SDXL's betas, ``timestep_spacing="trailing"``, the §1 benchmark),
``"sdxl"`` (the same betas with SDXL's own scheduler config: ``"leading"`` spacing, ``steps_offset=1``) or ``"flow"``
(SD3's flow-matching sigmas, shift 3). Every problem is solved in the variables x = x0 + σ·ε (σ = σ/α of the host's
noise level, k-diffusion's convention): DPM-Solver++ and UniPC in data prediction take exactly the same steps in these
variables as in the host's VP or flow variables, so one implementation serves every schedule. The stock grid of a
problem is the σ sequence diffusers' DPM-Solver builds for that config.

The candidate solvers that run on them are :mod:`benchmarks.samplers.study_solvers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers import DPMSolverMultistepScheduler

from benchmarks.common.exact_denoiser import ExactDenoiser, initial_noise, make_dataset
from benchmarks.samplers.accuracy_grid import base_config

__all__ = ["SCHEDULES", "DigitsX0", "GuidedX0", "Problem", "start_noise", "stock_sigmas"]

SCHEDULES = ("sd15", "sdxl", "flow")


@dataclass(frozen=True)
class Problem:
    """One exact-denoiser problem: data set seed and size, noise seed, host schedule and role."""

    name: str
    data_seed: int
    noise_seed: int
    schedule: str
    role: str  # "tune" or "report"
    per_class: int = 128

    def dataset(self):
        return make_dataset(per_class=self.per_class, seed=self.data_seed)


class GuidedX0:
    """Exact guided data prediction D(x, σ) = D_u + s·(D_c − D_u) of a finite set in x = x0 + σ·ε variables.

    The posterior of :class:`benchmarks.common.exact_denoiser.ExactDenoiser` evaluated at ``alpha = 1`` (the softmax of
    −‖x − x_i‖²/(2σ²) over the points, per class for the conditional branch); counts its calls.
    """

    def __init__(self, dataset) -> None:
        self.exact = ExactDenoiser(dataset)
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: float, labels: torch.Tensor, guidance: float) -> torch.Tensor:
        self.calls += 1
        e = self.exact
        projected = x.reshape(x.shape[0], -1).to(torch.float64) @ e.basis
        logits = (2.0 * (projected @ e.coords.T) - e.point_sq_norms) / (2.0 * sigma * sigma)
        weights_u = torch.softmax(logits, dim=1)
        in_class = labels[:, None] == e.point_labels[None, :]
        weights_c = torch.softmax(logits.masked_fill(~in_class, -math.inf), dim=1)
        weights = weights_u + guidance * (weights_c - weights_u)  # CFG on the weights = CFG on D
        return ((weights @ e.coords) @ e.basis.T).reshape(x.shape)


class DigitsX0:
    """Guided data prediction of the embedded 16x16 digits model (a trained network) in x = x0 + σ·ε variables.

    The UNet is called at the continuous timestep of σ (log-σ interpolation over the SD1.5 training levels, as
    diffusers' ``_sigma_to_t``) with the cond and null-class (10) batches together; ε = ε_u + s·(ε_c − ε_u).
    """

    def __init__(self) -> None:
        from benchmarks.common.exact_denoiser import sd15_alphas_cumprod
        from benchmarks.common.paths import DIGITS16_DIR
        from inertia.pipelines import load_digits_pipeline

        self.unet = load_digits_pipeline(device="cpu", path=DIGITS16_DIR).unet.eval()
        cumprod = sd15_alphas_cumprod()
        self.log_sigmas = ((1 - cumprod) / cumprod).sqrt().log()
        self.shape = (3, 16, 16)
        self.calls = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: float, labels: torch.Tensor, guidance: float) -> torch.Tensor:
        self.calls += 1
        log_sigma = torch.tensor(math.log(sigma), dtype=torch.float64)
        index = int(torch.searchsorted(self.log_sigmas, log_sigma).clamp(1, len(self.log_sigmas) - 1))
        low, high = self.log_sigmas[index - 1], self.log_sigmas[index]
        t = min(max(index - 1 + float((log_sigma - low) / (high - low)), 0.0), len(self.log_sigmas) - 1.0)
        model_input = (x / math.sqrt(1.0 + sigma * sigma)).float()  # VP input α·x
        both = torch.cat([model_input, model_input])
        classes = torch.cat([labels, torch.full_like(labels, 10)])
        eps = self.unet(both, torch.full((len(both),), t), class_labels=classes).sample.double()
        eps_c, eps_u = eps.chunk(2)
        return x - sigma * (eps_u + guidance * (eps_c - eps_u))


def _host_config(schedule: str) -> dict:
    if schedule == "sd15":
        return dict(base_config("trailing"))
    if schedule == "sdxl":
        return {**base_config("leading"), "steps_offset": 1}
    if schedule == "flow":
        return {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}
    raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}.")


def stock_sigmas(schedule: str, steps: int) -> tuple[torch.Tensor, float]:
    """The σ sequence (float64, ending in 0) diffusers' DPM-Solver walks for ``schedule``, and the noise scale.

    The scale multiplies unit noise into the starting x (1/α of the first noise level: √(1 + σ0²) for VP models,
    1/(1 − t0) for flow models, whose pipelines start from unit noise as well).
    """
    scheduler = DPMSolverMultistepScheduler.from_config(_host_config(schedule), solver_order=2)
    scheduler.set_timesteps(steps)
    levels = scheduler.sigmas.to(torch.float64)
    if schedule == "flow":
        t = levels
        levels = torch.where(t < 1, t / (1 - t).clamp_min(1e-12), torch.full_like(t, math.inf))
        return levels, 1.0 / (1.0 - float(t[0]))
    return levels, math.sqrt(1.0 + float(levels[0]) ** 2)


def start_noise(problem: Problem, batch: int, shape: Sequence[int]) -> torch.Tensor:
    """Unit noise of the problem's noise seed (float64)."""
    return initial_noise(batch, shape, problem.noise_seed, dtype=torch.float64)
