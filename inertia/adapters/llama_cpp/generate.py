"""Token generators on a ``llama_cpp.Llama``: greedy search, momentum decoding, sampling (with or without the
momentum penalty), and llama.cpp's own repetition / frequency / presence penalties and DRY, each a thin translation
into llama-cpp-python calls.

Every generator takes the prompt as token ids and yields the new token ids one by one; it stops after
``max_new_tokens`` tokens or at an end-of-generation token (llama.cpp's ``llama_vocab_is_eog``, which is not yielded),
never before ``min_new_tokens`` (those tokens are banned until then, as transformers' ``min_new_tokens`` does). The
arguments are checked when the function is called, before anything is evaluated; every call starts from an empty
context (``Llama.reset()``: no KV-cache prefix reuse), so a call's tokens depend on its arguments only.

Two drivers:

- greedy, momentum decoding and sampling run llama-cpp-python's own loop (``Llama.generate``; momentum decoding is
  :class:`~inertia.adapters.llama_cpp.logits_processor.MomentumDecodingLlamaCppProcessor` in its ``logits_processor``
  list at temperature 0, the momentum penalty
  :class:`~inertia.adapters.llama_cpp.momentum_penalty.MomentumPenaltyLlamaCppProcessor` in that list in front of
  the sampling chain);
- the penalties and DRY run llama.cpp's sampler chain (penalties or DRY, then greedy) through the public C API that
  llama-cpp-python binds, with the prompt accepted into the chain first, as ``llama-cli`` does, so that the prompt
  counts as history (``Llama.generate`` offers no DRY, and its penalties never see the prompt).

Example:
    >>> from inertia.adapters.llama_cpp.generate import generate_momentum
    >>> # llm = llama_cpp.Llama(model_path="model.gguf", verbose=False)
    >>> # tokens = list(generate_momentum(llm, llm.tokenize(b"Once upon a time"), 64, alpha=0.2, top_k=5))
    >>> # print(llm.detokenize(tokens).decode("utf-8", errors="ignore"))
"""

from __future__ import annotations

import ctypes
import math
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from inertia.adapters.llama_cpp.availability import require_llama_cpp
from inertia.adapters.llama_cpp.logits_processor import MomentumDecodingLlamaCppProcessor
from inertia.adapters.llama_cpp.momentum_penalty import MomentumPenaltyLlamaCppProcessor
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE
from inertia.core.validation import check_int, check_range, check_real

__all__ = [
    "DRY_SEQUENCE_BREAKERS",
    "BanTokensUntil",
    "end_of_generation_tokens",
    "generate_greedy",
    "generate_momentum",
    "generate_penalized",
    "generate_sampled",
]

DRY_SEQUENCE_BREAKERS = ("\n", ":", '"', "*")
"""llama.cpp's default DRY sequence breakers: a repeat is not extended across them."""

_EOG: weakref.WeakKeyDictionary[Any, frozenset[int]] = weakref.WeakKeyDictionary()


def end_of_generation_tokens(llama: Any) -> frozenset[int]:
    """The ids llama.cpp ends a generation on (``llama_vocab_is_eog``: EOS, EOT, ...), read once per ``Llama``."""
    found = _EOG.get(llama)
    if found is None:
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        found = frozenset(t for t in range(llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))
        _EOG[llama] = found
    return found


class BanTokensUntil:
    """A llama-cpp-python logits processor that sets ``tokens`` to ``-inf`` while the history is shorter than
    ``length`` (prompt + ``min_new_tokens``): end-of-generation stays impossible until then.

    Example:
        >>> import numpy as np
        >>> ban = BanTokensUntil([2], length=4)
        >>> ban(np.array([1, 1, 1]), np.zeros(3, dtype=np.single)).tolist()
        [0.0, 0.0, -inf]
        >>> ban(np.array([1, 1, 1, 1]), np.zeros(3, dtype=np.single)).tolist()
        [0.0, 0.0, 0.0]
    """

    def __init__(self, tokens: Sequence[int], length: int) -> None:
        self.tokens = np.array(sorted(tokens), dtype=np.intp)
        self.length = length

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if len(input_ids) >= self.length or not len(self.tokens):
            return scores
        out = np.array(scores, dtype=np.float32)
        out[self.tokens] = -math.inf
        return out


def _check_call(llama: Any, prompt_tokens: Sequence[int], max_new_tokens: int, min_new_tokens: int) -> list[int]:
    """The prompt as a list of ints, after checking every argument that does not depend on the method."""
    require_llama_cpp()
    if getattr(llama, "draft_model", None) is not None:
        raise ValueError(
            "`llama` has a draft model (speculative decoding): llama-cpp-python then shows its processors the draft "
            "tokens as history, so these generators do not support it; load the model without `draft_model`."
        )
    prompt = [int(t) for t in prompt_tokens]
    if not prompt:
        raise ValueError("`prompt_tokens` must hold at least one token id, got none.")
    vocab = llama.n_vocab()
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"`prompt_tokens` must be token ids in [0, {vocab - 1}], got {bad[0]!r}.")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
    check_int("min_new_tokens", min_new_tokens, 0, max_new_tokens)
    if len(prompt) + max_new_tokens > llama.n_ctx():
        raise ValueError(
            f"`max_new_tokens`={max_new_tokens} after a {len(prompt)}-token prompt exceeds the context of "
            f"{llama.n_ctx()} tokens: ask for at most {llama.n_ctx() - len(prompt)} new tokens."
        )
    return prompt


