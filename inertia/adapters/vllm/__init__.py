"""The vLLM adapter: momentum decoding and the momentum penalty as a logits processor for vLLM's engine
(docs/hosts/vllm.md).

``MomentumDecodingLogitsProcessor`` is registered under vLLM's ``vllm.logits_processors`` entry point, so an engine
in an environment where inertia is installed loads it by itself; it acts only on requests whose
``SamplingParams.extra_args`` has ``md_*`` keys (momentum decoding, greedy) or ``mp_*`` keys (the momentum penalty,
any sampling; :mod:`inertia.adapters.vllm.settings`). The class is built on first
access from the installed vLLM's base classes (:func:`~inertia.adapters.vllm.logits_processor.processor_class`), so
this package imports without vLLM; only that attribute needs it.

Example:
    >>> import inertia.adapters.vllm as adapter   # no vLLM import here
    >>> # from vllm import LLM, SamplingParams
    >>> # llm = LLM(model=...)    # the entry point loads adapter.MomentumDecodingLogitsProcessor
    >>> # llm.generate(prompts, SamplingParams(temperature=0, extra_args={"md_alpha": 0.2, "md_top_k": 5}))
    >>> # llm.generate(prompts, SamplingParams(temperature=0.8, top_p=0.95, extra_args={"mp_alpha": 0.2}))
"""

from __future__ import annotations

from typing import Any

__all__ = ["MomentumDecodingLogitsProcessor"]


def __getattr__(name: str) -> Any:
    if name == "MomentumDecodingLogitsProcessor":
        from inertia.adapters.vllm.logits_processor import processor_class

        cls = globals()[name] = processor_class()  # built once, from the installed vLLM's base classes
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
