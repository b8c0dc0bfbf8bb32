"""Our sampler functions under k-diffusion's own model wrappers (the real ``k_diffusion/external.py``).

A ComfyUI/Forge-style user hands our functions a k-diffusion denoiser: an eps- or v-prediction network wrapped by
``DiscreteEpsDDPMDenoiser`` / ``CompVisDenoiser`` / ``DiscreteVDDPMDenoiser``, with sigmas from the wrapper's
``get_sigmas``. These tests run exactly that, with the real k-diffusion 0.1.1.post1 code loaded from its registry
wheel (``make k-diffusion-wheel``; they skip without it), and compare with the real ``sample_dpmpp_2m`` /
``sample_dpmpp_3m_sde`` at β = 1 and ``sample_lms`` for the PLMS family.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.common.exact_denoiser import sd15_alphas_cumprod
from inertia.k_diffusion import sample_ghvb, sample_hb, sample_hb_dpmpp_2m, sample_hb_dpmpp_3m
from tests.bench_harness.peers import real_k_diffusion

REAL = real_k_diffusion.load()
pytestmark = pytest.mark.skipif(REAL is None, reason=f"k-diffusion's wheel is missing: {real_k_diffusion.FETCH}")


class TinyEpsNet(torch.nn.Module):
    """A smooth, timestep-aware eps network with fixed random weights (float64 so differences are the solver's)."""

    def __init__(self, channels: int = 3, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.mix = torch.nn.Parameter(0.3 * torch.randn(channels, channels, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kwargs: object) -> torch.Tensor:
        scale = (t.to(x.dtype) / 1000.0).view(-1, *([1] * (x.ndim - 1)))
        return torch.tanh(torch.einsum("bchw,cd->bdhw", x, self.mix) * (1.0 + scale)) + 0.1 * scale * x


class CompVisModel(torch.nn.Module):
    """The CompVis/LDM model interface ``CompVisDenoiser`` expects: ``alphas_cumprod`` and ``apply_model``."""

    def __init__(self, net: TinyEpsNet, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("alphas_cumprod", alphas_cumprod)

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
        return self.net(x, t)


def _alphas() -> torch.Tensor:
    return sd15_alphas_cumprod().to(torch.float64)


def _start(sigmas: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64) * sigmas[0]


def _wrappers() -> dict[str, torch.nn.Module]:
    _, external = REAL
    net = TinyEpsNet()
    return {
        "DiscreteEpsDDPMDenoiser": external.DiscreteEpsDDPMDenoiser(net, _alphas(), quantize=True),
        "CompVisDenoiser": external.CompVisDenoiser(CompVisModel(net, _alphas()), quantize=True),
    }


@pytest.mark.parametrize("wrapper", ["DiscreteEpsDDPMDenoiser", "CompVisDenoiser"])
@pytest.mark.parametrize("steps", [6, 12])
def test_hb_dpmpp_2m_at_beta_1_equals_real_dpmpp_2m_under_the_wrapper(wrapper: str, steps: int) -> None:
    sampling, _ = REAL
    model = _wrappers()[wrapper]
    sigmas = model.get_sigmas(steps)
    x = _start(sigmas)
    ours = sample_hb_dpmpp_2m(model, x.clone(), sigmas, disable=True, beta=1.0)
    theirs = sampling.sample_dpmpp_2m(model, x.clone(), sigmas, disable=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_hb_dpmpp_3m_at_beta_1_equals_real_3m_sde_without_noise() -> None:
    # k-diffusion ships 3M only as an SDE; with eta = 0 it is the deterministic DPM-Solver++(3M).
    sampling, _ = REAL
    model = _wrappers()["DiscreteEpsDDPMDenoiser"]
    sigmas = model.get_sigmas(10)
    x = _start(sigmas)
    ours = sample_hb_dpmpp_3m(model, x.clone(), sigmas, disable=True, beta=1.0)
    no_noise = lambda sigma, sigma_next: torch.zeros_like(x)  # noqa: E731 (eta = 0: never scaled in)
    theirs = sampling.sample_dpmpp_3m_sde(model, x.clone(), sigmas, disable=True, eta=0.0, noise_sampler=no_noise)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_momentum_under_the_wrapper_is_finite_and_differs_from_plain() -> None:
    sampling, _ = REAL
    model = _wrappers()["CompVisDenoiser"]
    sigmas = sampling.get_sigmas_karras(8, model.sigma_min.item(), model.sigma_max.item(), device="cpu").double()
    x = _start(sigmas)
    plain = sampling.sample_dpmpp_2m(model, x.clone(), sigmas, disable=True)
    for sample in (
        sample_hb_dpmpp_2m(model, x.clone(), sigmas, disable=True, beta=0.7),
        sample_hb(model, x.clone(), sigmas, disable=True, order=2, beta=0.7),
        sample_ghvb(model, x.clone(), sigmas, disable=True, order=4, beta=0.8),
    ):
        assert torch.isfinite(sample).all()
        assert not torch.allclose(sample, plain)


def test_v_prediction_wrapper_passes_through() -> None:
    # DiscreteVDDPMDenoiser (SD 2.x-v style) turns a v-prediction network into x0; our function only sees x0.
    sampling, external = REAL
    net = TinyEpsNet(seed=1)
    model = external.DiscreteVDDPMDenoiser(net, _alphas(), quantize=False)
    sigmas = model.get_sigmas(8)
    x = _start(sigmas)
    ours = sample_hb_dpmpp_2m(model, x.clone(), sigmas, disable=True, beta=1.0)
    theirs = sampling.sample_dpmpp_2m(model, x.clone(), sigmas, disable=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
