"""Tests of the benchmark harness: the closed-form exact denoiser, sampling/NFE accounting and the metrics.

The posterior mean of :class:`benchmarks.common.exact_denoiser.ExactDenoiser` works in the span of the data (SVD basis);
here it is checked against a brute-force float64 softmax over all points in the full latent space, with the noise
levels recomputed from diffusers' own SD1.5 schedule.
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    PNDMScheduler,
)

from benchmarks.common.exact_denoiser import (
    SD15_SCHEDULE,
    ExactDenoiser,
    LatentDataset,
    magnitude_score,
    make_dataset,
    nonfinite_fraction,
    rmse,
    sample,
    sd15_alphas_cumprod,
    steps_for_nfe,
)

#: Stock SD1.5 DDIM/PNDM settings (as in the benchmark's base config).
SD15_DDIM = {**SD15_SCHEDULE, "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": False}
SD15_PLMS = {**SD15_SCHEDULE, "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True}


@pytest.fixture(scope="module")
def dataset() -> LatentDataset:
    return make_dataset(num_classes=3, per_class=8, shape=(2, 4, 4))


@pytest.fixture
def denoiser(dataset: LatentDataset) -> ExactDenoiser:
    return ExactDenoiser(dataset)


def reference_noise_level(t: float) -> tuple[float, float]:
    """(alpha, sigma) from diffusers' alphas_cumprod; float t interpolates sigma/alpha linearly (as Euler does)."""
    alphas_cumprod = DDIMScheduler(**SD15_DDIM).alphas_cumprod.to(torch.float64)
    ratios = ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt()
    low = math.floor(t)
    high = min(low + 1, len(ratios) - 1)
    ratio = float(ratios[low]) * (1.0 - (t - low)) + float(ratios[high]) * (t - low)
    alpha = 1.0 / math.sqrt(1.0 + ratio * ratio)
    return alpha, ratio * alpha


