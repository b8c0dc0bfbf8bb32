"""Applying named presets to a pipeline: samplers, guidance and momentum attention, by :func:`configure`.

The names live in the preset registry (:mod:`inertia.core.presets.pipeline`): ``"name"`` or ``"name:value"``
(``"hb-dpm++:0.8"``, ``"ghvb:3.8"``). Unknown names raise a ``ValueError``
that lists the valid ones. :func:`configure` always starts from the pipeline's original scheduler (kept on first
use), so presets can be switched back and forth on one cached pipeline.

Example:
    >>> from inertia.pipelines import configure, load_image_pipeline
    >>> pipe = configure(load_image_pipeline(device="cpu"), sampler="ghvb:3.8", guidance="apg")
    >>> type(pipe.scheduler).__name__
    'MomentumPLMSScheduler'
    >>> sorted(GUIDANCE_PRESETS)
    ['apg', 'apg+higs', 'cfg', 'higs', 'none']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from inertia.core.presets.models import attention_defaults, guidance_defaults, model_presets, sampler_default
from inertia.core.presets.pipeline import (
    ATTENTION_PRESETS,
    GUIDANCE_PRESETS,
    SAMPLER_PRESETS,
    parse_float,
    split_preset,
    validate_presets,
)


def latent_elements(pipe: Any) -> int:
    """C·H·W of the pipeline's default latent (from its denoiser config), for resolution-aware thresholds."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    config = getattr(denoiser, "config", None)
    if config is None:
        raise ValueError(f"`pipe` ({type(pipe).__name__}) has no unet/transformer config to size guidance by.")
    size = config.get("sample_size", 64) or 64
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return int(config.get("in_channels", 4)) * height * width


DIGITS_APG_THRESHOLD = 0.2
"""APG's r for the 16x16 digits model (3x16x16 pixels), tuned on a separate seed (docs/benchmarks/guidance.md §4): the RMS rule's
1.62 clips too little there to beat CFG's FD-digits."""
DIGITS16_ELEMENTS = 3 * 16 * 16


def apg_threshold(pipe: Any) -> float:
    """APG's generic r for ``pipe`` (a model's ``inertia_presets.json`` overrides it): for a `DigitsPipeline` the
    measured 16x16 value, for any other size scaled like the next rule; else the paper's SDXL r = 15 scaled to the
    latent size so the per-element RMS bound stays the same (our rule, not the paper's): 15·√(N/N_SDXL)."""
    if type(pipe).__name__ == "DigitsPipeline":
        return DIGITS_APG_THRESHOLD * math.sqrt(latent_elements(pipe) / DIGITS16_ELEMENTS)
    from inertia.core.presets.apg import latent_size_threshold

    return latent_size_threshold(latent_elements(pipe))


def _base_scheduler(pipe: Any) -> Any:
    base = getattr(pipe, "_inertia_base_scheduler", None)
    if base is None:
        base = pipe.scheduler
        pipe._inertia_base_scheduler = base
    return base


