"""Our transcription == the real k-diffusion 0.1.1.post1 functions, on the same denoiser, sigmas and noise.

The real ``sampling.py``/``external.py`` are read from the registry's wheel (see real_k_diffusion.py; skipped with
the fetch command when the wheel is not at hand). Float32 inputs, as the samplers run in pipelines; the results must
be identical, since both compute the same operations in the same order.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.common.exact_denoiser import sd15_alphas_cumprod
from benchmarks.peers import k_diffusion as K
from tests.adapters.k_diffusion.references import gaussian_denoiser, starting_sample
from tests.bench_harness.peers import real_k_diffusion

LOADED = real_k_diffusion.load()
pytestmark = pytest.mark.skipif(
    LOADED is None,
    reason=f"k-diffusion's wheel not found at {real_k_diffusion.wheel_path()}: {real_k_diffusion.FETCH}",
)

SIGMA_MIN, SIGMA_MAX = 0.03, 14.6

#: (sampler, options): defaults, and the options users change (churn, eta, solver type, order, r)
CASES = [(name, {}) for name in K.SAMPLERS] + [
    ("euler", {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 10.0}),
    ("heun", {"s_churn": 2.0}),
    ("dpm_2", {"s_churn": 1.0, "s_noise": 1.003}),
    ("euler_ancestral", {"eta": 0.5}),
    ("dpm_2_ancestral", {"eta": 0.0}),
    ("dpmpp_2s_ancestral", {"eta": 0.7, "s_noise": 0.9}),
    ("dpmpp_sde", {"eta": 0.5, "r": 0.3}),
    ("dpmpp_2m_sde", {"solver_type": "heun"}),
    ("dpmpp_2m_sde", {"eta": 0.0}),
    ("dpmpp_3m_sde", {"eta": 0.0}),
    ("lms", {"order": 2}),
]


@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{'-'.join(o) or 'default'}" for n, o in CASES])
@pytest.mark.parametrize("schedule", ["karras", "discrete"])
def test_same_result_as_the_real_function(name: str, options: dict, schedule: str):
    sampling, _ = LOADED
    alphas_cumprod = sd15_alphas_cumprod()
    sigmas = K.get_sigmas(schedule, 7, alphas_cumprod)
    x = starting_sample(sigma=float(sigmas[0])).float()
    results = []
    for function in (K.SAMPLERS[name].function, getattr(sampling, f"sample_{name}")):
        kwargs = dict(options)
        if K.SAMPLERS[name].stochastic:  # the same Brownian path for both (torchsde's tree is not installed)
            kwargs["noise_sampler"] = K.BrownianNoiseSampler(x, float(sigmas[-2]), float(sigmas[0]), seed=3)
        torch.manual_seed(11)  # churn noise (and fresh ancestral noise if no sampler were given)
        results.append(function(gaussian_denoiser, x, sigmas, disable=True, **kwargs))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral"])
def test_same_default_fresh_noise_as_the_real_ancestral_samplers(name: str):
    sampling, _ = LOADED
    sigmas = K.get_sigmas_karras(6, SIGMA_MIN, SIGMA_MAX)
    x = starting_sample(sigma=SIGMA_MAX).float()
    results = []
    for function in (K.SAMPLERS[name].function, getattr(sampling, f"sample_{name}")):
        torch.manual_seed(5)
        results.append(function(gaussian_denoiser, x, sigmas, disable=True))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_same_schedules_as_the_real_ones():
    sampling, external = LOADED
    alphas_cumprod = sd15_alphas_cumprod()
    model = external.DiscreteEpsDDPMDenoiser(lambda *a: None, alphas_cumprod.float(), quantize=False)
    for n in (1, 6, 20):
        torch.testing.assert_close(K.get_sigmas_discrete(n, alphas_cumprod), model.get_sigmas(n), rtol=0, atol=0)
        pairs = [
            (K.get_sigmas_karras(n, SIGMA_MIN, SIGMA_MAX), sampling.get_sigmas_karras(n, SIGMA_MIN, SIGMA_MAX)),
            (K.get_sigmas_karras(n, 0.1, 10.0, 3.0), sampling.get_sigmas_karras(n, 0.1, 10.0, 3.0)),
            (
                K.get_sigmas_exponential(n, SIGMA_MIN, SIGMA_MAX),
                sampling.get_sigmas_exponential(n, SIGMA_MIN, SIGMA_MAX),
            ),
            (
                K.get_sigmas_polyexponential(n, SIGMA_MIN, SIGMA_MAX, 2.0),
                sampling.get_sigmas_polyexponential(n, SIGMA_MIN, SIGMA_MAX, 2.0),
            ),
            (K.get_sigmas_vp(n), sampling.get_sigmas_vp(n)),
        ]
        for ours, theirs in pairs:
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    for sigma_from, sigma_to, eta in ((2.0, 1.0, 1.0), (14.6, 3.0, 0.5), (1.0, 0.0, 1.0), (3.0, 1.0, 0.0)):
        assert K.get_ancestral_step(sigma_from, sigma_to, eta) == sampling.get_ancestral_step(
            sigma_from, sigma_to, eta
        )
