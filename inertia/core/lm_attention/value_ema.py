"""Math core of momentum attention for language models (Dai et al.): an EMA of the earlier value vectors.

Dai, Sun, Dong, Hao, Ma, Sui, Wei, *Why Can GPT Learn In-Context? Language Models Implicitly Perform Gradient Descent
as Meta-Optimizers* (ACL Findings 2023, arXiv 2212.10559), §5 ("momentum attention"): reading attention as a
meta-gradient step, momentum adds an exponential moving average of the values to the attention output of query t,

    MoAttn(V, K, q_t) = Attn(V, K, q_t) + Σ_{i=1}^{t-1} η^(t-i) v_i,

per head, before the output projection. This module computes the added term, λ · Σ_{i<t, i visible} η^(t-i) v_i,
for a batch of queries from the (cached) values, a visibility mask over the keys and each query's position in the
key sequence. It needs no state: a cached decode step and a full forward give the same term. Options (all ours, not
the paper's): ``scale`` λ (1 is the paper), ``normalized`` (divide by Σ η^(t-i) over the visible keys: a weighted mean
instead of a sum), ``window`` K (only the K most recent earlier keys; the dropped tail is at most
max|v|·η^(K+1)/(1-η) per coordinate, :func:`truncation_bound`). Pure torch; method page: docs/methods/lm-momentum-attention.md.

Example:
    >>> import torch
    >>> values = torch.tensor([[[[1.0], [2.0], [4.0]]]])            # B=1, one head, 3 keys, D=1
    >>> term = value_momentum(values, query_positions=torch.tensor([[0, 1, 2]]), eta=0.5)
    >>> term[0, 0, :, 0].tolist()                                    # 0; 0.5·1; 0.25·1 + 0.5·2
    [0.0, 0.5, 1.25]
"""

from __future__ import annotations

import math

import torch

__all__ = ["query_positions_from_mask", "truncation_bound", "value_momentum", "value_weights"]

QUERY_CHUNK = 256
"""Queries per chunk of the weight matrix: a prefill of S tokens needs S x S weights, built in chunks of rows."""


def truncation_bound(eta: float, window: int, value_max: float = 1.0) -> float:
    """Largest possible per-coordinate size of the part of the EMA that a window of ``window`` keys drops:
    Σ_{k>K} η^k·max|v| = max|v|·η^(K+1)/(1-η)."""
    if not 0.0 <= eta < 1.0:
        raise ValueError(f"`eta` must be in [0, 1) for a finite bound, got {eta!r}.")
    return value_max * eta ** (window + 1) / (1.0 - eta)


def query_positions_from_mask(visible: torch.Tensor) -> torch.Tensor:
    """Each query's own position: the last key it may see (causal masks let a query see itself).

    Args:
        visible: ``[B, S_q, S_k]`` boolean mask, True where the query may attend to the key.

    Returns:
        ``[B, S_q]`` long positions; -1 for a query that sees no key (a padding row).
    """
    keys = torch.arange(visible.shape[-1], device=visible.device)
    return torch.where(visible, keys, -1).amax(dim=-1)


