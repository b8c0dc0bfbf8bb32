"""A vLLM request's decoding settings, read from ``SamplingParams.extra_args`` (``vllm_xargs`` over HTTP).

Flat keys (``vllm_xargs`` only carries strings, numbers and lists of them), two families:

**Momentum decoding** (the paper's greedy rule), ``md_*``, the names of :func:`inertia.decoders.momentum_decode`'s
parameters:

- ``md_alpha``: the resistance weight α ≥ 0 (0.2; 0 is plain greedy);
- ``md_top_k``: the candidate pool size k ≥ 1 (5);
- ``md_resistance``: the table R(0), ..., R(N) or a preset name (``(0, 1, 3, 4, 5, 5)``);
- ``md_max_ngram``: N, the longest n-gram looked up, 1..32 (``len(resistance) - 1``).

Momentum decoding is a greedy selection rule, so a request that also samples (``temperature`` > 0) is refused.

**The momentum penalty** (our extension for sampling, eq. (4) of :mod:`inertia.core.decoding.momentum_penalty`),
``mp_*``, the parameters of :func:`~inertia.core.decoding.momentum_penalty.momentum_penalty_table`:

- ``mp_alpha``: α ≥ 0 in nats per unit of R (0.2; 0 leaves the logits exactly as they were);
- ``mp_resistance``: the table or a preset name (``(0, 1, 3, 4, 5, 5)``);
- ``mp_max_ngram``: N, 1..32 (``len(resistance) - 1``).

It is a logit penalty, so it goes with any temperature. Any key of a family turns it on; a request without one is
left alone; a request with keys of both families is refused (the two are different rules for the same thing). Bad
values raise the ``ValueError`` of the transformers processors and of the core (the same checks,
:mod:`inertia.core.validation` and ``resolve_resistance``), naming the key; an unknown key of a family is named.

Example:
    >>> settings_of({"md_alpha": 0.3, "md_resistance": "linear"})
    MomentumSettings(alpha=0.3, top_k=5, resistance=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0))
    >>> settings_of({"seed_text": "x"}) is None   # no md_* key: momentum decoding stays off
    True
    >>> settings_of({"md_top_k": 0})
    Traceback (most recent call last):
    ...
    ValueError: `md_top_k` must be an integer >= 1 (the paper uses 5), got 0.
    >>> penalty_settings_of({"mp_alpha": 0.5, "mp_resistance": "linear"}).penalties
    (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
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
from inertia.core.decoding.momentum_penalty import DEFAULT_PENALTY_ALPHA
from inertia.core.validation import check_int, check_range

__all__ = [
    "GREEDY_TEMPERATURE",
    "KEYS",
    "PENALTY_KEYS",
    "MomentumSettings",
    "PenaltySettings",
    "RequestSettings",
    "check_request",
    "penalty_settings_of",
    "settings_of",
]

KEYS = ("md_alpha", "md_top_k", "md_resistance", "md_max_ngram")
"""The ``extra_args`` keys of momentum decoding."""

PENALTY_KEYS = ("mp_alpha", "mp_resistance", "mp_max_ngram")
"""The ``extra_args`` keys of the momentum penalty."""

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


@dataclass(frozen=True)
class PenaltySettings:
    """One request's validated momentum-penalty parameters.

    Attributes:
        alpha: α, in nats per unit of R.
        resistance: R(0), ..., R(N).
        penalties: α·R(l) for l = 0..N, as :func:`~inertia.core.decoding.momentum_penalty.momentum_penalty_table`
            returns them (α = 0: all zero, infinite entries included).
    """

    alpha: float
    resistance: tuple[float, ...]
    penalties: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "penalties", penalty_table(self.alpha, self.resistance))

    @property
    def max_ngram(self) -> int:
        """N, the longest n-gram looked up."""
        return len(self.resistance) - 1

    @property
    def neutral(self) -> bool:
        """Whether the penalty is zero on every level (α = 0 or a table of zeros): the logits stay as they are."""
        return all(value == 0.0 for value in self.penalties)


RequestSettings = MomentumSettings | PenaltySettings
"""What a request asks of the processor."""


def _asked(extra_args: Mapping[str, Any] | None, prefix: str) -> list[str]:
    if not extra_args:
        return []
    return [key for key in extra_args if isinstance(key, str) and key.startswith(prefix)]


def _refuse_unknown(asked: list[str], keys: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(asked) - set(keys))
    if unknown:
        raise ValueError(
            f"unknown {what} key(s) {', '.join(map(repr, unknown))} in `extra_args`; the keys are {', '.join(keys)}."
        )


def settings_of(extra_args: Mapping[str, Any] | None) -> MomentumSettings | None:
    """The momentum-decoding settings that ``extra_args`` asks for, or ``None`` when it has no ``md_*`` key.

    Raises:
        ValueError: for an unknown ``md_*`` key or an invalid value, naming the key, its value and the valid range.
    """
    asked = _asked(extra_args, "md_")
    if not extra_args or not asked:
        return None
    _refuse_unknown(asked, KEYS, "momentum-decoding")
    alpha = validate_alpha(extra_args.get("md_alpha", 0.2), name="md_alpha")
    top_k = validate_top_k(extra_args.get("md_top_k", 5), name="md_top_k")
    max_ngram = extra_args.get("md_max_ngram")
    if max_ngram is not None:
        max_ngram = check_int("md_max_ngram", max_ngram, 1, MAX_NGRAM_LIMIT)
    resistance = resolve_resistance(extra_args.get("md_resistance", DEFAULT_RESISTANCE), max_ngram, "md_resistance")
    return MomentumSettings(alpha, top_k, resistance)


def penalty_settings_of(extra_args: Mapping[str, Any] | None) -> PenaltySettings | None:
    """The momentum-penalty settings that ``extra_args`` asks for, or ``None`` when it has no ``mp_*`` key.

    The checks of :func:`~inertia.core.decoding.momentum_penalty.momentum_penalty_table`, with the keys' names.

    Raises:
        ValueError: for an unknown ``mp_*`` key or an invalid value, naming the key, its value and the valid range.
    """
    asked = _asked(extra_args, "mp_")
    if not extra_args or not asked:
        return None
    _refuse_unknown(asked, PENALTY_KEYS, "momentum-penalty")
    alpha = check_range("mp_alpha", extra_args.get("mp_alpha", DEFAULT_PENALTY_ALPHA), 0.0)
    max_ngram = extra_args.get("mp_max_ngram")
    if max_ngram is not None:
        max_ngram = check_int("mp_max_ngram", max_ngram, 1, MAX_NGRAM_LIMIT)
    try:
        resistance = resolve_resistance(
            extra_args.get("mp_resistance", DEFAULT_RESISTANCE), max_ngram, "mp_resistance"
        )
    except ValueError as error:  # the one check the core names `max_ngram`: a table longer than N + 1
        raise ValueError(str(error).replace("`max_ngram`", "`mp_max_ngram`")) from None
    return PenaltySettings(alpha, resistance)


def check_request(sampling_params: Any) -> RequestSettings | None:
    """What the request's ``extra_args`` asks for: momentum decoding (:func:`settings_of`, greedy requests only), the
    momentum penalty (:func:`penalty_settings_of`, any temperature) or nothing (``None``).

    Raises:
        ValueError: as :func:`settings_of` and :func:`penalty_settings_of`, when both are asked for, or when momentum
            decoding is asked for with ``temperature`` > 0.
    """
    extra_args = getattr(sampling_params, "extra_args", None)
    decoding, penalty = _asked(extra_args, "md_"), _asked(extra_args, "mp_")
    if decoding and penalty:
        raise ValueError(
            "a request asks for momentum decoding (the `md_*` keys of `extra_args`: "
            f"{', '.join(map(repr, sorted(decoding)))}) and for the momentum penalty (the `mp_*` keys: "
            f"{', '.join(map(repr, sorted(penalty)))}); they are two rules for the same thing: pass the keys of one."
        )
    if penalty:
        return penalty_settings_of(extra_args)
    settings = settings_of(extra_args)
    temperature = getattr(sampling_params, "temperature", 0.0)
    if settings is not None and temperature is not None and temperature >= GREEDY_TEMPERATURE:
        raise ValueError(
            "momentum decoding (the `md_*` keys of `extra_args`) is a greedy selection rule: set `temperature`=0, "
            f"got {temperature!r}."
        )
    return settings
