"""Plumbing and helpers shared by the transcribed k-diffusion samplers (see :mod:`benchmarks.peers.k_diffusion`).

Source: crowsonkb/k-diffusion 0.1.1.post1, ``k_diffusion/sampling.py`` (``to_d``, ``get_ancestral_step``,
``default_noise_sampler``; the churn of ``sample_euler``/``sample_heun``/``sample_dpm_2``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from benchmarks.peers.brownian import BrownianNoiseSampler

__all__ = ["Callback", "Model", "NoiseSampler", "get_ancestral_step", "to_d"]

Model = Callable[..., torch.Tensor]
NoiseSampler = Callable[[Any, Any], torch.Tensor]
Callback = Callable[[dict[str, Any]], Any]


class ModelCall:
    """The plumbing every sampler shares: extra_args, the per-item σ vector and the callback."""

    def __init__(self, model: Model, x: torch.Tensor, extra_args: Mapping[str, Any] | None, callback: Any) -> None:
        self.model, self.callback = model, callback
        self.extra_args = {} if extra_args is None else extra_args
        self.s_in = x.new_ones([x.shape[0]])

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.model(x, sigma * self.s_in, **self.extra_args)

    def report(
        self, x: torch.Tensor, i: int, sigma: torch.Tensor, sigma_hat: torch.Tensor, denoised: torch.Tensor
    ) -> None:
        if self.callback is not None:
            self.callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE's derivative ``dx/dσ = (x − D)/σ`` (Karras et al. 2022, eq. 3), σ broadcast over the batch."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return (x - denoised) / sigma.reshape(*sigma.shape, *[1] * (x.ndim - sigma.ndim))


def get_ancestral_step(sigma_from: Any, sigma_to: Any, eta: float = 1.0) -> tuple[Any, Any]:
    """``(σ_down, σ_up)`` of an ancestral step from ``sigma_from`` to ``sigma_to``.

    Step deterministically down to σ_down, then add σ_up of fresh noise, with σ_down² + σ_up² = σ_to²; ``eta = 1``
    is DDPM's posterior variance σ_up² = σ_to²(σ_from² − σ_to²)/σ_from² (Ho et al. 2020; Song et al. 2021, DDIM
    eq. 16 in σ form), ``eta = 0`` is the deterministic step.
    """
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    return (sigma_to**2 - sigma_up**2) ** 0.5, sigma_up


def fresh_noise(x: torch.Tensor) -> NoiseSampler:
    return lambda sigma, sigma_next: torch.randn_like(x)


def brownian_noise(x: torch.Tensor, sigmas: torch.Tensor) -> NoiseSampler:
    positive = sigmas[sigmas > 0]
    return BrownianNoiseSampler(x, float(positive.min()), float(sigmas.max()))


def _churn(sigmas: torch.Tensor, i: int, s_churn: float, s_tmin: float, s_tmax: float) -> float:
    """Karras et al. (2022), Algorithm 2, line 4: γ_i = min(S_churn/N, √2 − 1) inside [S_tmin, S_tmax], else 0."""
    return min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0


def churned(
    x: torch.Tensor, sigmas: torch.Tensor, i: int, s_churn: float, s_tmin: float, s_tmax: float, s_noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 2, lines 5-6: raise the noise level to σ̂ = σ_i(1 + γ_i) by adding fresh noise."""
    gamma = _churn(sigmas, i, s_churn, s_tmin, s_tmax)
    eps = torch.randn_like(x) * s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def lam(sigma: Any) -> Any:
    return torch.as_tensor(sigma).log().neg()  # λ = −log σ


def sigma_of(t: Any) -> Any:
    return t.neg().exp()
