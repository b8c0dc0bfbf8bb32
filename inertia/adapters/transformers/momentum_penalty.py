"""The momentum penalty (our extension of momentum decoding to sampling) as a transformers ``LogitsProcessor``.

The processor subtracts α·R(l(v)) from every token's logit (eq. (4) of
:mod:`inertia.core.decoding.momentum_penalty`) and changes nothing else, so it composes with sampling
(``do_sample=True`` with temperature, top-k, top-p, min-p, the model's generation config), with greedy search and
with beam search, like transformers' own ``repetition_penalty``. ``generate`` runs a processor passed as
``logits_processor=`` before the sampling warpers. What it keeps between calls is a cache of a function of
``input_ids`` (:class:`~inertia.core.decoding.penalty_index.IncrementalPenalty`), so in a long generation on the CPU a step's
cost hardly grows with the history, with exactly the stateless scores.

Example:
    >>> import torch
    >>> processor = MomentumPenaltyLogitsProcessor(alpha=0.5)
    >>> history = torch.tensor([[4, 5, 6, 4, 5]])              # about to re-enter the loop 4 -> 5 -> 6
    >>> out = processor(history, torch.zeros(1, 8))
    >>> [round(v, 2) for v in out[0].tolist()]                 # 6 would repeat a 3-gram: 0.5·R(3) = 2
    [0.0, 0.0, 0.0, 0.0, -0.5, -0.5, -2.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from inertia.adapters.transformers.processor_state import HistoryProcessorState
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE, penalty_table, resolve_resistance
from inertia.core.decoding.momentum_penalty import DEFAULT_PENALTY_ALPHA, apply_momentum_penalty
from inertia.core.decoding.penalty_index import IncrementalPenalty
from inertia.core.validation import check_range

__all__ = ["AUTO_PENALTY_BUILD_AFTER", "MomentumPenaltyLogitsProcessor"]

AUTO_PENALTY_BUILD_AFTER = 128
"""With ``incremental="auto"``, a generation's first 128 steps are computed statelessly and the rows' indexes are
built at the 129th. The stateless step is cheap (0.2-0.9 ms at batch 1 up to 32k tokens of history, 22 ms at batch 8
and 32k) and building the indexes costs 60 to 350 such steps on real text (docs/methods/momentum-decoding.md), so short
and medium generations never pay the build and long ones pay it once."""


class MomentumPenaltyLogitsProcessor(LogitsProcessor, HistoryProcessorState):
    r"""The momentum penalty: momentum decoding's resistance charged in log space, for sampling (our extension).

    Not the paper's method (that is :class:`~inertia.decoders.MomentumDecodingLogitsProcessor`, greedy only). Every
    token's logit becomes ``z(v) − α·R(l(v))``, where ``l(v)`` is its repetition level on the token graph of the
    history (0: new token; 1: known token, new edge; n ≥ 2: it would repeat an n-gram already in the text, prompt
    included) and ``R`` the resistance table: the odds of a repeat against a new token shrink by ``exp(−α·R(l))``.
    The warpers (temperature, top-k, top-p, min-p) then run on the penalised logits as usual. With ``alpha=0`` the
    scores are returned unchanged, so generation is bit for bit that of ``generate`` without the processor.

    Contract (transformers 5): ``__call__(input_ids, scores)``; a new tensor is returned and ``scores`` is never
    modified; rows are independent. With ``incremental`` on (the default on the CPU), each thread keeps the index
    of its rows between calls: a call whose ``input_ids`` is the previous call's plus one token (compared in full)
    extends it; any other call rebuilds it, so nothing carries over from one generation, or one batch order, to the
    next. A token at ``-inf`` stays there; a token of infinite resistance (the ``ngram_block`` preset) goes to
    ``-inf``, but a row never loses its last allowed token.

    Args:
        alpha: α ≥ 0, in nats per unit of R (default 0.2: re-entering a bigram costs 0.6 nats with the default
            table, a 4- or 5-gram 1.0). 0 is plain decoding exactly. Not the paper's α: there α·R is subtracted
            from a probability.
        resistance: the table R(0), ..., R(N) or a preset name of
            :data:`inertia.core.decoding.momentum.RESISTANCE_PRESETS` (default ``(0, 1, 3, 4, 5, 5)``).
        max_ngram: N, the longest n-gram looked up; ``None`` means ``len(resistance) - 1``.
        pad_token_id: the id used for left padding: leading runs of it are left out of the graph. ``None``: every
            token is part of the graph. A prompt that really starts with the pad id (pad = EOS = BOS) needs
            ``prompt_attention_mask`` (or :func:`inertia.decoders.momentum_sample`, which passes it).
        prompt_attention_mask: the prompt's ``[B, T0]`` attention mask (1 = real token); binds the processor to that
            batch.
        incremental: ``True``: keep each row's index between calls; ``False``: recompute from the whole history every
            step (vectorised, no host synchronisation: for GPUs); ``"auto"``: incremental when ``input_ids`` is on the
            CPU, from a generation's 129th step on (:data:`AUTO_PENALTY_BUILD_AFTER`). The scores are the same.

    Raises:
        ValueError: at construction for an invalid parameter (named, with its value and the valid range), and at call
            time for scores that are not ``[B, V]`` with the rows of ``input_ids``.

    Example:
        >>> import torch
        >>> from transformers import LogitsProcessorList
        >>> processors = LogitsProcessorList([MomentumPenaltyLogitsProcessor(alpha=0.5, pad_token_id=0)])
        >>> # model.generate(**inputs, do_sample=True, temperature=0.8, top_p=0.95, logits_processor=processors)
        >>> processors[0]
        MomentumPenaltyLogitsProcessor(alpha=0.5, resistance=(0.0, 1.0, 3.0, 4.0, 5.0, 5.0), pad_token_id=0)
    """

    supports_continuous_batching = False  # the continuous-batching path passes 3-D scores we do not implement

    def __init__(
        self,
        alpha: float = DEFAULT_PENALTY_ALPHA,
        resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
        max_ngram: int | None = None,
        pad_token_id: int | None = None,
        prompt_attention_mask: torch.Tensor | None = None,
        incremental: bool | str = "auto",
    ) -> None:
        self.alpha = check_range("alpha", alpha, 0.0)
        self.resistance = resolve_resistance(resistance, max_ngram)
        self.max_ngram = len(self.resistance) - 1
        HistoryProcessorState.__init__(self, pad_token_id, prompt_attention_mask, incremental)
        self._penalties = penalty_table(self.alpha, self.resistance)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        """Returns ``scores − α·R(l(v))`` for every token; see the class docstring.

        Args:
            input_ids: ``[B, T]`` prompt plus the tokens generated so far.
            scores: ``[B, V]`` next-token scores (logits, or log-probabilities under beam search).

        Returns:
            A new ``[B, V]`` tensor in ``scores.dtype``.
        """
        self.check_call(type(self).__name__, input_ids, scores)
        cache = None
        if self.wants_cache(input_ids):
            build_after = 0 if self.incremental is True else AUTO_PENALTY_BUILD_AFTER
            cache = self.cached(lambda: IncrementalPenalty(self._penalties, build_after))
        return apply_momentum_penalty(
            input_ids, scores, self._penalties, self.pad_token_id, self.prompt_attention_mask, cache
        )

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(alpha={self.alpha}, resistance={self.resistance}, pad_token_id={self.pad_token_id})"