def _run_generate(
    llama: Any,
    prompt: list[int],
    max_new_tokens: int,
    min_new_tokens: int,
    processors: list[Any],
    **sampling: Any,
) -> Iterator[int]:
    """llama-cpp-python's loop (``Llama.generate``) from an empty context, with end-of-generation handled."""
    from llama_cpp import LogitsProcessorList

    eog = end_of_generation_tokens(llama)
    if min_new_tokens and eog:
        processors = [BanTokensUntil(sorted(eog), len(prompt) + min_new_tokens), *processors]
    llama.reset()  # no prefix reuse: the whole prompt is evaluated, as on the first call
    new = 0
    for token in llama.generate(
        prompt, reset=True, logits_processor=LogitsProcessorList(processors) if processors else None, **sampling
    ):
        if token in eog:
            return
        yield token
        new += 1
        if new == max_new_tokens:
            return


def generate_greedy(
    llama: Any, prompt_tokens: Sequence[int], max_new_tokens: int, *, min_new_tokens: int = 0
) -> Iterator[int]:
    """llama.cpp's greedy search (temperature 0, penalties off)."""
    prompt = _check_call(llama, prompt_tokens, max_new_tokens, min_new_tokens)
    return _run_generate(llama, prompt, max_new_tokens, min_new_tokens, [], temp=0.0, repeat_penalty=1.0)


def generate_momentum(
    llama: Any,
    prompt_tokens: Sequence[int],
    max_new_tokens: int,
    *,
    alpha: float = 0.2,
    top_k: int = 5,
    resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
    max_ngram: int | None = None,
    min_new_tokens: int = 0,
) -> Iterator[int]:
    """Momentum decoding (Lan et al. 2022): llama.cpp's greedy search with a fresh
    :class:`~inertia.adapters.llama_cpp.logits_processor.MomentumDecodingLlamaCppProcessor` for this call."""
    processor = MomentumDecodingLlamaCppProcessor(alpha, top_k, resistance, max_ngram)  # validates
    prompt = _check_call(llama, prompt_tokens, max_new_tokens, min_new_tokens)
    if processor.top_k > llama.n_vocab():
        raise ValueError(f"`top_k`={processor.top_k} exceeds the vocabulary size ({llama.n_vocab()}).")
    return _run_generate(llama, prompt, max_new_tokens, min_new_tokens, [processor], temp=0.0, repeat_penalty=1.0)


def generate_sampled(
    llama: Any,
    prompt_tokens: Sequence[int],
    max_new_tokens: int,
    *,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    momentum_penalty: float | None = None,
    min_new_tokens: int = 0,
) -> Iterator[int]:
    """llama.cpp's sampling chain: top-k (0: off), top-p, min-p (0: off), temperature, then a draw seeded by
    ``seed`` (the same seed gives the same tokens).

    ``momentum_penalty`` (α ≥ 0; ``None``: off) puts a fresh
    :class:`~inertia.adapters.llama_cpp.momentum_penalty.MomentumPenaltyLlamaCppProcessor` with that α (default
    resistance table) in front of the chain: every token's logit is charged α·R(l(v)) for the n-gram it would repeat,
    then the chain samples as usual. α = 0 draws the same tokens as no penalty, with the same seed.

    Example:
        >>> from inertia.adapters.llama_cpp.generate import generate_sampled
        >>> # llm = llama_cpp.Llama(model_path="model.gguf", verbose=False)
        >>> # ids = llm.tokenize(b"Once upon a time")
        >>> # tokens = list(generate_sampled(llm, ids, 64, seed=1, top_p=0.95, momentum_penalty=0.2))
    """
    processors: list[Any] = []
    if momentum_penalty is not None:
        processors.append(MomentumPenaltyLlamaCppProcessor(check_range("momentum_penalty", momentum_penalty, 0.0)))
    prompt = _check_call(llama, prompt_tokens, max_new_tokens, min_new_tokens)
    check_int("seed", seed, 0, 2**32 - 1)
    temperature = check_range("temperature", temperature, 0.0, math.inf, low_open=True)
    check_int("top_k", top_k, 0)
    top_p = check_range("top_p", top_p, 0.0, 1.0, low_open=True)
    min_p = check_range("min_p", min_p, 0.0, 1.0)
    llama.set_seed(seed)
    return _run_generate(
        llama, prompt, max_new_tokens, min_new_tokens, processors, temp=temperature, top_k=top_k, top_p=top_p,
        min_p=min_p, typical_p=1.0, repeat_penalty=1.0,
    )  # fmt: skip


