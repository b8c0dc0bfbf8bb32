"""The preset names of the image pipelines: samplers, guidance and momentum attention, with what each does.

Names are ``"name"`` or ``"name:value"`` (``"hb-dpm++:0.8"``, ``"ghvb:3.8"``). :func:`validate_presets` checks
names and values without a pipeline (the CLI runs it before a model loads); applying a preset to a pipeline is
:func:`inertia.pipelines.configure`.

Example:
    >>> sorted(GUIDANCE_PRESETS)
    ['apg', 'apg+higs', 'cfg', 'higs', 'none']
    >>> split_preset("sampler", "ghvb:3.8", SAMPLER_PRESETS)
    ('ghvb', '3.8')
"""

from __future__ import annotations

import math

from inertia.core.validation import interval

__all__ = [
    "ATTENTION_PRESETS",
    "GUIDANCE_PRESETS",
    "SAMPLERS_WITH_VALUE",
    "SAMPLER_PRESETS",
    "SAMPLER_VALUE_RANGES",
    "parse_float",
    "split_preset",
    "validate_presets",
]

SAMPLER_PRESETS: dict[str, str] = {
    "default": "the pipeline's own scheduler",
    "dpm++2m": "DPM-Solver++(2M), stock (inertia's class at β = 1: bit-identical, flow configs handled)",
    "hb-dpm++": "DPM-Solver++(2M) with heavy-ball momentum; `hb-dpm++:0.8` sets β, plain = auto β (= dpm++2m: "
    "DPM-Solver++ was never measured to diverge)",
    "plms": "PLMS (4th-order Adams-Bashforth), no momentum",
    "ghvb": "PLMS with generalized heavy ball; `ghvb:3.8` = order 4, β 0.8; plain = order 4, auto β",
    "hb": "PLMS with heavy ball; `hb:3.8` = order 4, β 0.8; plain = order 4, auto β",
    "nt": "PLMS with Nesterov momentum; `nt:3.8` = order 4, β 0.8; plain = order 4, auto β",
    "ddim": "diffusers DDIM (VP models)",
    "unipc": "diffusers UniPC (VP models)",
    "euler": "diffusers Euler (VP models)",
}
"""Sampler presets and what each does."""

GUIDANCE_PRESETS: dict[str, str] = {
    "none": "the pipeline's own CFG, untouched",
    "cfg": "CFG computed by inertia (identical to the pipeline's)",
    "apg": "adaptive projected guidance (η 0, β −0.5, r scaled to the latent size)",
    "higs": "history-guided sampling on top of CFG (w_h 1.0 for multistep solvers)",
    "apg+higs": "APG, then HiGS on its output",
}
"""Guidance presets and what each does."""

ATTENTION_PRESETS: dict[str, str] = {
    "off": "no momentum attention",
    "extrapolate": "skip attention every other step after step 4, predict it by heavy-ball extrapolation",
    "first_order": "FasterCache's first-order extrapolation at the same schedule (the baseline)",
    "ema": "experimental: EMA smoothing of attention outputs (β 0.2)",
}
"""Momentum-attention presets (also accepted as ``"attention:<name>"``)."""

SAMPLERS_WITH_VALUE = ("hb-dpm++", "ghvb", "hb", "nt")
"""Sampler presets written ``name:value`` (β for hb-dpm++, the momentum number r for the PLMS family)."""

SAMPLER_VALUE_RANGES: dict[str, tuple[str, float, float]] = {
    "hb-dpm++": ("β", 0, 1),
    "ghvb": ("the momentum number r = order − 1 + β", 0, 5),
    "hb": ("the momentum number r = order − 1 + β", 0, 5),
    "nt": ("the momentum number r = order − 1 + β", 0, 5),
}
"""What the value of each ``name:value`` sampler preset is and its range, open below and closed above: β ∈ (0, 1]
(1 = no momentum), r ∈ (0, 5] (orders 1-5, :data:`inertia.core.samplers.plms_momentum.MAX_ORDER`)."""


def split_preset(kind: str, name: object, registry: dict[str, str]) -> tuple[str, str | None]:
    """``"name:value"`` → ``(name, value or None)``, checked against ``registry``."""
    if not isinstance(name, str):
        raise ValueError(f"`{kind}` must be a preset name, one of {sorted(registry)}, got {name!r}.")
    base, colon, value = name.strip().lower().partition(":")
    if kind == "attention" and base == "attention":
        base, colon, value = value.partition(":")
    if base not in registry:
        raise ValueError(f"`{kind}`={name!r} is not a preset; valid: {', '.join(sorted(registry))}.")
    if colon and not value.strip():
        raise ValueError(f"`{kind}`={name!r} has nothing after the colon: write {base!r} or {base + ':<value>'!r}.")
    return base, (value.strip() or None)


def parse_float(kind: str, name: str, value: str) -> float:
    """The number after the colon of a preset name, finite."""
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"`{kind}`={name!r}: {value!r} is not a number.") from None
    if not math.isfinite(number):
        raise ValueError(f"`{kind}`={name!r}: {value!r} must be finite.")
    return number


def validate_presets(sampler: str = "default", guidance: str = "none", attention: str = "off") -> None:
    """Checks the three preset names and values (not parameters) without a pipeline, e.g. before loading a model."""
    base, value = split_preset("sampler", sampler, SAMPLER_PRESETS)
    if value is not None:
        if base not in SAMPLERS_WITH_VALUE:
            raise ValueError(f"`sampler`={sampler!r}: {base!r} takes no value.")
        what, low, high = SAMPLER_VALUE_RANGES[base]
        number = parse_float("sampler", sampler, value)
        if not low < number <= high:
            raise ValueError(
                f"`sampler`={sampler!r}: {what} must be in {interval(low, high, low_open=True)}, got {number:g}."
            )
    for kind, name, registry in (
        ("guidance", guidance, GUIDANCE_PRESETS),
        ("attention", attention, ATTENTION_PRESETS),
    ):
        if split_preset(kind, name, registry)[1] is not None:
            raise ValueError(f"`{kind}`={name!r}: {kind} presets take no value; pass parameters as keywords.")
