"""k-diffusion's DPM-Solver++ samplers, transcribed (see :mod:`benchmarks.peers.k_diffusion` for the source).

DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095) integrates the ODE exactly in its linear part and approximates the
data prediction D by a polynomial in λ = −log σ: one step from σ to σ_next with h = λ_next − λ is
``x_next = (σ_next/σ)·x − (e^{−h} − 1)·D̃`` (the paper's eq. 5, first order with D̃ = D). The SDE variants inject
noise at eta times the rate of the reverse SDE (the paper's App. B).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import trange

from benchmarks.peers.k_diffusion_common import (
    Callback,
    Model,
    ModelCall,
    NoiseSampler,
    brownian_noise,
    fresh_noise,
    get_ancestral_step,
    lam,
    sigma_of,
    to_d,
)

__all__ = [
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_2s_ancestral",
    "sample_dpmpp_3m_sde",
    "sample_dpmpp_sde",
]


@torch.no_grad()
def sample_dpmpp_2s_ancestral(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Ancestral sampling with DPM-Solver++(2S) steps (Lu et al. 2022, Algorithm 1, r = 1/2) down to σ_down."""
    call = ModelCall(model, x, extra_args, callback)
    noise_sampler = fresh_noise(x) if noise_sampler is None else noise_sampler
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = lam(sigmas[i]), lam(sigma_down)
            h = t_next - t
            s = t + h / 2
            # DPM-Solver++ first-order step to the midpoint: x_s = (σ_s/σ_t)·x − (e^{−h/2} − 1)·D (eq. 5 of the paper)
            x_mid = (sigma_of(s) / sigma_of(t)) * x - (-h / 2).expm1() * denoised
            denoised_mid = call(x_mid, sigma_of(s))
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised_mid  # full step with the midpoint's D
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_sde(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
    r: float = 1 / 2,
) -> torch.Tensor:
    """Stochastic DPM-Solver++ (two stages per step, each an ancestral DPM-Solver++(1) step with eta of noise)."""
    call = ModelCall(model, x, extra_args, callback)
    noise_sampler = brownian_noise(x, sigmas) if noise_sampler is None else noise_sampler
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = lam(sigmas[i]), lam(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        # stage 1: ancestral first-order step to λ_s = λ_t + r·h
        sd, su = get_ancestral_step(sigma_of(t), sigma_of(s), eta)
        s_down = lam(sd)
        x_2 = (sigma_of(s_down) / sigma_of(t)) * x - (t - s_down).expm1() * denoised
        x_2 = x_2 + noise_sampler(sigma_of(t), sigma_of(s)) * s_noise * su
        denoised_2 = call(x_2, sigma_of(s))
        # stage 2: ancestral step over the whole interval with D' = (1 − 1/(2r))·D + 1/(2r)·D_s (2nd-order combination)
        sd, su = get_ancestral_step(sigma_of(t), sigma_of(t_next), eta)
        t_down = lam(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (sigma_of(t_down) / sigma_of(t)) * x - (t - t_down).expm1() * denoised_d
        x = x + noise_sampler(sigma_of(t), sigma_of(t_next)) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): first-order start and last step, two-step otherwise."""
    call = ModelCall(model, x, extra_args, callback)
    old_denoised = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = lam(sigmas[i]), lam(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised  # DPM-Solver++(1)
        else:
            r = (t - lam(sigmas[i - 1])) / h  # r = h_{i−1}/h_i
            # D_i + (D_i − D_{i−1})/(2r): the linear extrapolation of the data prediction to the step's midpoint
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022, App. B): the 2M step of the SDE with eta times the ODE's noise rate.

    ``eta = 0`` is :func:`sample_dpmpp_2m`; the step to σ = 0 returns the denoised output.
    """
    if solver_type not in {"heun", "midpoint"}:
        raise ValueError(f"`solver_type` must be 'heun' or 'midpoint', got {solver_type!r}")
    call = ModelCall(model, x, extra_args, callback)
    noise_sampler = brownian_noise(x, sigmas) if noise_sampler is None else noise_sampler
    old_denoised = h_last = None
    h = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = lam(sigmas[i + 1]) - lam(sigmas[i])
            eta_h = eta * h
            decay = (-h - eta_h).expm1().neg()  # 1 − e^{−(1+η)h}
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + decay * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + (decay / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * decay * (1 / r) * (denoised - old_denoised)
            if eta:
                # noise of std σ_{i+1}·sqrt(1 − e^{−2ηh}): what the SDE injects over the step
                x = (
                    x
                    + noise_sampler(sigmas[i], sigmas[i + 1])
                    * sigmas[i + 1]
                    * (-2 * eta_h).expm1().neg().sqrt()
                    * s_noise
                )
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: the third-order multistep data-prediction step with eta of SDE noise.

    ``eta = 0`` is deterministic DPM-Solver++(3M) (Lu et al. 2022, App. A, with first- and second-order warm-up steps);
    the step to σ = 0 returns the denoised output.
    """
    call = ModelCall(model, x, extra_args, callback)
    noise_sampler = brownian_noise(x, sigmas) if noise_sampler is None else noise_sampler
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = lam(sigmas[i + 1]) - lam(sigmas[i])
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1  # φ₂-type weight of the first divided difference
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)  # first derivative, second-order accurate
                d2 = (d1_0 - d1_1) / (r0 + r1)  # second derivative
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            if eta:
                x = (
                    x
                    + noise_sampler(sigmas[i], sigmas[i + 1])
                    * sigmas[i + 1]
                    * (-2 * h * eta).expm1().neg().sqrt()
                    * s_noise
                )
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x
