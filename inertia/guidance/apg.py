"""Adaptive projected guidance (APG) and classifier-free guidance as pure tensor functions.

APG (Sadat, Hilliges & Weber, "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models",
ICLR 2025, arXiv 2410.02416), in the order of the paper's Algorithm 1 code (momentum, then clipping, then projection)::

    Δ  = D_c − D_u                     # CFG update direction
    M  = Δ + β·M ;  Δ = M              # momentum *sum* (no (1 − β) factor); skipped when β = 0
    Δ  = Δ · min(1, r / ‖Δ‖)           # per-sample norm clipping; skipped when r = ∞
    Δ∥ = ⟨Δ, û⟩û,  û = D_c/‖D_c‖       # projection onto the conditional prediction, in float64
    D  = D_c + (w − 1)(Δ⊥ + η Δ∥)

Norms and inner products are per sample over all non-batch dims. No host syncs.

Example:
    >>> import torch
    >>> from inertia.guidance.apg import apg_guidance, cfg_guidance
    >>> cond, uncond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    >>> out, momentum = apg_guidance(cond, uncond, 7.5, None, eta=1.0, momentum=0.0, norm_threshold=float("inf"))
    >>> torch.equal(out, cfg_guidance(cond, uncond, 7.5))  # neutral settings are CFG bit for bit
    True
"""

from __future__ import annotations

import math

import torch

_TINY = 1e-12


def sample_dims(x: torch.Tensor) -> tuple[int, ...]:
    """All non-batch dims of ``x``: norms and projections are per sample."""
    return tuple(range(1, x.ndim))


def cfg_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``D_u + w (D_c − D_u)``, the exact expression (and rounding) of diffusers' pipelines."""
    return uncond + scale * (cond - uncond)


def project(vector: torch.Tensor, onto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample split ``vector = parallel + orthogonal`` with respect to ``onto``, computed in float64.

    Returns both parts in ``vector``'s dtype. A zero ``onto`` gives a zero parallel part.
    """
    dims = sample_dims(vector)
    v, u = vector.double(), onto.double()
    unit = u / torch.linalg.vector_norm(u, dim=dims, keepdim=True).clamp_min(_TINY)  # û = D_c/‖D_c‖
    parallel = (v * unit).sum(dim=dims, keepdim=True) * unit  # Δ∥ = ⟨Δ, û⟩û
    orthogonal = v - parallel  # Δ⊥ = Δ − Δ∥
    return parallel.to(vector.dtype), orthogonal.to(vector.dtype)


def clip_norm(vector: torch.Tensor, threshold: float) -> torch.Tensor:
    """``vector · min(1, r/‖vector‖)`` per sample (APG's "rescaling")."""
    norm = torch.linalg.vector_norm(vector, dim=sample_dims(vector), keepdim=True)
    return vector * (threshold / norm.clamp_min(_TINY)).clamp(max=1.0)


def apg_update(
    delta: torch.Tensor,
    cond: torch.Tensor,
    momentum_buffer: torch.Tensor | None,
    *,
    eta: float,
    momentum: float,
    norm_threshold: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """APG's processed update ``U = Δ⊥ + ηΔ∥`` and the new momentum buffer.

    Args:
        delta: raw CFG direction ``D_c − D_u``.
        cond: conditional prediction ``D_c`` (the projection basis).
        momentum_buffer: ``M`` from the previous step, or None at the first step (``M = 0``).
        eta: parallel weight η.
        momentum: β; 0 keeps no buffer (returns None).
        norm_threshold: r; ``inf`` disables clipping.
    """
    new_buffer = None
    if momentum != 0.0:
        # M_k = Δ_k + β M_{k−1} (Alg. 1: a running sum, no (1 − β) damping)
        delta = delta if momentum_buffer is None else delta + momentum * momentum_buffer
        new_buffer = delta
    if math.isfinite(norm_threshold):
        delta = clip_norm(delta, norm_threshold)
    if eta != 1.0:
        parallel, orthogonal = project(delta, cond)
        delta = orthogonal + eta * parallel
    return delta, new_buffer


def apg_guidance(
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scale: float,
    momentum_buffer: torch.Tensor | None,
    *,
    eta: float,
    momentum: float,
    norm_threshold: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """APG's guided prediction ``D_c + (w − 1)U`` (paper formulation) and the new momentum buffer.

    Written as ``D_u + wΔ + (w − 1)(U − Δ)``, which is the same quantity and makes neutral settings (U = Δ) round
    exactly like :func:`cfg_guidance`.
    """
    delta = cond - uncond
    update, new_buffer = apg_update(
        delta, cond, momentum_buffer, eta=eta, momentum=momentum, norm_threshold=norm_threshold
    )
    guided = cfg_guidance(cond, uncond, scale)
    if update is delta:  # neutral settings: U = Δ exactly
        return guided, new_buffer
    return guided + (scale - 1.0) * (update - delta), new_buffer  # = D_c + (w − 1)U
