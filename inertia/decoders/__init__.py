"""Momentum decoding for transformers ``generate()``, and an offline contrastive search.

- :class:`MomentumDecodingLogitsProcessor`: momentum decoding (Lan et al. 2022) as a vectorised logits processor.
- :func:`momentum_decode`: the same as a ``custom_generate`` callable that checks the generation mode.
- :class:`MomentumPenaltyLogitsProcessor` and :func:`momentum_sample`: the momentum penalty, our extension of
  momentum decoding to sampling (the resistance subtracted from every logit, before the sampling warpers).
- :func:`contrastive_search`: contrastive search (Su et al. 2022) as a ``custom_generate`` callable, because
  transformers 5 only offers it as remote code on the Hub.
- :class:`MomentumDecodingLlamaCppProcessor`: momentum decoding as a llama-cpp-python ``logits_processor`` (greedy
  completion, ``temperature=0``; docs/hosts/llama-cpp.md).
- :class:`MomentumPenaltyLlamaCppProcessor`: the momentum penalty as a llama-cpp-python ``logits_processor`` (any
  temperature: llama.cpp's sampling chain runs after it).

Example:
    >>> from transformers import LogitsProcessorList
    >>> from inertia.decoders import MomentumDecodingLogitsProcessor, contrastive_search, momentum_decode
    >>> from inertia.decoders import MomentumPenaltyLogitsProcessor, momentum_sample
    >>> processors = LogitsProcessorList([MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5)])
    >>> # model.generate(**inputs, do_sample=False, logits_processor=processors)
    >>> # model.generate(**inputs, custom_generate=momentum_decode, md_alpha=0.2, md_top_k=5)
    >>> penalty = LogitsProcessorList([MomentumPenaltyLogitsProcessor(alpha=0.2)])
    >>> # model.generate(**inputs, do_sample=True, top_p=0.95, logits_processor=penalty)
    >>> # model.generate(**inputs, do_sample=True, top_p=0.95, custom_generate=momentum_sample, mp_alpha=0.2)
    >>> # model.generate(**inputs, custom_generate=contrastive_search, penalty_alpha=0.6, top_k=5)
"""

from inertia._lazy import lazy_attributes, names_by_module

_NAMES = names_by_module(
    {
        "inertia.core.decoding.momentum": "DEFAULT_RESISTANCE RESISTANCE_PRESETS repetition_levels",
        "inertia.adapters.transformers.logits_processor": "MomentumDecodingLogitsProcessor",
        "inertia.adapters.transformers.contrastive_search": "contrastive_search",
        "inertia.adapters.transformers.momentum_generate": "momentum_decode",
        "inertia.core.decoding.momentum_penalty": "DEFAULT_PENALTY_ALPHA",
        "inertia.adapters.transformers.momentum_penalty": "MomentumPenaltyLogitsProcessor",
        "inertia.adapters.transformers.momentum_sample": "momentum_sample",
        "inertia.adapters.llama_cpp.logits_processor": "MomentumDecodingLlamaCppProcessor",
        "inertia.adapters.llama_cpp.momentum_penalty": "MomentumPenaltyLlamaCppProcessor",
    }
)
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)  # imported on first use: the math loads without transformers
