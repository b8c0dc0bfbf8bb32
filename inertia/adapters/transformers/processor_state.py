"""What our two history-keyed transformers processors share: their argument checks and their per-thread cache.

:class:`~inertia.adapters.transformers.logits_processor.MomentumDecodingLogitsProcessor` and
:class:`~inertia.adapters.transformers.momentum_penalty.MomentumPenaltyLogitsProcessor` take the same padding and
``incremental`` arguments, check ``input_ids``/``scores`` the same way at each call, and keep one n-gram cache per
thread that a copy or a pickle leaves behind (:class:`~inertia.core.decoding.thread_cache.PerThreadCache`).
:class:`HistoryProcessorState` holds that part once; each processor keeps its own math (a core function) and its own
cache class.

Example:
    >>> import torch
    >>> state = HistoryProcessorState(pad_token_id=0, prompt_attention_mask=None, incremental="auto")
    >>> state.wants_cache(torch.zeros(1, 3, dtype=torch.long))   # "auto" keeps a cache for CPU tensors
    True
    >>> state.cached(lambda: [])                                  # built once per thread, then reused
    []
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from inertia.core.decoding.thread_cache import PerThreadCache

__all__ = ["HistoryProcessorState"]


class HistoryProcessorState(PerThreadCache):
    """The padding arguments, the ``incremental`` switch and the per-thread cache of a processor keyed on history.

    Args:
        pad_token_id: ``None`` or the id of left padding (an integer ≥ 0).
        prompt_attention_mask: ``None`` or the prompt's ``[B, T0]`` attention mask.
        incremental: ``True``, ``False`` or ``"auto"`` (a cache for CPU tensors only).

    Raises:
        ValueError: for an argument outside those values, named with its value.
    """

    def __init__(self, pad_token_id: int | None, prompt_attention_mask: torch.Tensor | None, incremental: Any) -> None:
        if pad_token_id is not None and (
            isinstance(pad_token_id, bool) or not isinstance(pad_token_id, numbers.Integral) or pad_token_id < 0
        ):
            raise ValueError(f"`pad_token_id` must be None or an integer >= 0, got {pad_token_id!r}.")
        self.pad_token_id = None if pad_token_id is None else int(pad_token_id)
        if prompt_attention_mask is not None and (
            not isinstance(prompt_attention_mask, torch.Tensor) or prompt_attention_mask.dim() != 2
        ):
            shape = getattr(prompt_attention_mask, "shape", None)
            raise ValueError(
                f"`prompt_attention_mask` must be None or a [B, T0] tensor, got {type(prompt_attention_mask).__name__}"
                f"{'' if shape is None else ' of shape ' + str(tuple(shape))}."
            )
        self.prompt_attention_mask = prompt_attention_mask
        if not (isinstance(incremental, bool) or incremental == "auto"):
            raise ValueError(f"`incremental` must be True, False or 'auto', got {incremental!r}.")
        self.incremental: bool | str = incremental
        super().__init__()  # one cache per thread: concurrent generations never share one

    def check_call(self, owner: str, input_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Raises ``ValueError`` unless ``input_ids`` is ``[B, T]``, ``scores`` ``[B, V]`` and the mask fits them."""
        if scores.dim() != 2 or input_ids.dim() != 2 or scores.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"{owner} expects input_ids [B, T] and scores [B, V] with the same B, got "
                f"{tuple(input_ids.shape)} and {tuple(scores.shape)}."
            )
        mask = self.prompt_attention_mask
        if mask is not None and (mask.shape[0] != input_ids.shape[0] or mask.shape[1] > input_ids.shape[1]):
            raise ValueError(
                f"`prompt_attention_mask` {tuple(mask.shape)} does not match input_ids {tuple(input_ids.shape)}: it "
                "must have the same rows and at most as many columns (the prompt)."
            )

    def wants_cache(self, input_ids: torch.Tensor) -> bool:
        """Whether this call keeps a cache: ``incremental=True``, or ``"auto"`` with ``input_ids`` on the CPU."""
        return self.incremental is True or (self.incremental == "auto" and input_ids.device.type == "cpu")
