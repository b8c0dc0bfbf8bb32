"""k-diffusion's noise-level schedules ("sigmas"), transcribed for the sampler peers.

Source: crowsonkb/k-diffusion 0.1.1.post1 (the registry's release, December 2023), ``k_diffusion/sampling.py``
(``append_zero``, ``get_sigmas_karras``, ``get_sigmas_exponential``, ``get_sigmas_polyexponential``,
``get_sigmas_vp``) and ``k_diffusion/external.py`` (``DiscreteSchedule.get_sigmas``: the model's own training noise
levels, interpolated in log σ, which is what ComfyUI calls the "normal" scheduler). Every schedule returns a
decreasing float32 tensor of ``n`` noise levels followed by a final 0, so a sampler that evaluates the model once per
step makes ``n`` evaluations.

σ is k-diffusion's noise level of the variance-exploding state ``x = x0 + σ·ε``; for a variance-preserving model with
cumulative products ``ᾱ_t``, ``σ_t = sqrt((1 − ᾱ_t)/ᾱ_t)`` and ``x_ve = x_vp/sqrt(ᾱ_t)``.

Example:
    >>> sigmas = get_sigmas_karras(4, 0.03, 14.6)
    >>> [round(s, 3) for s in sigmas.tolist()]
    [14.6, 2.983, 0.428, 0.03, 0.0]
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "SCHEDULES",
    "append_zero",
    "discrete_sigmas",
    "get_sigmas",
    "get_sigmas_discrete",
    "get_sigmas_exponential",
    "get_sigmas_karras",
    "get_sigmas_polyexponential",
    "get_sigmas_vp",
]


def _check(n: int, sigma_min: float | None = None, sigma_max: float | None = None) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` (the number of noise levels before the final 0) must be an int >= 1, got {n!r}")
    if sigma_min is not None and sigma_max is not None and not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    """``sigmas`` followed by a 0 (the last step of every k-diffusion sampler goes to σ = 0)."""
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), eq. 5: ``σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ``, then 0."""
    _check(n, sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Noise levels evenly spaced in log σ (equal steps h in DPM-Solver's λ = −log σ), then 0."""
    _check(n, sigma_min, sigma_max)
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def get_sigmas_polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """log σ a power ``rho`` of a ramp from 1 to 0 between log σ_max and log σ_min (``rho=1`` is exponential)."""
    _check(n, sigma_min, sigma_max)
    ramp = torch.linspace(1, 0, n) ** rho
    return append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def get_sigmas_vp(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """The continuous VP SDE's noise levels (Song et al. 2021) at t evenly spaced from 1 to ``eps_s``, then 0."""
    _check(n)
    t = torch.linspace(1, eps_s, n)
    # σ(t)² = exp(β_d t²/2 + β_min t) − 1 for the linear-β VP SDE (Karras et al. 2022, Table 1)
    return append_zero(torch.sqrt(torch.exp(beta_d * t**2 / 2 + beta_min * t) - 1))


def discrete_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The training noise levels ``sqrt((1 − ᾱ_t)/ᾱ_t)`` of a discrete VP model, increasing with t, float32."""
    alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float32)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def get_sigmas_discrete(n: int, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The model's own noise levels at ``n`` timesteps evenly spaced from the last training step to 0, then 0.

    k-diffusion's ``DiscreteSchedule.get_sigmas(n)``: fractional timesteps interpolate log σ linearly between the two
    neighbouring training levels.
    """
    _check(n)
    log_sigmas = discrete_sigmas(alphas_cumprod).log()
    t = torch.linspace(len(log_sigmas) - 1, 0, n)
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    return append_zero(((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp())


SCHEDULES = ("discrete", "karras", "exponential", "polyexponential", "vp")
"""Names :func:`get_sigmas` knows."""


def get_sigmas(name: str, n: int, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Schedule ``name`` with ``n`` levels (then 0) for a VP model, between its own σ_min and σ_max.

    ``"discrete"`` is :func:`get_sigmas_discrete`; ``"karras"`` (ρ = 7), ``"exponential"`` and ``"polyexponential"``
    (ρ = 1) run between the model's smallest and largest training σ, as ComfyUI and A1111 do; ``"vp"`` ignores the
    model (it is the continuous VP SDE's own schedule).
    """
    if name not in SCHEDULES:
        raise ValueError(f"`name` must be one of {', '.join(SCHEDULES)}, got {name!r}")
    if name == "discrete":
        return get_sigmas_discrete(n, alphas_cumprod)
    if name == "vp":
        return get_sigmas_vp(n)
    levels = discrete_sigmas(alphas_cumprod)
    sigma_min, sigma_max = float(levels.min()), float(levels.max())
    if name == "karras":
        return get_sigmas_karras(n, sigma_min, sigma_max)
    if name == "exponential":
        return get_sigmas_exponential(n, sigma_min, sigma_max)
    return get_sigmas_polyexponential(n, sigma_min, sigma_max)
