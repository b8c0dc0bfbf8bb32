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

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from inertia.core.decoding.momentum import MAX_NGRAM_LIMIT, leading_pad_mask, prompt_padding, repetition_levels

__all__ = ["IGNORED", "IncrementalLevels", "NgramIndex", "extends_by_one"]

IGNORED = -1
"""The token kept for a position left out of the graph (left padding): no candidate id equals it."""


def extends_by_one(input_ids: torch.Tensor, previous: torch.Tensor | None) -> bool:
    """Whether ``input_ids`` ``[B, T + 1]`` is ``previous`` ``[B, T]`` plus one column, compared in full.

    On the CPU the comparison runs in numpy, about 2.5x faster than ``torch.equal`` on the strided ``[:, :-1]`` view
    (0.08 against 0.19 ms for 8 x 32k ids): at long histories this comparison is most of what a cached step adds to
    the vocabulary-wide work.

    Example:
        >>> extends_by_one(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 2]]))
        True
        >>> extends_by_one(torch.tensor([[1, 9, 3]]), torch.tensor([[1, 2]]))
        False
    """
    if previous is None or input_ids.shape != (previous.shape[0], previous.shape[1] + 1):
        return False
    if input_ids.device != previous.device:
        return False
    if input_ids.device.type == "cpu" and input_ids.dtype == previous.dtype and not input_ids.requires_grad:
        return bool(np.array_equal(input_ids[:, :-1].numpy(), previous.numpy()))
    return bool(torch.equal(input_ids[:, :-1], previous))


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
        # grams[m] = the (m+1)-grams seen: an m-token context and the token that came right after it
        self._grams: list[set[tuple[int, ...]]] = [set() for _ in range(max_ngram)]
        self._tail: list[int] = []  # the last N − 1 tokens (the longest context a query needs)

    def append(self, token: int) -> None:
        """Feeds the next token of the sequence (``IGNORED`` for a position outside the graph)."""
        if token != IGNORED:
            self._seen.add(token)  # a node of the graph: l(token) >= 1 from now on
            for m in range(1, min(len(self._tail), self.max_ngram - 1) + 1):
                # the m tokens before `token` were followed by it: the (m+1)-gram (tail[-m:], token) now exists
                self._grams[m].add((*self._tail[-m:], token))
        self._tail.append(token)
        if len(self._tail) > self.max_ngram - 1:
            del self._tail[0]
        self.length += 1

    def extend(self, tokens: Iterable[int]) -> None:
        """Feeds several tokens in order (the same index as :meth:`append` one by one, built a window at a time)."""
        new = [int(token) for token in tokens]
        seq, start = self._tail + new, len(self._tail)
        self._seen.update(token for token in new if token != IGNORED)
        for m in range(1, self.max_ngram):
            first = max(start, m)  # the first new position with m tokens before it
            # every window (seq[i-m], ..., seq[i]) ending at a new position i is an (m+1)-gram seen; one ending in
            # IGNORED is kept too, but no candidate equals IGNORED, so it never matches
            self._grams[m].update(zip(*(seq[first - m + k :] for k in range(m + 1)), strict=False))
        self._tail = seq[max(0, len(seq) - (self.max_ngram - 1)) :] if self.max_ngram > 1 else []
        self.length += len(new)

    def levels(self, candidates: Sequence[int]) -> list[int]:
        """l(v) for every candidate: 0 for a token never seen, else the largest n in 2..N such that the current
        (n−1)-token suffix was already followed by v, else 1."""
        tail = self._tail
        # the current (n−1)-token suffix and the n-grams seen, for n = 2..N (built once, not per candidate)
        contexts = [
            (n, tuple(tail[len(tail) - (n - 1) :]), self._grams[n - 1])
            for n in range(2, min(self.max_ngram, len(tail) + 1) + 1)
        ]
        out = []
        for v in candidates:
            level = 1 if v in self._seen else 0
            if level:
                for n, context, grams in contexts:
                    if (*context, v) not in grams:
                        break  # nested in n: an n-gram seen means every shorter one ending at v was seen
                    level = n
            out.append(level)
        return out


