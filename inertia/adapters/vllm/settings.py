"""A vLLM request's momentum-decoding settings, read from ``SamplingParams.extra_args`` (``vllm_xargs`` over HTTP).

A request asks for momentum decoding with flat ``md_*`` keys, the names of
:func:`inertia.decoders.momentum_decode`'s parameters (flat because ``vllm_xargs`` only carries strings, numbers and
lists of them):

- ``md_alpha``: the resistance weight α ≥ 0 (0.2; 0 is plain greedy);
- ``md_top_k``: the candidate pool size k ≥ 1 (5);
- ``md_resistance``: the table R(0), ..., R(N) or a preset name (``(0, 1, 3, 4, 5, 5)``);
- ``md_max_ngram``: N, the longest n-gram looked up, 1..32 (``len(resistance) - 1``).

Any ``md_*`` key turns it on; a request without one is left alone. Bad values raise the ``ValueError`` that the
transformers processor raises (the same checks, :mod:`inertia.core.validation` and ``resolve_resistance``), naming
the key. Momentum decoding is a greedy selection rule, so a request that also samples (``temperature`` > 0) is
refused.

Example:
    >>> settings_of({"md_alpha": 0.3, "md_resistance": "linear"})
    MomentumSettings(alpha=0.3, top_k=5, resistance=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0))
    >>> settings_of({"seed_text": "x"}) is None   # no md_* key: momentum decoding stays off
    True
    >>> settings_of({"md_top_k": 0})
    Traceback (most recent call last):
    ...
    ValueError: `md_top_k` must be an integer >= 1 (the paper uses 5), got 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inertia.core.decoding.momentum import (
    DEFAULT_RESISTANCE,
    MAX_NGRAM_LIMIT,
    penalty_table,
    resolve_resistance,
    validate_alpha,
    validate_top_k,
)
from inertia.core.validation import check_int

__all__ = ["GREEDY_TEMPERATURE", "KEYS", "MomentumSettings", "check_request", "settings_of"]

KEYS = ("md_alpha", "md_top_k", "md_resistance", "md_max_ngram")
"""The ``extra_args`` keys read here."""

GREEDY_TEMPERATURE = 1e-5
"""vLLM samples greedily below this temperature (its ``_SAMPLING_EPS``)."""


@dataclass(frozen=True)
class MomentumSettings:
    """One request's validated momentum-decoding parameters (hashable: requests with equal settings share a call).

    Attributes:
        alpha: α.
        top_k: k.
        resistance: R(0), ..., R(N).
        penalties: α·R(l) for l = 0..N, as :func:`~inertia.core.decoding.momentum.momentum_scores` takes them.
    """

    alpha: float
    top_k: int
    resistance: tuple[float, ...]
    penalties: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "penalties", penalty_table(self.alpha, self.resistance))

    @property
    def max_ngram(self) -> int:
        """N, the longest n-gram looked up."""
        return len(self.resistance) - 1


def settings_of(extra_args: Mapping[str, Any] | None) -> MomentumSettings | None:
    """The momentum-decoding settings that ``extra_args`` asks for, or ``None`` when it has no ``md_*`` key.

    Raises:
        ValueError: for an unknown ``md_*`` key or an invalid value, naming the key, its value and the valid range.
    """
    if not extra_args:
        return None
    asked = [key for key in extra_args if isinstance(key, str) and key.startswith("md_")]
    if not asked:
        return None
    unknown = sorted(set(asked) - set(KEYS))
    if unknown:
        raise ValueError(
            f"unknown momentum-decoding key(s) {', '.join(map(repr, unknown))} in `extra_args`; the keys are "
            f"{', '.join(KEYS)}."
        )
    alpha = validate_alpha(extra_args.get("md_alpha", 0.2), name="md_alpha")
    top_k = validate_top_k(extra_args.get("md_top_k", 5), name="md_top_k")
    max_ngram = extra_args.get("md_max_ngram")
    if max_ngram is not None:
        max_ngram = check_int("md_max_ngram", max_ngram, 1, MAX_NGRAM_LIMIT)
    resistance = resolve_resistance(extra_args.get("md_resistance", DEFAULT_RESISTANCE), max_ngram, "md_resistance")
    return MomentumSettings(alpha, top_k, resistance)


def check_request(sampling_params: Any) -> MomentumSettings | None:
    """:func:`settings_of` the request's ``extra_args``, and a greedy request if it asks for momentum decoding.

    Raises:
        ValueError: as :func:`settings_of`, or when momentum decoding is asked for with ``temperature`` > 0.
    """
    settings = settings_of(getattr(sampling_params, "extra_args", None))
    temperature = getattr(sampling_params, "temperature", 0.0)
    if settings is not None and temperature is not None and temperature >= GREEDY_TEMPERATURE:
        raise ValueError(
            "momentum decoding (the `md_*` keys of `extra_args`) is a greedy selection rule: set `temperature`=0, "
            f"got {temperature!r}."
        )
    return settings
