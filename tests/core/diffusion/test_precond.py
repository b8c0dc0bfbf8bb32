"""Tests of the VP / EDM / FDM preconditioning core and the training loss (:mod:`inertia.core.diffusion`)."""

from __future__ import annotations

import math

import pytest
import torch

from inertia.core.diffusion.loss import LossWeightWarmup, denoising_loss, sample_training_sigmas
from inertia.core.diffusion.precond import (
    EDM_SIGMA_MAX,
    EDM_SIGMA_MIN,
    DiscreteSigmaSchedule,
    Preconditioning,
    alphas_cumprod_for_schedule,
    fdm_scale,
    vp_sigma,
    vp_time,
)

SIGMAS = [0.01, 0.3, 1.0, 7.5, 14.6, 80.0]
SD = 0.5


@pytest.fixture(scope="module")
def sd_schedule() -> DiscreteSigmaSchedule:
    return DiscreteSigmaSchedule(alphas_cumprod_for_schedule(1000, 0.00085, 0.012, "scaled_linear"))


@pytest.fixture(scope="module")
def linear_schedule() -> DiscreteSigmaSchedule:
    return DiscreteSigmaSchedule(alphas_cumprod_for_schedule(1000, 1e-4, 0.02, "linear"))


def _s_ref(sigma: float, m: float, lo: float = EDM_SIGMA_MIN, hi: float = EDM_SIGMA_MAX) -> float:
    t = min(max((sigma - lo) / (hi - lo), 0.0), 1.0)
    b = m * (0.1 * t + 0.5 * 19.9 * t * t)
    return math.exp(-b) * (1 + b)


def _t_vp_ref(sigma: float) -> float:
    return (math.sqrt(0.1**2 + 2 * 19.9 * math.log(1 + sigma**2)) - 0.1) / 19.9


# ------------------------------------------------------------------------------------------------ coefficients


