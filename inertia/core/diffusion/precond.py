"""Math core of the VP / EDM / FDM preconditionings on a diffusers discrete VP schedule (pure torch, no diffusers).

The embedded image model is trained with one of three preconditionings. Papers: Karras, Aittala, Aila & Laine,
"Elucidating the Design Space of Diffusion-Based Generative Models" (EDM), NeurIPS 2022, arXiv 2206.00364, Table 1;
Wu, Zhou, Kawaguchi & Zhang, "Fast Diffusion Model" (FDM), arXiv 2306.06991, with its reference code sail-sg/FDM
(``training/networks.py``, ``training/loss.py``), whose classes the names below refer to.

- ``"vp"``: EDM's ``VPPrecond`` (EDM Table 1, "VP" column): the network predicts ε from ``x_t``.
- ``"edm"``: EDM's ``EDMPrecond`` with σ_data = 0.5.
- ``"fdm"``: FDM: the base framework with only ``c_in`` replaced by the momentum mean coefficient
  ``s(σ) = exp(−m·B)(1 + m·B)``. Base ``"edm"`` (default, ``FDM_EDMPrecond``) or ``"vp"`` (``FDM_VPPrecond``).

Everything is expressed in the EDM "σ world": a diffusers timestep ``t`` with cumulative product ᾱ_t maps to
``σ = sqrt((1 − ᾱ_t)/ᾱ_t)`` and the sample ``x_t = sqrt(ᾱ_t)·(x0 + σ·n)`` maps to ``x̂ = x_t / sqrt(ᾱ_t) = x0 + σ·n``.
The denoiser is ``D(x̂; σ) = c_skip·x̂ + c_out·F(c_in·x̂, c_noise)`` and the ε a VP scheduler expects is
``ε = (x̂ − D)/σ`` (equal to ``(x_t − sqrt(ᾱ)·D)/sqrt(1 − ᾱ)`` in VP space).

Example:
    >>> import torch
    >>> schedule = DiscreteSigmaSchedule(alphas_cumprod_for_schedule(1000, 0.00085, 0.012, "scaled_linear"))
    >>> round(schedule.sigma_max, 2)
    14.61
    >>> precond = Preconditioning("fdm", fdm_multiplier=2.0)
    >>> coeffs = precond.coefficients(torch.tensor([0.002, 1.0]))
    >>> [round(v, 4) for v in coeffs.c_in.tolist()]   # s(σ_min) = 1
    [1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from inertia.core.tensors import compute_dtype, per_sample
from inertia.core.validation import check_choice, check_range

ModelFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
"""The network as preconditioning calls it: ``model_fn(x_in, c_noise, labels) -> F`` (EDM §5, Table 1)."""

__all__ = [
    "BETA_SCHEDULES",
    "EDM_P_MEAN",
    "EDM_P_STD",
    "EDM_SIGMA_MAX",
    "EDM_SIGMA_MIN",
    "FDM_BASES",
    "PRECONDITIONINGS",
    "SIGMA_DATA",
    "VP_BETA_D",
    "VP_BETA_MIN",
    "VP_EPSILON_T",
    "VP_M",
    "DiscreteSigmaSchedule",
    "PrecondCoefficients",
    "Preconditioning",
    "alphas_cumprod_for_schedule",
    "fdm_scale",
    "vp_sigma",
    "vp_time",
]

PRECONDITIONINGS = ("vp", "edm", "fdm")
"""Preconditioning variants the embedded model can be trained with."""
FDM_BASES = ("edm", "vp")
"""Base frameworks FDM's ``c_in`` replacement is implemented on (sail-sg/FDM ``FDM_EDMPrecond``, ``FDM_VPPrecond``)."""
BETA_SCHEDULES = ("linear", "scaled_linear")
"""diffusers beta schedules supported by :func:`alphas_cumprod_for_schedule`."""

