"""The Image tab's controls as values: validation of each input and the preset strings / parameters they make.

Nothing here imports Gradio; :mod:`inertia.ui.image_tab` lays the controls out and calls these.

Example:
    >>> sampler_preset("ghvb", beta=0.8, auto_beta=False, order=4)
    'ghvb:3.8'
    >>> sampler_preset("hb-dpm++", beta=0.8, auto_beta=False, order=4)
    'hb-dpm++:0.8'
    >>> sampler_preset("ghvb", beta=0.8, auto_beta=True, order=4)   # the library's momentum_beta="auto"
    'ghvb'
    >>> guidance_params("apg+higs", apg_eta=0.0, apg_momentum=-0.5, apg_threshold=0.0, higs_weight=1.0)
    {'apg_eta': 0.0, 'apg_momentum': -0.5, 'higs_weight': 1.0}
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from inertia.core.presets.pipeline import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS
from inertia.ui.fields import user_choice, user_float, user_int
from inertia.ui.models import UserInputError

__all__ = [
    "AUTO_BETA_ORDER",
    "EXAMPLES",
    "Example",
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
AUTO_BETA_ORDER = 4
"""The PLMS order of the plain ``ghvb`` / ``hb`` / ``nt`` presets, whose β is auto: the order auto β runs at."""
BETA_RANGE = (0.01, 1.0)
"""Momentum β the sliders and the API accept (1 = no momentum)."""


# ----------------------------------------------------------------------------------------------- validation helpers
# ------------------------------------------------------------------------------------------------ preset builders
def sampler_preset(sampler: str, beta: float, auto_beta: bool, order: int) -> str:
    """The preset string of the sampler controls: ``hb-dpm++:β``, ``ghvb|hb|nt:r`` with r = order − 1 + β.

    With ``auto_beta`` every momentum sampler (``hb-dpm++``, ``ghvb``, ``hb``, ``nt``) is given by its plain name,
    which :func:`inertia.pipelines.configure` builds with ``momentum_beta="auto"``: the library's auto policy picks β
    from the guidance scale and the step count when the pipeline runs (the PLMS family at order
    :data:`AUTO_BETA_ORDER`). The β in effect is read back from the scheduler and shown in the figures.

    Raises:
        UserInputError: an unknown sampler, β outside (0, 1], an order outside 1-4, or an order other than
            :data:`AUTO_BETA_ORDER` with auto β on a PLMS sampler.
    """
    sampler = user_choice("Sampler", sampler, SAMPLER_PRESETS)
    if not isinstance(auto_beta, bool):
        raise UserInputError(f"auto β must be true or false, got {auto_beta!r}.")
    if sampler not in BETA_SAMPLERS:
        return sampler
    beta = user_float("Momentum β", beta, *BETA_RANGE)
    order = user_int("Order", order, 1, 4)
    if auto_beta:
        if sampler in PLMS_MOMENTUM and order != AUTO_BETA_ORDER:
            raise UserInputError(
                f"Order must be {AUTO_BETA_ORDER} with auto β (the auto policy is set for order {AUTO_BETA_ORDER}), "
                f"got {order}; turn auto β off to choose the order."
            )
        return sampler
    if sampler == "hb-dpm++":
        return f"hb-dpm++:{beta:g}"
    return f"{sampler}:{round(order - 1 + beta, 6):g}"


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


@dataclasses.dataclass(frozen=True)
class Example:
    """An example button of the Image tab: the controls it sets (compare mode on, attention off, the model's tuned
    settings on) and its label, which says what it shows.

    Each was chosen on tuning seeds and checked on fresh seeds against the compare mode's baseline (stock scheduler
    + CFG) by ``python -m benchmarks.product.ui_examples`` (figures in docs/hosts/ui.md).

    Example:
        >>> Example("w 15", sampler="ghvb", guidance="none", steps=8, scale=15.0, beta=0.2).presets()
        {'sampler': 'ghvb:3.2', 'guidance': 'none', 'attention': 'off'}
    """

    label: str
    sampler: str
    guidance: str
    steps: int
    scale: float
    beta: float = 0.8
    auto_beta: bool = False
    order: int = AUTO_BETA_ORDER

    def controls(self) -> dict[str, Any]:
        """The Image tab's inputs the button sets, by :func:`~inertia.ui.image_tab.generate_images` parameter."""
        return {
            "sampler": self.sampler,
            "beta": self.beta,
            "auto_beta": self.auto_beta,
            "order": self.order,
            "guidance": self.guidance,
            "attention": "off",
            "steps": self.steps,
            "scale": self.scale,
            "compare": True,
            "tuned": True,
        }

    def presets(self) -> dict[str, str]:
        """The preset names :func:`inertia.pipelines.configure` gets for this example (as the tab builds them)."""
        return {
            "sampler": sampler_preset(self.sampler, self.beta, self.auto_beta, self.order),
            "guidance": user_choice("Guidance", self.guidance, GUIDANCE_PRESETS),
            "attention": "off",
        }


EXAMPLES: list[Example] = [
    Example("Guidance 22.5, 10 steps: APG vs CFG", sampler="dpm++2m", guidance="apg", steps=10, scale=22.5),
    Example(
        "Guidance 22.5, 10 steps: HB-DPM++ β 0.8 with APG",
        sampler="hb-dpm++",
        guidance="apg",
        steps=10,
        scale=22.5,
        beta=0.8,
    ),
    Example(
        "The defaults, guidance 7.5, 20 steps: auto β with APG",
        sampler="hb-dpm++",
        guidance="apg",
        steps=20,
        scale=7.5,
        auto_beta=True,
    ),
]
"""The Image tab's example buttons: each the choice of ``python -m benchmarks.product.ui_examples search`` for one
button on the tuning seeds (APG; momentum with APG; the tab's defaults), checked on the evaluation seeds by
``... check`` (docs/hosts/ui.md): each recognises at least as many digits as the stock sampler + CFG and clips fewer
channel values. No momentum sampler alone has a button: on the embedded model none beat the stock DPM-Solver++(2M)
at 5-10 steps and guidance 15-30 on the tuning seeds, and the one that did at 4 steps (order-2 GHVB, β 0.5) recognised
fewer digits than it on the evaluation seeds."""
