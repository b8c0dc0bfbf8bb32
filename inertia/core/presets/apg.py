"""Named per-model APG settings, each with the guidance scale it was set for and where its values come from.

Use them through :meth:`inertia.guidance.APG.preset` (``APG.preset("sdxl", momentum=-0.75)``). Only the SDXL values
are the paper's; the others are a community preset, inertia's latent-size rule or inertia's own measurement, and
each entry's ``source`` says which. Pure data: no torch, no host library.

Example:
    >>> from inertia.core.presets.apg import APG_PRESETS
    >>> sorted(APG_PRESETS)
    ['digits-16', 'sd15', 'sd21', 'sd3', 'sdxl']
    >>> APG_PRESETS["sdxl"].settings, APG_PRESETS["sdxl"].guidance_scale
    ({'eta': 0.0, 'momentum': -0.5, 'norm_threshold': 15.0}, 15.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

SDXL_LATENT_ELEMENTS = 4 * 128 * 128
"""C·H·W of SDXL's latent at 1024², the size the paper's r = 15 was set for."""


def latent_size_threshold(elements: int) -> float:
    """The paper's SDXL r = 15 scaled to a latent of ``elements`` values so the per-element RMS bound stays the same:
    ``15·√(N/N_SDXL)`` (inertia's rule, not the paper's: the paper's L2 norm grows with √N)."""
    return 15.0 * math.sqrt(elements / SDXL_LATENT_ELEMENTS)


@dataclass(frozen=True)
class APGPreset:
    """One named APG setting.

    Args:
        eta: η.
        momentum: β.
        norm_threshold: r, in x0-latent units.
        guidance_scale: the pipeline ``guidance_scale`` (w) the values were set for, or None when the source names
            none (use the model's usual scale).
        source: where the values come from (paper, community preset, inertia's rule or measurement).

    Example:
        >>> APGPreset(eta=0.0, momentum=-0.5, norm_threshold=15.0, guidance_scale=15.0, source="paper").settings
        {'eta': 0.0, 'momentum': -0.5, 'norm_threshold': 15.0}
    """

    eta: float
    momentum: float
    norm_threshold: float
    guidance_scale: float | None
    source: str

    @property
    def settings(self) -> dict[str, float]:
        """The :class:`~inertia.guidance.APG` fields this preset sets."""
        return {"eta": self.eta, "momentum": self.momentum, "norm_threshold": self.norm_threshold}


APG_PRESETS: MappingProxyType[str, APGPreset] = MappingProxyType(
    {
        "sdxl": APGPreset(
            eta=0.0,
            momentum=-0.5,
            norm_threshold=15.0,
            guidance_scale=15.0,
            source=(
                "paper (Sadat et al., ICLR 2025): the SDXL hyperparameters of its Table 10 (η 0, β −0.5, r 15, as "
                "diffusers PR #9626 quotes them) at the w = 15 of its SDXL results (Table 1)"
            ),
        ),
        "sd21": APGPreset(
            eta=0.0,
            momentum=-0.75,
            norm_threshold=7.5,
            guidance_scale=None,
            source=(
                "community preset for SD 2.1 (DenOfEquity/AdaptiveProjectedGuidance), not checked against the paper's "
                "Table 10"
            ),
        ),
        "sd15": APGPreset(
            eta=0.0,
            momentum=-0.5,
            norm_threshold=latent_size_threshold(4 * 64 * 64),  # 7.5
            guidance_scale=None,
            source=(
                "inertia's latent-size rule r = 15·√(N/N_SDXL) for SD 1.5's 4×64×64 latents at 512², η and β from "
                "SDXL; the paper gives no SD 1.5 values and this one is not measured"
            ),
        ),
        "sd3": APGPreset(
            eta=0.0,
            momentum=-0.5,
            norm_threshold=latent_size_threshold(16 * 128 * 128),  # 30
            guidance_scale=None,
            source=(
                "inertia's latent-size rule r = 15·√(N/N_SDXL) for SD3's 16×128×128 latents at 1024², η and β from "
                "SDXL; the paper gives no SD3 values and this one is not measured"
            ),
        ),
        "digits-16": APGPreset(
            eta=0.0,
            momentum=-0.5,
            norm_threshold=0.2,
            guidance_scale=15.0,
            source=(
                "inertia's measurement: r tuned on a separate seed for the embedded 3×16×16 digits model at w = 15 "
                "(docs/benchmarks/guidance.md §4)"
            ),
        ),
    }
)
"""APG presets by name (read-only)."""

NO_PRESET: MappingProxyType[str, str] = MappingProxyType(
    {
        "flux": (
            "FluxPipeline runs no batched classifier-free guidance (Flux.1-dev is guidance-distilled, and its true "
            "CFG runs cond and uncond as separate calls, which inertia refuses), so APG has nothing to act on there; "
            "use HiGS alone: apply_guidance(pipe, HiGS())"
        ),
    }
)
"""Model names with deliberately no APG preset, and why."""


def apg_preset(name: object) -> APGPreset:
    """The preset called ``name`` (case-insensitive).

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a model without a preset (it says why).

    Example:
        >>> apg_preset("SD15").norm_threshold
        7.5
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if isinstance(key, str) and key in APG_PRESETS:
        return APG_PRESETS[key]
    valid = ", ".join(map(repr, sorted(APG_PRESETS)))
    if isinstance(key, str) and key in NO_PRESET:
        raise ValueError(f"`name`={name!r} has no APG preset: {NO_PRESET[key]}. Valid presets: {valid}.")
    raise ValueError(f"`name` must be one of {valid}, got {name!r}.")
