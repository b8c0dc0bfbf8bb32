"""Adaptive projected guidance (APG) and classifier-free guidance as pure tensor functions.

APG (Sadat, Hilliges & Weber, "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models",
ICLR 2025, arXiv 2410.02416), in the order of the paper's Algorithm 1 code (momentum, then clipping, then projection)::

    Δ  = D_c − D_u                     # CFG update direction
    M  = Δ + β·M ;  Δ = M              # momentum *sum* (no (1 − β) factor); skipped when β = 0
    Δ  = Δ · min(1, r / ‖Δ‖)           # per-sample norm clipping; skipped when r = ∞
    Δ∥ = ⟨Δ, û⟩û,  û = D_c/‖D_c‖       # projection onto the conditional prediction, in float64
    D  = D_c + (w − 1)(Δ⊥ + η Δ∥)

Norms and inner products are per sample over all non-batch dims by default; ``norm_dims`` picks other dims (e.g.
per (sample, frame) on 5-D video latents, see :func:`resolve_norm_dims`). No host syncs.

Example:
    >>> import torch
    >>> from inertia.core.guidance.apg import apg_guidance, cfg_guidance
    >>> cond, uncond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    >>> out, momentum = apg_guidance(cond, uncond, 7.5, None, eta=1.0, momentum=0.0, norm_threshold=float("inf"))
    >>> torch.equal(out, cfg_guidance(cond, uncond, 7.5))  # neutral settings are CFG bit for bit
    True
"""

from __future__ import annotations

import math

import torch

_TINY = 1e-12

NORM_DIMS = ("per_sample", "per_frame")
"""Named ``norm_dims``: all non-batch dims, or C, H, W of ``(B, C, F, H, W)`` video latents (one norm per frame)."""

NormDims = str | tuple[int, ...]


def sample_dims(x: torch.Tensor) -> tuple[int, ...]:
    """All non-batch dims of ``x``: norms and projections are per sample."""
    return tuple(range(1, x.ndim))


def resolve_norm_dims(norm_dims: NormDims, ndim: int) -> tuple[int, ...]:
    """The dims that APG's norm clipping and projection reduce over, for a latent with ``ndim`` dims.

    Args:
        norm_dims: ``"per_sample"`` (all non-batch dims), ``"per_frame"`` (dims 1, 3, 4 of a 5-D ``(B, C, F, H, W)``
            latent: one norm per sample and frame) or a tuple of non-batch dims (negative counts from the end).
        ndim: number of dims of the latent, batch included.

    Returns:
        Sorted, non-negative dims.

    Raises:
        ValueError: a name the latent's shape does not allow, or dims outside ``[1, ndim − 1]`` / ``[−(ndim − 1), −1]``
            (dim 0 is the batch: reducing over it would mix samples).

    Example:
        >>> resolve_norm_dims("per_sample", 4), resolve_norm_dims("per_frame", 5), resolve_norm_dims((-1, 1), 4)
        ((1, 2, 3), (1, 3, 4), (1, 3))
    """
    if norm_dims == "per_sample":
        return tuple(range(1, ndim))
    if norm_dims == "per_frame":
        if ndim != 5:
            raise ValueError(
                f"`norm_dims`='per_frame' needs 5-D (B, C, F, H, W) latents, got {ndim}-D ones; use 'per_sample' or a "
                f"tuple of dims in [1, {ndim - 1}]."
            )
        return (1, 3, 4)
    if not isinstance(norm_dims, tuple) or not norm_dims:
        raise ValueError(f"`norm_dims` must be one of {NORM_DIMS} or a non-empty tuple of dims, got {norm_dims!r}.")
    resolved = []
    for dim in norm_dims:
        valid = isinstance(dim, int) and not isinstance(dim, bool) and (1 <= dim < ndim or -ndim < dim <= -1)
        if not valid:
            raise ValueError(
                f"`norm_dims`={norm_dims!r}: every dim must be a non-batch dim of the {ndim}-D latent, in "
                f"[1, {ndim - 1}] or [{1 - ndim}, -1], got {dim!r}."
            )
        resolved.append(dim % ndim)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"`norm_dims`={norm_dims!r} names a dim twice for a {ndim}-D latent.")
    return tuple(sorted(resolved))


