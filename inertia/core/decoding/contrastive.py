"""Contrastive search's selection rule (Su et al., *A Contrastive Framework for Neural Text Generation*, NeurIPS
2022, eq. 5): among the k most probable tokens, the one maximising (1 − α)·p(v | x_<t) − α·max_j cos(h_v, h_{x_j}).

The generation loop that feeds it hidden states is the transformers adapter
(:mod:`inertia.adapters.transformers.contrastive_search`).

Example:
    >>> import torch
    >>> context = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])          # two context tokens
    >>> candidates = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])       # a repeat of the first, and a new direction
    >>> penalty = degeneration_penalty(context, torch.ones(1, 2), candidates)
    >>> [round(v, 3) for v in penalty[0].tolist()]
    [1.0, 0.707]
    >>> contrastive_select(torch.tensor([[0.5, 0.4]]), torch.zeros(1, 2), penalty, 0.6).tolist()
    [1]
"""

from __future__ import annotations

import math

import torch

__all__ = ["DEFAULT_PENALTY_ALPHA", "DEFAULT_TOP_K", "contrastive_select", "degeneration_penalty"]

DEFAULT_PENALTY_ALPHA = 0.6
"""α of Su et al. for open-ended generation."""
DEFAULT_TOP_K = 5
"""k of Su et al. for open-ended generation."""


def degeneration_penalty(
    context_hidden: torch.Tensor, context_mask: torch.Tensor, candidate_hidden: torch.Tensor
) -> torch.Tensor:
    """max_j cos(h_v, h_{x_j}) over the unmasked context positions, for every candidate (Su et al. eq. 5).

    Args:
        context_hidden: ``[B, T, D]`` last-layer hidden states of the context.
        context_mask: ``[B, T]`` 1 for real tokens, 0 for padding (padding never counts).
        candidate_hidden: ``[B, k, D]`` hidden states of the candidates.

    Returns:
        ``[B, k]`` float32 penalties in [-1, 1].
    """
    context = torch.nn.functional.normalize(context_hidden.float(), dim=-1)
    candidates = torch.nn.functional.normalize(candidate_hidden.float(), dim=-1)
    cosine = candidates @ context.transpose(1, 2)  # [B, k, T]
    cosine = cosine.masked_fill(~context_mask.bool().unsqueeze(1), -math.inf)
    return cosine.max(dim=-1).values


def contrastive_select(
    top_probs: torch.Tensor, top_logits: torch.Tensor, penalty: torch.Tensor, penalty_alpha: float
) -> torch.Tensor:
    """Index in 0..k-1 of the candidate with the best contrastive score (1 − α)·p − α·penalty, per row.

    A candidate whose processed logit is -inf (banned by a logits processor) is never chosen unless all are.
    """
    score = (1.0 - penalty_alpha) * top_probs.float() - penalty_alpha * penalty
    score = score.masked_fill(~torch.isfinite(top_logits), -math.inf)
    return score.argmax(dim=-1)
