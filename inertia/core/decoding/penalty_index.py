"""The momentum penalty without a pass over the history at each step: an index per sequence, fed token by token.

:func:`inertia.core.decoding.momentum_penalty.apply_momentum_penalty` finds every token's repetition level from the
whole history at every step (O(T·N)). The penalty is sparse: a token's level is 1 once it is a node of the graph, 2
if it followed the last token h_T somewhere, and 3..N only if it also followed the last two. So one sequence needs

- a dense row of penalties for "new" (α·R(0)) and "seen" (α·R(1)) tokens, updated once per new node,
- the tokens that followed each token and each pair of tokens, and the
  :class:`~inertia.core.decoding.ngram_index.NgramIndex` for the exact level of the few that followed the last pair
  (:class:`NgramSuccessors`).

A step then costs one pass over the vocabulary, one indexed write of the successors of h_T (a tensor cached per
token) and a few look-ups for the successors of the last pair. That does not scan the history; it grows only with
the number of distinct tokens that have followed h_T (bounded by V), which is why a frequent last token costs a
little more in a long text (docs/methods/momentum-decoding.md has the measurement). The scores are exactly the
stateless ones, padding included (positions outside the graph are kept as
:data:`~inertia.core.decoding.ngram_index.IGNORED`).

Per request, an engine keeps one :class:`MomentumPenaltyRow` (feed it the tokens, apply it to the logits row); a
host that only sees whole batches of ``input_ids`` (transformers) uses :class:`IncrementalPenalty`.

Example:
    >>> import torch
    >>> from inertia.core.decoding.momentum_penalty import momentum_penalty_table
    >>> row = MomentumPenaltyRow(momentum_penalty_table(0.5, (0, 1, 3)))   # α·R(l) = 0, 0.5, 1.5
    >>> row.extend([3, 1, 3])
    >>> row.apply(torch.zeros(4)).tolist()
    [0.0, -1.5, 0.0, -0.5]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from inertia.core.decoding.momentum_penalty import apply_momentum_penalty, graph_padding, keep_one_token
from inertia.core.decoding.ngram_index import IGNORED, NgramIndex, extends_by_one
from inertia.core.validation import check_int

__all__ = ["IncrementalPenalty", "MomentumPenaltyRow", "NgramSuccessors"]


class NgramSuccessors:
    """The n-gram index of one sequence that can also list the tokens of level ≥ 2 after the current suffix.

    An :class:`~inertia.core.decoding.ngram_index.NgramIndex` (the nodes and n-grams seen, fed token by token) plus
    the tokens that followed each token and each pair of tokens. A token of level 2 closes the bigram (h_T, v): it
    is one of :meth:`following` ``(h_T)``. A token of level ≥ 3 also closes the trigram (h_{T−1}, h_T, v), so it is
    one of the few tokens that followed that pair; the index gives their exact levels (contexts are nested, eq. (1)).

    Args:
        max_ngram: N, 1..32.

    Example:
        >>> index = NgramSuccessors(max_ngram=5)
        >>> index.extend([5, 6, 7, 5, 6])     # the new nodes
        [5, 6, 7]
        >>> index.successor_levels()          # after "5 6", 7 would close the 3-gram (5, 6, 7)
        {7: 3}
        >>> index.levels([7, 6, 9])           # as NgramIndex.levels
        [3, 1, 0]
    """

    def __init__(self, max_ngram: int = 5) -> None:
        self.ngrams = NgramIndex(max_ngram)  # validates
        self.max_ngram = self.ngrams.max_ngram
        self.seen: set[int] = set()
        self._after_token: dict[int, set[int]] = {}  # a -> the tokens seen right after a
        self._after_pair: dict[tuple[int, int], set[int]] = {}  # (a, b) -> the tokens seen right after "a b"
        self._last: list[int] = []  # the last two tokens

    @property
    def length(self) -> int:
        """The number of tokens fed so far (padding included)."""
        return self.ngrams.length

    @property
    def last(self) -> int | None:
        """h_T, the last token fed (``None`` before the first)."""
        return self._last[-1] if self._last else None

    def extend(self, tokens: Iterable[int]) -> list[int]:
        """Feeds tokens in order (``IGNORED`` for a position outside the graph); returns the new nodes among them."""
        new = [int(token) for token in tokens]
        fresh = [token for token in dict.fromkeys(new) if token != IGNORED and token not in self.seen]
        self.seen.update(fresh)
        seq = self._last + new
        after_token, after_pair = self._after_token, self._after_pair
        pairs = self.max_ngram >= 3  # trigrams only matter from N = 3 on
        for i in range(len(self._last), len(seq)):
            token = seq[i]
            if token == IGNORED or i == 0:  # an n-gram ending in padding is no candidate's
                continue
            known = after_token.get(seq[i - 1])
            if known is None:
                after_token[seq[i - 1]] = {token}
            else:
                known.add(token)
            if pairs and i >= 2:
                known = after_pair.get((seq[i - 2], seq[i - 1]))
                if known is None:
                    after_pair[seq[i - 2], seq[i - 1]] = {token}
                else:
                    known.add(token)
        self._last = seq[-2:]
        self.ngrams.extend(new)
        return fresh

    def following(self, token: int) -> set[int]:
        """The tokens seen right after ``token`` (do not modify): the level-≥2 tokens when ``token`` is h_T."""
        return self._after_token.get(token, _EMPTY)

    def above_bigram(self) -> dict[int, int]:
        """The tokens of level ≥ 3 after the current suffix, with their levels."""
        if self.max_ngram < 3 or len(self._last) < 2:
            return {}
        candidates = list(self._after_pair.get((self._last[0], self._last[1]), ()))
        return dict(zip(candidates, self.ngrams.levels(candidates), strict=True))

    def successor_levels(self) -> dict[int, int]:
        """Every token whose level is ≥ 2 after the current suffix, with its level (eq. (1))."""
        if self.max_ngram < 2 or self.last is None:
            return {}
        return {**dict.fromkeys(self.following(self.last), 2), **self.above_bigram()}

    def levels(self, candidates: Sequence[int]) -> list[int]:
        """l(v) of the candidates, as :meth:`~inertia.core.decoding.ngram_index.NgramIndex.levels`."""
        return self.ngrams.levels(candidates)


_EMPTY: set[int] = set()


class MomentumPenaltyRow:
    """The momentum penalty of one sequence (eq. (4)), kept between steps: what an engine keeps per request.

    Feed it the sequence's tokens as they come (prompt and generated, ``IGNORED`` for padding), then
    :meth:`apply` it to that sequence's next-token logits. The first :meth:`apply` sizes a dense row of base
    penalties (α·R(0) for new tokens, α·R(1) for nodes) to the vocabulary of the logits; later calls only write the
    new nodes, the successors of h_T (a cached tensor per token, α·R(2)) and the few tokens of level ≥ 3. Nothing is
    shared between rows: one request, one object.

    Args:
        penalties: α·R(0..N), from :func:`~inertia.core.decoding.momentum_penalty.momentum_penalty_table`.

    Example:
        >>> import torch
        >>> row = MomentumPenaltyRow((0.0, 0.2, 0.6))
        >>> row.extend([4, 2, 4])
        >>> row.apply(torch.zeros(5)).tolist()   # 2 followed 4 before: 0.6; 4 is a node: 0.2
        [0.0, 0.0, -0.6000000238418579, 0.0, -0.20000000298023224]
    """

    def __init__(self, penalties: Sequence[float]) -> None:
        self.penalties = tuple(float(value) for value in penalties)
        self.index = NgramSuccessors(len(self.penalties) - 1)
        self._infinite = any(math.isinf(value) for value in self.penalties)  # a row could lose every token
        self._base: torch.Tensor | None = None  # [V] α·R(0) or α·R(1) per token
        self._pending: list[int] = []  # new nodes not yet written into the base
        self._following: dict[int, tuple[torch.Tensor, int]] = {}  # a -> (successors < V as a tensor, set size)

    @property
    def length(self) -> int:
        """The number of tokens fed so far (padding included)."""
        return self.index.length

    def extend(self, tokens: Iterable[int]) -> None:
        """Feeds the next tokens of the sequence (``IGNORED`` for a position outside the graph)."""
        fresh = self.index.extend(tokens)
        if self._base is not None:
            self._pending.extend(fresh)

    def append(self, token: int) -> None:
        """Feeds one token."""
        self.extend((token,))

    def _base_for(self, scores: torch.Tensor, work: torch.dtype) -> torch.Tensor:
        base = self._base
        vocab = scores.shape[-1]
        if base is None or base.shape[0] != vocab or base.dtype != work or base.device != scores.device:
            base = torch.full((vocab,), self.penalties[0], dtype=work, device=scores.device)
            self._pending = list(self.index.seen)
            self._following = {}
        if self._pending:
            nodes = [token for token in self._pending if 0 <= token < vocab]
            base[torch.tensor(nodes, dtype=torch.long, device=base.device)] = self.penalties[1]
            self._pending = []
        self._base = base
        return base

    def _following_tensor(self, token: int, vocab: int, device: torch.device) -> torch.Tensor:
        tokens = self.index.following(token)
        cached = self._following.get(token)
        if cached is None or cached[1] != len(tokens):  # sets only grow: the same size is the same set
            kept = [t for t in tokens if 0 <= t < vocab]
            cached = (torch.tensor(kept, dtype=torch.long, device=device), len(tokens))
            self._following[token] = cached
        return cached[0]

    def apply(self, scores: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``scores − α·R(l(v))`` for every token, as ``apply_momentum_penalty`` on this sequence (eq. (4)).

        Args:
            scores: ``[V]`` logits of this sequence's next token; not modified unless it is ``out``.
            out: optional ``[V]`` tensor of ``scores.dtype`` to write into (a row of a batch, or ``scores`` itself
                to penalise in place, as an engine's logits processor may).

        Returns:
            ``out`` (or a new tensor) in ``scores.dtype``.
        """
        if scores.dim() != 1:
            raise ValueError(f"MomentumPenaltyRow.apply expects one [V] row of logits, got {tuple(scores.shape)}.")
        vocab = scores.shape[0]
        work = torch.promote_types(scores.dtype, torch.float32)
        base = self._base_for(scores, work)
        if out is None:
            out = torch.empty_like(scores)
        elif self._infinite and out.data_ptr() == scores.data_ptr():
            scores = scores.clone()  # the fallback below needs the unpenalised row
        # the tokens of level >= 2, with their penalised scores, read before `out` (maybe `scores`) is written
        writes: list[tuple[torch.Tensor, torch.Tensor]] = []
        last = self.index.last
        if self.index.max_ngram >= 2 and last is not None:
            second = self._following_tensor(last, vocab, scores.device)  # level 2 (or more, written after)
            if second.numel():
                writes.append((second, (scores[second].to(work) - self.penalties[2]).to(scores.dtype)))
            above = {t: lvl for t, lvl in self.index.above_bigram().items() if 0 <= t < vocab}
            if above:
                tokens = torch.tensor(list(above), dtype=torch.long, device=scores.device)
                charge = torch.tensor([self.penalties[lvl] for lvl in above.values()], dtype=work, device=out.device)
                writes.append((tokens, (scores[tokens].to(work) - charge).to(scores.dtype)))
        if work == scores.dtype:
            torch.sub(scores, base, out=out)
        else:
            out.copy_(scores.to(work) - base)  # the stateless path's arithmetic: float32, then back
        for tokens, values in writes:
            out[tokens] = values
        if self._infinite:
            out.copy_(keep_one_token(scores.unsqueeze(0), out.unsqueeze(0))[0])
        return out


