"""Shared pieces of the k-diffusion adapter tests: a Gaussian problem with a known answer, and reference samplers.

The reference samplers transcribe the published update rules of k-diffusion's ``k_diffusion/sampling.py``
(crowsonkb/k-diffusion: ``sample_dpmpp_2m``, ``sample_dpmpp_3m_sde`` with ``eta=0`` and ``sample_lms``), reduced to
the deterministic update, so that ``beta=1`` can be checked against plain DPM-Solver++(2M)/(3M) and plain LMS/PLMS.
k-diffusion itself cannot be imported here (its utils import torchvision).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from scipy import integrate

MU, STD = 0.3, 0.5
"""The data distribution of the test problem: every element is N(MU, STD²)."""


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor, **_: object) -> torch.Tensor:
    """The exact denoiser E[x0 | x] for x = x0 + σ·n with x0 ~ N(MU, STD²): MU + STD²/(STD² + σ²)·(x − MU)."""
    s = sigma.reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype)
    return MU + STD**2 / (STD**2 + s**2) * (x - MU)


def exact_solution(x: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
    """The probability-flow ODE dx/dσ = (x − D)/σ solved exactly: (x − MU)/sqrt(STD² + σ²) is constant."""
    return MU + (x - MU) * (math.sqrt(STD**2 + sigma_to**2) / math.sqrt(STD**2 + sigma_from**2))


def starting_sample(batch: int = 3, sigma: float = 10.0, shape: tuple[int, ...] = (2, 4, 4)) -> torch.Tensor:
    """Seeded float64 noise at level ``sigma``."""
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * sigma


Denoiser = Callable[..., torch.Tensor]


# --- transcribed from k-diffusion's sampling.py (crowsonkb/k-diffusion), deterministic parts only ----------------


def reference_dpmpp_2m(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """k-diffusion ``sample_dpmpp_2m``'s update rule."""
    s_in = x.new_ones([x.shape[0]])
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    sigma_fn = lambda t: t.neg().exp()  # noqa: E731
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def reference_dpmpp_3m(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """k-diffusion ``sample_dpmpp_3m_sde``'s update rule with ``eta=0`` (no noise: DPM-Solver++(3M))."""
    s_in = x.new_ones([x.shape[0]])
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h  # h * (eta + 1) with eta = 0
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * d
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def _linear_multistep_coeff(order: int, t, i: int, j: int) -> float:
    def fn(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j == k:
                continue
            prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]


def reference_lms(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, order: int = 4) -> torch.Tensor:
    """k-diffusion ``sample_lms``: on a grid uniform in σ its coefficients are the Adams-Bashforth (PLMS) ones."""
    s_in = x.new_ones([x.shape[0]])
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        d = (x - denoised) / sigmas[i]  # to_d
        ds.append(d)
        if len(ds) > order:
            ds.pop(0)
        cur_order = min(i + 1, order)
        coeffs = [_linear_multistep_coeff(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
        x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
    return x