def generate_penalized(
    llama: Any,
    prompt_tokens: Sequence[int],
    max_new_tokens: int,
    *,
    repeat_penalty: float = 1.0,
    frequency_penalty: float = 0.0,
    presence_penalty: float = 0.0,
    penalty_last_n: int = 64,
    dry_multiplier: float = 0.0,
    dry_base: float = 1.75,
    dry_allowed_length: int = 2,
    dry_penalty_last_n: int = -1,
    dry_sequence_breakers: Sequence[str] = DRY_SEQUENCE_BREAKERS,
    min_new_tokens: int = 0,
) -> Iterator[int]:
    """Greedy search after llama.cpp's own penalty samplers, on the prompt and the tokens generated so far.

    Args:
        llama, prompt_tokens, max_new_tokens, min_new_tokens: as for :func:`generate_greedy`.
        repeat_penalty: > 0; a token seen in the window has its logit divided by it (multiplied if negative).
            1 is off.
        frequency_penalty, presence_penalty: subtracted from a seen token's logit, times its count / once. 0 is off.
        penalty_last_n: the window of those three, in tokens (llama.cpp's default 64; -1: the whole context).
        dry_multiplier: DRY's strength (0 is off; its author suggests 0.8).
        dry_base, dry_allowed_length: DRY's penalty ``multiplier · base^(length − allowed_length)`` for a token that
            would extend a repeat of at least ``allowed_length`` tokens.
        dry_penalty_last_n: DRY's window in tokens (-1: the whole context).
        dry_sequence_breakers: strings a repeat is not extended across.
    """
    prompt = _check_call(llama, prompt_tokens, max_new_tokens, min_new_tokens)
    repeat_penalty = check_range("repeat_penalty", repeat_penalty, 0.0, math.inf, low_open=True)
    frequency_penalty = check_real("frequency_penalty", frequency_penalty)
    presence_penalty = check_real("presence_penalty", presence_penalty)
    dry_multiplier = check_range("dry_multiplier", dry_multiplier, 0.0)
    dry_base = check_range("dry_base", dry_base, 1.0)
    dry_allowed_length = check_int("dry_allowed_length", dry_allowed_length, 1)
    context = llama.n_ctx()
    windows = []
    for name, value in (("penalty_last_n", penalty_last_n), ("dry_penalty_last_n", dry_penalty_last_n)):
        windows.append(context if check_int(name, value, -1) == -1 else value)
    breakers = list(dry_sequence_breakers) if not isinstance(dry_sequence_breakers, str) else [dry_sequence_breakers]
    if not all(isinstance(b, str) and b for b in breakers):
        raise ValueError(f"`dry_sequence_breakers` must be non-empty strings, got {dry_sequence_breakers!r}.")
    settings = {
        "penalties": (windows[0], repeat_penalty, frequency_penalty, presence_penalty),
        "dry": (dry_multiplier, dry_base, dry_allowed_length, windows[1], breakers),
    }
    return _run_chain(llama, prompt, max_new_tokens, min_new_tokens, settings)


def _run_chain(
    llama: Any, prompt: list[int], max_new_tokens: int, min_new_tokens: int, settings: dict[str, Any]
) -> Iterator[int]:
    """llama.cpp's sampler chain [penalties, DRY, end-of-generation ban, greedy], the prompt accepted first."""
    import llama_cpp

    eog = end_of_generation_tokens(llama)
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    try:
        last_n, repeat, frequency, presence = settings["penalties"]
        penalties = llama_cpp.llama_sampler_init_penalties(llama.n_vocab(), last_n, repeat, frequency, presence)
        llama_cpp.llama_sampler_chain_add(chain, penalties)
        multiplier, base, allowed, dry_last_n, breakers = settings["dry"]
        encoded = (ctypes.c_char_p * len(breakers))(*(b.encode("utf-8") for b in breakers))
        dry = llama_cpp.llama_sampler_init_dry(vocab, multiplier, base, allowed, dry_last_n, encoded, len(breakers))
        llama_cpp.llama_sampler_chain_add(chain, dry)
        ban_at = None
        if min_new_tokens and eog:
            ban_at = llama_cpp.llama_sampler_chain_n(chain)
            biases = (llama_cpp.llama_logit_bias * len(eog))(
                *(llama_cpp.llama_logit_bias(t, -math.inf) for t in sorted(eog))
            )
            ban = llama_cpp.llama_sampler_init_logit_bias(llama.n_vocab(), len(eog), biases)
            llama_cpp.llama_sampler_chain_add(chain, ban)
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        for token in prompt:  # the prompt is history for the penalties, as in llama-cli
            llama_cpp.llama_sampler_accept(chain, token)
        llama.reset()
        llama.eval(prompt)
        for step in range(max_new_tokens):
            if ban_at is not None and step == min_new_tokens:
                llama_cpp.llama_sampler_free(llama_cpp.llama_sampler_chain_remove(chain, ban_at))
                ban_at = None
            token = int(llama_cpp.llama_sampler_sample(chain, llama.ctx, -1))
            if token in eog:
                return
            yield token
            if step + 1 < max_new_tokens:
                llama.eval([token])
    finally:
        llama_cpp.llama_sampler_free(chain)
