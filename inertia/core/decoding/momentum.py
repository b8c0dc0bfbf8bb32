"""Math core of momentum decoding (MD): repetition levels on the token graph, resistance and the selection scores.

Pure torch: no transformers import. The method is Lan, Su, Liu, Huang and Mao, *Momentum Decoding: Open-ended Text
Generation As Graph Exploration* (arXiv 2212.02175). Only the paper's abstract was readable to us, so the algorithm
follows the authors' code (``gmftbyGMFTBY/MomentumDecoding``: ``find_max_repetition_length`` and
``ResistanceDecodingNGram``). The equation numbers (1)-(3) below are this module's own; the method is explained in
docs/hosts/transformers.md.

Generation is a walk on a graph whose nodes are token ids and whose edges are the bigrams seen so far (prompt
included). For a candidate next token ``v`` the *repetition level* ``l(v)`` is

    (1)  l(v) = 0 if v never occurred; else 1 + the length of the longest suffix of the history that was already
         followed by v, capped at max_ngram,

and over the top-k candidates ``C_k`` (by logit) the selection score and the choice are

    (2)  s(v) = p(v) − α · R(l(v)),
    (3)  y_t = argmax_{v ∈ C_k} s(v),

with ``p = softmax(logits)`` at temperature 1 (a probability, not a log-probability) and ``R`` the resistance table.

Example:
    >>> import torch
    >>> history = torch.tensor([[5, 6, 7, 5, 6]])          # "5 6" was followed by 7 before
    >>> candidates = torch.tensor([[7, 6, 9]])
    >>> repetition_levels(history, candidates).tolist()   # 7 closes the 3-gram (5, 6, 7); 6 is a known node; 9 is new
    [[3, 1, 0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from inertia.core.presets.decoding import DEFAULT_RESISTANCE, RESISTANCE_PRESETS
from inertia.core.validation import validate_alpha, validate_top_k

LevelsFunction = Callable[[torch.Tensor, torch.Tensor, int | None, torch.Tensor | None], torch.Tensor]
"""``(input_ids, candidates, pad_token_id, prompt_mask) -> levels``: how :func:`momentum_scores` gets l(v)."""

__all__ = [
    "DEFAULT_RESISTANCE",
    "MAX_NGRAM_LIMIT",
    "RESISTANCE_PRESETS",
    "LevelsFunction",
    "leading_pad_mask",
    "momentum_scores",
    "penalty_table",
    "prompt_padding",
    "repetition_levels",
    "resistance_penalty",
    "resolve_resistance",
    "validate_alpha",
    "validate_top_k",
]

MAX_NGRAM_LIMIT = 32
"""Largest ``max_ngram`` accepted: the per-step cost grows with ``max_ngram²`` and the authors use 5."""


def resolve_resistance(
    resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
    max_ngram: int | None = None,
    name: str = "resistance",
) -> tuple[float, ...]:
    """Turns a preset name or a table into the validated table R(0), ..., R(max_ngram).

    Args:
        resistance: a key of :data:`RESISTANCE_PRESETS` or a sequence of numbers ≥ 0 (``math.inf`` allowed from
            level 1 on: that level is forbidden).
        max_ngram: the largest n-gram N looked up (level ``l`` ranges over 0..N). ``None`` means
            ``len(table) - 1``. A larger N extends the table with +inf, as the authors' lookup does for a missing
            level; a smaller one is an error (the extra entries could never be used).
        name: the parameter name used in error messages.

    Returns:
        A tuple of ``max_ngram + 1`` floats.

    Raises:
        ValueError: on an unknown preset, a table shorter than 2 entries, a negative, NaN or infinite R(0) entry, or
            an invalid ``max_ngram``.
    """
    if isinstance(resistance, str):
        if resistance not in RESISTANCE_PRESETS:
            raise ValueError(
                f"`{name}` must be one of {sorted(RESISTANCE_PRESETS)} or a sequence of numbers, got {resistance!r}."
            )
        table = RESISTANCE_PRESETS[resistance]
    else:
        try:
            table = tuple(resistance)
        except TypeError as err:
            raise ValueError(f"`{name}` must be a preset name or a sequence of numbers, got {resistance!r}.") from err
        if len(table) < 2:
            raise ValueError(f"`{name}` needs at least 2 entries, R(0) and R(1); got {resistance!r}.")
        for level, value in enumerate(table):
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(f"`{name}` entries must be numbers >= 0; R({level}) = {value!r} in {resistance!r}.")
        if math.isinf(table[0]):
            raise ValueError(f"`{name}`: R(0) (a new token) must be finite, got {table[0]!r}.")
        table = tuple(float(value) for value in table)
    if max_ngram is None:
        max_ngram = len(table) - 1
    if isinstance(max_ngram, bool) or not isinstance(max_ngram, int) or not 1 <= max_ngram <= MAX_NGRAM_LIMIT:
        raise ValueError(f"`max_ngram` must be an integer in [1, {MAX_NGRAM_LIMIT}], got {max_ngram!r}.")
    if max_ngram < len(table) - 1:
        raise ValueError(
            f"`max_ngram`={max_ngram} is smaller than the resistance table allows ({len(table) - 1}): entries "
            f"R({max_ngram + 1}..) would never be used. Pass a shorter table or max_ngram >= {len(table) - 1}."
        )
    return table + (math.inf,) * (max_ngram + 1 - len(table))


def penalty_table(alpha: float, resistance: Sequence[float]) -> tuple[float, ...]:
    """α·R(l) for every level, with α = 0 meaning "no resistance at all" (so 0·inf = 0 and α = 0 is greedy)."""
    return tuple(0.0 if alpha == 0.0 else alpha * r for r in resistance)


def leading_pad_mask(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """True on the left padding of each row: the run of ``pad_token_id`` before the first other token.

    Only the leading run is masked: a pad id inside the text (e.g. pad == eos in a chat transcript) stays a node.
    """
    return (input_ids == pad_token_id).long().cummin(dim=1).values.bool()


def prompt_padding(prompt_mask: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, length]`` bool mask of the padding positions given the prompt's ``[B, T0]`` attention mask.

    The prompt's zeros are padding; the ``length - T0`` tokens generated after the prompt never are.
    """
    if prompt_mask.dim() != 2 or prompt_mask.shape[1] > length:
        raise ValueError(
            f"`prompt_mask` must be [B, T0] with T0 <= the history length {length}, got {tuple(prompt_mask.shape)}."
        )
    padding = prompt_mask == 0
    return torch.cat([padding, padding.new_zeros(padding.shape[0], length - padding.shape[1])], dim=1)