def brute_force_mean(x_t: torch.Tensor, points: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """sum_i softmax_i(-||x_t - alpha x_i||^2 / (2 sigma^2)) x_i for one flattened x_t, in float64."""
    logits = -((x_t[None, :] - alpha * points) ** 2).sum(dim=1) / (2.0 * sigma**2)
    return torch.softmax(logits, dim=0) @ points


def noisy_latents(dataset: LatentDataset, t: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = alpha x_i + sigma eps for one data point of each class (float64), and those classes as labels."""
    generator = torch.Generator().manual_seed(seed)
    alpha, sigma = reference_noise_level(t)
    index = torch.tensor([1, 8 + 5, 16 + 2])
    noise = torch.randn(dataset.latents[index].shape, generator=generator, dtype=torch.float64)
    labels = torch.tensor([2, 1, 0])  # deliberately not the class of the point the sample was noised from
    return alpha * dataset.latents[index] + sigma * noise, labels


TIMESTEPS = [999, 500, 100, 37.25, 641.5]


def test_schedule_matches_diffusers_bit_for_bit() -> None:
    assert torch.equal(sd15_alphas_cumprod(), DDIMScheduler(**SD15_DDIM).alphas_cumprod.to(torch.float64))


@pytest.mark.parametrize("t", TIMESTEPS)
def test_noise_level_matches_schedule(denoiser: ExactDenoiser, t: float) -> None:
    alpha, sigma = denoiser.noise_level(t)
    expected_alpha, expected_sigma = reference_noise_level(t)
    assert float(alpha) == pytest.approx(expected_alpha, rel=1e-12)
    assert float(sigma) == pytest.approx(expected_sigma, rel=1e-12)


def test_float_timesteps_match_euler_sigmas(denoiser: ExactDenoiser) -> None:
    """Euler's float timesteps map back to its own sigmas (so scale_model_input gives the VP state the model expects)."""
    scheduler = EulerDiscreteScheduler(**SD15_SCHEDULE)
    scheduler.set_timesteps(7)
    assert not torch.equal(scheduler.timesteps, scheduler.timesteps.round())  # genuinely fractional timesteps
    alpha, sigma = denoiser.noise_level(scheduler.timesteps)
    torch.testing.assert_close(sigma / alpha, scheduler.sigmas[:-1].to(torch.float64), rtol=1e-6, atol=0)


@pytest.mark.parametrize("t", [*TIMESTEPS, torch.tensor(250)])
def test_posterior_means_match_brute_force(dataset: LatentDataset, denoiser: ExactDenoiser, t) -> None:
    x_t, labels = noisy_latents(dataset, float(t))
    x0_u, x0_c = denoiser.posterior_means(x_t, t, labels)
    alpha, sigma = reference_noise_level(float(t))
    points = dataset.latents.reshape(len(dataset.labels), -1)
    flat = x_t.reshape(len(x_t), -1)
    for b in range(len(x_t)):
        expected_u = brute_force_mean(flat[b], points, alpha, sigma)
        in_class = dataset.labels == labels[b]
        expected_c = brute_force_mean(flat[b], points[in_class], alpha, sigma)
        torch.testing.assert_close(x0_u[b], expected_u, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(x0_c[b], expected_c, rtol=1e-9, atol=1e-10)
    # The conditional and unconditional means must differ here, or the check above would not test the class mask.
    assert float((x0_u - x0_c).abs().max()) > 1e-3


def test_posterior_means_with_per_sample_timesteps(dataset: LatentDataset, denoiser: ExactDenoiser) -> None:
    timesteps = [999.0, 37.25, 500.0]
    x_t, labels = noisy_latents(dataset, 500.0)
    x0_u, x0_c = denoiser.posterior_means(x_t, torch.tensor(timesteps), labels)
    points = dataset.latents.reshape(len(dataset.labels), -1)
    for b, t in enumerate(timesteps):
        alpha, sigma = reference_noise_level(t)
        flat = x_t[b].reshape(-1)
        torch.testing.assert_close(x0_u[b], brute_force_mean(flat, points, alpha, sigma), rtol=1e-9, atol=1e-10)
        in_class = dataset.labels == labels[b]
        expected_c = brute_force_mean(flat, points[in_class], alpha, sigma)
        torch.testing.assert_close(x0_c[b], expected_c, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("t", [999, 100, 37.25])
@pytest.mark.parametrize("scale", [0.0, 3.0, 7.5, 15.0])
def test_guided_eps_is_cfg_combination(dataset: LatentDataset, denoiser: ExactDenoiser, t, scale: float) -> None:
    x_t, labels = noisy_latents(dataset, float(t))
    alpha, sigma = reference_noise_level(float(t))
    points = dataset.latents.reshape(len(dataset.labels), -1)
    flat = x_t.reshape(len(x_t), -1)
    expected = []
    for b in range(len(x_t)):
        eps_u = (flat[b] - alpha * brute_force_mean(flat[b], points, alpha, sigma)) / sigma
        class_points = points[dataset.labels == labels[b]]
        eps_c = (flat[b] - alpha * brute_force_mean(flat[b], class_points, alpha, sigma)) / sigma
        expected.append(eps_u + scale * (eps_c - eps_u))
    eps = denoiser(x_t, t, labels, guidance_scale=scale)
    assert eps.dtype == torch.float64 and eps.shape == x_t.shape
    torch.testing.assert_close(eps.reshape(len(x_t), -1), torch.stack(expected), rtol=1e-8, atol=1e-8)
    # Without labels the call is the unconditional prediction whatever the scale.
    eps_uncond = denoiser(x_t, t, None, guidance_scale=scale)
    torch.testing.assert_close(eps_uncond, denoiser(x_t, t, labels, guidance_scale=0.0), rtol=1e-9, atol=1e-9)


def test_guidance_one_is_conditional_eps(dataset: LatentDataset, denoiser: ExactDenoiser) -> None:
    t = 300
    x_t, labels = noisy_latents(dataset, t)
    _, x0_c = denoiser.posterior_means(x_t, t, labels)
    alpha, sigma = denoiser.noise_level(t)
    eps_c = (x_t.reshape(len(x_t), -1) - alpha * x0_c) / sigma
    eps = denoiser(x_t, t, labels, guidance_scale=1.0)
    torch.testing.assert_close(eps.reshape(len(x_t), -1), eps_c, rtol=1e-12, atol=1e-12)


def test_float32_input_gives_float32_eps(dataset: LatentDataset, denoiser: ExactDenoiser) -> None:
    x_t, labels = noisy_latents(dataset, 500)
    eps32 = denoiser(x_t.to(torch.float32), 500, labels, guidance_scale=7.5)
    eps64 = denoiser(x_t.to(torch.float32).to(torch.float64), 500, labels, guidance_scale=7.5)
    assert eps32.dtype == torch.float32
    torch.testing.assert_close(eps32, eps64.to(torch.float32))


@pytest.mark.parametrize("t", [0, 0.0, 1])
def test_low_noise_posterior_is_nearest_point(dataset: LatentDataset, denoiser: ExactDenoiser, t) -> None:
    x_t, _ = noisy_latents(dataset, float(t), seed=3)
    alpha, _ = denoiser.noise_level(t)
    points = dataset.latents.reshape(len(dataset.labels), -1)
    flat = x_t.reshape(len(x_t), -1)
    nearest = torch.cdist(flat, float(alpha) * points).argmin(dim=1)
    x0_u, x0_c = denoiser.posterior_means(x_t, t, dataset.labels[nearest])
    torch.testing.assert_close(x0_u, points[nearest], rtol=0, atol=1e-12)
    torch.testing.assert_close(x0_c, points[nearest], rtol=0, atol=1e-12)
    weights_u, _ = denoiser.posterior_weights(x_t, t, None)
    assert torch.equal(weights_u.argmax(dim=1), nearest)
    assert float(weights_u.max(dim=1).values.min()) == pytest.approx(1.0, abs=1e-12)


def test_bad_labels_are_rejected(dataset: LatentDataset, denoiser: ExactDenoiser) -> None:
    x_t, _ = noisy_latents(dataset, 500)
    with pytest.raises(ValueError, match="labels must lie"):
        denoiser(x_t, 500, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="expected 3 labels"):
        denoiser(x_t, 500, torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------------------------------
# Sampling and NFE accounting
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 5, 7])
def test_ddim_sample_uses_one_call_per_step(denoiser: ExactDenoiser, steps: int) -> None:
    labels = torch.tensor([0, 1, 2, 0])
    x = sample(DDIMScheduler(**SD15_DDIM), denoiser, labels, 7.5, steps, seed=0)
    assert denoiser.num_calls == steps
    assert x.shape == (4, *denoiser.shape) and x.dtype == torch.float32
    assert bool(torch.isfinite(x).all())
    # The noise depends only on the seed: the same call reproduces the sample bit for bit.
    again = sample(DDIMScheduler(**SD15_DDIM), denoiser, labels, 7.5, steps, seed=0)
    assert torch.equal(x, again)
    assert denoiser.num_calls == 2 * steps


@pytest.mark.parametrize(
    ("make_scheduler", "nfe", "expected_steps"),
    [
        (lambda: PNDMScheduler(**SD15_PLMS), 10, 9),
        (lambda: PNDMScheduler(**SD15_PLMS), 6, 5),
        (lambda: DPMSolverMultistepScheduler(**SD15_SCHEDULE), 8, 8),
        (lambda: DPMSolverMultistepScheduler(**SD15_SCHEDULE, solver_order=3), 5, 5),
        (lambda: DDIMScheduler(**SD15_DDIM), 6, 6),
        (lambda: HeunDiscreteScheduler(**SD15_SCHEDULE), 7, 4),
        (lambda: HeunDiscreteScheduler(**SD15_SCHEDULE), 6, None),
    ],
    ids=["PLMS-10", "PLMS-6", "DPM2M-8", "DPM3M-5", "DDIM-6", "Heun-7", "Heun-6-impossible"],
)
def test_steps_for_nfe_gives_exact_nfe(denoiser: ExactDenoiser, make_scheduler, nfe: int, expected_steps) -> None:
    steps = steps_for_nfe(make_scheduler(), nfe)
    assert steps == expected_steps
    if steps is None:
        return
    x = sample(make_scheduler(), denoiser, torch.tensor([0, 1, 2]), 3.0, steps, seed=1)
    assert denoiser.num_calls == nfe
    assert bool(torch.isfinite(x).all())


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_8x8() -> LatentDataset:
    return make_dataset(num_classes=3, per_class=8, shape=(2, 8, 8))


def constant_latents(dataset: LatentDataset, batch: int) -> torch.Tensor:
    """``batch`` latents equal to the data set's per-channel mean everywhere (standardised value 0)."""
    return dataset.channel_mean.view(1, -1, 1, 1).expand(batch, -1, *dataset.shape[1:]).clone()


def test_magnitude_score_of_in_range_latents_is_zero(dataset_8x8: LatentDataset) -> None:
    assert magnitude_score(constant_latents(dataset_8x8, 2), dataset_8x8) == 0.0
    # The data set itself stays within tau = 3 std everywhere (its fields are soft-clipped), so it scores 0 too.
    assert magnitude_score(dataset_8x8.latents, dataset_8x8) == 0.0


def test_magnitude_score_of_one_out_of_range_block(dataset_8x8: LatentDataset) -> None:
    mean, std = dataset_8x8.channel_mean, dataset_8x8.channel_std
    x = constant_latents(dataset_8x8, 2)
    # Sample 0: the 4x4 block in the top-left pooling window of channel 1 sits at +10 std. Pooled (kernel 4) grid:
    # 2x2 cells per sample; the block's cell scores 10, the other 3 cells and all of sample 1 score 0.
    x[0, 1, 0:4, 0:4] = mean[1] + 10.0 * std[1]
    assert magnitude_score(x, dataset_8x8) == pytest.approx(10.0 / (2 * 4), rel=1e-12)
    # A block straddling all four windows raises every cell of that sample to 10 (max pooling).
    y = constant_latents(dataset_8x8, 2)
    y[0, 0, 2:6, 2:6] = mean[0] - 10.0 * std[0]  # |z| counts, so -10 std scores like +10
    assert magnitude_score(y, dataset_8x8) == pytest.approx(10.0 * 4 / (2 * 4), rel=1e-12)
    # Below tau (3 std) nothing counts; a non-finite sample is left out of the mean.
    z = constant_latents(dataset_8x8, 2)
    z[0, 1, 0:4, 0:4] = mean[1] + 2.9 * std[1]
    assert magnitude_score(z, dataset_8x8) == 0.0
    with_nan = torch.cat([x, torch.full_like(x[:1], math.nan)])
    assert magnitude_score(with_nan, dataset_8x8) == pytest.approx(10.0 / (2 * 4), rel=1e-12)
    assert math.isnan(magnitude_score(torch.full_like(x, math.inf), dataset_8x8))


def test_rmse_and_nonfinite_fraction() -> None:
    reference = torch.zeros(4, 2, 3, 3)
    x = torch.full((4, 2, 3, 3), 2.0)
    x[0, 0, 0, 0] = 2.0 + 36.0  # mean of squares: (71 * 2^2 + 38^2) / 72 = 24
    assert rmse(x, reference) == pytest.approx(math.sqrt(24.0), rel=1e-12)
    assert nonfinite_fraction(x) == 0.0
    x[1, 1, 2, 2] = math.nan
    assert rmse(x, reference) == math.inf
    assert nonfinite_fraction(x) == 0.25
    x[3, 0, 1, 1] = -math.inf
    x[3, 1, 1, 1] = math.nan  # two bad entries in one sample still count one sample
    assert rmse(x, reference) == math.inf
    assert nonfinite_fraction(x) == 0.5
    assert rmse(torch.full((2, 2), math.inf), torch.zeros(2, 2)) == math.inf
