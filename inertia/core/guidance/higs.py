"""History-guided sampling (HiGS) as pure tensor functions, with a dependency-free orthonormal 2-D DCT.

HiGS (Sadat, Salehi & Weber, "History-Guided Sampling for Plug-and-Play Enhancement of Diffusion Models", ICLR 2026,
arXiv 2509.22300; §4.2, Eqs. 5-9, Alg. 1-3), per step k with time t_k ∈ [0, 1] (1 = noise) and the prediction D_k
the sampler would use::

    first step:  g = α D_0, return D_0              # zero-initialised EMA after one update
    Δ  = D_k − g                                    # Eq. 5, g = Σ_{i<k} α(1 − α)^{k−1−i} D_i
    Δ  = Δ − (1 − η)·(⟨Δ, D_k⟩/‖D_k‖²) D_k          # Eq. 7, only when η < 1
    γ  = w_h √((t_k − t_min)/(t_max − t_min)) on t_min < t_k ≤ t_max, else 0      # Eq. 6
    g ← α D_k + (1 − α) g                           # the history takes the unmodified D_k
    Δ  = iDCT2(H ⊙ DCT2(Δ)),  H = sigmoid(λ(R − R_c))                              # Eq. 8
    return D_k + γ Δ                                # Eq. 9

The DCT acts on the last two dims (H, W) per batch element and channel. No host syncs.

Example:
    >>> import torch
    >>> from inertia.core.guidance.higs import dct2, idct2
    >>> x = torch.randn(1, 3, 8, 6)
    >>> torch.allclose(idct2(dct2(x)), x, atol=1e-5)
    True
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from inertia.core.guidance.apg import sample_dims

_TINY = 1e-12


@lru_cache(maxsize=32)
def _dct_matrix_cached(n: int, device: torch.device, dtype: torch.dtype, inference: bool) -> torch.Tensor:
    # `inference` is part of the key: a matrix built under `torch.inference_mode()` is an inference tensor, which
    # autograd refuses to save, so grad-enabled calls get their own copy.
    return dct_matrix(n, dtype=torch.float64).to(device=device, dtype=dtype)


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``C`` (n × n): ``C[k, i] = c_k cos(π(2i + 1)k / 2n)``, c_0 = √(1/n), else √(2/n)."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(dtype)


def _matrices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        _dct_matrix_cached(x.shape[-2], x.device, x.dtype, torch.is_inference_mode_enabled()),
        _dct_matrix_cached(x.shape[-1], x.device, x.dtype, torch.is_inference_mode_enabled()),
    )


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dims (``torch_dct.dct_2d(norm="ortho")``): ``C_H X C_Wᵀ``."""
    rows, cols = _matrices(x)
    return rows @ x @ cols.T


def idct2(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2`: ``C_Hᵀ Y C_W`` (the matrices are orthogonal)."""
    rows, cols = _matrices(y)
    return rows.T @ y @ cols


@lru_cache(maxsize=32)
def _highpass_cached(
    height: int, width: int, cutoff: float, sharpness: float, device: torch.device, dtype: torch.dtype, inference: bool
) -> torch.Tensor:  # `inference` keys the cache as in `_dct_matrix_cached`
    return highpass_mask(height, width, cutoff, sharpness).to(device=device, dtype=dtype)


def highpass_mask(height: int, width: int, cutoff: float, sharpness: float) -> torch.Tensor:
    """``H[i, j] = sigmoid(λ(R − R_c))`` with ``R = √((i/H)² + (j/W)²)`` over DCT indices (0 = DC), float64."""
    i = torch.arange(height, dtype=torch.float64).unsqueeze(1) / height
    j = torch.arange(width, dtype=torch.float64).unsqueeze(0) / width
    radius = (i**2 + j**2).sqrt()
    return torch.sigmoid(sharpness * (radius - cutoff))


def dct_highpass(x: torch.Tensor, cutoff: float, sharpness: float) -> torch.Tensor:
    """Keeps the high frequencies of ``x`` over its last two dims (Eq. 8): ``iDCT2(H ⊙ DCT2(x))``."""
    mask = _highpass_cached(
        x.shape[-2], x.shape[-1], float(cutoff), float(sharpness), x.device, x.dtype, torch.is_inference_mode_enabled()
    )
    return idct2(mask * dct2(x))


def higs_schedule(t: torch.Tensor, weight: float, t_min: float, t_max: float) -> torch.Tensor:
    """γ(t) = w_h √((t − t_min)/(t_max − t_min)) on t_min < t ≤ t_max, else 0 (Eq. 6, square-root schedule)."""
    t = t.float()
    inside = (t > t_min) & (t <= t_max)
    ramp = ((t - t_min) / (t_max - t_min)).clamp(min=0.0, max=1.0).sqrt()
    return torch.where(inside, weight * ramp, torch.zeros_like(ramp))


def remove_parallel(delta: torch.Tensor, pred: torch.Tensor, eta: float) -> torch.Tensor:
    """``Δ − (1 − η)Δ∥`` with ``Δ∥ = (⟨Δ, D⟩/⟨D, D⟩) D`` per sample, computed in float64 (Eq. 7)."""
    dims = sample_dims(delta)
    d, p = delta.double(), pred.double()
    coefficient = (d * p).sum(dim=dims, keepdim=True) / (p * p).sum(dim=dims, keepdim=True).clamp_min(_TINY)
    return (d - (1.0 - eta) * coefficient * p).to(delta.dtype)


def higs_update(
    pred: torch.Tensor,
    history: torch.Tensor | None,
    t: torch.Tensor,
    *,
    weight: float,
    ema: float,
    t_min: float,
    t_max: float,
    eta: float,
    cutoff: float | None,
    sharpness: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One HiGS step: the corrected prediction and the new history ``g``.

    Args:
        pred: D_k, shape ``(B, ...)`` with spatial last two dims when ``cutoff`` is set.
        history: g from the previous step, or None at the first step.
        t: normalised time per sample, shape ``(B,)``, 1 = noise.
        weight, ema, t_min, t_max, eta, cutoff, sharpness: see :class:`inertia.guidance.HiGS`.
    """
    if history is None:
        return pred, ema * pred  # no history yet: g = αD_0 (zero-initialised EMA)
    delta = pred - history  # Eq. 5
    if eta < 1.0:
        delta = remove_parallel(delta, pred, eta)  # Eq. 7
    gamma = higs_schedule(t, weight, t_min, t_max).to(pred.dtype).view(-1, *([1] * (pred.ndim - 1)))  # Eq. 6
    new_history = ema * pred + (1.0 - ema) * history  # EMA of unmodified predictions
    if cutoff is not None:
        delta = dct_highpass(delta, cutoff, sharpness)  # Eq. 8
    return pred + gamma * delta, new_history  # Eq. 9