def repetition_levels(
    input_ids: torch.Tensor,
    candidates: torch.Tensor,
    max_ngram: int = 5,
    ignore: torch.Tensor | None = None,
) -> torch.Tensor:
    """The repetition level l(v) of every candidate (eq. (1) of the module docstring), vectorised over the batch.

    ``l(v) = 0`` if ``v`` is not in the history, else the largest n in 2..N such that the n-gram
    ``(h_{T-n+2}, ..., h_T, v)`` already occurred in the history, else 1.

    Args:
        input_ids: ``[B, T]`` token history h (prompt + generated so far).
        candidates: ``[B, k]`` candidate ids.
        max_ngram: N, the longest n-gram looked up.
        ignore: optional ``[B, T]`` bool mask of positions that are not part of the graph (left padding).

    Returns:
        ``[B, k]`` long tensor of levels in 0..N.
    """
    ids = input_ids if ignore is None else input_ids.masked_fill(ignore, -1)  # -1 equals no candidate id
    length = ids.shape[1]
    cand = candidates.unsqueeze(1)  # [B, 1, k]
    # l(v) >= 1 iff v is an existing node (eq. (1)).
    levels = (ids.unsqueeze(-1) == cand).any(dim=1).long()
    for n in range(2, max_ngram + 1):
        if length < n:
            break
        # Every length-n window whose first n-1 tokens equal the current (n-1)-suffix was followed by its last token
        # (the window-matching trick of transformers' NoRepeatNGramLogitsProcessor). Matches are nested in n, so
        # overwriting with the larger n gives the max of eq. (1).
        windows = ids.unfold(1, n, 1)  # [B, T-n+1, n]
        suffix = ids[:, length - n + 1 :]  # [B, n-1]
        match = (windows[..., :-1] == suffix.unsqueeze(1)).all(dim=-1)  # [B, T-n+1]
        hit = (match.unsqueeze(-1) & (windows[..., -1:] == cand)).any(dim=1)  # [B, k]
        levels = torch.where(hit, n, levels)
    return levels