def make_scheduler(pipe: Any, sampler: str, guidance_scale: float | None = None) -> Any:
    """A new scheduler for ``pipe`` from the sampler preset ``sampler`` (its original scheduler's config).

    ``guidance_scale`` is the CFG scale of the coming calls; plain ``"hb-dpm++"`` (order 2, auto β) reads it, and
    falls back to the scheduler's ``momentum_guidance_scale`` default (7.5) when it is None. So do plain ``"ghvb"``,
    ``"hb"`` and ``"nt"`` (order 4). Auto β is :func:`inertia.core.samplers.beta_policy.auto_beta`: the stock solver
    (DPM-Solver++(2M), plain PLMS-4) unless it was measured to diverge there and damping to help; for DPM-Solver++
    that was never the case, so plain ``"hb-dpm++"`` samples as ``"dpm++2m"`` does.
    """
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

    from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

    validate_presets(sampler=sampler)
    base, value = split_preset("sampler", sampler, SAMPLER_PRESETS)
    if value is None and (tuned := sampler_default(model_presets(pipe), base)) is not None:
        value = repr(tuned)  # the model's tuned momentum number for the plain name (inertia_presets.json)
    original = _base_scheduler(pipe)
    config = original.config
    if base == "default":
        return type(original).from_config(config)
    if base == "dpm++2m":
        return MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta=1.0, solver_order=2)
    if base == "hb-dpm++":
        if value is not None:
            beta = parse_float("sampler", sampler, value)
            return MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta=beta, solver_order=2)
        auto = {} if guidance_scale is None else {"momentum_guidance_scale": guidance_scale}
        return MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta="auto", solver_order=2, **auto)
    if base == "plms":
        return MomentumPLMSScheduler.from_config(config, momentum_method="ghvb", solver_order=4, momentum_beta=1.0)
    if base in ("ghvb", "hb", "nt"):
        if value is not None:
            return MomentumPLMSScheduler.from_momentum_number(
                config, parse_float("sampler", sampler, value), method=base
            )
        auto = {} if guidance_scale is None else {"momentum_guidance_scale": guidance_scale}
        # order 4 with the measured auto β (`auto_beta`): plain PLMS-4 where it converges, damped where it diverges
        # (with guidance at 6-10 steps the tuning chose β 0.2-0.4 for GHVB, so a fixed 3.8 damps too little there)
        return MomentumPLMSScheduler.from_config(
            config, momentum_method=base, solver_order=4, momentum_beta="auto", **auto
        )
    flow = "FlowMatch" in type(original).__name__ or config.get("prediction_type") == "flow_prediction"
    if flow:
        raise ValueError(f"`sampler`={sampler!r} is a VP sampler; this pipeline is a flow model: use dpm++2m/ghvb.")
    classes = {"ddim": DDIMScheduler, "unipc": UniPCMultistepScheduler, "euler": EulerDiscreteScheduler}
    return classes[base].from_config(config)


def guidance_methods(pipe: Any, guidance: str, **params: Any) -> tuple[Any, ...]:
    """The guidance configs of a preset; ``params`` override fields (``apg_*`` / ``higs_*`` prefixes when both)."""
    from inertia.guidance import APG, CFG, HiGS

    validate_presets(guidance=guidance)
    base, _ = split_preset("guidance", guidance, GUIDANCE_PRESETS)
    if base in ("none", "cfg") and params:
        raise ValueError(f"`guidance`={guidance!r} takes no parameters, got {sorted(params)}.")
    params = {**guidance_defaults(model_presets(pipe), base), **params}  # the model's tuned values, then yours
    apg_params = {k.removeprefix("apg_"): v for k, v in params.items() if k.startswith("apg_") or base == "apg"}
    higs_params = {k.removeprefix("higs_"): v for k, v in params.items() if k.startswith("higs_") or base == "higs"}
    if base == "apg+higs" and (loose := sorted(k for k in params if not k.startswith(("apg_", "higs_")))):
        raise ValueError(f"`guidance`='apg+higs' parameters need an `apg_` or `higs_` prefix, got {loose}.")
    if base == "none":
        return ()
    if base == "cfg":
        return (CFG(),)
    methods: list[Any] = []
    if "apg" in base:
        apg_params.setdefault("norm_threshold", apg_threshold(pipe))
        methods.append(_build(APG, "guidance", apg_params))
    if "higs" in base:
        higs_params.setdefault("weight", 1.0)
        methods.append(_build(HiGS, "guidance", higs_params))
    return tuple(methods)


def _build(cls: Callable[..., Any], kind: str, params: dict[str, Any]) -> Any:
    try:
        return cls(**params)
    except TypeError as err:
        raise ValueError(f"`{kind}` parameters {sorted(params)} do not fit {cls.__name__}: {err}") from None


def attention_config(attention: str, **params: Any) -> Any:
    """The `MomentumAttention` of a preset, or None for ``"off"``."""
    from inertia.attention import MomentumAttention

    validate_presets(attention=attention)
    base, _ = split_preset("attention", attention, ATTENTION_PRESETS)
    if base == "off":
        if params:
            raise ValueError(f"`attention`='off' takes no parameters, got {sorted(params)}.")
        return None
    if "mode" in params:
        raise ValueError(f"`attention_params` must not set `mode` (the preset {attention!r} sets it).")
    if base == "ema":
        params.setdefault("beta", 0.2)
    return _build(MomentumAttention, "attention", {"mode": base, **params})


