"""Momentum decoding as a llama-cpp-python logits processor, for greedy completion (``temperature=0``).

llama-cpp-python runs a ``logits_processor=`` list as the first stage of llama.cpp's sampler chain: each processor is
called with ``(input_ids, scores)``, the prompt plus the tokens generated so far (a 1-D ``numpy`` int array) and the
next-token logits over the whole vocabulary in token-id order (a 1-D float32 array), and returns new scores. With
``temperature=0`` the chain ends in llama.cpp's greedy sampler, which takes the first largest score: so a processor
that returns the momentum-decoding selection scores makes llama.cpp choose exactly what momentum decoding chooses
(Lan et al. 2022; eqs. (1)-(3) of :mod:`inertia.core.decoding.momentum`, computed there, not here).

Example:
    >>> import numpy as np
    >>> processor = MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=3)
    >>> history = np.array([4, 5, 6, 4, 5], dtype=np.intc)   # the walk 4 -> 5 -> 6 -> 4 -> 5 is about to loop
    >>> logits = np.array([0, 0, 0, 0, 0, 0, 3.0, 2.9], dtype=np.single)   # greedy would re-enter the loop (6)
    >>> int(np.argmax(processor(history, logits)))   # MD charges 0.2·R(3) = 0.8 and picks 7
    7
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inertia.adapters.llama_cpp.row_check import check_one_row
from inertia.core.decoding.momentum import (
    DEFAULT_RESISTANCE,
    momentum_scores,
    penalty_table,
    resolve_resistance,
    validate_alpha,
    validate_top_k,
)
from inertia.core.decoding.ngram_index import IncrementalLevels
from inertia.core.decoding.thread_cache import PerThreadCache

__all__ = ["MomentumDecodingLlamaCppProcessor"]


class MomentumDecodingLlamaCppProcessor(PerThreadCache):
    r"""Momentum decoding (Lan et al. 2022) for llama-cpp-python: greedy search that charges a resistance for
    walking back into loops.

    At each step the top-k tokens by logit get ``s(v) = p(v) − α·R(l(v))``, with ``p = softmax(scores)`` and ``l(v)``
    the repetition level of ``v`` on the token graph of ``input_ids`` (prompt included); every other token gets
    ``-inf``. Pass it in a ``llama_cpp.LogitsProcessorList`` with ``temperature=0`` (``temp=0`` for
    ``Llama.generate``): llama.cpp's greedy sampler then picks the momentum-decoding choice. With a temperature
    above 0 llama.cpp would *sample* from these selection scores, which is not momentum decoding; keep llama.cpp's
    penalties neutral too (they run after this processor and would rescale the selection scores).

    State: each thread keeps the n-gram index of the history it saw last
    (:class:`~inertia.core.decoding.ngram_index.IncrementalLevels`), so a step costs the same at any context length.
    It is a cache of a function of ``input_ids``: a call continues it only when ``input_ids`` is the previous call's
    plus one token (compared in full); any other call (a new prompt, a new completion, a rewound history) rebuilds
    it. Nothing carries over from one completion to the next, and the choices equal the stateless computation's.

    Args:
        alpha: resistance weight α ≥ 0 (paper: 0.2). 0 gives llama.cpp's greedy search exactly.
        top_k: candidate pool size k ≥ 1 (authors' default 5).
        resistance: the table R(0), ..., R(N) or a preset name of
            :data:`inertia.core.decoding.momentum.RESISTANCE_PRESETS`; the default is the authors' GPT2-XL table.
        max_ngram: N, the longest n-gram looked up; ``None`` means ``len(resistance) - 1``.

    Raises:
        ValueError: at construction for any invalid parameter (named, with its value and the valid range); at call
            time for arrays that are not 1-D or a ``top_k`` larger than the vocabulary.

    Example:
        >>> processor = MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=5)
        >>> processor
        MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=5, resistance=(0.0, 1.0, 3.0, 4.0, 5.0, 5.0))
        >>> # from llama_cpp import Llama, LogitsProcessorList
        >>> # llm = Llama(model_path="model.gguf")
        >>> # llm.create_completion("Once upon a time", temperature=0.0, max_tokens=64,
        >>> #                       logits_processor=LogitsProcessorList([processor]))
    """

    def __init__(
        self,
        alpha: float = 0.2,
        top_k: int = 5,
        resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
        max_ngram: int | None = None,
    ) -> None:
        self.alpha = validate_alpha(alpha)
        self.top_k = validate_top_k(top_k)
        self.resistance = resolve_resistance(resistance, max_ngram)
        self.max_ngram = len(self.resistance) - 1
        self._penalties = penalty_table(self.alpha, self.resistance)
        super().__init__()

    def levels(self) -> IncrementalLevels:
        """This thread's n-gram cache (created on first use)."""
        return self.cached(lambda: IncrementalLevels(self.max_ngram))

    def __call__(self, input_ids: npt.NDArray[Any], scores: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """The momentum-decoding selection scores: s(v) on the top-k candidates, ``-inf`` elsewhere.

        Args:
            input_ids: ``[T]`` prompt plus the tokens generated so far (llama-cpp-python passes ``np.intc``).
            scores: ``[V]`` next-token logits in token-id order (a strided view of llama.cpp's candidates; not
                modified).

        Returns:
            A new float32 ``[V]`` array.
        """
        check_one_row("MomentumDecodingLlamaCppProcessor", input_ids, scores)
        ids = torch.from_numpy(np.ascontiguousarray(input_ids)).unsqueeze(0)
        logits = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)).unsqueeze(0)
        out = momentum_scores(ids, logits, self._penalties, self.top_k, levels_of=self.levels())
        return out[0].numpy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, top_k={self.top_k}, resistance={self.resistance})"