SIGMA_DATA = 0.5  # EDM σ_data
EDM_SIGMA_MIN = 0.002  # EDM / EDM-FDM σ_min (EDM Table 1)
EDM_SIGMA_MAX = 80.0  # EDM / EDM-FDM σ_max (EDM Table 1)
EDM_P_MEAN = -1.2  # ln σ ~ N(P_mean, P_std²) (EDM Table 1, training)
EDM_P_STD = 1.2
VP_BETA_MIN = 0.1  # continuous VP β_min (EDM Table 1), also FDM's β_min
VP_BETA_D = 19.9  # continuous VP β_d (EDM Table 1), also FDM's β_d
VP_EPSILON_T = 1e-5  # VP's smallest training time ε_t (EDM Table 1)
VP_M = 1000  # VP's c_noise scale M (EDM Table 1)


# ----------------------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------------
# Schedules: diffusers discrete VP <-> EDM σ
# ----------------------------------------------------------------------------------------------------------------


def alphas_cumprod_for_schedule(
    num_train_timesteps: int = 1000,
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    beta_schedule: str = "scaled_linear",
) -> torch.Tensor:
    """ᾱ_t of a diffusers beta schedule, computed exactly as diffusers' schedulers do (float32), returned as float64.

    Args:
        num_train_timesteps: Number of discrete training timesteps N (≥ 2).
        beta_start: β_0, in (0, 1).
        beta_end: β_{N−1}, in (0, 1).
        beta_schedule: ``"linear"`` (DDPM, 1e−4..0.02) or ``"scaled_linear"`` (Stable Diffusion, 0.00085..0.012).

    Returns:
        A float64 tensor of shape ``(N,)``.

    Example:
        >>> ac = alphas_cumprod_for_schedule(1000, 1e-4, 0.02, "linear")
        >>> ac.shape, ac.dtype
        (torch.Size([1000]), torch.float64)
    """
    if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, int) or num_train_timesteps < 2:
        raise ValueError(f"`num_train_timesteps` must be an integer in [2, inf), got {num_train_timesteps!r}.")
    for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
            raise ValueError(f"`{name}` must be a number in (0, 1), got {value!r}.")
    check_choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
    if beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    else:
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float64)