def preset_settings(
    pipe: Any,
    guidance: str = "none",
    attention: str = "off",
    guidance_params: dict[str, Any] | None = None,
    attention_params: dict[str, Any] | None = None,
) -> tuple[tuple[Any, ...], Any]:
    """The guidance configs and the `MomentumAttention` (or None) that :func:`configure` installs for these presets
    on ``pipe``: the model's tuned settings, then ``guidance_params`` / ``attention_params`` over them.

    Raises:
        ValueError: an unknown preset or invalid parameters.
    """
    methods = guidance_methods(pipe, guidance, **(guidance_params or {}))
    attention_base = split_preset("attention", attention, ATTENTION_PRESETS)[0]
    tuned = attention_defaults(model_presets(pipe), attention_base) if attention_base != "off" else {}
    return methods, attention_config(attention, **{**tuned, **(attention_params or {})})


def configure(
    pipe: Any,
    sampler: str = "default",
    guidance: str = "none",
    attention: str = "off",
    guidance_params: dict[str, Any] | None = None,
    attention_params: dict[str, Any] | None = None,
    guidance_scale: float | None = None,
) -> Any:
    """Applies a sampler, a guidance method and momentum attention to ``pipe`` by preset name, in place.

    Every argument is validated before anything changes. Calling it again replaces all three; the defaults restore
    the stock pipeline (its original scheduler, plain CFG, no attention hooks). A model that ships tuned preset
    settings (``inertia_presets.json``, see :mod:`inertia.core.presets.models`) gets them as the presets'
    defaults; ``guidance_params`` / ``attention_params`` and ``"name:value"`` override them.

    Args:
        pipe: a diffusers pipeline (SD, SDXL, SD3, Flux, `DigitsPipeline`, ...).
        sampler: a name from :data:`SAMPLER_PRESETS`, e.g. ``"dpm++2m"``, ``"hb-dpm++:0.8"``, ``"ghvb:3.8"``.
        guidance: a name from :data:`GUIDANCE_PRESETS`: ``"none"``, ``"cfg"``, ``"apg"``, ``"higs"``, ``"apg+higs"``.
        attention: a name from :data:`ATTENTION_PRESETS` (``"extrapolate"`` or ``"attention:extrapolate"``).
        guidance_params: overrides of the guidance config fields (``{"momentum": -0.75}``; ``apg_`` / ``higs_``
            prefixes for ``"apg+higs"``).
        attention_params: overrides of `MomentumAttention` fields.
        guidance_scale: the CFG scale you will call the pipeline with; the auto-β samplers (plain ``"hb-dpm++"``,
            ``"ghvb"``, ``"hb"``, ``"nt"``) pick β from it, the step count and the schedule with
            :func:`~inertia.core.samplers.beta_policy.auto_beta` (None: the schedulers' default, 7.5).

    Returns:
        ``pipe``.

    Raises:
        ValueError: an unknown preset (the message lists the valid ones) or invalid parameters.
    """
    from inertia.attention import apply_momentum_attention, remove_momentum_attention
    from inertia.guidance import apply_guidance, remove_guidance

    if guidance_scale is not None and (
        isinstance(guidance_scale, bool)
        or not isinstance(guidance_scale, int | float)
        or not math.isfinite(guidance_scale)
        or guidance_scale < 0
    ):
        raise ValueError(f"`guidance_scale` must be a finite number >= 0 or None, got {guidance_scale!r}.")
    scheduler = make_scheduler(pipe, sampler, guidance_scale)
    methods, attention_cfg = preset_settings(pipe, guidance, attention, guidance_params, attention_params)
    pipe.scheduler = scheduler
    if methods:
        apply_guidance(pipe, *methods)
    else:
        remove_guidance(pipe)
    remove_momentum_attention(pipe)
    if attention_cfg is not None:
        apply_momentum_attention(pipe, attention_cfg)
    return pipe
