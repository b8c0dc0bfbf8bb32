"""The momentum penalty: momentum decoding's resistance as a logit penalty that works under sampling (our extension).

Not in the paper. Momentum decoding (Lan et al. 2022, :mod:`inertia.core.decoding.momentum`) is a greedy search: it
picks ``argmax_{v ∈ top-k} p(v) − α·R(l(v))``, a difference of *probabilities* that is not a distribution, so the
sampling warpers cannot run on it. The momentum penalty charges the same resistance in *log* space, to every token,
and leaves the choice to whatever decoding runs next (sampling with temperature, top-k, top-p, min-p; greedy; beams):

    (4)  z'(v) = z(v) − α·R(l(v))      for every token v of the vocabulary,

with ``z`` the logits, ``l(v)`` the repetition level of eq. (1) of :mod:`inertia.core.decoding.momentum` and ``R``
the resistance table. After the softmax, ``q(v) ∝ p(v)·exp(−α·R(l(v)))``: a token that would repeat an n-gram keeps
a share ``exp(−α·R(l))`` of its odds against a new token. With α = 0 (or a table of zeros) the logits are returned
unchanged, bit for bit. Equation (4) is this module's own numbering.

Every token, not only the top-k: with a penalty on the top-k alone, a loop's continuation ranked k+1 keeps its full
weight and can overtake the penalised ones, and the distribution would jump as a token enters or leaves the top-k.
The penalty is sparse (only tokens of the history have l ≥ 1), so charging every token costs no more than charging k.

At temperature → 0 (greedy on z'), the choice is ``argmax_v log p(v) − α·R(l(v))`` over the whole vocabulary. That
is not the paper's rule: the paper subtracts α·R from a probability, so its charge against a repeat of probability
p is relative ``α·R / p`` (large for a doubtful repeat, small for a near-certain one), while ours is the same
factor ``exp(−α·R)`` at every p. The two agree whenever the model's top token is new (``l = 0``, with R(0) = 0) and
at α = 0; docs/methods/momentum-decoding.md gives a case where they differ.

Example:
    >>> import torch
    >>> table = momentum_penalty_table(alpha=0.5, resistance=(0, 1, 3))   # α·R(l) = 0, 0.5, 1.5 for l = 0, 1, 2
    >>> history = torch.tensor([[3, 1, 3]])          # "3 1" was seen: after the suffix 3, token 1 closes a bigram
    >>> apply_momentum_penalty(history, torch.zeros(1, 4), table).tolist()
    [[0.0, -1.5, 0.0, -0.5]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch

from inertia.core.decoding.momentum import (
    DEFAULT_RESISTANCE,
    leading_pad_mask,
    penalty_table,
    prompt_padding,
    resolve_resistance,
)
from inertia.core.validation import check_range

__all__ = [
    "DEFAULT_PENALTY_ALPHA",
    "PenaltyCache",
    "apply_momentum_penalty",
    "graph_padding",
    "keep_one_token",
    "momentum_penalty_table",
    "token_levels",
]

DEFAULT_PENALTY_ALPHA = 0.2
"""α of the momentum penalty by default, with the default table: a known token costs 0.2 nats, re-entering a bigram
0.6, a 4- or 5-gram 1.0 (before the temperature). The mildest of the settings checked on SmolLM2 (0.2, 0.5, 1.0):
it removed the repeated 4-grams and most repeated 3-grams of sampling there (docs/methods/momentum-decoding.md)."""


class PenaltyCache(Protocol):
    """What :func:`apply_momentum_penalty` accepts as ``cache``: a function of its other arguments that may keep
    state between calls (e.g. :class:`inertia.core.decoding.penalty_index.IncrementalPenalty`)."""

    def __call__(
        self,
        input_ids: torch.Tensor,
        scores: torch.Tensor,
        pad_token_id: int | None = None,
        prompt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


def momentum_penalty_table(
    alpha: float = DEFAULT_PENALTY_ALPHA,
    resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
    max_ngram: int | None = None,
) -> tuple[float, ...]:
    """Validates the momentum penalty's parameters and returns α·R(0), ..., α·R(N), in nats.

    The one call an engine adapter needs before its first request: every error names the parameter, its value and
    the valid range.

    Args:
        alpha: α ≥ 0, the weight of the resistance in log space (0: no penalty at all, infinite entries included).
        resistance: the table R(0..N) or a preset name, as for momentum decoding.
        max_ngram: N, the longest n-gram looked up (``None``: ``len(resistance) - 1``).

    Raises:
        ValueError: for an invalid value of any of them.

    Example:
        >>> momentum_penalty_table(0.5, "linear")
        (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
    """
    alpha = check_range("alpha", alpha, 0.0)
    return penalty_table(alpha, resolve_resistance(resistance, max_ngram))


def graph_padding(
    input_ids: torch.Tensor, pad_token_id: int | None = None, prompt_mask: torch.Tensor | None = None
) -> torch.Tensor | None:
    """``[B, T]`` mask of the positions left out of the token graph (left padding), or ``None`` for none.

    ``prompt_mask`` (the prompt's ``[B, T0]`` attention mask) wins over ``pad_token_id`` (leading runs of it), as in
    :func:`inertia.core.decoding.momentum.momentum_scores`.
    """
    if prompt_mask is not None:
        return prompt_padding(prompt_mask, input_ids.shape[1])
    return None if pad_token_id is None else leading_pad_mask(input_ids, pad_token_id)


def token_levels(
    input_ids: torch.Tensor, vocab_size: int, max_ngram: int = 5, ignore: torch.Tensor | None = None
) -> torch.Tensor:
    """The repetition level l(v) of *every* token v < ``vocab_size`` (eq. (1)), vectorised, O(T·N) per row.

    The same levels as :func:`inertia.core.decoding.momentum.repetition_levels` with every token as a candidate,
    without its [T, V] comparison: for each position i of the history, ``run(i)`` counts how many tokens before i
    equal the current suffix, read backwards (capped at N − 1); the token at i then reaches level ``1 + run(i)``, and
    l(v) is the largest level over the positions of v.

    Args:
        input_ids: ``[B, T]`` history.
        vocab_size: V; history ids ≥ V (an embedding larger than the output layer) are nodes but get no level.
        max_ngram: N.
        ignore: optional ``[B, T]`` mask of positions outside the graph (left padding).

    Returns:
        ``[B, V]`` long levels in 0..N.
    """
    ids = input_ids if ignore is None else input_ids.masked_fill(ignore, -1)  # -1: no token equals it
    batch, length = ids.shape
    run = torch.zeros(batch, length, dtype=torch.long, device=ids.device)
    agree = torch.ones(batch, length, dtype=torch.bool, device=ids.device)
    for back in range(min(max_ngram - 1, length - 1)):
        # position i agrees at distance `back` if h[i-1-back] == h[T-1-back] (positions i < back + 1 cannot)
        same = ids[:, : length - 1 - back] == ids[:, length - 1 - back : length - back]
        agree = agree & torch.cat([same.new_zeros(batch, back + 1), same], dim=1)
        run += agree
    target = torch.where((ids >= 0) & (ids < vocab_size), ids, vocab_size)  # padding and ids >= V: a spare column
    levels = torch.zeros(batch, vocab_size + 1, dtype=torch.long, device=ids.device)
    levels.scatter_reduce_(1, target, run + 1, reduce="amax")  # l(v) = max over the positions of v
    return levels[:, :vocab_size]


def keep_one_token(scores: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Where the penalty left a row with no finite score although ``scores`` had one (an infinite resistance on
    every allowed token), the row's top token gets its unpenalised score back, so that sampling still has a token to
    draw (as momentum decoding falls back to its top candidate)."""
    dead = ~torch.isfinite(out).any(dim=-1) & torch.isfinite(scores).any(dim=-1)
    if not bool(dead.any()):
        return out
    top = scores.argmax(dim=-1, keepdim=True)
    restored = out.scatter(1, top, scores.gather(1, top))
    return torch.where(dead.unsqueeze(-1), restored, out)


def apply_momentum_penalty(
    input_ids: torch.Tensor,
    scores: torch.Tensor,
    penalties: Sequence[float],
    pad_token_id: int | None = None,
    prompt_mask: torch.Tensor | None = None,
    cache: PenaltyCache | None = None,
) -> torch.Tensor:
    """Eq. (4): new ``[B, V]`` scores ``z − α·R(l(v))`` for every token; ``scores`` is not modified.

    Args:
        input_ids: ``[B, T]`` history (prompt plus the tokens generated so far).
        scores: ``[B, V]`` logits (or log-probabilities: the same shift). Computed in float32 (float64 kept) and
            returned in ``scores.dtype``; a token with no penalty keeps its score bit for bit.
        penalties: α·R(0..N) from :func:`momentum_penalty_table`; N = ``len(penalties) - 1``.
        pad_token_id: leading runs of this id are left out of the graph (unless ``prompt_mask`` is given).
        prompt_mask: ``[B, T0]`` attention mask of the prompt; its zeros are left out of the graph.
        cache: computes the result instead of the stateless path, from the same arguments (e.g. an
            :class:`~inertia.core.decoding.penalty_index.IncrementalPenalty`, whose cost does not grow with T); it
            must give the same scores.

    Returns:
        ``[B, V]`` penalised scores. A token at ``-inf`` stays there; an infinite resistance sends a token to
        ``-inf``, except that a row never loses its last finite token (:func:`keep_one_token`).
    """
    if scores.dim() != 2 or input_ids.dim() != 2 or scores.shape[0] != input_ids.shape[0]:
        raise ValueError(
            "the momentum penalty expects input_ids [B, T] and scores [B, V] with the same B, got "
            f"{tuple(input_ids.shape)} and {tuple(scores.shape)}."
        )
    if all(value == 0.0 for value in penalties):
        return scores.clone()  # α = 0: plain decoding, bit for bit
    if cache is not None:
        return cache(input_ids, scores, pad_token_id, prompt_mask)
    ignore = graph_padding(input_ids, pad_token_id, prompt_mask)
    vocab = scores.shape[-1]
    work = torch.promote_types(scores.dtype, torch.float32)
    target = input_ids if ignore is None else input_ids.masked_fill(ignore, -1)
    target = torch.where((target >= 0) & (target < vocab), target, vocab)  # padding and ids >= V: a spare column
    levels = token_levels(input_ids, vocab, len(penalties) - 1, ignore)
    # α·R(l) at every position of the history, then spread over the vocabulary (a token with l = 0 never occurs)
    at_positions = torch.zeros(target.shape, dtype=work, device=scores.device)
    position_levels = levels.gather(1, target.clamp(max=vocab - 1))
    for level, value in enumerate(penalties[1:], start=1):
        if value != 0.0:
            at_positions = torch.where(position_levels == level, value, at_positions)
    penalty = torch.full((scores.shape[0], vocab + 1), penalties[0], dtype=work, device=scores.device)
    penalty.scatter_(1, target, at_positions)
    out = (scores.to(work) - penalty[:, :vocab]).to(scores.dtype)  # z − α·R(l(v))  (eq. (4))
    return keep_one_token(scores, out) if any(math.isinf(value) for value in penalties) else out
