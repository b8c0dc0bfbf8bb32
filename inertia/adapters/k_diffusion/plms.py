"""HB, GHVB and Nesterov momentum on PLMS (Adams-Bashforth) as k-diffusion sampler functions.

Paper: Wizadwongsa et al., "Diffusion Sampling with Momentum for Mitigating Divergence Artifacts", ICLR 2024
(arXiv 2307.11118), §4 and Algorithms 1-2. The direction u comes from :func:`inertia.samplers.momentum_direction`,
the same core `MomentumPLMSScheduler` calls.

The paper's ODE is dx̄/dσ̄ = ε(x̄, σ̄) (eq. 2) with x̄ = x/α and σ̄ = σ/α. k-diffusion's variables are already in that
form (α = 1): x̄ = x, σ̄ = σ and ε = (x − D(x, σ))/σ for the denoiser D. Every step is

    u_i = direction(ε_i, state)                      # HB (eq. 13-14), GHVB (eq. 15-19) or NT (App. E)
    x_{i+1} = x_i + (σ_{i+1} − σ_i)·u_i

including the step to σ = 0, as the scheduler (and k-diffusion's own linear multistep sampler) takes it: a
multistep step to 0 is well defined, and replacing it by the denoised output would make the last step first order.
β = 1 is plain PLMS-k (Adams-Bashforth with lower orders while the history is short) for every method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tqdm.auto import trange

from inertia.adapters.k_diffusion.common import Callback, Denoiser, denoise, prepare_call
from inertia.core.samplers.plms_momentum import MomentumState, momentum_direction, validate_beta, validate_order

__all__ = ["sample_ghvb", "sample_hb", "sample_nt"]


def _sample_plms(
    method: str,
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None,
    callback: Callback | None,
    disable: bool | None,
    order: int,
    beta: float,
) -> torch.Tensor:
    call = prepare_call(model, x, sigmas, extra_args, callback)
    order = validate_order(order, "order")
    beta = validate_beta(beta, "beta")
    levels = call.levels
    sample = x.to(call.work_dtype)
    state = MomentumState()  # local to this call; every update is elementwise, so batch items never mix
    for i in trange(len(levels) - 1, disable=disable):
        denoised = denoise(model, call, sample, sigmas, i, callback)
        sigma, sigma_next = levels[i], levels[i + 1]
        eps = (sample - denoised) / sigma  # ε = (x − D)/σ: the ODE's dx/dσ (paper eq. 2 with α = 1)
        u = momentum_direction(method, state, eps, order, beta)
        sample = sample + u * (sigma_next - sigma)  # x̄_{i+1} = x̄_i + δ_i·u_i
    return sample.to(call.dtype)


@torch.no_grad()
def sample_hb(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    order: int = 4,
    beta: float = 0.8,
) -> torch.Tensor:
    """PLMS-k with Polyak heavy ball (paper eq. 13-14, Algorithm 1): v ← (1−β)·v + β·Σ b_i ε_{i−j}; u = v.

    First order for every β < 1 (paper Theorem 1); the steps of ``MomentumPLMSScheduler(momentum_method="hb")``.

    Arguments, return value and errors as in :func:`sample_ghvb`.

    Example:
        >>> import torch
        >>> from inertia.k_diffusion import sample_hb
        >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)   # exact x0 for data ~ N(0, 1)
        >>> sigmas = torch.linspace(4.0, 0.0, 9)
        >>> sample_hb(denoiser, torch.ones(2, 3) * 4.0, sigmas, disable=True, order=2, beta=0.8).shape
        torch.Size([2, 3])
    """
    return _sample_plms("hb", model, x, sigmas, extra_args, callback, disable, order, beta)


@torch.no_grad()
def sample_ghvb(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    order: int = 4,
    beta: float = 0.8,
) -> torch.Tensor:
    """PLMS-k with generalized heavy ball (paper eq. 15-19, Algorithm 2): v ← (1−β)·v + β·ε; u = Σ C_{k,j}(β)·v_j.

    Keeps order k for every β (paper Theorem 2); the papers' "GHVB 3.8" is ``order=4, beta=0.8``. The steps of
    ``MomentumPLMSScheduler(momentum_method="ghvb")``.

    Args:
        model: the denoiser, called as ``model(x, sigma * s_in, **extra_args)`` and returning x0.
        x: the starting sample, already at noise level ``sigmas[0]`` (e.g. ``noise * sigmas[0]``).
        sigmas: strictly decreasing noise levels ≥ 0, usually ending in 0. PLMS's coefficients assume equal steps,
            so it is most accurate on grids close to uniform in σ (as in the paper); it runs on any grid.
        extra_args: keyword arguments passed to every model call.
        callback: called after each model call with ``{"x", "i", "sigma", "sigma_hat", "denoised"}``.
        disable: tqdm's ``disable`` for the progress bar.
        order: the PLMS order k, 1-5.
        beta: damping β ∈ (0, 1]; 1 = plain PLMS-k, smaller = more damping of divergence artifacts.

    Returns:
        The sample at ``sigmas[-1]``, in ``x``'s dtype.

    Raises:
        ValueError: for an invalid argument, naming it (e.g. ``order`` outside 1-5, ``beta`` outside (0, 1]).

    Example:
        >>> import torch
        >>> from inertia.k_diffusion import sample_ghvb
        >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)   # exact x0 for data ~ N(0, 1)
        >>> sigmas = torch.linspace(4.0, 0.0, 9)
        >>> out = sample_ghvb(denoiser, torch.ones(2, 3) * 4.0, sigmas, disable=True, order=4, beta=0.8)
        >>> out.shape
        torch.Size([2, 3])
    """
    return _sample_plms("ghvb", model, x, sigmas, extra_args, callback, disable, order, beta)


@torch.no_grad()
def sample_nt(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    order: int = 4,
    beta: float = 0.8,
) -> torch.Tensor:
    """PLMS-k with Nesterov momentum (paper App. E): p = Σ b_j ε_{i−j}; v ← (1−β)·v + β·p; u = (1−β)·v + β·p.

    First order for β < 1, like HB; the steps of ``MomentumPLMSScheduler(momentum_method="nt")``.

    Arguments, return value and errors as in :func:`sample_ghvb`.

    Example:
        >>> import torch
        >>> from inertia.k_diffusion import sample_nt
        >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)   # exact x0 for data ~ N(0, 1)
        >>> sigmas = torch.linspace(4.0, 0.0, 9)
        >>> sample_nt(denoiser, torch.ones(2, 3) * 4.0, sigmas, disable=True, order=3, beta=0.9).shape
        torch.Size([2, 3])
    """
    return _sample_plms("nt", model, x, sigmas, extra_args, callback, disable, order, beta)