@pytest.mark.parametrize("sigma", SIGMAS)
def test_edm_coefficients(sigma: float) -> None:
    c = Preconditioning("edm").coefficients(torch.tensor([sigma], dtype=torch.float64))
    assert c.c_skip.item() == pytest.approx(SD**2 / (sigma**2 + SD**2), rel=1e-12)
    assert c.c_out.item() == pytest.approx(sigma * SD / math.sqrt(sigma**2 + SD**2), rel=1e-12)
    assert c.c_in.item() == pytest.approx(1 / math.sqrt(sigma**2 + SD**2), rel=1e-12)
    assert c.c_noise.item() == pytest.approx(0.25 * math.log(sigma), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_vp_coefficients(sigma: float) -> None:
    c = Preconditioning("vp").coefficients(torch.tensor([sigma], dtype=torch.float64))
    assert c.c_skip.item() == 1.0
    assert c.c_out.item() == pytest.approx(-sigma, rel=1e-12)
    assert c.c_in.item() == pytest.approx(1 / math.sqrt(sigma**2 + 1), rel=1e-12)
    assert c.c_noise.item() == pytest.approx(999 * _t_vp_ref(sigma), rel=1e-12)


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("m", [1.0, 2.0])
def test_fdm_coefficients_replace_only_c_in(sigma: float, m: float) -> None:
    for base in ("edm", "vp"):
        fdm = Preconditioning("fdm", fdm_multiplier=m, fdm_base=base).coefficients(
            torch.tensor([sigma], dtype=torch.float64)
        )
        ref = Preconditioning(base).coefficients(torch.tensor([sigma], dtype=torch.float64))
        assert torch.equal(fdm.c_skip, ref.c_skip)
        assert torch.equal(fdm.c_out, ref.c_out)
        assert torch.equal(fdm.c_noise, ref.c_noise)
    c = Preconditioning("fdm", fdm_multiplier=m).coefficients(torch.tensor([sigma], dtype=torch.float64))
    assert c.c_in.item() == pytest.approx(_s_ref(sigma, m), rel=1e-12)


def test_vp_time_inverts_vp_sigma_and_vp_fdm_range() -> None:
    t = torch.tensor([1e-5, 0.01, 0.3, 1.0], dtype=torch.float64)
    assert torch.allclose(vp_time(vp_sigma(t)), t, rtol=1e-9)
    lo, hi = Preconditioning("fdm", fdm_base="vp").fdm_sigma_range
    assert lo == pytest.approx(0.0010, abs=5e-5)
    assert hi == pytest.approx(152.17, abs=0.01)


def test_fdm_scale_is_one_at_sigma_min_and_decreasing() -> None:
    sigma = torch.linspace(EDM_SIGMA_MIN, EDM_SIGMA_MAX, 500, dtype=torch.float64)
    for m in (1.0, 2.0):
        s = fdm_scale(sigma, m)
        assert s[0].item() == 1.0
        assert bool((s[1:] < s[:-1]).all())
    # t̃ is clamped into [0, 1] (documented deviation): σ outside the FDM range gets the boundary value
    s = fdm_scale(torch.tensor([1e-4, EDM_SIGMA_MIN, EDM_SIGMA_MAX, 157.0], dtype=torch.float64))
    assert s[0] == s[1] == 1.0 and s[2] == s[3]


@pytest.mark.parametrize(
    ("m", "sigma", "expected"),
    [(2.0, 1.0, 1.1), (2.0, 10.0, 9.6), (2.0, 20.0, 12.6), (2.0, 40.0, 1.5), (2.0, 80.0, 3e-6), (1.0, 80.0, 0.04)],
)
def test_fdm_input_std_matches_hand_values(m: float, sigma: float, expected: float) -> None:
    """EDM-FDM feeds the network an input of std ≈ s(σ)·sqrt(σ² + σd²): ≈ σ mid-range, collapsing to ~0 at σ_max."""
    c_in = (
        Preconditioning("fdm", fdm_multiplier=m).coefficients(torch.tensor([sigma], dtype=torch.float64)).c_in.item()
    )
    std = c_in * math.sqrt(sigma**2 + SD**2)
    # hand values rounded to 1-2 significant digits: 3e-6 is 3.15e-6, 0.04 is 0.038, 12.6 is 12.77
    assert std == pytest.approx(expected, rel=0.06)


def test_loss_weights() -> None:
    sigma = torch.tensor(SIGMAS, dtype=torch.float64)
    assert torch.allclose(Preconditioning("vp").loss_weight(sigma), 1 / sigma**2)
    edm = (sigma**2 + SD**2) / (sigma * SD) ** 2
    assert torch.allclose(Preconditioning("edm").loss_weight(sigma), edm)
    assert torch.allclose(Preconditioning("fdm").loss_weight(sigma), edm)
    assert torch.allclose(Preconditioning("fdm", fdm_base="vp").loss_weight(sigma), 1 / sigma**2)


# ------------------------------------------------------------------------------------------------ identity


VARIANTS = [("vp", "edm"), ("edm", "edm"), ("fdm", "edm"), ("fdm", "vp")]


def _oracle(precond: Preconditioning, x0: torch.Tensor, sigma: torch.Tensor):
    """F returning the exact ideal output when the data set is the single image x0 (ideal D = x0)."""

    def model_fn(x_in: torch.Tensor, c_noise: torch.Tensor, labels: object) -> torch.Tensor:
        c = precond.coefficients(sigma)
        x_hat = x_in / c.c_in.reshape(-1, 1, 1, 1)
        return (x0 - c.c_skip.reshape(-1, 1, 1, 1) * x_hat) / c.c_out.reshape(-1, 1, 1, 1)

    return model_fn


@pytest.mark.parametrize(("variant", "base"), VARIANTS)
def test_oracle_network_gives_true_noise_and_zero_loss(variant: str, base: str, sd_schedule) -> None:
    precond = Preconditioning(variant, fdm_base=base)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64).mul(2).sub(1).expand(6, -1, -1, -1)
    noise = torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.002, 0.03, 0.5, 3.0, 14.6, 157.0], dtype=torch.float64)
    x_hat = x0 + sigma.reshape(-1, 1, 1, 1) * noise
    fn = _oracle(precond, x0, sigma)
    assert torch.allclose(precond.denoise(fn, x_hat, sigma), x0, atol=1e-9)
    assert torch.allclose(precond.epsilon(fn, x_hat, sigma), noise, atol=1e-9)
    loss, stats = denoising_loss(fn, x0, None, precond, schedule=sd_schedule, sigma=sigma, noise=noise)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert torch.equal(stats["weight"], precond.loss_weight(sigma))