def resistance_penalty(levels: torch.Tensor, penalties: Sequence[float], dtype: torch.dtype) -> torch.Tensor:
    """α·R(l) for a tensor of levels, built with Python-scalar ``where``s (no host-to-device copy)."""
    out = torch.zeros(levels.shape, dtype=dtype, device=levels.device)
    for level, value in enumerate(penalties):
        if value != 0.0:
            out = torch.where(levels == level, value, out)
    return out


def momentum_scores(
    input_ids: torch.Tensor,
    scores: torch.Tensor,
    penalties: Sequence[float],
    top_k: int,
    pad_token_id: int | None = None,
    prompt_mask: torch.Tensor | None = None,
    levels_of: LevelsFunction | None = None,
) -> torch.Tensor:
    """One momentum-decoding step: returns new ``[B, V]`` scores whose argmax is the MD choice (eqs. (2)-(3)).

    The top-k tokens get s(v) = p(v) − α·R(l(v)); every other token gets -inf. A candidate that an earlier processor
    banned (score -inf) stays at -inf. If every candidate is at -inf only because of an infinite resistance, the
    top-1 candidate gets the lowest finite score instead, so that ``argmax`` picks it (the authors' ``max`` over the
    k-vector picks the first candidate in that case) rather than falling on token 0.

    Ties in s are broken towards the lower token id (that is what ``argmax`` over the vocabulary does); the authors'
    code breaks them by top-k order. Exact ties between distinct candidates essentially never happen.

    Args:
        input_ids: ``[B, T]`` history.
        scores: ``[B, V]`` logits (any float dtype; computed in float32, or float64 for float64 scores, and
            returned in ``scores.dtype``). Not modified.
        penalties: α·R(0..N) from :func:`penalty_table`; N = ``len(penalties) - 1``.
        top_k: k, at most V.
        pad_token_id: if given (and ``prompt_mask`` is not), leading runs of this id (left padding) are left out of
            the graph.
        prompt_mask: ``[B, T0]`` attention mask of the prompt (``T0 <= T``; 1 = real token). Positions where it is 0
            are left out of the graph; every token after the prompt is part of it. Exact where a pad id alone is
            ambiguous (a prompt that really starts with the pad id, as when pad falls back to EOS = BOS).
        levels_of: computes the levels instead of :func:`repetition_levels`, called as
            ``levels_of(input_ids, top_ids, pad_token_id, prompt_mask)`` (e.g. an
            :class:`~inertia.core.decoding.ngram_index.IncrementalLevels`, whose cost does not grow with T); it must
            give the same levels.
    """
    vocab = scores.shape[-1]
    if top_k > vocab:
        raise ValueError(f"`top_k`={top_k} exceeds the vocabulary size of the scores ({vocab}).")
    logits = scores.to(torch.promote_types(scores.dtype, torch.float32))  # float32, or float64 kept as is
    top_logits, top_ids = logits.topk(top_k, dim=-1)  # C_k (eq. (3)): the top-k by logit
    probs = torch.softmax(logits, dim=-1).gather(1, top_ids)  # p(v) at temperature 1
    if levels_of is not None:
        levels = levels_of(input_ids, top_ids, pad_token_id, prompt_mask)
    else:
        ignore: torch.Tensor | None
        if prompt_mask is not None:
            ignore = prompt_padding(prompt_mask, input_ids.shape[1])
        else:
            ignore = None if pad_token_id is None else leading_pad_mask(input_ids, pad_token_id)
        levels = repetition_levels(input_ids, top_ids, max_ngram=len(penalties) - 1, ignore=ignore)
    selection = probs - resistance_penalty(levels, penalties, probs.dtype)  # s(v) = p(v) − α·R(l(v))  (eq. (2))
    selection = selection.masked_fill(~torch.isfinite(top_logits), -math.inf)  # never resurrect a banned token
    stuck = torch.isneginf(selection).all(dim=-1, keepdim=True) & torch.isfinite(top_logits[:, :1])
    first = torch.where(stuck, torch.finfo(scores.dtype).min, selection[:, :1])
    selection = torch.cat([first, selection[:, 1:]], dim=1)
    out = torch.full_like(logits, -math.inf).scatter_(1, top_ids, selection)  # in place: no second [B, V] copy
    return out.to(scores.dtype)
