"""The momentum penalty (our extension of momentum decoding to sampling) as a llama-cpp-python logits processor.

llama-cpp-python runs a ``logits_processor=`` list as the first stage of llama.cpp's sampler chain, before top-k,
top-p, min-p, the temperature and the seeded draw: a processor that subtracts α·R(l(v)) from every token's logit
(eq. (4) of :mod:`inertia.core.decoding.momentum_penalty`, computed there, not here) and changes nothing else leaves
that chain to sample as usual from the penalised logits. With α = 0 the logits come back unchanged, so the draw is
llama.cpp's own, token for token.

Example:
    >>> import numpy as np
    >>> processor = MomentumPenaltyLlamaCppProcessor(alpha=0.5)
    >>> history = np.array([4, 5, 6, 4, 5], dtype=np.intc)      # about to re-enter the loop 4 -> 5 -> 6
    >>> [round(float(v), 2) for v in processor(history, np.zeros(8, dtype=np.single))]   # 6: 0.5·R(3) = 2
    [0.0, 0.0, 0.0, 0.0, -0.5, -0.5, -2.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inertia.adapters.llama_cpp.row_check import check_one_row
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE, resolve_resistance
from inertia.core.decoding.momentum_penalty import (
    DEFAULT_PENALTY_ALPHA,
    apply_momentum_penalty,
    momentum_penalty_table,
)
from inertia.core.decoding.penalty_index import IncrementalPenalty
from inertia.core.decoding.thread_cache import PerThreadCache

__all__ = ["MomentumPenaltyLlamaCppProcessor"]


class MomentumPenaltyLlamaCppProcessor(PerThreadCache):
    r"""The momentum penalty for llama-cpp-python: momentum decoding's resistance charged in log space, so that
    llama.cpp's sampling (temperature, top-k, top-p, min-p, seed) runs on as usual (our extension, not the paper's).

    Every token's logit becomes ``z(v) − α·R(l(v))``, where ``l(v)`` is its repetition level on the token graph of
    ``input_ids`` (prompt included; 0: a new token, 1: a known token on a new edge, n ≥ 2: it would repeat an n-gram
    of the text) and ``R`` the resistance table: the odds of a repeat against a new token shrink by ``exp(−α·R(l))``.
    Pass it in a ``llama_cpp.LogitsProcessorList`` with any temperature; it is not momentum decoding (that is
    :class:`~inertia.adapters.llama_cpp.logits_processor.MomentumDecodingLlamaCppProcessor`, greedy only).

    State: each thread keeps the penalty index of the history it saw last
    (:class:`~inertia.core.decoding.penalty_index.IncrementalPenalty` on a batch of one), so a step hardly costs more
    late in a long completion. It is a cache of a function of ``input_ids``: a call continues it only when
    ``input_ids`` is the previous call's plus one token (compared in full) with a vocabulary of the same size; any
    other call (a new prompt, a new completion, a rewound history) rebuilds it. Nothing carries over from one
    completion to the next, and the scores equal the stateless computation's bit for bit.

    Args:
        alpha: α ≥ 0, in nats per unit of R (default 0.2: re-entering a bigram costs 0.6 nats with the default
            table, a 4- or 5-gram 1.0). 0 returns the logits unchanged. Not the paper's α (there α·R is subtracted
            from a probability).
        resistance: the table R(0), ..., R(N) or a preset name of
            :data:`inertia.core.decoding.momentum.RESISTANCE_PRESETS` (default ``(0, 1, 3, 4, 5, 5)``).
        max_ngram: N, the longest n-gram looked up; ``None`` means ``len(resistance) - 1``.

    Raises:
        ValueError: at construction for any invalid parameter (named, with its value and the valid range); at call
            time for arrays that are not 1-D.

    Example:
        >>> processor = MomentumPenaltyLlamaCppProcessor(alpha=0.2)
        >>> processor
        MomentumPenaltyLlamaCppProcessor(alpha=0.2, resistance=(0.0, 1.0, 3.0, 4.0, 5.0, 5.0))
        >>> # from llama_cpp import Llama, LogitsProcessorList
        >>> # llm = Llama(model_path="model.gguf")
        >>> # llm.create_completion("Once upon a time", temperature=0.8, top_p=0.95, max_tokens=64,
        >>> #                       logits_processor=LogitsProcessorList([processor]))
    """

    def __init__(
        self,
        alpha: float = DEFAULT_PENALTY_ALPHA,
        resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
        max_ngram: int | None = None,
    ) -> None:
        self._penalties = momentum_penalty_table(alpha, resistance, max_ngram)  # validates every argument
        self.alpha = float(alpha)
        self.resistance = resolve_resistance(resistance, max_ngram)
        self.max_ngram = len(self.resistance) - 1
        super().__init__()

    def cache(self) -> IncrementalPenalty:
        """This thread's penalty index (created on first use)."""
        return self.cached(lambda: IncrementalPenalty(self._penalties))

    def __call__(self, input_ids: npt.NDArray[Any], scores: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """``scores − α·R(l(v))`` for every token (eq. (4)); see the class docstring.

        Args:
            input_ids: ``[T]`` prompt plus the tokens generated so far (llama-cpp-python passes ``np.intc``).
            scores: ``[V]`` next-token logits in token-id order (a strided view of llama.cpp's candidates; not
                modified).

        Returns:
            A new float32 ``[V]`` array.
        """
        check_one_row("MomentumPenaltyLlamaCppProcessor", input_ids, scores)
        ids = torch.from_numpy(np.array(input_ids, dtype=np.int64)).unsqueeze(0)
        logits = torch.from_numpy(np.array(scores, dtype=np.float32)).unsqueeze(0)  # copies: `scores` stays as is
        out = apply_momentum_penalty(ids, logits, self._penalties, cache=self.cache())
        return out[0].numpy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, resistance={self.resistance})"