def test_eps_equals_vp_space_formula() -> None:
    """ε = (x̂ − D)/σ equals (x_t − sqrt(ᾱ)·D)/sqrt(1 − ᾱ) in VP space."""
    precond = Preconditioning("edm")
    g = torch.Generator().manual_seed(1)
    x_hat = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64) * 3
    sigma = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    fn = lambda x, c, y: torch.tanh(x) + c.reshape(-1, 1, 1, 1).double()  # noqa: E731
    eps = precond.epsilon(fn, x_hat, sigma)
    d = precond.denoise(fn, x_hat, sigma)
    ac = (1 / (1 + sigma**2)).reshape(-1, 1, 1, 1)
    x_t = ac.sqrt() * x_hat
    assert torch.allclose(eps, (x_t - ac.sqrt() * d) / (1 - ac).sqrt(), atol=1e-10)


# ------------------------------------------------------------------------------------------------ schedules


def test_alphas_cumprod_match_diffusers() -> None:
    from diffusers import DDPMScheduler

    for kw in (
        {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"},
        {"beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"},
    ):
        ref = DDPMScheduler(num_train_timesteps=1000, **kw).alphas_cumprod.double()
        assert torch.equal(alphas_cumprod_for_schedule(1000, **kw), ref)


def test_sigma_ranges(sd_schedule, linear_schedule) -> None:
    assert sd_schedule.sigma_max == pytest.approx(14.6, abs=0.05)
    assert sd_schedule.sigma_min == pytest.approx(
        math.sqrt(0.00085 / (1 - 0.00085)), rel=1e-4
    )  # float32 betas as diffusers
    assert linear_schedule.sigma_max == pytest.approx(157, abs=1)


def test_integer_and_fractional_timesteps(sd_schedule) -> None:
    ac = sd_schedule.alphas_cumprod
    t = torch.tensor([0, 1, 500, 999])
    assert torch.allclose(sd_schedule.sigma_at(t), ((1 - ac[t]) / ac[t]).sqrt(), rtol=1e-12)
    # fractional: linear in ln σ, i.e. geometric mean at the midpoint
    mid = sd_schedule.sigma_at(torch.tensor([10.5])).item()
    s10, s11 = sd_schedule.sigmas[10].item(), sd_schedule.sigmas[11].item()
    assert mid == pytest.approx(math.sqrt(s10 * s11), rel=1e-12)
    tf = torch.tensor([0.0, 0.25, 10.5, 998.9, 999.0], dtype=torch.float64)
    assert torch.allclose(sd_schedule.timestep_at(sd_schedule.sigma_at(tf)), tf, atol=1e-9)


def test_vp_edm_round_trip(linear_schedule) -> None:
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    n = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 17, 400, 999])
    ac = linear_schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    x_t = ac.sqrt() * x0 + (1 - ac).sqrt() * n
    x_hat, sigma = linear_schedule.vp_to_edm(x_t, t)
    assert torch.allclose(x_hat, x0 + sigma.reshape(-1, 1, 1, 1) * n, atol=1e-9)
    assert torch.allclose(linear_schedule.edm_to_vp(x_hat, sigma), x_t, atol=1e-12)


# ------------------------------------------------------------------------------------------------ training


