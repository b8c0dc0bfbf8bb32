"""k-diffusion's samplers, transcribed as benchmark peers (what ComfyUI, Forge and A1111 users run).

Source: crowsonkb/k-diffusion 0.1.1.post1 (MIT; the registry's release, December 2023), ``k_diffusion/sampling.py``:
``sample_euler``, ``sample_euler_ancestral``, ``sample_heun``, ``sample_dpm_2``, ``sample_dpm_2_ancestral``,
``sample_lms``, ``sample_dpmpp_2s_ancestral``, ``sample_dpmpp_sde``, ``sample_dpmpp_2m``, ``sample_dpmpp_2m_sde`` and
``sample_dpmpp_3m_sde``, with their helpers ``to_d`` and ``get_ancestral_step``. Each function keeps k-diffusion's
signature ``sample_x(model: Model, x: torch.Tensor, sigmas: torch.Tensor, extra_args: Mapping[str, Any] | None = None, callback: Callback | None = None, disable: bool | None = None, **options)`` and update rule;
the code is written anew from the published rules and the papers they cite, and is tested against closed-form
answers (and, where the wheel is at hand, against the real functions: ``tests/bench_harness/peers``).

Why not the package itself: its ``k_diffusion/__init__.py`` imports every submodule, and ``utils`` imports
torchvision, whose registry wheels need the CUDA build of torch; ``sampling`` also imports torchsde and torchdiffeq.
Differences, all deliberate:

* The SDE samplers' default noise is :class:`~benchmarks.peers.brownian.BrownianNoiseSampler` (a seeded Brownian
  path in σ, like k-diffusion's torchsde ``BrownianTreeNoiseSampler``) instead of torchsde's tree; pass
  ``noise_sampler`` to choose. The ancestral samplers default to fresh ``torch.randn_like`` noise, as k-diffusion.
* ``dpm_fast`` and ``dpm_adaptive`` (DPM-Solver with its own λ grid / adaptive step size) are not transcribed: they do
  not take a sigma grid, and the adaptive one has no fixed NFE.

Notation: σ is the noise level of ``x = x0 + σ·ε``; ``model(x, σ·s_in)`` returns the denoised ``D(x, σ)``; the
probability-flow ODE is ``dx/dσ = (x − D)/σ`` (Karras et al. 2022, eq. 3 with σ(t) = t); λ = −log σ.

Example:
    >>> import torch
    >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)  # exact D for data ~ N(0, 1)
    >>> sigmas = torch.tensor([8.0, 2.0, 0.5, 0.1, 0.0])
    >>> x = torch.ones(2, 3) * 8.0
    >>> sample_dpmpp_2m(denoiser, x, sigmas, disable=True).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from scipy import integrate
from tqdm.auto import trange

from benchmarks.peers.brownian import BrownianNoiseSampler
from benchmarks.peers.k_diffusion_common import (
    Callback,
    Model,
    ModelCall,
    NoiseSampler,
    churned,
    fresh_noise,
    get_ancestral_step,
    to_d,
)
from benchmarks.peers.k_diffusion_dpmpp import (
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_dpmpp_2s_ancestral,
    sample_dpmpp_3m_sde,
    sample_dpmpp_sde,
)
from benchmarks.peers.k_diffusion_sigmas import (
    SCHEDULES,
    append_zero,
    get_sigmas,
    get_sigmas_discrete,
    get_sigmas_exponential,
    get_sigmas_karras,
    get_sigmas_polyexponential,
    get_sigmas_vp,
)

__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "BrownianNoiseSampler",
    "SamplerInfo",
    "append_zero",
    "get_ancestral_step",
    "get_sigmas",
    "get_sigmas_discrete",
    "get_sigmas_exponential",
    "get_sigmas_karras",
    "get_sigmas_polyexponential",
    "get_sigmas_vp",
    "linear_multistep_coeff",
    "sample_dpm_2",
    "sample_dpm_2_ancestral",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_2s_ancestral",
    "sample_dpmpp_3m_sde",
    "sample_dpmpp_sde",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
    "sample_lms",
    "to_d",
]


# ---------------------------------------------------------------------------------------------------------------------
# Karras et al. (2022) and DPM-Solver-2 type single-step samplers
# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def sample_euler(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Euler steps on the ODE, with optional churn (Karras et al. 2022, Algorithm 2 without the correction)."""
    call = ModelCall(model, x, extra_args, callback)
    for i in trange(len(sigmas) - 1, disable=disable):
        x, sigma_hat = churned(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = call(x, sigma_hat)
        call.report(x, i, sigmas[i], sigma_hat, denoised)
        x = x + to_d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)  # x_{i+1} = x̂ + (σ_{i+1} − σ̂)·d
    return x