class IncrementalPenalty:
    """The momentum penalty of a batch whose rows grow by one token per call, from one :class:`MomentumPenaltyRow`
    per row: the :class:`~inertia.core.decoding.ngram_index.IncrementalLevels` rules for the penalty.

    A pure cache of a function of its arguments: a call continues the stored rows only when ``input_ids`` is the
    previous call's plus one column (compared in full), with the same padding rule and vocabulary; any other call (a
    new prompt, another batch, reordered rows, a rewound history) rebuilds every row. The scores are then exactly
    those of the stateless :func:`~inertia.core.decoding.momentum_penalty.apply_momentum_penalty`.

    Args:
        penalties: α·R(0..N).
        build_after: continuation calls computed statelessly before the rows are built (0: at the first call).

    Example:
        >>> import torch
        >>> cache = IncrementalPenalty((0.0, 0.2, 0.6))
        >>> cache(torch.tensor([[4, 2, 4]]), torch.zeros(1, 5)).tolist()[0][2]     # 2 after 4: a bigram repeat
        -0.6000000238418579
        >>> cache(torch.tensor([[4, 2, 4, 3]]), torch.zeros(1, 5)).tolist()[0][2]  # one token more: continued
        -0.20000000298023224
        >>> cache.rebuilds
        1
    """

    def __init__(self, penalties: Sequence[float], build_after: int = 0) -> None:
        self.penalties = tuple(float(value) for value in penalties)
        NgramIndex(len(self.penalties) - 1)  # validates N
        self.build_after = check_int("build_after", build_after, 0)
        self.rebuilds = 0
        self._continued = 0
        self._ids: torch.Tensor | None = None
        self._rule: tuple[int | None, torch.Tensor | None, int] = (None, None, 0)
        self._rows: list[MomentumPenaltyRow] = []
        self._in_leading_pad: list[bool] = []

    def reset(self) -> None:
        """Forgets every row (the next call rebuilds)."""
        self._ids, self._rows, self._in_leading_pad, self._continued = None, [], [], 0

    def _continues(self, input_ids: torch.Tensor, rule: tuple[int | None, torch.Tensor | None, int]) -> bool:
        old = self._ids
        return (
            old is not None
            and rule[0] == self._rule[0]
            and rule[1] is self._rule[1]
            and rule[2] == self._rule[2]
            and extends_by_one(input_ids, old)
        )

    def __call__(
        self,
        input_ids: torch.Tensor,
        scores: torch.Tensor,
        pad_token_id: int | None = None,
        prompt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, V]`` penalised scores; arguments as for ``apply_momentum_penalty``."""
        rule = (pad_token_id, prompt_mask, scores.shape[-1])
        continues = self._continues(input_ids, rule)
        self._continued = self._continued + 1 if continues else 0
        self._ids, self._rule = input_ids.clone(), rule
        if self._continued < self.build_after:  # not worth building the rows yet: the stateless scores
            self._rows = []
            return apply_momentum_penalty(input_ids, scores, self.penalties, pad_token_id, prompt_mask)
        if continues and self._rows:
            for index, token in enumerate(input_ids[:, -1].tolist()):
                # a generated token is never padding, except a pad id that continues a row made only of pads
                leading = prompt_mask is None and self._in_leading_pad[index] and token == pad_token_id
                self._in_leading_pad[index] = leading
                self._rows[index].append(IGNORED if leading else token)
        else:
            self.rebuilds += 1
            ignore = graph_padding(input_ids, pad_token_id, prompt_mask)
            if ignore is None:
                ignore = torch.zeros_like(input_ids, dtype=torch.bool)
            self._rows = []
            for ids in input_ids.masked_fill(ignore, IGNORED).tolist():
                row = MomentumPenaltyRow(self.penalties)
                row.extend(ids)
                self._rows.append(row)
            self._in_leading_pad = ignore.all(dim=1).tolist()
        out = torch.empty_like(scores)
        for index, penalty in enumerate(self._rows):
            penalty.apply(scores[index], out=out[index])
        return out