def cfg_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``D_u + w (D_c − D_u)``, the exact expression (and rounding) of diffusers' pipelines."""
    return uncond + scale * (cond - uncond)


def project(
    vector: torch.Tensor, onto: torch.Tensor, dims: tuple[int, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample split ``vector = parallel + orthogonal`` with respect to ``onto``, computed in float64.

    ``dims`` are the dims the inner products reduce over (default: all non-batch dims). Returns both parts in
    ``vector``'s dtype. A zero ``onto`` gives a zero parallel part.
    """
    dims = sample_dims(vector) if dims is None else dims
    v, u = vector.double(), onto.double()
    unit = u / torch.linalg.vector_norm(u, dim=dims, keepdim=True).clamp_min(_TINY)  # û = D_c/‖D_c‖
    parallel = (v * unit).sum(dim=dims, keepdim=True) * unit  # Δ∥ = ⟨Δ, û⟩û
    orthogonal = v - parallel  # Δ⊥ = Δ − Δ∥
    return parallel.to(vector.dtype), orthogonal.to(vector.dtype)


def clip_norm(vector: torch.Tensor, threshold: float, dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """``vector · min(1, r/‖vector‖)`` per sample (APG's "rescaling"), the norm over ``dims`` (default: non-batch)."""
    norm = torch.linalg.vector_norm(vector, dim=sample_dims(vector) if dims is None else dims, keepdim=True)
    scale: torch.Tensor = (threshold / norm.clamp_min(_TINY)).clamp(max=1.0)  # min(1, r/‖vector‖)
    return vector * scale


def apg_update(
    delta: torch.Tensor,
    cond: torch.Tensor,
    momentum_buffer: torch.Tensor | None,
    *,
    eta: float,
    momentum: float,
    norm_threshold: float,
    norm_dims: NormDims = "per_sample",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """APG's processed update ``U = Δ⊥ + ηΔ∥`` and the new momentum buffer.

    Args:
        delta: raw CFG direction ``D_c − D_u``.
        cond: conditional prediction ``D_c`` (the projection basis).
        momentum_buffer: ``M`` from the previous step, or None at the first step (``M = 0``).
        eta: parallel weight η.
        momentum: β; 0 keeps no buffer (returns None).
        norm_threshold: r; ``inf`` disables clipping.
        norm_dims: the dims clipping and projection reduce over (see :func:`resolve_norm_dims`).

    Raises:
        ValueError: ``norm_dims`` does not fit ``delta``'s shape (checked before any computation).
    """
    dims = resolve_norm_dims(norm_dims, delta.ndim)
    new_buffer = None
    if momentum != 0.0:
        # M_k = Δ_k + β M_{k−1} (Alg. 1: a running sum, no (1 − β) damping)
        delta = delta if momentum_buffer is None else delta + momentum * momentum_buffer
        new_buffer = delta
    if math.isfinite(norm_threshold):
        delta = clip_norm(delta, norm_threshold, dims)
    if eta != 1.0:
        parallel, orthogonal = project(delta, cond, dims)
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
    norm_dims: NormDims = "per_sample",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """APG's guided prediction ``D_c + (w − 1)U`` (paper formulation) and the new momentum buffer.

    Written as ``D_u + wΔ + (w − 1)(U − Δ)``, which is the same quantity and makes neutral settings (U = Δ) round
    exactly like :func:`cfg_guidance`. ``norm_dims``: see :func:`resolve_norm_dims` (validated before any work).
    """
    resolve_norm_dims(norm_dims, cond.ndim)  # bad dims fail before any computation
    delta = cond - uncond
    update, new_buffer = apg_update(
        delta, cond, momentum_buffer, eta=eta, momentum=momentum, norm_threshold=norm_threshold, norm_dims=norm_dims
    )
    guided = cfg_guidance(cond, uncond, scale)
    if update is delta:  # neutral settings: U = Δ exactly
        return guided, new_buffer
    return guided + (scale - 1.0) * (update - delta), new_buffer  # = D_c + (w − 1)U
