"""The generation-config checks and ``generate`` conventions shared by our ``custom_generate`` callables.

:func:`check_greedy_generation_config` refuses a config that selects anything but greedy search (with contrastive
search allowed where asked), :func:`check_single_sequence_config` anything but greedy search or plain sampling;
:func:`insert_before_warpers` puts a processor where ``generate`` puts the user's ones (before the sampling
warpers); :func:`cache_argument` and :func:`pad_token_id_of` read what ``generate`` prepared. The decoding methods
import this module and nothing of each other.

Example:
    >>> from transformers import GenerationConfig
    >>> check_greedy_generation_config(GenerationConfig(do_sample=False), "momentum decoding")
    >>> pad_token_id_of(GenerationConfig(pad_token_id=3))
    3
"""

from __future__ import annotations

import inspect
from typing import Any

from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation import logits_process
from transformers.generation.configuration_utils import GenerationMode

__all__ = [
    "TAIL_PROCESSORS",
    "cache_argument",
    "check_greedy_generation_config",
    "check_single_sequence_config",
    "insert_before_warpers",
    "pad_token_id_of",
]

TAIL_PROCESSORS: tuple[type, ...] = tuple(
    cls
    for name, cls in vars(logits_process).items()
    if isinstance(cls, type)
    and issubclass(cls, LogitsProcessor)
    and (name.endswith("LogitsWarper") or "Watermark" in name or name == "LogitNormalization")
)
"""What ``generate`` appends after the user's ``logits_processor`` list: the sampling warpers (temperature, top-k,
top-p, min-p, typical, epsilon, eta, top-h), the watermark processors and ``LogitNormalization``."""


def check_greedy_generation_config(
    generation_config: GenerationConfig, method: str, allow_contrastive: bool = False
) -> None:
    """Raises ``ValueError`` unless the config selects plain greedy search (one beam, no sampling).

    Args:
        generation_config: the config ``generate`` prepared.
        method: the decoder's name, for the message.
        allow_contrastive: also accept the config-detected contrastive-search mode (``penalty_alpha`` > 0 and
            ``top_k`` > 1), for :func:`inertia.decoders.contrastive_search`.
    """
    if generation_config.do_sample:
        raise ValueError(
            f"{method} is a greedy decoding method but got `do_sample=True`; pass `do_sample=False` (sampling warpers "
            "would run on its selection scores, which is not the method)."
        )
    num_beams = generation_config.num_beams if generation_config.num_beams is not None else 1
    if num_beams != 1:
        raise ValueError(
            f"{method} supports a single beam but got `num_beams={num_beams}`; pass `num_beams=1` (beam search feeds "
            "log-probabilities to processors and sums their outputs, which is not the method)."
        )
    mode = generation_config.get_generation_mode()
    allowed = {GenerationMode.GREEDY_SEARCH} | ({GenerationMode.CONTRASTIVE_SEARCH} if allow_contrastive else set())
    if mode not in allowed:
        hint = {
            GenerationMode.CONTRASTIVE_SEARCH: " (`penalty_alpha` > 0 with `top_k` > 1 selects contrastive search: use "
            "`custom_generate=inertia.decoders.contrastive_search` for that)",
            GenerationMode.ASSISTED_GENERATION: " (remove `prompt_lookup_num_tokens`/`assistant_early_exit`/`use_mtp`)",
            GenerationMode.DOLA_GENERATION: " (remove `dola_layers`)",
            GenerationMode.CONSTRAINED_BEAM_SEARCH: " (remove `constraints`/`force_words_ids`)",
        }.get(mode, "")
        raise ValueError(f"{method} supports greedy decoding only, but the generation config selects `{mode}`{hint}.")


def check_single_sequence_config(generation_config: GenerationConfig, method: str) -> None:
    """Raises ``ValueError`` unless the config selects greedy search or multinomial sampling with one beam (what
    ``GenerationMixin._sample`` runs).

    Args:
        generation_config: the config ``generate`` prepared.
        method: the decoder's name, for the message.
    """
    num_beams = generation_config.num_beams if generation_config.num_beams is not None else 1
    if num_beams != 1:
        raise ValueError(
            f"{method} runs greedy search or sampling with a single beam but got `num_beams={num_beams}`; pass "
            "`num_beams=1`, or pass the logits processor to plain `generate` for beam search."
        )
    mode = generation_config.get_generation_mode()
    if mode not in (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE):
        raise ValueError(
            f"{method} supports greedy search and sampling only, but the generation config selects `{mode}` (remove "
            "`penalty_alpha`/`dola_layers`/`prompt_lookup_num_tokens`/`assistant_early_exit`/`use_mtp`)."
        )


def insert_before_warpers(processors: LogitsProcessorList, processor: LogitsProcessor) -> LogitsProcessorList:
    """A new list with ``processor`` right before the first of :data:`TAIL_PROCESSORS` (at the end if none): where
    ``generate`` places a processor passed as ``logits_processor=``, after the config-driven ones."""
    items = list(processors)
    at = next((i for i, existing in enumerate(items) if isinstance(existing, TAIL_PROCESSORS)), len(items))
    return LogitsProcessorList([*items[:at], processor, *items[at:]])


def cache_argument(model: Any) -> str:
    """The name under which ``model.forward`` takes its KV cache: ``"cache"`` (transformers >= 5.24) or
    ``"past_key_values"`` (older releases, where ``cache`` is unknown)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def pad_token_id_of(generation_config: GenerationConfig) -> int | None:
    """The pad id ``generate`` uses: ``pad_token_id``, else the eos fallback ``generate`` prepared, else None."""
    if generation_config.pad_token_id is not None:
        return int(generation_config.pad_token_id)
    tensor = getattr(generation_config, "_pad_token_tensor", None)
    return None if tensor is None else int(tensor.reshape(-1)[0])
