"""The Image tab's controls as values: validation of each input and the preset strings / parameters they make.

Nothing here imports Gradio; :mod:`inertia.ui.image_tab` lays the controls out and calls these.

Example:
    >>> sampler_preset("ghvb", beta=0.8, auto_beta=False, order=4)
    'ghvb:3.8'
    >>> sampler_preset("hb-dpm++", beta=0.8, auto_beta=False, order=4)
    'hb-dpm++:0.8'
    >>> guidance_params("apg+higs", apg_eta=0.0, apg_momentum=-0.5, apg_threshold=0.0, higs_weight=1.0)
    {'apg_eta': 0.0, 'apg_momentum': -0.5, 'higs_weight': 1.0}
"""

from __future__ import annotations

import functools
from typing import Any

from inertia.core.presets.pipeline import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS
from inertia.ui.fields import user_choice, user_float, user_int

__all__ = [
    "EXAMPLES",
    "attention_params",
    "guidance_params",
    "preset_attention_beta",
    "sampler_preset",
    "tuned_defaults",
]

MAX_SCALE = 30.0

PLMS_MOMENTUM = ("ghvb", "hb", "nt")
"""Sampler presets written ``name:r`` with the papers' momentum number r = order − 1 + β."""
BETA_SAMPLERS = ("hb-dpm++", *PLMS_MOMENTUM)
APG_GUIDANCE = ("apg", "apg+higs")
HIGS_GUIDANCE = ("higs", "apg+higs")


# ----------------------------------------------------------------------------------------------- validation helpers
# ------------------------------------------------------------------------------------------------ preset builders
def sampler_preset(sampler: str, beta: float, auto_beta: bool, order: int, scale: float = 7.5, steps: int = 20) -> str:
    """The preset string of the sampler controls: ``hb-dpm++:β``, ``ghvb|hb|nt:r`` with r = order − 1 + β.

    With ``auto_beta``, hb-dpm++'s β is the recommended one for this guidance ``scale`` and number of ``steps``
    (:func:`inertia.core.samplers.beta_policy.recommended_beta`), written out so the figures show it.
    """
    sampler = user_choice("Sampler", sampler, SAMPLER_PRESETS)
    if sampler == "hb-dpm++":
        if auto_beta:
            from inertia.core.samplers.beta_policy import recommended_beta

            beta = recommended_beta(
                user_float("Guidance scale", scale, 0.0, MAX_SCALE), user_int("Steps", steps, 1, 10_000), "hb-dpm"
            )
        return f"hb-dpm++:{user_float('Momentum β', beta, 0.01, 1.0):g}"
    if sampler in PLMS_MOMENTUM:
        order = user_int("Order", order, 1, 4)
        beta = user_float("Momentum β", beta, 0.01, 1.0)
        return f"{sampler}:{round(order - 1 + beta, 6):g}"
    return sampler


def guidance_params(
    guidance: str, apg_eta: float, apg_momentum: float, apg_threshold: float, higs_weight: float
) -> dict[str, float]:
    """Overrides for :func:`~inertia.pipelines.presets.configure` (``apg_`` / ``higs_`` prefixes for apg+higs).

    ``apg_threshold`` 0 keeps the preset's resolution-scaled norm threshold r.
    """
    guidance = user_choice("Guidance", guidance, GUIDANCE_PRESETS)
    apg: dict[str, float] = {}
    higs: dict[str, float] = {}
    if guidance in APG_GUIDANCE:
        apg = {
            "eta": user_float("APG η", apg_eta, 0.0, 1.0),
            "momentum": user_float("APG β", apg_momentum, -0.99, 0.99),
        }
        if user_float("APG norm threshold", apg_threshold, 0.0, 1e6) > 0:
            apg["norm_threshold"] = float(apg_threshold)
    if guidance in HIGS_GUIDANCE:
        higs = {"weight": user_float("HiGS weight", higs_weight, 0.0, 10.0)}
    if guidance == "apg+higs":
        return {**{f"apg_{k}": v for k, v in apg.items()}, **{f"higs_{k}": v for k, v in higs.items()}}
    return apg or higs


@functools.cache
def preset_attention_beta(attention: str) -> float:
    """The β the attention preset uses when none is given (read from the preset, so the two never disagree)."""
    from inertia.pipelines.presets import attention_config

    return float(attention_config(attention).beta)


def attention_params(attention: str, extrapolate_beta: float | None, ema_beta: float | None) -> dict[str, float]:
    """Overrides of `MomentumAttention` for an attention preset: β for extrapolate / ema (None: the preset's)."""
    attention = user_choice("Momentum attention", attention, ATTENTION_PRESETS)
    beta = {"extrapolate": extrapolate_beta, "ema": ema_beta}.get(attention)
    if beta is None:
        return {}
    return {"beta": user_float(f"{attention} β", beta, -0.99, 0.99)}


def tuned_defaults(presets: dict[str, Any]) -> dict[str, float]:
    """The Image tab's initial APG / HiGS / attention values: the default embedded model's tuned settings, so the
    controls show what the model's tuned settings use (else the generic presets' values).

    Example:
        >>> tuned_defaults({"guidance": {"apg": {"momentum": -0.25}}})["apg_momentum"]
        -0.25
    """
    apg = presets.get("guidance", {}).get("apg", {})
    higs = presets.get("guidance", {}).get("higs", {})
    attention = presets.get("attention", {})
    return {
        "apg_eta": float(apg.get("eta", 0.0)),
        "apg_momentum": float(apg.get("momentum", -0.5)),
        "apg_threshold": float(apg.get("norm_threshold", 0.0)),
        "higs_weight": float(higs.get("weight", 1.0)),
        "extrapolate_beta": float(attention.get("extrapolate", {}).get("beta", preset_attention_beta("extrapolate"))),
        "ema_beta": float(attention.get("ema", {}).get("beta", preset_attention_beta("ema"))),
    }


EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("High guidance, few steps: APG vs CFG", {"sampler": "dpm++2m", "guidance": "apg", "steps": 10, "scale": 15.0}),
    ("High guidance, few steps: HB-DPM++", {"sampler": "hb-dpm++", "guidance": "none", "steps": 8, "scale": 15.0}),
    ("High guidance, few steps: GHVB", {"sampler": "ghvb", "guidance": "none", "steps": 8, "scale": 15.0}),
    ("Everyday: guidance 3, 20 steps", {"sampler": "hb-dpm++", "guidance": "apg", "steps": 20, "scale": 3.0}),
]
"""The Image tab's example buttons: the regimes where each method changes the picture (compare mode on)."""
