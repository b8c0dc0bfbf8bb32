"""The transcribed k-diffusion samplers (benchmarks.peers.k_diffusion) on problems with known answers.

Gaussian data x0 ~ N(MU, STD²) per element has a closed-form denoiser and a closed-form probability-flow ODE
solution (tests/adapters/k_diffusion/references.py). On it every deterministic sampler must converge at its order, the
ancestral/SDE ones must reach N(MU, STD²), and where they overlap the samplers must agree with the rules transcribed
for inertia's own k-diffusion tests and with inertia's β = 1 samplers. The side-by-side check against the real
k-diffusion functions is in test_k_diffusion_real.py.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from benchmarks.peers import k_diffusion as K
from inertia.k_diffusion import sample_ghvb, sample_hb_dpmpp_2m, sample_hb_dpmpp_3m
from tests.adapters.k_diffusion.references import (
    MU,
    STD,
    exact_solution,
    gaussian_denoiser,
    reference_dpmpp_2m,
    reference_dpmpp_3m,
    reference_lms,
    starting_sample,
)

SIGMA_MAX, SIGMA_MIN = 10.0, 0.1

#: Global order on a geometric grid. The multistep methods start with lower-order steps, which caps their global
#: order at 2 as h -> 0; at these step counts LMS and 3M are still well above that and more accurate than 2M.
ORDERS = {
    "euler": 1,
    "heun": 2,
    "dpm_2": 2,
    "dpmpp_2m": 2,
    "dpmpp_2s_ancestral": 2,  # eta = 0: DPM-Solver++(2S)
    "dpmpp_sde": 2,  # eta = 0: DPM-Solver++(2S) with r = 1/2
    "dpmpp_2m_sde": 2,  # eta = 0: DPM-Solver++(2M)
    "euler_ancestral": 1,  # eta = 0: Euler
    "dpm_2_ancestral": 2,  # eta = 0: dpm_2
}
HIGHER = ("lms", "dpmpp_3m_sde")


def _deterministic(name: str) -> dict[str, float]:
    return {"eta": 0.0} if K.SAMPLERS[name].stochastic else {}


def _geometric(n: int) -> torch.Tensor:
    """n steps from SIGMA_MAX to SIGMA_MIN, equal in log σ, without the final 0 (so the ODE error is pure)."""
    return torch.exp(torch.linspace(math.log(SIGMA_MAX), math.log(SIGMA_MIN), n + 1, dtype=torch.float64))


def _ode_error(name: str, n: int) -> float:
    x = starting_sample(sigma=SIGMA_MAX)
    out = K.SAMPLERS[name].function(gaussian_denoiser, x, _geometric(n), disable=True, **_deterministic(name))
    return float((out - exact_solution(x, SIGMA_MAX, SIGMA_MIN)).abs().max())


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_deterministic_samplers_converge_at_their_order(name: str):
    slope = math.log2(_ode_error(name, 32) / _ode_error(name, 64))
    assert slope == pytest.approx(ORDERS[name], abs=0.15)


@pytest.mark.parametrize("name", HIGHER)
def test_higher_order_multistep_samplers_beat_second_order(name: str):
    errors = [_ode_error(name, n) for n in (16, 32, 64)]
    assert all(math.log2(a / b) > 2.0 for a, b in itertools.pairwise(errors))
    assert errors[-1] < 0.5 * _ode_error("dpmpp_2m", 64)


def test_the_last_step_to_zero_lands_on_the_denoised_output():
    x = starting_sample(sigma=SIGMA_MAX)
    sigmas = K.append_zero(_geometric(12))
    seen = []
    for name in ("dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "euler", "heun", "dpmpp_sde"):
        seen.clear()
        out = K.SAMPLERS[name].function(
            gaussian_denoiser, x, sigmas, disable=True, callback=seen.append, **_deterministic(name)
        )
        torch.testing.assert_close(out, seen[-1]["denoised"], rtol=0, atol=1e-12)


# --- stochastic samplers: the right distribution ---------------------------------------------------------------------

STOCHASTIC = sorted(name for name, info in K.SAMPLERS.items() if info.stochastic)


def _stochastic_sample(name: str, s_noise: float, steps: int = 40) -> torch.Tensor:
    sigmas = K.get_sigmas_karras(steps, 0.01, SIGMA_MAX).to(torch.float64)
    x = torch.randn(8, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * SIGMA_MAX
    noise = K.BrownianNoiseSampler(x, 0.01, SIGMA_MAX, seed=5) if K.SAMPLERS[name].brownian else None
    torch.manual_seed(0)  # the ancestral samplers' fresh noise
    return K.SAMPLERS[name].function(gaussian_denoiser, x, sigmas, disable=True, s_noise=s_noise, noise_sampler=noise)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_reach_the_data_distribution(name: str):
    out = _stochastic_sample(name, 1.0)
    # 8192 independent elements: the standard error of the std is ~0.004; Euler ancestral is first order (-9% at 40
    # steps), the others second order or better
    tolerance = 0.10 if name == "euler_ancestral" else 0.025
    assert float(out.mean()) == pytest.approx(MU, abs=0.02)
    assert float(out.std()) == pytest.approx(STD, rel=tolerance)
    too_noisy = _stochastic_sample(name, 1.3)  # the check sees a wrong amount of noise
    assert float(too_noisy.std()) > STD * (1 + tolerance)


def test_euler_ancestral_bias_shrinks_with_more_steps():
    errors = [abs(float(_stochastic_sample("euler_ancestral", 1.0, steps).std()) - STD) for steps in (20, 80)]
    assert errors[1] < 0.4 * errors[0]


def test_brownian_sde_samplers_converge_pathwise_to_one_solution():
    """With one Brownian path, every SDE sampler approaches the same many-step solution (strong convergence)."""
    x = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * SIGMA_MAX

    def run(name: str, steps: int) -> torch.Tensor:
        sigmas = K.get_sigmas_karras(steps, 0.01, SIGMA_MAX).to(torch.float64)
        noise = K.BrownianNoiseSampler(x, 0.01, SIGMA_MAX, seed=7)
        return K.SAMPLERS[name].function(gaussian_denoiser, x, sigmas, disable=True, noise_sampler=noise)

    reference = run("dpmpp_3m_sde", 400)
    assert float((run("dpmpp_2m_sde", 400) - reference).abs().max()) < 5e-3
    errors = [float((run("dpmpp_2m_sde", n) - reference).pow(2).mean().sqrt()) for n in (10, 40)]
    assert errors[1] < 0.5 * errors[0]
    ancestral = [float((run("euler_ancestral", n) - reference).pow(2).mean().sqrt()) for n in (10, 40)]
    assert ancestral[1] < 0.5 * ancestral[0]  # fed the same path, the ancestral samplers converge to it too


# --- agreement with the other transcriptions and with inertia's samplers --------------------------------------------


def test_dpmpp_2m_agrees_with_the_references_and_inertia_at_beta_one():
    x = starting_sample(sigma=SIGMA_MAX)
    sigmas = K.get_sigmas_karras(9, 0.05, SIGMA_MAX).to(torch.float64)
    ours = K.sample_dpmpp_2m(gaussian_denoiser, x, sigmas, disable=True)
    torch.testing.assert_close(ours, reference_dpmpp_2m(gaussian_denoiser, x, sigmas), rtol=0, atol=1e-12)
    torch.testing.assert_close(ours, sample_hb_dpmpp_2m(gaussian_denoiser, x, sigmas, disable=True, beta=1.0))
    sde = K.sample_dpmpp_2m_sde(gaussian_denoiser, x, sigmas, disable=True, eta=0.0)
    torch.testing.assert_close(sde, ours)


def test_dpmpp_3m_agrees_with_the_references_and_inertia_at_beta_one():
    x = starting_sample(sigma=SIGMA_MAX)
    sigmas = K.get_sigmas_exponential(9, 0.05, SIGMA_MAX).to(torch.float64)
    ours = K.sample_dpmpp_3m_sde(gaussian_denoiser, x, sigmas, disable=True, eta=0.0)
    torch.testing.assert_close(ours, reference_dpmpp_3m(gaussian_denoiser, x, sigmas), rtol=0, atol=1e-12)
    torch.testing.assert_close(ours, sample_hb_dpmpp_3m(gaussian_denoiser, x, sigmas, disable=True, beta=1.0))


def test_lms_agrees_with_the_reference_and_is_plms_on_a_uniform_grid():
    x = starting_sample(sigma=4.0)
    sigmas = torch.linspace(4.0, 0.0, 9, dtype=torch.float64)
    ours = K.sample_lms(gaussian_denoiser, x, sigmas, disable=True)
    torch.testing.assert_close(ours, reference_lms(gaussian_denoiser, x, sigmas), rtol=0, atol=1e-12)
    plms = sample_ghvb(gaussian_denoiser, x, sigmas, disable=True, order=4, beta=1.0)
    torch.testing.assert_close(ours, plms, rtol=1e-4, atol=1e-4)  # quadrature tolerance of the LMS coefficients


# --- plumbing: callback, NFE, extra_args, schedules -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(K.SAMPLERS))
def test_callback_extra_args_and_nfe(name: str):
    info = K.SAMPLERS[name]
    sigmas = K.get_sigmas_karras(5, 0.05, SIGMA_MAX).to(torch.float64)
    x = starting_sample(sigma=SIGMA_MAX)
    calls, seen = [], []

    def model(x: torch.Tensor, sigma: torch.Tensor, *, tag: str) -> torch.Tensor:
        assert tag == "passed" and sigma.shape == (x.shape[0],)
        calls.append(float(sigma[0]))
        return gaussian_denoiser(x, sigma)

    torch.manual_seed(0)
    info.function(model, x, sigmas, extra_args={"tag": "passed"}, callback=seen.append, disable=True)
    assert len(calls) == info.nfe(len(sigmas) - 1) and info.steps_for_nfe(len(calls)) == len(sigmas) - 1
    assert [s["i"] for s in seen] == list(range(len(sigmas) - 1))
    for step in seen:
        assert set(step) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert float(step["sigma"]) == float(sigmas[step["i"]]) == float(step["sigma_hat"])
        assert step["denoised"].shape == x.shape


def test_steps_for_nfe_never_exceeds_the_budget():
    two = K.SAMPLERS["heun"]
    assert [two.steps_for_nfe(n) for n in (6, 7, 8, 15, 20)] == [3, 4, 4, 8, 10]
    assert all(two.nfe(two.steps_for_nfe(n)) <= n for n in range(1, 30))
    assert K.SAMPLERS["dpmpp_2m"].steps_for_nfe(8) == 8


def test_schedules_end_at_zero_and_span_the_model():
    alphas_cumprod = torch.linspace(0.999, 0.005, 1000, dtype=torch.float64)
    levels = K.get_sigmas_discrete(1000, alphas_cumprod)[:-1]
    torch.testing.assert_close(levels.flip(0), ((1 - alphas_cumprod) / alphas_cumprod).sqrt().float())
    for name in K.SCHEDULES:
        sigmas = K.get_sigmas(name, 7, alphas_cumprod)
        assert sigmas.shape == (8,) and float(sigmas[-1]) == 0.0 and bool((sigmas[:-1] > sigmas[1:]).all())
        if name != "vp":
            assert float(sigmas[0]) == pytest.approx(float(levels[0]), rel=1e-6)
            assert float(sigmas[-2]) == pytest.approx(float(levels[-1]), rel=1e-5)
    torch.testing.assert_close(
        K.get_sigmas_polyexponential(6, 0.1, 10.0), K.get_sigmas_exponential(6, 0.1, 10.0)
    )  # ρ = 1 is exponential


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: K.get_sigmas("linear", 5, torch.ones(3)), "`name` must be one of"),
        (lambda: K.get_sigmas_karras(0, 0.1, 10.0), "`n`"),
        (lambda: K.get_sigmas_exponential(5, 10.0, 0.1), "sigma_min < sigma_max"),
        (
            lambda: K.sample_dpmpp_2m_sde(
                gaussian_denoiser, torch.ones(1, 2), torch.tensor([1.0, 0.0]), solver_type="x"
            ),
            "`solver_type`",
        ),
        (lambda: K.linear_multistep_coeff(3, [3.0, 2.0, 1.0], 1, 0), "`order` 3 is too high"),
    ],
)
def test_bad_input_is_refused_with_the_parameter_named(call, message: str):
    with pytest.raises(ValueError, match=message):
        call()
