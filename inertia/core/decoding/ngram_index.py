"""Momentum decoding's repetition levels at a cost that does not grow with the context: an index per sequence.

:func:`inertia.core.decoding.momentum.repetition_levels` recomputes eq. (1) of
:mod:`inertia.core.decoding.momentum` from the whole history at every step: for each n it compares every window of
the history with the current suffix, so a step costs O(T·N·k) for T tokens of history. An engine that feeds one
sequence token by token can instead keep, per sequence,

- the set of tokens seen (the graph's nodes: ``l(v) >= 1``), and
- for every context length m = 1..N−1, the tokens that followed each m-token context (the n-grams seen, n = m + 1),

updated in O(N) per new token. A step's levels then cost O(k·N) dictionary look-ups, whatever T is, and equal the
stateless computation exactly, padding included: positions left out of the graph (left padding) are kept as a
sentinel that no candidate equals, as the stateless code does with its ``-1``.

Example:
    >>> index = NgramIndex(max_ngram=5)
    >>> index.extend([5, 6, 7, 5, 6])           # "5 6" was followed by 7 before
    >>> index.levels([7, 6, 9])                 # as repetition_levels([[5, 6, 7, 5, 6]], [[7, 6, 9]])
    [3, 1, 0]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import torch

from inertia.core.decoding.momentum import MAX_NGRAM_LIMIT, leading_pad_mask, prompt_padding

__all__ = ["IGNORED", "IncrementalLevels", "NgramIndex"]

IGNORED = -1
"""The token kept for a position left out of the graph (left padding): no candidate id equals it."""


class NgramIndex:
    """The repetition-level index of one sequence, fed token by token (eq. (1) of the momentum-decoding core).

    Args:
        max_ngram: N, the longest n-gram looked up (as ``max_ngram`` of the stateless core), 1..32.

    Attributes:
        length: the number of tokens fed so far (ignored positions included).

    Example:
        >>> index = NgramIndex(max_ngram=3)
        >>> index.extend([IGNORED, IGNORED, 4, 4])   # two left-padding positions, then "4 4"
        >>> index.levels([4, 2])                      # 4 after "4" was seen: level 2; 2 is new
        [2, 0]
    """

    def __init__(self, max_ngram: int = 5) -> None:
        if isinstance(max_ngram, bool) or not isinstance(max_ngram, int) or not 1 <= max_ngram <= MAX_NGRAM_LIMIT:
            raise ValueError(f"`max_ngram` must be an integer in [1, {MAX_NGRAM_LIMIT}], got {max_ngram!r}.")
        self.max_ngram = max_ngram
        self.length = 0
        self._seen: set[int] = set()
        # followers[m][context of m tokens] = the tokens that came right after that context (n-grams, n = m + 1)
        self._followers: list[defaultdict[tuple[int, ...], set[int]]] = [defaultdict(set) for _ in range(max_ngram)]
        self._tail: list[int] = []  # the last N − 1 tokens (the longest context a query needs)

    def append(self, token: int) -> None:
        """Feeds the next token of the sequence (``IGNORED`` for a position outside the graph)."""
        if token != IGNORED:
            self._seen.add(token)  # a node of the graph: l(token) >= 1 from now on
            for m in range(1, min(len(self._tail), self.max_ngram - 1) + 1):
                # the m tokens before `token` were followed by it: the (m+1)-gram (tail[-m:], token) now exists
                self._followers[m][tuple(self._tail[-m:])].add(token)
        self._tail.append(token)
        if len(self._tail) > self.max_ngram - 1:
            del self._tail[0]
        self.length += 1

    def extend(self, tokens: Iterable[int]) -> None:
        """Feeds several tokens in order."""
        for token in tokens:
            self.append(int(token))

    def levels(self, candidates: Sequence[int]) -> list[int]:
        """l(v) for every candidate: 0 for a token never seen, else the largest n in 2..N such that the current
        (n−1)-token suffix was already followed by v, else 1."""
        out = []
        for v in candidates:
            level = 1 if v in self._seen else 0
            if level:
                for n in range(2, min(self.max_ngram, len(self._tail) + 1) + 1):
                    if v in self._followers[n - 1].get(tuple(self._tail[len(self._tail) - (n - 1) :]), ()):
                        level = n  # nested in n: the longest matching context wins
            out.append(level)
        return out


class IncrementalLevels:
    """Repetition levels of a batch whose rows grow by one token per call, from one :class:`NgramIndex` per row.

    A pure cache of a function of ``input_ids`` (and the padding rule): a call continues the stored rows only when
    ``input_ids`` is the previous call's ``input_ids`` plus one column, compared in full, so nothing leaks from one
    generation to the next; any other call (a new prompt, another batch size, reordered rows, a rewound history)
    rebuilds every row from scratch, which costs what one stateless step costs. The levels are then exactly those of
    :func:`inertia.core.decoding.momentum.repetition_levels`.

    Args:
        max_ngram: N, as for :class:`NgramIndex`.

    Example:
        >>> import torch
        >>> levels = IncrementalLevels(max_ngram=5)
        >>> levels(torch.tensor([[5, 6, 7, 5]]), torch.tensor([[6, 9]])).tolist()      # built from scratch
        [[2, 0]]
        >>> levels(torch.tensor([[5, 6, 7, 5, 6]]), torch.tensor([[7, 9]])).tolist()   # one token more: continued
        [[3, 0]]
        >>> levels.rebuilds
        1
    """

    def __init__(self, max_ngram: int = 5) -> None:
        self.max_ngram = NgramIndex(max_ngram).max_ngram  # validates
        self.rebuilds = 0
        self._ids: torch.Tensor | None = None
        self._rows: list[NgramIndex] = []
        self._padding_rule: tuple[int | None, torch.Tensor | None] = (None, None)
        self._in_leading_pad: list[bool] = []

    def reset(self) -> None:
        """Forgets every row (the next call rebuilds)."""
        self._ids, self._rows, self._in_leading_pad = None, [], []

    def _continues(self, input_ids: torch.Tensor, rule: tuple[int | None, torch.Tensor | None]) -> bool:
        old = self._ids
        return (
            old is not None
            and rule[0] == self._padding_rule[0]
            and rule[1] is self._padding_rule[1]
            and input_ids.shape == (old.shape[0], old.shape[1] + 1)
            and input_ids.device == old.device
            and bool(torch.equal(input_ids[:, :-1], old))
        )

    def __call__(
        self,
        input_ids: torch.Tensor,
        candidates: torch.Tensor,
        pad_token_id: int | None = None,
        prompt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, k]`` levels of ``candidates`` after the histories ``input_ids`` ``[B, T]``; padding as in
        :func:`inertia.core.decoding.momentum.momentum_scores` (``prompt_mask`` wins over ``pad_token_id``)."""
        rule = (pad_token_id, prompt_mask)
        if self._continues(input_ids, rule):
            for row, token, index in zip(range(len(self._rows)), input_ids[:, -1].tolist(), self._rows, strict=True):
                # a generated token is never padding, except a pad id that continues a row made only of pads
                leading = prompt_mask is None and self._in_leading_pad[row] and token == pad_token_id
                self._in_leading_pad[row] = leading
                index.append(IGNORED if leading else token)
        else:
            self.rebuilds += 1
            if prompt_mask is not None:
                ignore = prompt_padding(prompt_mask, input_ids.shape[1])
            elif pad_token_id is not None:
                ignore = leading_pad_mask(input_ids, pad_token_id)
            else:
                ignore = torch.zeros_like(input_ids, dtype=torch.bool)
            self._rows = []
            for ids in input_ids.masked_fill(ignore, IGNORED).tolist():
                index = NgramIndex(self.max_ngram)
                index.extend(ids)
                self._rows.append(index)
            self._in_leading_pad = ignore.all(dim=1).tolist()
            self._padding_rule = rule
        self._ids = input_ids.clone()
        levels = [index.levels(row) for index, row in zip(self._rows, candidates.tolist(), strict=True)]
        return torch.tensor(levels, dtype=torch.long, device=candidates.device)
