"""(a) Parity: on the same sigma grid the k-diffusion functions and inertia's diffusers schedulers take the same steps.

How the grids are matched: the scheduler is built with Stable Diffusion's VP schedule and ``use_karras_sigmas=True``
and sets its own timesteps; its ``sigmas`` (σ̄ = σ/α, ending in 0) *are* the k-diffusion sigmas, used as they are.
The two samples differ only by the VP scale: the scheduler's sample is x_vp = α·x̄ with α = 1/sqrt(σ̄² + 1), and
k-diffusion's x is x̄. So both are driven by the same exact denoiser D(x̄, σ̄) (the scheduler with
``prediction_type="sample"``, fed D(x_vp/α, σ̄)), the k-diffusion function starts from x_vp/α, and each callback's x is
compared with the scheduler's sample divided by α at that step. At σ = 0, α = 1 and the samples are compared as they are.

Tolerance: the schedulers compute in float32 whatever the input dtype (`MomentumPLMSScheduler` casts to float32;
diffusers' `DPMSolverMultistepScheduler.step` casts the sample to float32), while the functions compute in float64
for float64 inputs. The samples agree to float32 rounding, a few 1e-7 to 2e-6 on samples of size about 1.5 to 15;
the tests use an absolute tolerance of 1e-5.
"""

from __future__ import annotations

import math

import pytest
import torch

from inertia.k_diffusion import sample_ghvb, sample_hb, sample_hb_dpmpp_2m, sample_hb_dpmpp_3m, sample_nt
from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler
from tests.adapters.k_diffusion.references import gaussian_denoiser

SD_SCHEDULE = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "sample",
    "use_karras_sigmas": True,
}
TOL = 1e-5


def _alpha(sigma_bar: float) -> float:
    return 1.0 / math.sqrt(sigma_bar * sigma_bar + 1.0)


def _scheduler_run(scheduler, steps: int, noise: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The scheduler's samples in k-diffusion's x̄ = x_vp/α (one before each step, then the result) and its sigmas."""
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas.to(torch.float64)
    x = noise.clone()
    seen = []
    for i, t in enumerate(scheduler.timesteps):
        a = _alpha(float(sigmas[i]))
        seen.append(x / a)
        x = scheduler.step(gaussian_denoiser(x / a, sigmas[i].expand(x.shape[0])), t, x).prev_sample
    seen.append(x / _alpha(float(sigmas[-1])))
    return seen, sigmas


def _function_run(fn, sigmas: torch.Tensor, start: torch.Tensor, **options) -> list[torch.Tensor]:
    seen = []
    out = fn(gaussian_denoiser, start, sigmas, callback=lambda d: seen.append(d["x"]), disable=True, **options)
    return [*seen, out]


def _assert_same_path(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> None:
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        err = (a - b).abs().max().item()
        assert err < TOL, f"step {i}: max |function - scheduler| = {err:.3g}"


@pytest.fixture
def noise() -> torch.Tensor:
    return torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("steps", [8, 20])
@pytest.mark.parametrize("beta", [0.6, 0.8, 1.0])
@pytest.mark.parametrize(
    ("fn", "order", "solver_type"), [(sample_hb_dpmpp_2m, 2, "midpoint"), (sample_hb_dpmpp_3m, 3, "heun")]
)
def test_dpmpp_matches_the_diffusers_scheduler(fn, order, solver_type, beta, steps, noise) -> None:
    # 3M: k-diffusion's second step is the heun 2M step, so the scheduler runs solver_type="heun"; and
    # lower_order_final=False, since with fewer than 15 steps it would make diffusers' next-to-last step 2M.
    scheduler = MomentumDPMSolverMultistepScheduler(
        **SD_SCHEDULE, solver_order=order, solver_type=solver_type, momentum_beta=beta, lower_order_final=False
    )
    theirs, sigmas = _scheduler_run(scheduler, steps, noise)
    ours = _function_run(fn, sigmas, theirs[0], beta=beta)
    _assert_same_path(ours, theirs)


@pytest.mark.parametrize("order", [2, 3])
def test_dpmpp_matches_the_scheduler_on_a_grid_ending_above_zero(order: int, noise: torch.Tensor) -> None:
    # final_sigmas_type="sigma_min": the last step is an ordinary multistep step in both. (Without Karras sigmas:
    # with them diffusers repeats sigma_min, a zero step that k-diffusion's sigmas must not contain.)
    scheduler = MomentumDPMSolverMultistepScheduler(
        **{**SD_SCHEDULE, "use_karras_sigmas": False},
        solver_order=order,
        solver_type="midpoint" if order == 2 else "heun",
        momentum_beta=0.7,
        lower_order_final=False,
        final_sigmas_type="sigma_min",
    )
    theirs, sigmas = _scheduler_run(scheduler, 10, noise)
    assert float(sigmas[-1]) > 0.0
    fn = sample_hb_dpmpp_2m if order == 2 else sample_hb_dpmpp_3m
    _assert_same_path(_function_run(fn, sigmas, theirs[0], beta=0.7), theirs)


@pytest.mark.parametrize("beta", [0.7, 1.0])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(("method", "fn"), [("hb", sample_hb), ("ghvb", sample_ghvb), ("nt", sample_nt)])
def test_plms_family_matches_the_diffusers_scheduler(method, fn, order, beta, noise) -> None:
    scheduler = MomentumPLMSScheduler(**SD_SCHEDULE, momentum_method=method, solver_order=order, momentum_beta=beta)
    theirs, sigmas = _scheduler_run(scheduler, 12, noise)
    ours = _function_run(fn, sigmas, theirs[0], order=order, beta=beta)
    _assert_same_path(ours, theirs)
