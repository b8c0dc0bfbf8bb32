"""Training loss of the embedded image model: noise-level sampling, loss weights and FDM's weight warm-up.

The loss is the base framework's weighted denoising MSE (EDM, Karras et al. 2022, arXiv 2206.00364, §5 with the
Table 1 weights and noise distributions). The Fast Diffusion Model (Wu et al., arXiv 2306.06991; reference code
sail-sg/FDM ``training/loss.py``) adds one thing, a clamp on the loss weight that starts at 5 and grows by
100^(1/warmup_steps) per optimizer step up to 500, after which it is off.
Pure torch; the preconditioning itself lives in :mod:`inertia.core.diffusion.precond`.
"""

from __future__ import annotations

from typing import Any

import torch

from inertia.core.diffusion.precond import (
    EDM_P_MEAN,
    EDM_P_STD,
    DiscreteSigmaSchedule,
    ModelFn,
    Preconditioning,
)
from inertia.core.tensors import compute_dtype, per_sample
from inertia.core.validation import check_range

__all__ = ["LossWeightWarmup", "denoising_loss", "sample_training_sigmas"]


class LossWeightWarmup:
    """FDM's loss-weight clamp warm-up (``--warmup_ite``): λ ≤ w_max with w_max = 5·100^(k/warmup_steps) after k steps.

    Once w_max would reach ``final`` (500) the clamp is switched off for good (:attr:`max_weight` is ``None``). The
    paper advances the counter on every loss call; here the training loop calls :meth:`step` once per optimizer step,
    so gradient accumulation does not shorten the warm-up. State is an integer counter, so ``state_dict`` /
    ``load_state_dict`` resume exactly.

    Args:
        warmup_steps: Number of steps to go from ``initial`` to ``final`` (the paper uses 200-800), ≥ 1.
        initial: Starting clamp (5).
        final: Clamp at which the warm-up ends (500).

    Example:
        >>> w = LossWeightWarmup(warmup_steps=2)
        >>> w.max_weight
        5.0
        >>> w.step(); round(w.max_weight, 6)
        50.0
        >>> w.step(); w.max_weight is None
        True
    """

    def __init__(self, warmup_steps: int, initial: float = 5.0, final: float = 500.0) -> None:
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"`warmup_steps` must be an integer in [1, inf), got {warmup_steps!r}.")
        self.initial = check_range("initial", initial, 0, low_open=True)
        self.final = check_range("final", final, 0, low_open=True)
        if self.final <= self.initial:
            raise ValueError(f"`final` must be in ({self.initial}, inf) (greater than `initial`), got {final!r}.")
        self.warmup_steps = warmup_steps
        self.steps = 0

    @property
    def active(self) -> bool:
        """Whether the clamp is still applied."""
        return self.steps < self.warmup_steps

    @property
    def max_weight(self) -> float | None:
        """Current clamp w_max, or ``None`` once the warm-up is over."""
        if not self.active:
            return None
        # w_max = initial · (final/initial)^(k/warmup) (FDM: ×100^(1/warmup_ite) per step from 5)
        weight: float = self.initial * (self.final / self.initial) ** (self.steps / self.warmup_steps)
        return weight

    def step(self) -> None:
        """Advances the warm-up by one optimizer step."""
        self.steps += 1

    def clamp(self, weight: torch.Tensor) -> torch.Tensor:
        """λ clamped to the current w_max (unchanged once the warm-up is over)."""
        w = self.max_weight
        return weight if w is None else weight.clamp(max=w)

    def state_dict(self) -> dict[str, Any]:
        """Serializable state (steps and settings)."""
        return {"steps": self.steps, "warmup_steps": self.warmup_steps, "initial": self.initial, "final": self.final}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` output."""
        steps = state["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"`steps` must be an integer in [0, inf), got {steps!r}.")
        # re-run the constructor's validation on the saved settings
        type(self).__init__(self, int(state["warmup_steps"]), float(state["initial"]), float(state["final"]))
        self.steps = steps


def sample_training_sigmas(
    precond: Preconditioning,
    schedule: DiscreteSigmaSchedule,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Noise levels for one training batch (float64, shape ``(B,)``), per the base framework (EDM Table 1).

    - VP base: a diffusers timestep uniform over {0, …, N−1}, σ = σ_t. This replaces the paper's continuous
      t ~ U[1e−5, 1] on the β ∈ [0.1, 20] VP schedule, so that training sees exactly the σ a diffusers scheduler
      queries (that continuous schedule reaches σ ≈ 152, beyond e.g. the SD schedule's 14.6).
    - EDM base: ln σ ~ N(−1.2, 1.2²), clamped to the schedule's [σ_min, σ_max] (the wrapper cannot be asked for σ
      outside it).

    The draws are made on the generator's device (CPU if none) and moved to ``device``.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if precond.base == "vp":
        t = torch.randint(0, schedule.num_train_timesteps, (batch_size,), generator=generator, device=gen_device)
        return schedule.sigmas.to(gen_device)[t].to(device)
    z = torch.randn(batch_size, generator=generator, device=gen_device, dtype=torch.float64)
    sigma = torch.exp(EDM_P_MEAN + EDM_P_STD * z)  # ln σ ~ N(P_mean, P_std²)
    return sigma.clamp(schedule.sigma_min, schedule.sigma_max).to(device)


def denoising_loss(
    model_fn: ModelFn,
    x0: torch.Tensor,
    labels: Any,
    variant: Preconditioning | str,
    generator: torch.Generator | None = None,
    *,
    schedule: DiscreteSigmaSchedule,
    warmup: LossWeightWarmup | None = None,
    sigma: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Weighted denoising loss E[λ(σ)·‖D(x0 + σn; σ) − x0‖²] of one batch (EDM §5), mean over all elements.

    Args:
        model_fn: ``F(x_in, c_noise, labels) -> tensor`` shaped like ``x_in`` (``c_noise``: ``(B,)`` float32).
        x0: Clean images ``(B, C, H, W)`` (scaled to [−1, 1]).
        labels: Passed through to ``model_fn`` (class labels or ``None``).
        variant: A :class:`Preconditioning` or its variant name (``"vp"``, ``"edm"``, ``"fdm"`` with defaults).
        generator: Random source for σ and noise.
        schedule: The diffusers schedule the model will be sampled on (bounds and VP timesteps).
        warmup: Optional :class:`LossWeightWarmup`; λ is clamped to its current w_max. The caller steps it.
        sigma: Optional fixed noise levels ``(B,)`` (otherwise :func:`sample_training_sigmas`).
        noise: Optional fixed standard-normal noise shaped like ``x0``.

    Returns:
        ``(loss, stats)``: a scalar loss in x0's compute dtype, and detached ``stats`` with ``sigma`` ``(B,)``,
        ``weight`` ``(B,)`` (after any clamp), ``loss_per_sample`` ``(B,)`` and ``max_weight`` (float or ``None``).

    Example:
        >>> import torch
        >>> from inertia.core.diffusion.precond import DiscreteSigmaSchedule, alphas_cumprod_for_schedule
        >>> sched = DiscreteSigmaSchedule(alphas_cumprod_for_schedule())
        >>> x0 = torch.zeros(2, 3, 4, 4)
        >>> loss, stats = denoising_loss(lambda x, c, y: torch.zeros_like(x), x0, None, "edm",
        ...                              torch.Generator().manual_seed(0), schedule=sched)
        >>> bool(torch.isfinite(loss)), tuple(stats["sigma"].shape)
        (True, (2,))
    """
    precond = variant if isinstance(variant, Preconditioning) else Preconditioning(variant)
    if x0.ndim < 2:
        raise ValueError(f"`x0` must have a batch dimension and at least one more, got shape {tuple(x0.shape)}.")
    x0c = x0.to(compute_dtype(x0.dtype))
    batch = x0c.shape[0]
    if sigma is None:
        sigma = sample_training_sigmas(precond, schedule, batch, generator, x0c.device)
    sigma = torch.as_tensor(sigma, device=x0c.device).to(torch.float64).reshape(-1).expand(batch)
    if noise is None:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(x0c.shape, generator=generator, device=gen_device, dtype=x0c.dtype).to(x0c.device)
    x_hat = x0c + per_sample(sigma.to(x0c.dtype), x0c) * noise.to(x0c.dtype)  # x̂ = x0 + σ·n
    denoised = precond.denoise(model_fn, x_hat, sigma, labels)
    weight = precond.loss_weight(sigma)
    if warmup is not None:
        weight = warmup.clamp(weight)  # FDM warm-up clamp
    per_elem = per_sample(weight.to(x0c.dtype), x0c) * (denoised - x0c) ** 2
    loss = per_elem.mean()
    stats = {
        "sigma": sigma.detach(),
        "weight": weight.detach(),
        "loss_per_sample": per_elem.detach().flatten(1).mean(1),
        "max_weight": None if warmup is None else warmup.max_weight,
    }
    return loss, stats