class IncrementalLevels:
    """Repetition levels of a batch whose rows grow by one token per call, from one :class:`NgramIndex` per row.

    A pure cache of a function of ``input_ids`` (and the padding rule): a call continues the stored rows only when
    ``input_ids`` is the previous call's ``input_ids`` plus one column, compared in full, so nothing leaks from one
    generation to the next; any other call (a new prompt, another batch size, reordered rows, a rewound history)
    rebuilds every row from scratch, which costs what one stateless step costs. The levels are then exactly those of
    :func:`inertia.core.decoding.momentum.repetition_levels`.

    Building a row's index is a Python loop over its history, several times one stateless step, so a generation can
    start on the stateless computation and build the index only once it has continued for ``build_after`` calls:
    short generations then cost what the stateless path costs, and long ones pay the build once.

    Args:
        max_ngram: N, as for :class:`NgramIndex`.
        build_after: continuation calls computed statelessly before the index is built (0: build at the first call).

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

    def __init__(self, max_ngram: int = 5, build_after: int = 0) -> None:
        self.max_ngram = NgramIndex(max_ngram).max_ngram  # validates
        if isinstance(build_after, bool) or not isinstance(build_after, int) or build_after < 0:
            raise ValueError(f"`build_after` must be an integer >= 0, got {build_after!r}.")
        self.build_after = build_after
        self.rebuilds = 0
        self._continued = 0  # continuation calls since the last call that was not one
        self._ids: torch.Tensor | None = None
        self._rows: list[NgramIndex] = []
        self._padding_rule: tuple[int | None, torch.Tensor | None] = (None, None)
        self._in_leading_pad: list[bool] = []

    def reset(self) -> None:
        """Forgets every row (the next call rebuilds)."""
        self._ids, self._rows, self._in_leading_pad, self._continued = None, [], [], 0

    def _continues(self, input_ids: torch.Tensor, rule: tuple[int | None, torch.Tensor | None]) -> bool:
        old = self._ids
        return (
            old is not None
            and rule[0] == self._padding_rule[0]
            and rule[1] is self._padding_rule[1]
            and extends_by_one(input_ids, old)
        )

    @staticmethod
    def _ignore(input_ids: torch.Tensor, pad_token_id: int | None, prompt_mask: torch.Tensor | None) -> torch.Tensor:
        if prompt_mask is not None:
            return prompt_padding(prompt_mask, input_ids.shape[1])
        if pad_token_id is not None:
            return leading_pad_mask(input_ids, pad_token_id)
        return torch.zeros_like(input_ids, dtype=torch.bool)

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
        continues = self._continues(input_ids, rule)
        self._continued = self._continued + 1 if continues else 0
        self._ids, self._padding_rule = input_ids.clone(), rule
        if self._continued < self.build_after:  # not worth an index yet: the stateless levels
            self._rows = []
            ignore = self._ignore(input_ids, pad_token_id, prompt_mask)
            return repetition_levels(input_ids, candidates, self.max_ngram, ignore)
        if continues and self._rows:
            for row, token, index in zip(range(len(self._rows)), input_ids[:, -1].tolist(), self._rows, strict=True):
                # a generated token is never padding, except a pad id that continues a row made only of pads
                leading = prompt_mask is None and self._in_leading_pad[row] and token == pad_token_id
                self._in_leading_pad[row] = leading
                index.append(IGNORED if leading else token)
        else:
            self.rebuilds += 1
            ignore = self._ignore(input_ids, pad_token_id, prompt_mask)
            self._rows = []
            for ids in input_ids.masked_fill(ignore, IGNORED).tolist():
                index = NgramIndex(self.max_ngram)
                index.extend(ids)
                self._rows.append(index)
            self._in_leading_pad = ignore.all(dim=1).tolist()
        levels = [index.levels(row) for index, row in zip(self._rows, candidates.tolist(), strict=True)]
        return torch.tensor(levels, dtype=torch.long, device=candidates.device)
