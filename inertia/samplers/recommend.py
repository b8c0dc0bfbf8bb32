"""Recommended momentum damping β by guidance scale and step count (`momentum_beta="auto"`).

The anchors are the paper's App. K recommendations on SD1.5 (PLMS4 + HB: β = 0.9 / 0.8 / 0.6 at CFG 7.5 / 15 / 22.5;
GHVB(3+β): β = 0.5 / 0.2 / 0.1) and the spec's suggested HB-DPM-Solver++ defaults (0.9 below CFG 10, 0.8 above).
Between anchors β is interpolated linearly in the guidance scale; below the first anchor it rises to 1 (no momentum)
at guidance 1, because unguided sampling has no divergence to suppress. The step-count factor relaxes β towards 1 as
steps grow, since artifacts come from large steps (the paper's gains vanish by ~30-60 steps). These are heuristics;
`BENCHMARKS.md` measures how close they land to the best β on the exact-denoiser benchmark.

Example:
    >>> recommended_beta(15.0, 20, "ghvb")
    0.2
"""

from __future__ import annotations

import itertools
import math

__all__ = ["AUTO_METHODS", "recommended_beta"]

# (guidance scale, β) anchors per method; see the module docstring for their sources.
_ANCHORS: dict[str, tuple[tuple[float, float], ...]] = {
    "hb": ((1.0, 1.0), (7.5, 0.9), (15.0, 0.8), (22.5, 0.6)),
    "nt": ((1.0, 1.0), (7.5, 0.9), (15.0, 0.8), (22.5, 0.6)),
    "ghvb": ((1.0, 1.0), (7.5, 0.5), (15.0, 0.2), (22.5, 0.1)),
    "hb-dpm": ((1.0, 1.0), (7.5, 0.9), (10.0, 0.8), (22.5, 0.8)),
}
AUTO_METHODS = tuple(_ANCHORS)
"""Methods :func:`recommended_beta` knows: ``"hb"``, ``"nt"``, ``"ghvb"`` (PLMS family) and ``"hb-dpm"``."""

# Step counts at and above which the table is used as is; fewer steps keep the table value, more relax towards 1.
_REFERENCE_STEPS = 20


def _interpolate(anchors: tuple[tuple[float, float], ...], x: float) -> float:
    if x <= anchors[0][0]:
        return anchors[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(anchors):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return anchors[-1][1]


def recommended_beta(guidance_scale: float, num_inference_steps: int, method: str = "ghvb") -> float:
    """Returns a damping coefficient β ∈ (0, 1] for a sampler, guidance scale and step count.

    Args:
        guidance_scale: the classifier-free guidance scale w (1 = no guidance).
        num_inference_steps: the number of sampler steps.
        method: ``"ghvb"``, ``"hb"``, ``"nt"`` or ``"hb-dpm"`` (heavy ball on DPM-Solver++).

    Returns:
        β rounded to 3 decimals; 1.0 means "no momentum".

    Raises:
        ValueError: on an unknown method, a non-finite or negative guidance scale, or a step count below 1.
    """
    if method not in _ANCHORS:
        raise ValueError(f"`method` must be one of {AUTO_METHODS}, got {method!r}.")
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float):
        raise ValueError(f"`guidance_scale` must be a finite number >= 0, got {guidance_scale!r}.")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"`guidance_scale` must be a finite number >= 0, got {guidance_scale!r}.")
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be an integer >= 1, got {num_inference_steps!r}.")
    beta = _interpolate(_ANCHORS[method], float(guidance_scale))
    if num_inference_steps > _REFERENCE_STEPS:
        # Momentum need falls with the step size: shrink (1 − β) in proportion to the step count.
        beta = 1.0 - (1.0 - beta) * _REFERENCE_STEPS / num_inference_steps
    return round(min(max(beta, 0.01), 1.0), 3)
