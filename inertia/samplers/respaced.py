"""Math core of re-spaced, bounded heavy-ball DPM-Solver++(2M) (issue 16; see docs/methods/respaced-dpm-solver.md).

Pure torch/python: no diffusers import. Three parts, each neutral at its default:

1. **Step placement.** Keep the host schedule's first and last nonzero noise level and its step count, and place the
   interior levels by Karras et al.'s ρ-spacing (EDM, arXiv 2206.00364, eq. 5) in σ̄ = σ/α:
   σ̄_i = (σ̄_max^{1/ρ} + i/(n−1)·(σ̄_min^{1/ρ} − σ̄_max^{1/ρ}))^ρ. ``rho=None`` keeps the host's levels.
2. **A bound on the 2M correction.** DPM-Solver++(2M) steps with U = D0 + w·(D0 − D1), w = ½·h/h_last (Lu et al.
   2022, arXiv 2211.01095, Alg. 2). After a short step followed by a long one w grows without limit and the
   extrapolation overshoots; ``max_weight`` clips w (``None`` = unbounded, the stock solver).
3. **Heavy ball** on U, v ← (1−β)·v + β·U (Wizadwongsa et al. 2024, arXiv 2307.11118, eq. 13, App. H), as in
   :mod:`inertia.samplers.dpm_momentum`; β = 1 is no momentum.

:func:`recommended_settings` is the ``"auto"`` rule. The study (``benchmarks/sampler_study.py``, BENCHMARKS.md §14)
found no setting that wins both on its exact-denoiser problems and on a trained network, so ``"auto"`` is the stock
solver for now; the parts are opt-in.

Example:
    >>> import torch
    >>> sigmas = torch.tensor([14.6, 7.3, 4.1, 2.5, 1.6, 1.1, 0.69, 0.4])
    >>> [round(s, 2) for s in respace_sigmas(sigmas, 1.0).tolist()]
    [14.6, 12.57, 10.54, 8.51, 6.49, 4.46, 2.43, 0.4]
    >>> bounded_2m_combination(torch.ones(2), torch.zeros(2), h=2.0, h_last=0.5, max_weight=0.5).tolist()
    [1.5, 1.5]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["RespacedSettings", "bounded_2m_combination", "recommended_settings", "respace_sigmas"]

Scalar = float | torch.Tensor


def respace_sigmas(sigmas: torch.Tensor, rho: float | None) -> torch.Tensor:
    """ρ-spaced noise levels with the same count, first and last entry as ``sigmas`` (float64, CPU).

    Args:
        sigmas: descending positive noise levels σ̄ (no terminal 0), at least one.
        rho: the spacing exponent ρ > 0 (1 = uniform in σ̄; large ρ tends to uniform in log σ̄); None returns
            ``sigmas`` unchanged (as float64).

    Raises:
        ValueError: if ``rho`` is not a finite number > 0 or ``sigmas`` is not descending and positive.
    """
    levels = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu().reshape(-1)
    if rho is None:
        return levels
    if isinstance(rho, bool) or not isinstance(rho, int | float) or not math.isfinite(rho) or rho <= 0:
        raise ValueError(f"`rho` must be a finite number > 0 or None, got {rho!r}.")
    if levels.numel() == 0 or bool((levels <= 0).any()) or bool((levels[1:] >= levels[:-1]).any()):
        raise ValueError(f"`sigmas` must be positive and strictly descending, got {levels.tolist()}.")
    count = levels.numel()
    if count < 3:
        return levels
    high, low = float(levels[0]), float(levels[-1])
    ramp = torch.linspace(0.0, 1.0, count, dtype=torch.float64)
    # σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ   (Karras et al. eq. 5)
    out = (high ** (1.0 / rho) + ramp * (low ** (1.0 / rho) - high ** (1.0 / rho))) ** rho
    out[0], out[-1] = high, low  # exact end points (no rounding drift)
    return out


def bounded_2m_combination(
    m0: torch.Tensor, m1: torch.Tensor, h: Scalar, h_last: Scalar, max_weight: float | None
) -> torch.Tensor:
    """U = D0 + w·(D0 − D1) of DPM-Solver++(2M) (midpoint) with w = ½·h/h_last clipped at ``max_weight``.

    ``h`` and ``h_last`` may be python floats or 0-dim tensors; the clip is a tensor op (no host sync).
    ``max_weight=None`` gives the stock weight ½·h/h_last.
    """
    weight = 0.5 * h / h_last  # U = D0 + ½·D1 with D1 = (h/h_last)·(m0 − m1)  (Lu et al. Alg. 2)
    if max_weight is not None:
        weight = torch.clamp(weight, max=max_weight) if isinstance(weight, torch.Tensor) else min(weight, max_weight)
    return m0 + weight * (m0 - m1)


@dataclass(frozen=True)
class RespacedSettings:
    """What ``"auto"`` resolves to: heavy-ball β, spacing ρ (None = host levels) and the 2M weight bound."""

    beta: float
    rho: float | None
    max_weight: float | None


def recommended_settings(guidance_scale: float, num_inference_steps: int) -> RespacedSettings:
    """The ``"auto"`` settings for a guidance scale and step count (fitted on the study's tuning problems).

    Args:
        guidance_scale: the classifier-free guidance scale (1 = none).
        num_inference_steps: the number of sampler steps.

    Raises:
        ValueError: for a negative or non-finite guidance scale or a step count below 1.
    """
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float):
        raise ValueError(f"`guidance_scale` must be a finite number >= 0, got {guidance_scale!r}.")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"`guidance_scale` must be a finite number >= 0, got {guidance_scale!r}.")
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be an integer >= 1, got {num_inference_steps!r}.")
    # The study found no setting that wins on the exact-denoiser problems *and* on a trained network (BENCHMARKS.md
    # §14): the exact-denoiser winner (ρ = 1, bound 0.5) is 2-3x worse than the host steps on the digits model. Until
    # one does, "auto" is the stock solver; pass sigma_rho / max_correction_weight / momentum_beta explicitly.
    del guidance_scale, num_inference_steps
    return RespacedSettings(beta=1.0, rho=None, max_weight=None)
