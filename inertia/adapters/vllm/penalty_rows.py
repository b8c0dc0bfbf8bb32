"""The momentum penalty on some rows of an engine's logits, in place: each row from its request's own
:class:`~inertia.core.decoding.penalty_index.MomentumPenaltyRow`, or, for a speculative draft row, from the
stateless computation on that row's history.

The penalty is eq. (4) of :mod:`inertia.core.decoding.momentum_penalty`, ``z'(v) = z(v) − α·R(l(v))`` on every
token; the rows of other requests are never read or written.

Example:
    >>> import torch
    >>> from inertia.core.decoding.penalty_index import MomentumPenaltyRow
    >>> state = MomentumPenaltyRow((0.0, 0.5, 1.5))   # α·R(l) = 0, 0.5, 1.5 for l = 0, 1, 2
    >>> state.extend([3, 1, 3])                       # "3 1" was seen: after the suffix 3, token 1 closes a bigram
    >>> logits = torch.zeros(2, 4)
    >>> rows = PenaltyRows()
    >>> rows.add(0, state)                            # row 1 asked for nothing
    >>> rows.apply(logits).tolist()
    [[0.0, -1.5, 0.0, -0.5], [0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from inertia.core.decoding.momentum_penalty import apply_momentum_penalty
from inertia.core.decoding.penalty_index import MomentumPenaltyRow

__all__ = ["PenaltyRows"]


@dataclass
class PenaltyRows:
    """The momentum-penalty rows of one engine step, gathered row by row, then penalised in place by :meth:`apply`.

    Attributes:
        indexed: ``(row, state)``: a row whose request's state has been fed every token before it.
        drafts: ``(row, history, penalties)``: a speculative row, penalised from its 1-D ``history`` (the committed
            tokens, then the drafts before it) by the stateless core.
    """

    indexed: list[tuple[int, MomentumPenaltyRow]] = field(default_factory=list)
    drafts: list[tuple[int, torch.Tensor, tuple[float, ...]]] = field(default_factory=list)

    def add(self, row: int, state: MomentumPenaltyRow) -> None:
        """A row scored by its request's state (fed up to this row's position before :meth:`apply`)."""
        self.indexed.append((row, state))

    def add_draft(self, row: int, history: torch.Tensor, penalties: tuple[float, ...]) -> None:
        """A draft row: the stateless penalty on ``history`` (O(len(history)), as a draft row is not indexed)."""
        self.drafts.append((row, history, penalties))

    def __bool__(self) -> bool:
        return bool(self.indexed or self.drafts)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Penalises the gathered rows of ``[num_rows, V]`` ``logits`` in place; returns ``logits``."""
        for row, state in self.indexed:
            state.apply(logits[row], out=logits[row])  # reads the row's scores before writing them (eq. (4))
        for row, history, penalties in self.drafts:
            scores = logits[row : row + 1]
            scores.copy_(apply_momentum_penalty(history.long()[None], scores, penalties))
        return logits