def value_weights(
    query_positions: torch.Tensor,
    num_keys: int,
    eta: float | torch.Tensor,
    visible: torch.Tensor | None = None,
    normalized: bool = False,
    window: int | None = None,
) -> torch.Tensor:
    """The weights w[b, q, i] = η^(t_q - i) on the visible keys i < t_q (t_q the query's position), float32.

    Args:
        query_positions: ``[B, S_q]`` (or ``[1, S_q]``) positions t of the queries in the key sequence.
        num_keys: S_k.
        eta: η in [0, 1], or a ``[H]`` tensor of per-head η in (0, 1) (then the weights are ``[B, H, S_q, S_k]``).
        visible: optional ``[B, S_q, S_k]`` boolean mask (padding, sliding windows, unfilled static-cache slots).
        normalized: divide each row by its sum (rows with no earlier visible key stay 0).
        window: keep only keys with t - i <= ``window``.

    Returns:
        ``[B, S_q, S_k]`` float32 weights.
    """
    keys = torch.arange(num_keys, device=query_positions.device)
    distance = query_positions.unsqueeze(-1) - keys  # t - i
    earlier = distance > 0  # the sum runs over i < t (Dai et al. §5)
    if window is not None:
        earlier = earlier & (distance <= window)
    if visible is not None:
        earlier = earlier & visible
    if isinstance(eta, torch.Tensor):  # one η per head (learned): weights [B, H, S_q, S_k]
        log_eta = torch.log(eta.float()).view(1, -1, 1, 1)
        earlier = earlier.unsqueeze(1) if earlier.dim() == 3 else earlier
        distance = distance.unsqueeze(1) if distance.dim() == 3 else distance
        weights = torch.where(earlier, torch.exp(distance.clamp(min=0).float() * log_eta), 0.0)
    elif eta == 0.0:
        return torch.zeros(earlier.shape, dtype=torch.float32, device=earlier.device)
    else:
        # η^(t-i) as exp((t-i)·log η): no overflow, and far keys underflow to 0 as they should.
        weights = torch.where(earlier, torch.exp(distance.clamp(min=0).float() * math.log(eta)), 0.0)
    if normalized:
        total = weights.sum(dim=-1, keepdim=True)
        weights = weights / torch.where(total > 0, total, 1.0)
    return weights


def value_momentum(
    values: torch.Tensor,
    query_positions: torch.Tensor,
    eta: float | torch.Tensor,
    scale: float | torch.Tensor = 1.0,
    visible: torch.Tensor | None = None,
    normalized: bool = False,
    window: int | None = None,
) -> torch.Tensor:
    """The momentum term λ·Σ_{i<t} η^(t-i) v_i for every query, per head (Dai et al. §5).

    Args:
        values: ``[B, H, S_k, D]`` values of every key (cache included).
        query_positions: ``[B, S_q]`` positions of the queries in the key sequence.
        eta: η in [0, 1], or a ``[H]`` tensor of per-head η (H query heads; differentiable, for fine-tuning).
        scale: λ; 1 is the paper's form; or a ``[H]`` tensor of per-head gates λ_h.
        visible: optional ``[B, S_q, S_k]`` or ``[B, H, S_q, S_k]`` boolean mask of the keys each query may see.
        normalized: weighted mean instead of a weighted sum.
        window: only the ``window`` most recent earlier keys.

    Returns:
        ``[B, H, S_q, D]`` in ``values.dtype`` (accumulated in float32, or float64 for float64 values).
    """
    compute = torch.promote_types(values.dtype, torch.float32)
    num_keys = values.shape[2]
    per_head = visible is not None and visible.dim() == 4 and visible.shape[1] > 1
    if visible is not None and visible.dim() == 4 and not per_head:
        visible = visible[:, 0]
    v = values.to(compute)
    heads = max(
        visible.shape[1] if per_head and visible is not None else 1,
        eta.numel() if isinstance(eta, torch.Tensor) else 1,
        scale.numel() if isinstance(scale, torch.Tensor) else 1,
    )
    if heads > 1 and heads != v.shape[1]:  # per-head masks, η or λ over grouped values
        v = v.repeat_interleave(heads // v.shape[1], dim=1)
    chunks = []
    for start in range(0, query_positions.shape[-1], QUERY_CHUNK):
        rows = slice(start, start + QUERY_CHUNK)
        if per_head:
            assert visible is not None
            weights = value_weights(
                query_positions[:, None, rows], num_keys, eta, visible[:, :, rows], normalized, window
            )  # [B, H, q, S_k]
        else:
            mask = None if visible is None else visible[:, rows]
            weights = value_weights(query_positions[:, rows], num_keys, eta, mask, normalized, window)
            weights = weights if weights.dim() == 4 else weights[:, None]
        chunks.append(weights.to(compute) @ v)  # [B, H, q, D]
    term = torch.cat(chunks, dim=2) if len(chunks) > 1 else chunks[0]
    if isinstance(scale, torch.Tensor):
        return (term * scale.to(compute).view(1, -1, 1, 1)).to(values.dtype)
    return (term * scale).to(values.dtype) if scale != 1.0 else term.to(values.dtype)
