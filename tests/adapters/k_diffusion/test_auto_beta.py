"""`auto_beta` with the k-diffusion functions (how a ComfyUI/Forge caller uses it): β = 1 is k-diffusion's own sampler."""

from __future__ import annotations

import pytest
import torch

from inertia.core.samplers import beta_policy
from inertia.core.samplers.beta_policy import auto_beta
from inertia.k_diffusion import sample_ghvb, sample_hb_dpmpp_2m, sample_hb_dpmpp_3m
from tests.adapters.k_diffusion.references import (
    gaussian_denoiser,
    reference_dpmpp_2m,
    reference_dpmpp_3m,
    reference_lms,
    starting_sample,
)
from tests.bench_harness.peers import real_k_diffusion


def _karras(n: int, low: float = 0.03, high: float = 14.6, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    inner = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
    return torch.cat([inner, inner.new_zeros(1)])


@pytest.mark.parametrize(("guidance", "steps"), [(1.0, 12), (7.5, 30), (15.0, 40)])
@pytest.mark.parametrize(("fn", "order", "reference"), [(sample_hb_dpmpp_2m, 2, reference_dpmpp_2m),
                                                         (sample_hb_dpmpp_3m, 3, reference_dpmpp_3m)])  # fmt: skip
def test_where_auto_is_1_the_function_is_k_diffusions_dpmpp(guidance, steps, fn, order, reference) -> None:
    beta = auto_beta("hb-dpm++", steps, guidance, "karras", order=order)
    assert beta == 1.0
    sigmas = _karras(steps)
    x = starting_sample(sigma=float(sigmas[0]))
    ours = fn(gaussian_denoiser, x, sigmas, disable=True, beta=beta)
    assert torch.equal(ours, fn(gaussian_denoiser, x, sigmas, disable=True, beta=1.0))
    theirs = reference(gaussian_denoiser, x, sigmas)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), (ours - theirs).abs().max()


def test_where_auto_is_1_ghvb_is_k_diffusions_lms_on_a_uniform_grid() -> None:
    beta = auto_beta("ghvb", 40, 7.5, "vp")
    assert beta == 1.0
    sigmas = torch.linspace(6.0, 0.0, 41, dtype=torch.float64)
    x = starting_sample(sigma=6.0)
    ours = sample_ghvb(gaussian_denoiser, x, sigmas, disable=True, order=4, beta=beta)
    theirs = reference_lms(gaussian_denoiser, x, sigmas, order=4)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), (ours - theirs).abs().max()


@pytest.mark.skipif(
    real_k_diffusion.load() is None, reason=f"k-diffusion's wheel is missing: {real_k_diffusion.FETCH}"
)
def test_where_auto_is_1_the_function_is_the_real_sample_dpmpp_2m() -> None:
    sampling, _ = real_k_diffusion.load()
    beta = auto_beta("hb-dpm++", 20, 5.0, "karras")
    assert beta == 1.0
    sigmas = _karras(20)
    x = starting_sample(sigma=float(sigmas[0]))
    ours = sample_hb_dpmpp_2m(gaussian_denoiser, x.clone(), sigmas, disable=True, beta=beta)
    theirs = sampling.sample_dpmpp_2m(gaussian_denoiser, x.clone(), sigmas, disable=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_a_damped_cell_reaches_the_function() -> None:
    cells = beta_policy.measured_cells("ghvb", 4, "karras")
    (guidance, steps), beta = min(cells.items())
    assert auto_beta("ghvb", steps, guidance, "karras") == beta < 1.0
    sigmas = _karras(steps)
    x = starting_sample(sigma=float(sigmas[0]))
    damped = sample_ghvb(gaussian_denoiser, x, sigmas, disable=True, order=4, beta=beta)
    assert not torch.equal(damped, sample_ghvb(gaussian_denoiser, x, sigmas, disable=True, order=4, beta=1.0))
