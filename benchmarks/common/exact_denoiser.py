"""A diffusion problem whose denoiser is known in closed form, for benchmarking samplers.

The data distribution is a small, fixed, class-conditional *finite* set of "latents" (by default 10 classes x 128
points of shape ``(4, 16, 16)``), built deterministically from a seed: smooth per-class templates plus per-sample
variation along a one-dimensional "pose" curve, with per-channel offsets and scales roughly like Stable Diffusion
latents (see :func:`make_dataset`). Under the variance-preserving
forward process ``x_t = alpha_t * x_0 + sigma_t * eps`` with the SD1.5 noise schedule, the posterior mean over a
finite set has the closed form

    E[x_0 | x_t] = sum_i w_i x_i,    w = softmax_i( -||x_t - alpha_t x_i||^2 / (2 sigma_t^2) ),

so the "network" of this benchmark is exact: every error in a sample is the sampler's. Classifier-free guidance is
exact too: the unconditional prediction uses the whole set and the conditional one only the points of the sample's
class, and the guided epsilon is ``eps_u + s * (eps_c - eps_u)``. Large guidance scales extrapolate far out of the
data range, which is what makes few-step samplers diverge ("divergence artifacts").

A property to keep in mind when reading results: the posterior of a finite set collapses onto a single data point
as the noise vanishes (in 1024 dimensions, well before the last step of a few-step sampler), and then the
conditional and unconditional predictions agree. A sampler whose last update returns the current x0 prediction
therefore ends on (or next to) a data point, and its errors show as ending on a *different* point; out-of-range final
latents (magnitude score above the data's) come from updates that combine several past predictions (PLMS-type
multistep methods, heavily damped momentum at very few steps).

Everything here is independent of the sampler: :func:`sample` drives any diffusers scheduler the way a pipeline does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from inertia.metrics import magnitude_score as _magnitude_score

__all__ = [
    "CHANNEL_MEAN",
    "CHANNEL_STD",
    "SD15_SCHEDULE",
    "ExactDenoiser",
    "LatentDataset",
    "final_noise_level",
    "initial_noise",
    "magnitude_score",
    "make_dataset",
    "nonfinite_fraction",
    "per_sample_error",
    "rmse",
    "sample",
    "sd15_alphas_cumprod",
    "steps_for_nfe",
    "to_vp",
]

#: Noise schedule of Stable Diffusion 1.5 (keyword arguments accepted by every diffusers scheduler).
SD15_SCHEDULE: dict[str, object] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}

#: Per-channel offsets and scales of the synthetic latents (of the order of scaled SD-VAE latents).
CHANNEL_MEAN: tuple[float, ...] = (0.30, -0.25, 0.15, -0.45)
CHANNEL_STD: tuple[float, ...] = (0.95, 0.75, 1.05, 0.85)


def sd15_alphas_cumprod(
    num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """Cumulative products of ``1 - beta`` of the "scaled_linear" schedule, as float64.

    The betas and their cumulative product are computed in float32 first, as diffusers schedulers do, so that the
    denoiser's noise levels match the schedulers' to the last bit before being widened to float64.
    """
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float64)


# ---------------------------------------------------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentDataset:
    """A finite, labelled set of latents.

    Attributes:
        latents: ``(N, C, H, W)`` float64 tensor of data points.
        labels: ``(N,)`` int64 tensor of class indices in ``[0, num_classes)``.
        num_classes: number of classes.
    """

    latents: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape ``(C, H, W)`` of one latent."""
        return tuple(self.latents.shape[1:])

    @property
    def channel_mean(self) -> torch.Tensor:
        """Per-channel mean over the whole set, ``(C,)`` float64."""
        return self.latents.mean(dim=(0, 2, 3))

    @property
    def channel_std(self) -> torch.Tensor:
        """Per-channel standard deviation over the whole set, ``(C,)`` float64."""
        return self.latents.std(dim=(0, 2, 3))


