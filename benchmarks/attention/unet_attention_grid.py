"""What the momentum-attention benchmark (§5) compares: the steps, the skip schedules and window, and the variants.

Our rule (``extrapolate``) and FasterCache's (``first_order``, weight 0.5, through our hook) at matched skip schedules
(same ``skip_every``, window and targets), and the quality run's variants (with the experimental ``ema`` and
``heavy_ball``). The speed is measured by :mod:`benchmarks.attention.unet_attention_speed`, the quality by
:mod:`benchmarks.attention.unet_attention_quality`.
"""

from __future__ import annotations

from collections.abc import Sequence

from inertia.attention import MomentumAttention

__all__ = ["SCHEDULES", "STEPS", "WINDOW", "baseline", "extrapolate", "quality_variants"]

STEPS = 20
WINDOW = (4, None)
SCHEDULES = (2, 3)
"""``skip_every`` values compared (window ``(4, None)``, self- and cross-attention)."""


def extrapolate(skip_every: int, start: int = WINDOW[0]) -> MomentumAttention:
    """Our rule at a schedule (defaults for β and λ)."""
    return MomentumAttention(mode="extrapolate", skip_every=skip_every, window=(start, None))


def baseline(skip_every: int, start: int = WINDOW[0]) -> MomentumAttention:
    """FasterCache's rule (weight 0.5) at the same schedule and targets."""
    return MomentumAttention.faster_cache(skip_every=skip_every, window=(start, None), targets=("self", "cross"))


def quality_variants(
    schedules: Sequence[int] = SCHEDULES, start: int = WINDOW[0], experimental: bool = True
) -> dict[str, MomentumAttention | None]:
    """The configurations compared on the digits model (None = full computation)."""
    variants: dict[str, MomentumAttention | None] = {"full": None}
    for k in schedules:
        variants[f"extrapolate k={k}"] = extrapolate(k, start)
        variants[f"first_order k={k}"] = baseline(k, start)
    if experimental:
        variants["ema (experimental)"] = MomentumAttention(mode="ema", beta=0.2, window=(4, 16))
        variants["heavy_ball (experimental)"] = MomentumAttention(
            mode="heavy_ball", beta=0.5, lookahead=0.5, window=(4, 16)
        )
        variants["full (seed 1)"] = None
    return variants