def vp_sigma(t: torch.Tensor, beta_min: float = VP_BETA_MIN, beta_d: float = VP_BETA_D) -> torch.Tensor:
    """Continuous VP σ_vp(t) = sqrt(exp(½β_d t² + β_min t) − 1) (EDM Table 1)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.sqrt(torch.expm1(0.5 * beta_d * t**2 + beta_min * t))


def vp_time(sigma: torch.Tensor, beta_min: float = VP_BETA_MIN, beta_d: float = VP_BETA_D) -> torch.Tensor:
    """Inverse of :func:`vp_sigma`: t_vp(σ) = (sqrt(β_min² + 2β_d·ln(1+σ²)) − β_min)/β_d (EDM Table 1)."""
    sigma = torch.as_tensor(sigma)
    return (torch.sqrt(beta_min**2 + 2.0 * beta_d * torch.log1p(sigma**2)) - beta_min) / beta_d


class DiscreteSigmaSchedule:
    """A diffusers discrete VP schedule seen in EDM's σ world.

    σ_t = sqrt((1 − ᾱ_t)/ᾱ_t), x̂ = x_t / sqrt(ᾱ_t) = x_t·sqrt(1 + σ²). Fractional timesteps interpolate linearly in
    ln σ between the two neighbouring integer timesteps (as diffusers' Euler/DPM schedulers do for the inverse map).
    All schedule tables are kept in float64 on the CPU; per-device copies are cached.

    Args:
        alphas_cumprod: ᾱ_t for t = 0 … N−1, strictly decreasing, in (0, 1).

    Example:
        >>> import torch
        >>> s = DiscreteSigmaSchedule(alphas_cumprod_for_schedule(1000, 1e-4, 0.02, "linear"))
        >>> t = torch.tensor([0.0, 10.5, 999.0])
        >>> torch.allclose(s.timestep_at(s.sigma_at(t)), t.double())
        True
    """

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        ac = torch.as_tensor(alphas_cumprod).detach().to("cpu", torch.float64).flatten()
        if ac.numel() < 2 or not bool(((ac > 0) & (ac < 1)).all()) or not bool((ac[1:] < ac[:-1]).all()):
            raise ValueError(
                "`alphas_cumprod` must be a strictly decreasing 1-d tensor of at least 2 values in (0, 1), "
                f"got shape {tuple(ac.shape)} with range [{ac.min().item():.3g}, {ac.max().item():.3g}]."
            )
        self.alphas_cumprod = ac
        self.sigmas = torch.sqrt((1.0 - ac) / ac)
        self.log_sigmas = torch.log(self.sigmas)
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def num_train_timesteps(self) -> int:
        """Number of discrete timesteps N."""
        return int(self.sigmas.numel())

    @property
    def sigma_min(self) -> float:
        """σ at t = 0."""
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        """σ at t = N − 1."""
        return float(self.sigmas[-1])

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            self._cache[device] = (self.sigmas.to(device), self.log_sigmas.to(device))
        return self._cache[device]

    def sigma_at(self, timestep: torch.Tensor) -> torch.Tensor:
        """σ(t) in float64 for integer or fractional timesteps in [0, N−1] (values outside are clamped)."""
        t = torch.as_tensor(timestep)
        _, log_sigmas = self._tables(t.device)
        t = t.to(torch.float64).clamp(0, self.num_train_timesteps - 1)
        low = t.floor().long().clamp(max=self.num_train_timesteps - 2)
        frac = t - low
        # fractional timesteps: linear interpolation in ln σ
        return torch.exp((1 - frac) * log_sigmas[low] + frac * log_sigmas[low + 1])

    def timestep_at(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep t(σ) (float64), the inverse of :meth:`sigma_at`; σ is clamped to the schedule's range."""
        sigma = torch.as_tensor(sigma)
        _, log_sigmas = self._tables(sigma.device)
        log_sigma = torch.log(sigma.to(torch.float64)).clamp(float(log_sigmas[0]), float(log_sigmas[-1]))
        idx = torch.searchsorted(log_sigmas, log_sigma.contiguous()).clamp(1, self.num_train_timesteps - 1)
        low, high = log_sigmas[idx - 1], log_sigmas[idx]
        return (idx - 1).to(torch.float64) + (log_sigma - low) / (high - low)

    def vp_to_edm(self, sample: torch.Tensor, timestep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t, t → (x̂, σ): x̂ = x_t·sqrt(1 + σ²) = x_t/sqrt(ᾱ) (σ has shape ``(B,)``, float64)."""
        sigma = self.sigma_at(timestep).reshape(-1)
        scale = torch.sqrt(1.0 + sigma**2).to(compute_dtype(sample.dtype))
        return sample.to(scale.dtype) * per_sample(scale, sample), sigma

    def edm_to_vp(self, sample_hat: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x̂, σ → x_t = x̂ / sqrt(1 + σ²) = sqrt(ᾱ)·x̂."""
        sigma = torch.as_tensor(sigma, device=sample_hat.device).to(torch.float64).reshape(-1)
        scale = torch.rsqrt(1.0 + sigma**2).to(compute_dtype(sample_hat.dtype))
        return sample_hat.to(scale.dtype) * per_sample(scale, sample_hat)


# ----------------------------------------------------------------------------------------------------------------
# Preconditioning
# ----------------------------------------------------------------------------------------------------------------


def fdm_scale(
    sigma: torch.Tensor,
    multiplier: float = 2.0,
    sigma_min: float = EDM_SIGMA_MIN,
    sigma_max: float = EDM_SIGMA_MAX,
    beta_min: float = VP_BETA_MIN,
    beta_d: float = VP_BETA_D,
) -> torch.Tensor:
    """FDM's momentum mean coefficient s(σ) = exp(−m·B)(1 + m·B), B = β_min·t̃ + ½β_d·t̃² (FDM's ``s``).

    t̃ = (σ − σ_min)/(σ_max − σ_min) is σ mapped *linearly* to [0, 1] (not the VP time). **Deviation from the paper:**
    t̃ is clamped into [0, 1], so σ beyond the FDM range get s(σ_min) = 1 or s(σ_max). The paper's code never sees such
    σ because its sampler clamps σ to the network's range; a diffusers VP schedule can reach σ ≈ 157 (linear
    1e−4..0.02) or start below σ_min.

    Example:
        >>> import torch
        >>> s = fdm_scale(torch.tensor([0.002, 40.0, 80.0]), multiplier=2.0)
        >>> [f"{v:.3g}" for v in (s * torch.sqrt(torch.tensor([0.002, 40.0, 80.0]) ** 2 + 0.25)).tolist()]
        ['0.5', '1.52', '3.15e-06']
    """
    sigma = torch.as_tensor(sigma)
    t = ((sigma - sigma_min) / (sigma_max - sigma_min)).clamp(0.0, 1.0)  # t̃(σ), clamped (deviation, see above)
    mb = multiplier * (beta_min * t + 0.5 * beta_d * t**2)  # m·B(t̃), as FDM_EDMPrecond.s()
    return torch.exp(-mb) * (1.0 + mb)


@dataclass(frozen=True)
class PrecondCoefficients:
    """``c_skip, c_out, c_in, c_noise`` at a batch of σ, each shaped like σ (what `Preconditioning` computes).

    Example:
        >>> import torch
        >>> c = Preconditioning("vp").coefficients(torch.tensor([0.5, 2.0]))
        >>> c.c_skip.tolist(), c.c_out.tolist()   # VP: D = x̂ − σ·F
        ([1.0, 1.0], [-0.5, -2.0])
    """

    c_skip: torch.Tensor
    c_out: torch.Tensor
    c_in: torch.Tensor
    c_noise: torch.Tensor


@dataclass(frozen=True)
class Preconditioning:
    """One of the VP / EDM / FDM preconditionings (EDM Table 1; FDM's ``FDM_*Precond`` classes).

    - ``vp``: c_skip = 1, c_out = −σ, c_in = 1/sqrt(σ²+1), c_noise = (M−1)·t_vp(σ) with M = 1000.
    - ``edm``: c_skip = σd²/(σ²+σd²), c_out = σσd/sqrt(σ²+σd²), c_in = 1/sqrt(σ²+σd²), c_noise = ¼ ln σ.
    - ``fdm`` (``fdm_base="edm"``, EDM-FDM): as ``edm`` but c_in = s(σ) with t̃ over σ ∈ [0.002, 80].
    - ``fdm`` (``fdm_base="vp"``, VP-FDM): as ``vp`` but c_in = s(σ) with t̃ over σ ∈ [σ_vp(1e−5), σ_vp(1)]
      ≈ [0.0010, 152.17].

    The VE-FDM row of the paper (c_skip 1, c_out σ, c_in 1 → s(σ) with σ ∈ [0.02, 100] and **m fixed to 1**, c_noise
    ln(σ/2)) is not implemented: a VE model does not fit a diffusers VP schedule's ε convention as cheaply.

    Coefficients are computed in float64 from σ; callers cast them to their compute dtype.

    Args:
        variant: ``"vp"``, ``"edm"`` or ``"fdm"``.
        fdm_multiplier: FDM's m > 0 (default 2.0, as the paper's ``train.py``; the class default there is 1.0).
        fdm_base: Base framework of FDM, ``"edm"`` (default) or ``"vp"``. Ignored for the other variants.
        sigma_data: σ_data of the EDM base (0.5).

    Example:
        >>> import torch
        >>> p = Preconditioning("edm")
        >>> c = p.coefficients(torch.tensor([0.5]))
        >>> c.c_skip.item(), round(c.c_out.item(), 6), round(c.c_in.item(), 6)
        (0.5, 0.353553, 1.414214)
    """

    variant: str = "edm"
    fdm_multiplier: float = 2.0
    fdm_base: str = "edm"
    sigma_data: float = SIGMA_DATA

    def __post_init__(self) -> None:
        check_choice("preconditioning", self.variant, PRECONDITIONINGS)
        check_choice("fdm_base", self.fdm_base, FDM_BASES)
        check_range("fdm_multiplier", self.fdm_multiplier, 0, low_open=True)
        check_range("sigma_data", self.sigma_data, 0, low_open=True)

    @property
    def base(self) -> str:
        """The base framework whose c_skip/c_out/c_noise, loss weight and σ sampling are used: ``"vp"`` or ``"edm"``."""
        return self.fdm_base if self.variant == "fdm" else self.variant

    @property
    def fdm_sigma_range(self) -> tuple[float, float]:
        """σ range mapped to t̃ ∈ [0, 1] by FDM's c_in (the base's σ_min/σ_max in sail-sg/FDM)."""
        if self.base == "vp":
            lo, hi = vp_sigma(torch.tensor([VP_EPSILON_T, 1.0])).tolist()
            return lo, hi
        return EDM_SIGMA_MIN, EDM_SIGMA_MAX

    def coefficients(self, sigma: torch.Tensor) -> PrecondCoefficients:
        """c_skip, c_out, c_in, c_noise at σ (float64)."""
        sigma = torch.as_tensor(sigma).to(torch.float64)
        sd = self.sigma_data
        if self.base == "vp":
            c_skip = torch.ones_like(sigma)
            c_out = -sigma
            c_in = torch.rsqrt(sigma**2 + 1.0)
            c_noise = (VP_M - 1) * vp_time(sigma)
        else:
            c_skip = sd**2 / (sigma**2 + sd**2)
            c_out = sigma * sd * torch.rsqrt(sigma**2 + sd**2)
            c_in = torch.rsqrt(sigma**2 + sd**2)
            c_noise = 0.25 * torch.log(sigma)
        if self.variant == "fdm":
            lo, hi = self.fdm_sigma_range
            c_in = fdm_scale(sigma, self.fdm_multiplier, lo, hi)  # FDM replaces only c_in
        return PrecondCoefficients(c_skip, c_out, c_in, c_noise)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """λ(σ): VP 1/σ²; EDM (σ² + σd²)/(σσd)² (EDM Table 1); FDM uses its base's weight (float64)."""
        sigma = torch.as_tensor(sigma).to(torch.float64)
        if self.base == "vp":
            return 1.0 / sigma**2
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def eps_coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) with ε = a·x̂ + b·F, from ε = (x̂ − D)/σ and D = c_skip·x̂ + c_out·F (float64).

        Written out per base to avoid the cancellation of ``x̂ − D`` at small σ: VP gives ε = F exactly.
        """
        sigma = torch.as_tensor(sigma).to(torch.float64)
        if self.base == "vp":
            return torch.zeros_like(sigma), torch.ones_like(sigma)
        sd = self.sigma_data
        # (1 − c_skip)/σ = σ/(σ²+σd²), c_out/σ = σd/sqrt(σ²+σd²)
        return sigma / (sigma**2 + sd**2), -sd * torch.rsqrt(sigma**2 + sd**2)

    def denoise(
        self, model_fn: ModelFn, sample_hat: torch.Tensor, sigma: torch.Tensor, labels: Any = None
    ) -> torch.Tensor:
        """D(x̂; σ) = c_skip·x̂ + c_out·F(c_in·x̂, c_noise) (EDM §5, Table 1), in x̂'s compute dtype.

        ``model_fn(x_in, c_noise, labels) -> F`` gets ``c_noise`` of shape ``(B,)`` in float32.
        """
        x_hat, out, c = self._run(model_fn, sample_hat, sigma, labels)
        return per_sample(c.c_skip.to(x_hat.dtype), x_hat) * x_hat + per_sample(c.c_out.to(x_hat.dtype), x_hat) * out

    def epsilon(
        self, model_fn: ModelFn, sample_hat: torch.Tensor, sigma: torch.Tensor, labels: Any = None
    ) -> torch.Tensor:
        """ε = (x̂ − D(x̂; σ))/σ, the prediction a VP ε-scheduler expects, in x̂'s compute dtype."""
        x_hat, out, _ = self._run(model_fn, sample_hat, sigma, labels)
        a, b = self.eps_coefficients(self._sigma_for(sigma, x_hat))
        return per_sample(a.to(x_hat.dtype), x_hat) * x_hat + per_sample(b.to(x_hat.dtype), x_hat) * out

    @staticmethod
    def _sigma_for(sigma: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=x_hat.device).to(torch.float64).reshape(-1)
        return sigma.expand(x_hat.shape[0]) if sigma.numel() == 1 else sigma

    def _run(
        self, model_fn: Callable[..., torch.Tensor], sample_hat: torch.Tensor, sigma: torch.Tensor, labels: Any
    ) -> tuple[torch.Tensor, torch.Tensor, PrecondCoefficients]:
        x_hat = sample_hat.to(compute_dtype(sample_hat.dtype))
        c = self.coefficients(self._sigma_for(sigma, x_hat))
        out = model_fn(per_sample(c.c_in.to(x_hat.dtype), x_hat) * x_hat, c.c_noise.to(torch.float32), labels)
        return x_hat, out.to(x_hat.dtype), c


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------
