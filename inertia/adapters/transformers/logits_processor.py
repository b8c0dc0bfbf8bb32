"""Momentum decoding as a transformers ``LogitsProcessor`` for greedy ``generate()``.

The processor returns new scores whose ``argmax`` is the momentum-decoding choice (Lan et al. 2022; see
docs/hosts/transformers.md), so greedy search (``do_sample=False, num_beams=1``) with this processor *is* momentum
decoding: no extra forward pass, no hidden states. What it keeps between calls is a cache of a function of
``input_ids`` (the n-gram index of each row, :class:`~inertia.core.decoding.ngram_index.IncrementalLevels`), so a step
costs the same at any context length on the CPU, with exactly the choices of the stateless computation.

Example:
    >>> import torch
    >>> from transformers import LogitsProcessorList
    >>> processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=3)
    >>> history = torch.tensor([[4, 5, 6, 4, 5]])   # the walk 4 -> 5 -> 6 -> 4 -> 5 is about to loop
    >>> logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 2.9]])   # greedy would re-enter the loop (6)
    >>> int(LogitsProcessorList([processor])(history, logits).argmax())   # MD charges 0.2·R(3) = 0.8 and picks 7
    7
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from inertia.adapters.transformers.processor_state import HistoryProcessorState
from inertia.core.decoding.momentum import (
    DEFAULT_RESISTANCE,
    momentum_scores,
    penalty_table,
    resolve_resistance,
    validate_alpha,
    validate_top_k,
)
from inertia.core.decoding.ngram_index import IncrementalLevels

__all__ = ["AUTO_BUILD_AFTER", "MomentumDecodingLogitsProcessor"]

AUTO_BUILD_AFTER = 8
"""With ``incremental="auto"``, a generation's first 8 steps are computed statelessly and the n-gram index is built
at the 9th: building it costs up to about 8 stateless steps (docs/benchmarks/decoding.md §17), so a generation of at most 8 steps
costs what the stateless path costs, and a longer one pays the build once and then a flat cost per step."""


class MomentumDecodingLogitsProcessor(LogitsProcessor, HistoryProcessorState):
    r"""Momentum decoding (Lan et al. 2022): greedy search that charges a resistance for walking back into loops.

    At each step the top-k tokens by score get ``s(v) = p(v) − α·R(l(v))``, where ``p = softmax(scores)`` and
    ``l(v)`` is the repetition level of ``v`` on the token graph of the history (0: new token; 1: known token, new
    edge; n ≥ 2: it would repeat an n-gram already in the text, prompt included); every other token gets ``-inf``.
    Use it with greedy search only. With ``do_sample=True`` the sampling warpers would run on these selection scores,
    and beam search feeds processors log-probabilities and adds the result to beam scores, so neither is momentum
    decoding. :func:`inertia.decoders.momentum_decode` checks that for you.

    Contract (transformers 5): ``__call__(input_ids, scores)`` with no extra arguments, a new tensor is returned and
    ``scores`` is never modified, rows are independent. With ``incremental`` on (the default on the CPU), each
    thread keeps the n-gram index of its rows between calls: a call whose ``input_ids`` is the previous call's plus
    one token (compared in full) extends it; any other call rebuilds it, so nothing carries over from one generation
    to the next. Off (the default on other devices), nothing is kept and there is no host synchronisation. It
    runs after the processors that ``generate`` builds from the generation config (e.g. ``no_repeat_ngram_size``),
    which change ``p``; for the paper's method use it alone. Tokens those processors banned (``-inf``) stay banned.
    With ``output_scores=True`` the returned scores are these selection scores; ``output_logits=True`` still gives
    the model's logits.

    Args:
        alpha: resistance weight α ≥ 0 (paper and authors' code: 0.2). 0 gives plain greedy search exactly.
        top_k: candidate pool size k ≥ 1 (authors' default 5). A token outside the top-k is never chosen.
        resistance: the table R(0), R(1), ..., R(N) or a preset name from
            :data:`inertia.core.decoding.momentum.RESISTANCE_PRESETS`. The default ``(0, 1, 3, 4, 5, 5)`` is the authors'
            GPT2-XL table at the arXiv-v1 date; their repository later shows ``(0, 1, 2, 3, 4, 5)`` ("linear") too,
            and which one produced the paper's numbers is not known. Other models may want their own table.
        pad_token_id: the id used for left padding. Leading runs of it are left out of the graph, so a left-padded
            batch gives the same tokens as one-by-one generation. ``None``: every token is part of the graph.
            Limitation: a bare processor only sees ``input_ids``, so a prompt that really *starts* with the pad id
            loses those tokens from the graph. That happens when the pad id falls back to EOS and EOS is also the
            BOS (GPT-2's ``<|endoftext|>``). Pass ``prompt_attention_mask`` (or use
            :func:`inertia.decoders.momentum_decode`, which passes the mask for you) to be exact.
        prompt_attention_mask: the prompt's ``[B, T0]`` attention mask (1 = real token). When given, padding is
            read from it instead of from ``pad_token_id``, and every token generated after the prompt is part of the
            graph. The processor is then bound to that batch (its rows must match ``input_ids``).
        max_ngram: N, the longest n-gram looked up; ``None`` means ``len(resistance) - 1`` (5 for the default). Levels
            beyond the table cost +inf, as in the authors' lookup.
        incremental: ``True``: keep each row's n-gram index between calls (a step costs O(k·N) look-ups at any
            history length, plus one comparison of ``input_ids`` with the previous call's); ``False``: recompute the
            levels from the whole history every step (vectorised, O(T) per step, no host sync: for GPUs and CUDA
            graphs); ``"auto"``: incremental when ``input_ids`` is on the CPU, from a generation's 9th step on
            (:data:`AUTO_BUILD_AFTER`). The choices are the same either way.

    Raises:
        ValueError: at construction for any invalid parameter (named, with its value and the valid range), and at
            call time if ``top_k`` exceeds the vocabulary or the scores are not 2-D.

    Example:
        >>> import torch
        >>> processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, pad_token_id=0)
        >>> processor
        MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, resistance=(0.0, 1.0, 3.0, 4.0, 5.0, 5.0), pad_token_id=0)
        >>> out = processor(torch.tensor([[0, 0, 3, 4]]), torch.randn(1, 10))   # 2 pad tokens on the left
        >>> int(torch.isfinite(out).sum())   # only the 5 candidates keep a finite score
        5
    """

    supports_continuous_batching = False  # the continuous-batching path passes 3-D scores we do not implement

    def __init__(
        self,
        alpha: float = 0.2,
        top_k: int = 5,
        resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
        pad_token_id: int | None = None,
        max_ngram: int | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        incremental: bool | str = "auto",
    ) -> None:
        self.alpha = validate_alpha(alpha)
        self.top_k = validate_top_k(top_k)
        self.resistance = resolve_resistance(resistance, max_ngram)
        self.max_ngram = len(self.resistance) - 1
        HistoryProcessorState.__init__(self, pad_token_id, prompt_attention_mask, incremental)
        self._penalties = penalty_table(self.alpha, self.resistance)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        """Returns the momentum-decoding selection scores; see the class docstring.

        Args:
            input_ids: ``[B, T]`` prompt plus the tokens generated so far.
            scores: ``[B, V]`` next-token logits (already processed by the earlier processors).

        Returns:
            A new ``[B, V]`` tensor in ``scores.dtype``: s(v) on the top-k candidates, ``-inf`` elsewhere.
        """
        self.check_call(type(self).__name__, input_ids, scores)
        levels_of = None
        if self.wants_cache(input_ids):
            build_after = 0 if self.incremental is True else AUTO_BUILD_AFTER
            levels_of = self.cached(lambda: IncrementalLevels(self.max_ngram, build_after))
        return momentum_scores(
            input_ids, scores, self._penalties, self.top_k, self.pad_token_id, self.prompt_attention_mask, levels_of
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(alpha={self.alpha}, top_k={self.top_k}, resistance={self.resistance}, "
            f"pad_token_id={self.pad_token_id})"
        )
