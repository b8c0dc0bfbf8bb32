"""``custom_generate`` entry point for momentum decoding (Lan et al. 2022): :func:`momentum_decode`.

transformers 5 accepts a callable as ``generate(..., custom_generate=fn)``: ``generate`` prepares the inputs, cache,
logits processors and stopping criteria, then calls ``fn(model, input_ids, logits_processor=..., stopping_criteria=...,
generation_config=..., **custom_kwargs, **model_kwargs)``. The custom kwargs are the parameters of ``fn`` that
``GenerationMixin._sample`` does not have (here the ``md_*`` ones); they are taken out of ``generate``'s kwargs before
the generation config is built. ``generate`` does *not* forward its own ``streamer`` argument to a callable, so the
streamer is passed as ``md_streamer`` instead.

Example:
    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> _ = torch.manual_seed(0)
    >>> tiny = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=32, pad_token_id=0, eos_token_id=None, **tiny)).eval()
    >>> out = model.generate(torch.tensor([[5, 6, 7, 8]]), custom_generate=momentum_decode, md_alpha=0.2,
    ...                      md_top_k=5, max_new_tokens=8, do_sample=False)
    >>> tuple(out.shape)
    (1, 12)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

from inertia.adapters.transformers.generate_checks import (
    check_greedy_generation_config,
    pad_token_id_of,
)
from inertia.adapters.transformers.logits_processor import MomentumDecodingLogitsProcessor
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE

__all__ = ["momentum_decode"]


def momentum_decode(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    md_alpha: float = 0.2,
    md_top_k: int = 5,
    md_resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
    md_max_ngram: int | None = None,
    md_streamer: Any = None,
    **model_kwargs: Any,
) -> Any:
    """Momentum decoding as ``model.generate(**inputs, custom_generate=momentum_decode, ...)``.

    Checks the generation config (greedy only: ``do_sample=False``, ``num_beams=1``, no contrastive/DoLa/assisted
    mode), appends a :class:`MomentumDecodingLogitsProcessor` after the processors ``generate`` built from the config,
    and runs transformers' own greedy loop (``GenerationMixin._sample``, private API of transformers 5). Left padding
    is read from the prompt's attention mask (exact even when the pad id is also a real token of the prompt, as with
    pad = EOS = BOS); without a mask every prompt token counts, as it does for the model. Returns what greedy
    ``generate`` returns (a tensor, or a ``GenerateDecoderOnlyOutput`` with ``return_dict_in_generate=True``).

    Args:
        model: the model (``generate`` passes itself).
        input_ids: prompt ids prepared by ``generate``.
        logits_processor: processors prepared by ``generate`` (config-driven ones plus the user's list).
        stopping_criteria: stopping criteria prepared by ``generate``.
        generation_config: the prepared config.
        md_alpha: α, the resistance weight (0.2).
        md_top_k: k, the candidate pool size (5).
        md_resistance: the resistance table or preset name (see the processor).
        md_max_ngram: N, longest n-gram looked up (``None``: ``len(resistance) - 1``).
        md_streamer: a transformers streamer (``TextStreamer``, ``TextIteratorStreamer``...). It receives the prompt,
            then each new token, then ``end()``, as with greedy ``generate(streamer=...)``. Pass it here:
            ``generate`` keeps its own ``streamer`` argument away from a ``custom_generate`` callable.
        **model_kwargs: model inputs prepared by ``generate`` (attention mask, cache, ...).

    Raises:
        ValueError: for sampling, beam search or any non-greedy mode, for an invalid ``md_*`` value, or if the
            processor list already holds a ``MomentumDecodingLogitsProcessor``. All before the first forward pass.

    Example:
        >>> from inertia.decoders import momentum_decode
        >>> # out = model.generate(**inputs, custom_generate=momentum_decode, md_alpha=0.2, md_top_k=5,
        >>> #                      max_new_tokens=128, do_sample=False)
    """
    check_greedy_generation_config(generation_config, "momentum_decode")
    prompt_mask = model_kwargs.get("attention_mask")
    if prompt_mask is None:  # no mask: the model attends to every prompt token, so every one is a graph node
        prompt_mask = torch.ones_like(input_ids)
    processor = MomentumDecodingLogitsProcessor(
        alpha=md_alpha,
        top_k=md_top_k,
        resistance=md_resistance,
        pad_token_id=pad_token_id_of(generation_config),
        max_ngram=md_max_ngram,
        prompt_attention_mask=prompt_mask,  # exact padding, even when pad == eos == bos
    )
    if any(isinstance(existing, MomentumDecodingLogitsProcessor) for existing in logits_processor):
        raise ValueError(
            "momentum_decode adds its own MomentumDecodingLogitsProcessor, but `logits_processor` already holds one; "
            "use either custom_generate=momentum_decode or the processor with plain greedy generate, not both."
        )
    processors = LogitsProcessorList([*logits_processor, processor])
    if md_streamer is not None:
        md_streamer.put(input_ids.cpu())
    return model._sample(
        input_ids,
        logits_processor=processors,
        stopping_criteria=stopping_criteria,
        generation_config=generation_config,
        synced_gpus=False,
        streamer=md_streamer,
        **model_kwargs,
    )
