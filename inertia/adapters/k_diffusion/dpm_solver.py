"""Heavy-ball DPM-Solver++(2M) and (3M) as k-diffusion sampler functions (adapter over :mod:`..samplers.dpm_momentum`).

Paper: Wizadwongsa et al., "Diffusion Sampling with Momentum for Mitigating Divergence Artifacts", ICLR 2024
(arXiv 2307.11118), §4.1 and App. H ("DPM-Solver++ w/ HB"), on DPM-Solver++ (Lu et al., arXiv 2211.01095).

In k-diffusion's variables (x, σ) with λ = −log σ and h = λ_{i+1} − λ_i, a step is

    x_{i+1} = (σ_{i+1}/σ_i)·x_i − (e^{−h} − 1)·v,      v ← (1−β)·v + β·U        (DPM-Solver++ eq. 5; paper eq. 13)

with U the 2M or 3M combination of the last data predictions. These are the steps
`MomentumDPMSolverMultistepScheduler` takes (``solver_type="midpoint"`` for 2M, ``"heun"`` for 3M, whose second
step is the heun 2M step as in k-diffusion's 3M sampler): the first step is first order with no momentum, and the
step to σ = 0 returns the denoised output. β = 1 is plain DPM-Solver++(2M)/(3M).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import trange

from inertia.adapters.k_diffusion.common import Callback, Denoiser, denoise, prepare_call
from inertia.core.samplers.heavy_ball_dpm import dpmpp_2m_combination, dpmpp_3m_combination, dpmpp_update, heavy_ball
from inertia.core.samplers.plms_momentum import validate_beta

__all__ = ["sample_hb_dpmpp_2m", "sample_hb_dpmpp_3m"]


def step_betas(beta: float | Sequence[float], steps: int) -> list[float]:
    """β for each of ``steps`` steps: one number for all, or a sequence of exactly one value per step.

    Raises:
        ValueError: naming ``beta`` when a value is outside (0, 1] or the sequence has the wrong length.
    """
    if isinstance(beta, Sequence) and not isinstance(beta, str):
        if len(beta) != steps:
            raise ValueError(
                f"`beta` as a sequence must hold one value per step, len(sigmas) - 1 = {steps}, got {len(beta)}."
            )
        return [validate_beta(b, f"beta[{i}]") for i, b in enumerate(beta)]
    return [validate_beta(beta, "beta")] * steps


def _sample_hb_dpmpp(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None,
    callback: Callback | None,
    disable: bool | None,
    beta: float | Sequence[float],
    order: int,
) -> torch.Tensor:
    call = prepare_call(model, x, sigmas, extra_args, callback)
    levels = call.levels
    betas = step_betas(beta, len(levels) - 1)
    sample = x.to(call.work_dtype)
    velocity: torch.Tensor | None = None  # heavy-ball state: local to this call, elementwise over the batch
    history: list[torch.Tensor] = []  # previous data predictions, newest first
    steps: list[float] = []  # their λ steps h, newest first
    second_order = "midpoint" if order == 2 else "heun"  # 3M's second step is heun 2M, as in k-diffusion's 3M
    for i in trange(len(levels) - 1, disable=disable):
        denoised = denoise(model, call, sample, sigmas, i, callback, keep=True)
        sigma, sigma_next = levels[i], levels[i + 1]
        if sigma_next == 0.0:
            sample = denoised  # the step to σ = 0: x_0 = D (first order, no momentum)
            continue
        h = math.log(sigma) - math.log(sigma_next)  # h = λ_{i+1} − λ_i with λ = −log σ
        ratio = sigma_next / sigma  # σ_{i+1}/σ_i = e^{−h}
        if not history:
            sample = dpmpp_update(sample, denoised, h, ratio)  # first step: DPM-Solver++(1), no momentum
        else:
            if order == 3 and len(history) == 2:
                combination = dpmpp_3m_combination(denoised, history[0], history[1], h, steps[0], steps[1])
            else:
                combination = dpmpp_2m_combination(denoised, history[0], h, steps[0], second_order)
            velocity = heavy_ball(velocity, combination, betas[i])  # v ← (1−β)·v + β·U (paper eq. 13, App. H)
            sample = dpmpp_update(sample, velocity, h, ratio)
        history = [denoised, *history][: order - 1]
        steps = [h, *steps][: order - 1]
    return sample.to(call.dtype)


@torch.no_grad()
def sample_hb_dpmpp_2m(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    beta: float | Sequence[float] = 0.8,
) -> torch.Tensor:
    """DPM-Solver++(2M) with heavy-ball momentum β on its data-prediction combination (paper App. H).

    Args:
        model: the denoiser, called as ``model(x, sigma * s_in, **extra_args)`` and returning x0.
        x: the starting sample, already at noise level ``sigmas[0]`` (e.g. ``noise * sigmas[0]``).
        sigmas: strictly decreasing noise levels ≥ 0, usually ending in 0 (k-diffusion's ``get_sigmas_*``).
        extra_args: keyword arguments passed to every model call (e.g. ComfyUI's ``model_options``, ``seed``).
        callback: called after each model call with ``{"x", "i", "sigma", "sigma_hat", "denoised"}``.
        disable: tqdm's ``disable`` for the progress bar.
        beta: damping β ∈ (0, 1]; 1 = plain DPM-Solver++(2M), smaller = more damping of divergence artifacts. A
            sequence gives one β per step (``len(sigmas) - 1`` values; the first step and a step to σ = 0 take no
            momentum, so their entries are checked but unused): a per-step schedule, e.g. damping only early steps.

    Returns:
        The sample at ``sigmas[-1]``, in ``x``'s dtype; with a final σ of 0 it is the last denoised output.

    Raises:
        ValueError: for an invalid argument, naming it (e.g. ``beta`` outside (0, 1], ``sigmas`` not decreasing).

    Example:
        >>> import torch
        >>> from inertia.k_diffusion import sample_hb_dpmpp_2m
        >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)   # exact x0 for data ~ N(0, 1)
        >>> sigmas = torch.tensor([10.0, 3.0, 1.0, 0.3, 0.0])
        >>> out = sample_hb_dpmpp_2m(denoiser, torch.ones(2, 3) * 10.0, sigmas, disable=True, beta=0.8)
        >>> out.shape
        torch.Size([2, 3])
    """
    return _sample_hb_dpmpp(model, x, sigmas, extra_args, callback, disable, beta, order=2)


@torch.no_grad()
def sample_hb_dpmpp_3m(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    beta: float | Sequence[float] = 0.8,
) -> torch.Tensor:
    """DPM-Solver++(3M) with heavy-ball momentum β on its data-prediction combination.

    The 3M combination is damped like the 2M one (inertia's extension: the paper damps 2M only); the second step
    uses the heun 2M combination with the same velocity. Arguments, return value and errors as in
    :func:`sample_hb_dpmpp_2m`; ``beta=1`` is plain DPM-Solver++(3M) (k-diffusion's ``sample_dpmpp_3m_sde`` with
    ``eta=0``).

    Example:
        >>> import torch
        >>> from inertia.k_diffusion import sample_hb_dpmpp_3m
        >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)
        >>> sigmas = torch.tensor([10.0, 3.0, 1.0, 0.3, 0.0])
        >>> sample_hb_dpmpp_3m(denoiser, torch.ones(2, 3) * 10.0, sigmas, disable=True, beta=0.9).shape
        torch.Size([2, 3])
    """
    return _sample_hb_dpmpp(model, x, sigmas, extra_args, callback, disable, beta, order=3)
