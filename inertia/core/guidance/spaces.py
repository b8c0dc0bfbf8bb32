"""Conversions between a denoiser's raw output and its denoised (x0) prediction.

Every supported model's input is ``x = a·x0 + s·ε``:

- VP models (SD 1.5/2.x, SDXL, the embedded digits model): ``a = √ᾱ_t``, ``s = √(1 − ᾱ_t)``. Euler-type
  schedulers keep VE latents but ``scale_model_input`` divides by √(σ² + 1), so the denoiser still sees this VP form.
- Flow models (SD3, Flux): ``x = (1 − σ)x0 + σε``, i.e. ``a = 1 − σ``, ``s = σ``; the output is ``u = ε − x0``.

``a`` and ``s`` broadcast against the sample (shape ``(B, 1, ...)``). Pure tensors; no diffusers import.

Example:
    >>> import torch
    >>> from inertia.core.guidance.spaces import from_x0, to_x0
    >>> x, eps = torch.randn(2, 4), torch.randn(2, 4)
    >>> a, s = torch.full((2, 1), 0.6), torch.full((2, 1), 0.8)
    >>> x0 = to_x0(eps, x, a, s, "epsilon")
    >>> torch.allclose(from_x0(x0, x, a, s, "epsilon"), eps, atol=1e-6)
    True
"""

from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")
"""Model output kinds: noise ε, velocity v = aε − s·x0, the clean sample x0, and flow velocity u = ε − x0."""

_TINY = 1e-12


def _check(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")


def to_x0(
    output: torch.Tensor, sample: torch.Tensor, a: torch.Tensor, s: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """Denoised prediction x0 from a model output at input ``sample = a·x0 + s·ε``."""
    _check(prediction_type)
    if prediction_type == "epsilon":
        return (sample - s * output) / a.clamp_min(_TINY)  # x0 = (x − sε)/a
    if prediction_type == "v_prediction":
        return a * sample - s * output  # x0 = a·x − s·v (a² + s² = 1)
    if prediction_type == "flow":
        return sample - s * output  # x0 = x − σu
    return output


def from_x0(
    x0: torch.Tensor, sample: torch.Tensor, a: torch.Tensor, s: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """The model output that corresponds to the denoised prediction ``x0`` at input ``sample``."""
    _check(prediction_type)
    if prediction_type == "sample":
        return x0
    if prediction_type == "flow":
        return (sample - x0) / s.clamp_min(_TINY)  # u = (x − x0)/σ
    eps = (sample - a * x0) / s.clamp_min(_TINY)  # ε = (x − a·x0)/s
    if prediction_type == "epsilon":
        return eps
    return a * eps - s * x0  # v = aε − s·x0


def vp_sigma(timestep: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """σ of a VP model at (possibly fractional) training timesteps, float64, shape like ``timestep``.

    σ_train(t) = √((1 − ᾱ_t)/ᾱ_t) is interpolated linearly between integer timesteps, as EulerDiscrete does, so
    the fractional timesteps of Karras-type schedules map to the σ the scheduler used. Tensor ops only.
    """
    table = alphas_cumprod.to(device=timestep.device, dtype=torch.float64)
    sigmas = ((1 - table) / table.clamp_min(_TINY)).sqrt()
    t = timestep.to(torch.float64).clamp(0, len(table) - 1)
    low = t.floor().clamp(max=len(table) - 2).long()
    frac = t - low
    return sigmas[low] * (1 - frac) + sigmas[low + 1] * frac  # linear interpolation in σ


def vp_alpha_sigma(timestep: torch.Tensor, alphas_cumprod: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, s)`` of a VP model at (possibly fractional) training timesteps, shape like ``timestep``.

    With σ from :func:`vp_sigma`, ``a = 1/√(1 + σ²)`` and ``s = σ/√(1 + σ²)``. Tensor ops only (no host sync).
    """
    sigma = vp_sigma(timestep, alphas_cumprod)
    norm = (1 + sigma**2).rsqrt()
    return norm.float(), (sigma * norm).float()


def flow_alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, s) = (1 − σ, σ)`` of a flow-matching model."""
    sigma = sigma.float()
    return 1 - sigma, sigma