def _smooth_field(generator: torch.Generator, shape: Sequence[int], length_scale: float) -> torch.Tensor:
    """Soft-clipped periodic random field with unit standard deviation per ``(H, W)`` map.

    White noise is blurred by a Gaussian of std ``length_scale`` pixels (periodic boundary), standardised, passed
    through ``tanh`` (which bounds the field, like the bounded range of real latents, so the data set itself scores
    ~0 on :func:`magnitude_score`) and standardised again.
    """
    noise = torch.randn(tuple(shape), generator=generator, dtype=torch.float64)
    height, width = shape[-2], shape[-1]
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(width, dtype=torch.float64)[None, :]
    # Fourier transform of a Gaussian kernel with standard deviation `length_scale` (frequencies in cycles/pixel).
    transfer = torch.exp(-2.0 * (math.pi * length_scale) ** 2 * (fx**2 + fy**2))
    field = torch.fft.ifft2(torch.fft.fft2(noise) * transfer).real
    field = torch.tanh((field - field.mean(dim=(-2, -1), keepdim=True)) / field.std(dim=(-2, -1), keepdim=True))
    field = field - field.mean(dim=(-2, -1), keepdim=True)
    return field / field.std(dim=(-2, -1), keepdim=True)


def make_dataset(
    num_classes: int = 10,
    per_class: int = 128,
    shape: tuple[int, int, int] = (4, 16, 16),
    seed: int = 0,
) -> LatentDataset:
    """Build the deterministic class-conditional latent set.

    Every point is ``mean_c + std_c * z`` where ``z`` (standardised per channel over the set) is a class template
    plus a per-sample variation. The variation of class ``k`` follows a smooth closed curve ("pose") with phase
    ``a`` in ``[0, 1)``, sampled at ``per_class`` evenly spaced (slightly jittered) phases:

        z(a) = (1 + 0.2 sin(2 pi a + phi_k)) T_k + 0.7 (cos(2 pi a) U_k + sin(2 pi a) V_k)
               + 0.35 (cos(4 pi a) R_k + sin(4 pi a) S_k),

    where all fields are soft-clipped random fields (:func:`_smooth_field`): the template ``T_k`` and the coarse
    modes ``U_k, V_k`` with length scales 3 px and 2 px, the fine "texture" modes ``R_k, S_k`` with 0.8 px.
    ``mean_c``/``std_c`` are :data:`CHANNEL_MEAN`/:data:`CHANNEL_STD`.

    Design notes: most of the variance is between classes, so the conditional and unconditional posterior means
    differ a lot at high noise and classifier-free guidance extrapolates far out of the data range. An exact
    denoiser of a finite set eventually "memorises" (its ODE ends on a data point); because each class is a densely
    sampled one-dimensional curve, a sampler that ends on a neighbour of the reference's point is penalised by a
    small distance only, so the error stays roughly continuous in the sampler's accuracy instead of counting
    "wrong image" events. The set spans a subspace of dimension at most ``5 * num_classes + C``, which
    :class:`ExactDenoiser` exploits to stay fast.

    Args:
        num_classes: number of classes.
        per_class: points per class.
        shape: ``(C, H, W)`` of one latent; ``C`` must not exceed ``len(CHANNEL_MEAN)``.
        seed: seed of the generator; the same arguments always give the same set.
    """
    channels, height, width = shape
    if channels > len(CHANNEL_MEAN):
        raise ValueError(f"at most {len(CHANNEL_MEAN)} channels are supported, got {channels}")
    generator = torch.Generator().manual_seed(seed)
    field_shape = (num_classes, 1, channels, height, width)
    template = _smooth_field(generator, field_shape, length_scale=3.0)
    coarse_u = _smooth_field(generator, field_shape, length_scale=2.0)
    coarse_v = _smooth_field(generator, field_shape, length_scale=2.0)
    fine_r = _smooth_field(generator, field_shape, length_scale=0.8)
    fine_s = _smooth_field(generator, field_shape, length_scale=0.8)
    phase_shift = 2.0 * math.pi * torch.rand((num_classes, 1, 1, 1, 1), generator=generator, dtype=torch.float64)
    jitter = 0.25 * torch.rand((num_classes, per_class, 1, 1, 1), generator=generator, dtype=torch.float64)
    angle = 2.0 * math.pi * (torch.arange(per_class, dtype=torch.float64).view(1, -1, 1, 1, 1) + jitter) / per_class
    z = (
        (1.0 + 0.2 * torch.sin(angle + phase_shift)) * template
        + 0.7 * (torch.cos(angle) * coarse_u + torch.sin(angle) * coarse_v)
        + 0.35 * (torch.cos(2.0 * angle) * fine_r + torch.sin(2.0 * angle) * fine_s)
    )
    z = z.reshape(num_classes * per_class, channels, height, width)
    z = (z - z.mean(dim=(0, 2, 3), keepdim=True)) / z.std(dim=(0, 2, 3), keepdim=True)
    mean = torch.tensor(CHANNEL_MEAN[:channels], dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(CHANNEL_STD[:channels], dtype=torch.float64).view(1, -1, 1, 1)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return LatentDataset(latents=mean + std * z, labels=labels, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------------------------------
# Exact denoiser
# ---------------------------------------------------------------------------------------------------------------------


class ExactDenoiser:
    """Exact epsilon-prediction "model" for a :class:`LatentDataset` under the VP SD1.5 schedule.

    Call it like a UNet inside a pipeline: ``eps = denoiser(model_input, t, labels, guidance_scale=s)``. All the
    arithmetic is float64; the result has the dtype of ``x_t``. Every call increments :attr:`num_calls`, which is the
    number of function evaluations (NFE) a sampler used; a guided call counts as one evaluation, as a batched
    cond/uncond UNet call does in a pipeline.

    Args:
        dataset: the finite data set.
        num_train_timesteps, beta_start, beta_end: the "scaled_linear" training schedule (SD1.5 by default).
    """

    def __init__(
        self,
        dataset: LatentDataset,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
    ) -> None:
        self.dataset = dataset
        points = dataset.latents.reshape(dataset.latents.shape[0], -1).to(torch.float64)
        # Orthonormal basis Q (D x r) of the span of the data: distances and posterior means only involve the
        # projection Q^T x_t, and E[x_0 | x_t] = Q (W C) with the data coordinates C = X Q. This is exact (up to
        # float64 rounding) and costs O(B r (D + N)) instead of O(B N D) per call.
        _, singular_values, vh = torch.linalg.svd(points, full_matrices=False)
        rank = int((singular_values > singular_values[0] * 1e-10).sum())
        self.basis = vh[:rank].T.contiguous()
        self.coords = (points @ self.basis).contiguous()
        self.point_sq_norms = (self.coords**2).sum(dim=1)
        self.point_labels = dataset.labels.to(torch.int64)
        alphas_cumprod = sd15_alphas_cumprod(num_train_timesteps, beta_start, beta_end)
        # Noise-to-signal ratio sigma/alpha per training timestep (the "sigma" of Euler/Karras-type schedulers).
        self.ratios = ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt()
        self.num_train_timesteps = num_train_timesteps
        self.num_calls = 0

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape ``(C, H, W)`` of one latent."""
        return self.dataset.shape

    def noise_level(self, t: torch.Tensor | float | int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_t, sigma_t)`` (float64, shape of ``t``) of a diffusers timestep.

        Integer timesteps index the training schedule; float timesteps (Euler-type schedulers) interpolate the ratio
        ``sigma/alpha`` linearly between neighbouring training steps, which is how those schedulers map sigmas to
        timesteps, so the model input after ``scale_model_input`` is exactly ``alpha_t x_0 + sigma_t eps``.
        """
        t64 = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.num_train_timesteps - 1)
        low = t64.floor().to(torch.int64)
        high = (low + 1).clamp(max=self.num_train_timesteps - 1)
        frac = t64 - low.to(torch.float64)
        ratio = self.ratios[low] * (1.0 - frac) + self.ratios[high] * frac
        alpha = 1.0 / torch.sqrt(1.0 + ratio**2)
        return alpha, ratio * alpha

    def posterior_weights(
        self, x_t: torch.Tensor, t: torch.Tensor | float | int, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posterior weights over the data points: unconditional and (if ``labels`` is given) class-conditional.

        Args:
            x_t: ``(B, C, H, W)`` noisy latents (VP scaling).
            t: scalar timestep or one per sample, shape ``(B,)``.
            labels: ``(B,)`` class per sample, or ``None`` for the unconditional weights only.

        Returns:
            ``(w_uncond, w_cond)``, each ``(B, N)`` float64 with rows summing to one; ``w_cond`` is ``None`` without
            labels and is zero outside the sample's class.
        """
        batch = x_t.shape[0]
        x = x_t.reshape(batch, -1).to(torch.float64)
        alpha, sigma = self.noise_level(t)
        alpha = alpha.reshape(-1, 1)
        sigma = sigma.reshape(-1, 1)
        projected = x @ self.basis
        # -||x - a x_i||^2 / (2 s^2) up to the per-row constant -||x||^2 / (2 s^2), which softmax ignores.
        logits = (2.0 * alpha * (projected @ self.coords.T) - alpha**2 * self.point_sq_norms) / (2.0 * sigma**2)
        # softmax(l) = exp(l - logsumexp(l)): stable even when sigma is tiny and the logits are huge.
        weights_u = torch.exp(logits - torch.logsumexp(logits, dim=1, keepdim=True))
        if labels is None:
            return weights_u, None
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if labels.numel() != batch:
            raise ValueError(f"expected {batch} labels, got {labels.numel()}")
        if bool(((labels < 0) | (labels >= self.dataset.num_classes)).any()):
            raise ValueError(f"labels must lie in [0, {self.dataset.num_classes})")
        in_class = labels[:, None] == self.point_labels[None, :]
        logits_c = logits.masked_fill(~in_class, -math.inf)
        weights_c = torch.exp(logits_c - torch.logsumexp(logits_c, dim=1, keepdim=True))
        return weights_u, weights_c

    def posterior_means(
        self, x_t: torch.Tensor, t: torch.Tensor | float | int, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Unconditional and (if ``labels`` is given) class-conditional ``E[x_0 | x_t]``, flattened, float64.

        Same arguments as :meth:`posterior_weights`; returns ``(x0_uncond, x0_cond)``, each ``(B, C*H*W)``.
        """
        weights_u, weights_c = self.posterior_weights(x_t, t, labels)
        x0_u = (weights_u @ self.coords) @ self.basis.T
        x0_c = None if weights_c is None else (weights_c @ self.coords) @ self.basis.T
        return x0_u, x0_c

    def __call__(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | float | int,
        labels: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
    ) -> torch.Tensor:
        """Guided epsilon prediction ``eps_u + s * (eps_c - eps_u)`` (``eps_u`` alone without labels).

        ``guidance_scale == 1`` is the purely class-conditional prediction.
        """
        self.num_calls += 1
        weights_u, weights_c = self.posterior_weights(x_t, t, labels)
        if weights_c is not None:
            # eps and x0 are affine in the weights with the same coefficients for both branches, so guiding the
            # weights guides eps: eps_u + s (eps_c - eps_u) = eps(w_u + s (w_c - w_u)).
            weights_u = weights_u + guidance_scale * (weights_c - weights_u)
        x0 = (weights_u @ self.coords) @ self.basis.T
        alpha, sigma = self.noise_level(t)
        x = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        eps = (x - alpha.reshape(-1, 1) * x0) / sigma.reshape(-1, 1)
        return eps.reshape(x_t.shape).to(x_t.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------------------


def initial_noise(batch: int, shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal ``(batch, *shape)`` noise from a CPU generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *shape), generator=generator, dtype=dtype)


def sample(
    scheduler: object,
    denoiser: Callable[..., torch.Tensor],
    labels: torch.Tensor,
    guidance_scale: float,
    num_inference_steps: int,
    seed: int,
    *,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Run a diffusers scheduler with ``denoiser`` exactly as a text-to-image pipeline does.

    ``set_timesteps``, then ``x = noise * init_noise_sigma`` and, for every ``t`` in ``scheduler.timesteps``,
    ``eps = denoiser(scale_model_input(x, t), t, labels, guidance_scale=...)`` and
    ``x = step(eps, t, x).prev_sample``. The noise depends only on ``seed``, the batch size and the shape, so all
    schedulers start from the same point (Euler-type schedulers scale it by ``init_noise_sigma``, which is the same
    VP state).

    Args:
        scheduler: any diffusers scheduler predicting epsilon (a fresh instance: multistep history is reset by
            ``set_timesteps``).
        denoiser: ``denoiser(x_t, t, labels, guidance_scale=...) -> eps``, e.g. an :class:`ExactDenoiser`.
        labels: ``(B,)`` class per sample.
        guidance_scale: classifier-free guidance scale.
        num_inference_steps: passed to ``set_timesteps``; the number of model calls is ``len(scheduler.timesteps)``
            (see :func:`steps_for_nfe`).
        seed: seed of the initial noise.
        shape: ``(C, H, W)`` of a latent; defaults to ``denoiser.shape``.
        dtype: dtype of the sampler state (float32, as in pipelines).

    Returns:
        The final ``prev_sample`` (in the scheduler's own state scaling; see :func:`to_vp`).
    """
    scheduler.set_timesteps(num_inference_steps)
    shape = tuple(shape if shape is not None else denoiser.shape)
    x = initial_noise(len(labels), shape, seed, dtype) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        eps = denoiser(model_input, t, labels, guidance_scale=guidance_scale)
        x = scheduler.step(eps, t, x).prev_sample
    return x


def steps_for_nfe(scheduler: object, nfe: int) -> int | None:
    """The ``num_inference_steps`` for which the scheduler calls the model exactly ``nfe`` times.

    A pipeline calls the model once per entry of ``scheduler.timesteps``; for most schedulers that is
    ``num_inference_steps``, for PLMS (PNDM with ``skip_prk_steps``) it is one more and for Heun-type (``order == 2``)
    schedulers ``2 n - 1``. Returns ``None`` when no step count gives exactly ``nfe`` calls. Calls ``set_timesteps``
    on the given instance, so use a scratch instance.
    """
    # Likely answers first (one call per step, PLMS warm-up, Heun), then everything else.
    candidates = dict.fromkeys([nfe, nfe - 1, (nfe + 1) // 2, *range(1, nfe + 1)])
    for steps in candidates:
        if steps < 1:
            continue
        scheduler.set_timesteps(steps)
        if len(scheduler.timesteps) == nfe:
            return steps
    return None


def final_noise_level(scheduler: object) -> float:
    """VP noise level ``sigma`` of the sample returned by the scheduler's last ``step``.

    Sigma-based schedulers (DPM-Solver, UniPC, DEIS, Euler, ...) end at ``sigmas[-1]`` (0 with
    ``final_sigmas_type="zero"``); DDIM/PNDM-type schedulers end at ``final_alpha_cumprod`` (``alphas_cumprod[0]``
    with ``set_alpha_to_one=False``, i.e. sigma ~= 0.029 for SD1.5). Call after sampling.
    """
    sigmas = getattr(scheduler, "sigmas", None)
    if isinstance(sigmas, torch.Tensor) and sigmas.numel() > 0:
        ratio = float(sigmas[-1])
        return ratio / math.sqrt(1.0 + ratio * ratio)
    final_alpha_cumprod = getattr(scheduler, "final_alpha_cumprod", None)
    if final_alpha_cumprod is not None:
        return math.sqrt(max(0.0, 1.0 - float(final_alpha_cumprod)))
    raise ValueError(f"cannot tell the final noise level of {type(scheduler).__name__}")


def to_vp(x: torch.Tensor, scheduler: object) -> torch.Tensor:
    """Convert a final sample to VP scaling (``alpha x_0 + sigma eps``).

    Euler-type schedulers (``init_noise_sigma != 1``) keep their state as ``x_0 + (sigma/alpha) eps``; at a final
    sigma of zero both scalings agree.
    """
    if float(scheduler.init_noise_sigma) == 1.0:
        return x
    sigmas = scheduler.sigmas
    ratio = float(sigmas[-1])
    return x / math.sqrt(1.0 + ratio * ratio)


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


def nonfinite_fraction(x: torch.Tensor) -> float:
    """Fraction of samples (first dimension) with at least one NaN or infinite entry."""
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    return float(bad.to(torch.float64).mean())


def rmse(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Root-mean-square difference over all entries; ``inf`` if any sample is non-finite."""
    diff = x.to(torch.float64) - reference.to(torch.float64)
    if not bool(torch.isfinite(diff).all()):
        return math.inf
    return float(diff.pow(2).mean().sqrt())


def per_sample_error(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Root-mean-square difference of each sample (first dimension), float64; ``inf`` for non-finite samples."""
    diff = (x.to(torch.float64) - reference.to(torch.float64)).reshape(x.shape[0], -1)
    error = diff.pow(2).mean(dim=1).sqrt()
    return torch.where(torch.isfinite(error), error, torch.full_like(error, math.inf))


def magnitude_score(x: torch.Tensor, dataset: LatentDataset, tau: float = 3.0, kernel_size: int = 4) -> float:
    """The paper's divergence magnitude score (:func:`inertia.metrics.magnitude_score`) with this data set's statistics.

    Zero means no region left the data range by more than ``tau`` standard deviations. Non-finite samples are
    excluded (report them with :func:`nonfinite_fraction`); ``nan`` if none is finite.
    """
    return _magnitude_score(x, dataset.channel_mean, dataset.channel_std, tau=tau, kernel_size=kernel_size)
