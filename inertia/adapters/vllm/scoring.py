"""Momentum decoding on some rows of an engine's logits, in place, with each row's repetition levels from its own
source (a per-request :class:`~inertia.core.decoding.ngram_index.NgramIndex`, or the stateless computation).

An engine batches requests that do not all ask for momentum decoding, with different settings; this runs
:func:`inertia.core.decoding.momentum.momentum_scores` once per group of rows that share their settings and writes
the selection scores back into those rows only. Every other row is left exactly as it was.

Example:
    >>> import torch
    >>> from inertia.core.decoding.ngram_index import NgramIndex
    >>> from inertia.adapters.vllm.settings import MomentumSettings
    >>> index = NgramIndex(5)
    >>> index.extend([4, 5, 6, 4, 5])                       # the walk is about to loop: 6 closes (4, 5, 6)
    >>> logits = torch.tensor([[0.0] * 6 + [3.0, 2.9], [0.0] * 6 + [3.0, 2.9]])
    >>> settings = MomentumSettings(0.2, 3, (0.0, 1.0, 3.0, 4.0, 5.0, 5.0))
    >>> score_rows(logits, [0], [settings], [index.levels])  # row 1 asked for nothing
    >>> logits.argmax(dim=-1).tolist()                       # momentum decoding picks 7, greedy 6
    [7, 6]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from inertia.adapters.vllm.settings import MomentumSettings
from inertia.core.decoding.momentum import momentum_scores, repetition_levels

__all__ = ["RowLevels", "score_rows", "stateless_levels"]

RowLevels = Callable[[list[int]], list[int]]
"""``candidates -> levels`` of one row: l(v) of eq. (1) (:mod:`inertia.core.decoding.momentum`) for each."""


def stateless_levels(history: torch.Tensor, max_ngram: int) -> RowLevels:
    """The levels after the 1-D token ``history``, recomputed from all of it (O(len(history)) per call)."""

    def levels(candidates: list[int]) -> list[int]:
        cands = torch.tensor([candidates], dtype=torch.long, device=history.device)
        found: list[int] = repetition_levels(history.long()[None], cands, max_ngram)[0].tolist()
        return found

    return levels


def score_rows(
    logits: torch.Tensor,
    rows: Sequence[int],
    settings: Sequence[MomentumSettings],
    levels: Sequence[RowLevels],
) -> None:
    """Replaces ``logits[rows[i]]`` by its momentum-decoding selection scores, in place.

    Args:
        logits: ``[num_rows, V]`` logits of the whole batch.
        rows: the rows to score (distinct).
        settings: each row's settings.
        levels: each row's levels function. A top-k larger than the vocabulary makes every token a candidate.
    """
    groups: dict[MomentumSettings, list[int]] = {}
    for i, row_settings in enumerate(settings):
        groups.setdefault(row_settings, []).append(i)
    vocab = logits.shape[-1]
    for group_settings, members in groups.items():
        picked = [rows[i] for i in members]
        index: slice | torch.Tensor
        if picked == list(range(picked[0], picked[0] + len(picked))):  # consecutive rows: a view, no gather
            index = slice(picked[0], picked[0] + len(picked))
        else:
            index = torch.tensor(picked, dtype=torch.long, device=logits.device)
        row_levels = [levels[i] for i in members]

        def levels_of(
            _history: torch.Tensor,
            candidates: torch.Tensor,
            _pad: int | None = None,
            _mask: torch.Tensor | None = None,
            row_levels: list[RowLevels] = row_levels,
        ) -> torch.Tensor:
            found = [fn(row) for fn, row in zip(row_levels, candidates.tolist(), strict=True)]
            return torch.tensor(found, dtype=torch.long, device=candidates.device)

        no_history = torch.empty(len(members), 0, dtype=torch.long, device=logits.device)  # levels_of has them
        top_k = min(group_settings.top_k, vocab)
        logits[index] = momentum_scores(
            no_history, logits[index], group_settings.penalties, top_k, levels_of=levels_of
        ).to(logits.dtype)