@torch.no_grad()
def sample_heun(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Heun's method (Karras et al. 2022, Algorithm 2): Euler predictor, trapezoidal corrector; Euler into σ = 0."""
    call = ModelCall(model, x, extra_args, callback)
    for i in trange(len(sigmas) - 1, disable=disable):
        x, sigma_hat = churned(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = call(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        call.report(x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt  # Algorithm 2, line 8: no correction at σ = 0
        else:
            x_euler = x + d * dt
            d_next = to_d(x_euler, sigmas[i + 1], call(x_euler, sigmas[i + 1]))
            x = x + (d + d_next) / 2 * dt  # Algorithm 2, lines 9-11: average of the two slopes
    return x


@torch.no_grad()
def sample_dpm_2(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Midpoint method with the midpoint at the geometric mean of σ̂ and σ_{i+1} (DPM-Solver-2 inspired)."""
    call = ModelCall(model, x, extra_args, callback)
    for i in trange(len(sigmas) - 1, disable=disable):
        x, sigma_hat = churned(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = call(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        call.report(x, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            # midpoint in λ = −log σ (DPM-Solver-2, Lu et al. 2022, Algorithm 1 with r1 = 1/2)
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_mid = x + d * (sigma_mid - sigma_hat)
            d_mid = to_d(x_mid, sigma_mid, call(x_mid, sigma_mid))
            x = x + d_mid * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(
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
    """Ancestral sampling with Euler steps: Euler down to σ_down, then σ_up of noise (see :func:`get_ancestral_step`)."""
    call = ModelCall(model, x, extra_args, callback)
    noise_sampler = fresh_noise(x) if noise_sampler is None else noise_sampler
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(
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
    """Ancestral sampling with :func:`sample_dpm_2`'s midpoint steps down to σ_down."""
    call = ModelCall(model, x, extra_args, callback)
    noise_sampler = fresh_noise(x) if noise_sampler is None else noise_sampler
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(torch.as_tensor(sigma_down).log(), 0.5).exp()
            x_mid = x + d * (sigma_mid - sigmas[i])
            d_mid = to_d(x_mid, sigma_mid, call(x_mid, sigma_mid))
            x = x + d_mid * (sigma_down - sigmas[i])
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


# ---------------------------------------------------------------------------------------------------------------------
# Linear multistep
# ---------------------------------------------------------------------------------------------------------------------


def linear_multistep_coeff(order: int, t: Any, i: int, j: int) -> float:
    """∫_{t_i}^{t_{i+1}} of the Lagrange basis polynomial of node ``t_{i−j}`` over the nodes ``t_i … t_{i−order+1}``.

    The coefficient of the derivative ``d_{i−j}`` in the variable-step Adams-Bashforth step (the derivative history is
    interpolated by a polynomial in σ and integrated over the step), computed by quadrature as k-diffusion does.
    """
    if order - 1 > i:
        raise ValueError(f"`order` {order} is too high for step {i} (at most {i + 1})")

    def basis(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if k != j:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    disable: bool | None = None,
    order: int = 4,
) -> torch.Tensor:
    """Linear multistep (variable-step Adams-Bashforth of ``order``, lower orders while the history is short)."""
    call = ModelCall(model, x, extra_args, callback)
    nodes = sigmas.detach().cpu().numpy()
    history: list[torch.Tensor] = []  # derivatives, oldest first
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = call(x, sigmas[i])
        history = [*history, to_d(x, sigmas[i], denoised)][-order:]
        call.report(x, i, sigmas[i], sigmas[i], denoised)
        current = min(i + 1, order)
        coeffs = [linear_multistep_coeff(current, nodes, i, j) for j in range(current)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(history), strict=True))  # x_{i+1} = x_i + Σ_j c_j d_{i−j}
    return x


# ---------------------------------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplerInfo:
    """A sampler and what a benchmark needs to know about it.

    Attributes:
        function: the sampler.
        evals_per_step: model calls per step except the last (the step to σ = 0 always takes one).
        stochastic: whether it injects noise at its default settings (ancestral and SDE samplers).
        brownian: whether its default noise is a Brownian path (so a fixed ``noise_sampler`` gives strong
            convergence); the ancestral samplers use fresh noise unless given one.
    """

    function: Callable[..., torch.Tensor]
    evals_per_step: int
    stochastic: bool
    brownian: bool = False

    def nfe(self, steps: int) -> int:
        """Model calls of a run with ``steps`` steps ending at σ = 0."""
        return self.evals_per_step * (steps - 1) + 1

    def steps_for_nfe(self, nfe: int) -> int:
        """The most steps whose run makes at most ``nfe`` model calls (``nfe`` itself for one-call samplers)."""
        return max(1, (nfe - 1) // self.evals_per_step + 1)


SAMPLERS: dict[str, SamplerInfo] = {
    "euler": SamplerInfo(sample_euler, 1, False),
    "euler_ancestral": SamplerInfo(sample_euler_ancestral, 1, True),
    "heun": SamplerInfo(sample_heun, 2, False),
    "dpm_2": SamplerInfo(sample_dpm_2, 2, False),
    "dpm_2_ancestral": SamplerInfo(sample_dpm_2_ancestral, 2, True),
    "lms": SamplerInfo(sample_lms, 1, False),
    "dpmpp_2s_ancestral": SamplerInfo(sample_dpmpp_2s_ancestral, 2, True),
    "dpmpp_sde": SamplerInfo(sample_dpmpp_sde, 2, True, brownian=True),
    "dpmpp_2m": SamplerInfo(sample_dpmpp_2m, 1, False),
    "dpmpp_2m_sde": SamplerInfo(sample_dpmpp_2m_sde, 1, True, brownian=True),
    "dpmpp_3m_sde": SamplerInfo(sample_dpmpp_3m_sde, 1, True, brownian=True),
}
"""k-diffusion's samplers by name (the function is ``sample_<name>``), ComfyUI's names too."""