def test_warmup_sequence_and_state_dict() -> None:
    w = LossWeightWarmup(warmup_steps=4)
    seen = []
    for _ in range(6):
        seen.append(w.max_weight)
        w.step()
    expected = [5 * 100 ** (k / 4) for k in range(4)]
    assert seen[:4] == pytest.approx(expected, rel=1e-12)
    assert seen[4] is None and seen[5] is None  # reached 500: clamp switched off
    assert all(v < 500 for v in seen[:4])
    weights = torch.tensor([1.0, 10.0, 1e4])
    w2 = LossWeightWarmup(warmup_steps=4)
    assert torch.equal(w2.clamp(weights), torch.tensor([1.0, 5.0, 5.0]))
    w2.step()
    state = w2.state_dict()
    w3 = LossWeightWarmup(warmup_steps=100)
    w3.load_state_dict(state)
    assert w3.max_weight == w2.max_weight and w3.warmup_steps == 4
    assert torch.equal(w.clamp(weights), weights)


def test_warmup_clamps_loss_weight(sd_schedule) -> None:
    x0 = torch.zeros(3, 1, 2, 2)
    sigma = torch.tensor([0.03, 1.0, 10.0])
    warm = LossWeightWarmup(warmup_steps=10)
    _, stats = denoising_loss(
        lambda x, c, y: torch.zeros_like(x), x0, None, "fdm", schedule=sd_schedule, sigma=sigma, warmup=warm
    )
    assert stats["max_weight"] == 5.0
    assert float(stats["weight"].max()) == 5.0
    assert torch.equal(stats["weight"][1:], Preconditioning("fdm").loss_weight(sigma)[1:].clamp(max=5.0))


def test_training_sigma_sampling(sd_schedule) -> None:
    g = torch.Generator().manual_seed(0)
    vp = sample_training_sigmas(Preconditioning("vp"), sd_schedule, 4096, g)
    assert bool(torch.isin(vp, sd_schedule.sigmas).all())
    edm = sample_training_sigmas(Preconditioning("edm"), sd_schedule, 4096, g)
    assert float(edm.min()) >= sd_schedule.sigma_min and float(edm.max()) <= sd_schedule.sigma_max
    assert float(edm.log().median()) == pytest.approx(-1.2, abs=0.1)
    again = sample_training_sigmas(Preconditioning("edm"), sd_schedule, 8, torch.Generator().manual_seed(5))
    assert torch.equal(
        again, sample_training_sigmas(Preconditioning("edm"), sd_schedule, 8, torch.Generator().manual_seed(5))
    )


def test_denoising_loss_has_gradients(sd_schedule) -> None:
    lin = torch.nn.Conv2d(3, 3, 1)
    x0 = torch.rand(4, 3, 4, 4) * 2 - 1
    loss, stats = denoising_loss(
        lambda x, c, y: lin(x), x0, None, "fdm", torch.Generator().manual_seed(0), schedule=sd_schedule
    )
    loss.backward()
    assert lin.weight.grad is not None and bool(torch.isfinite(loss))
    assert stats["loss_per_sample"].shape == (4,)


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"variant": "ve"}, "preconditioning"),
        ({"variant": "fdm", "fdm_multiplier": 0.0}, "fdm_multiplier"),
        ({"variant": "fdm", "fdm_base": "ve"}, "fdm_base"),
        ({"variant": "edm", "sigma_data": -1.0}, "sigma_data"),
    ],
)
def test_bad_preconditioning_raises(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Preconditioning(**kwargs)


def test_bad_schedule_and_warmup_raise() -> None:
    with pytest.raises(ValueError, match="beta_schedule"):
        alphas_cumprod_for_schedule(1000, 1e-4, 0.02, "cosine")
    with pytest.raises(ValueError, match="beta_end"):
        alphas_cumprod_for_schedule(1000, 1e-4, 1.5, "linear")
    with pytest.raises(ValueError, match="alphas_cumprod"):
        DiscreteSigmaSchedule(torch.tensor([0.5, 0.9]))
    with pytest.raises(ValueError, match="warmup_steps"):
        LossWeightWarmup(0)
    with pytest.raises(ValueError, match="final"):
        LossWeightWarmup(10, initial=5.0, final=1.0)
