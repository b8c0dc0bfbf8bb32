"""Recommended momentum damping β by guidance scale and step count (`momentum_beta="auto"`).

Sources of the numbers:
- HB on PLMS (and NT): the paper's App. K recommendation on SD1.5, β = 0.9 / 0.8 / 0.6 at CFG 7.5 / 15 / 22.5,
  rising to 1 (no momentum) at CFG 1, where there is no guidance divergence to suppress.
- HB-DPM-Solver++: our defaults, β = 0.9 below CFG 10 and 0.8 above (0.8 is the paper's setting at CFG 15, Tables
  5-6; 0.9 follows the App. K trend towards weaker damping at milder guidance).
- GHVB: the paper's GHVB(3+β) recommendation on SD1.5, β = 0.5 / 0.2 / 0.1 at CFG 7.5 / 15 / 22.5. Below 7.5 we keep
  0.5 instead of rising to 1: on our exact-denoiser benchmark an order-4 GHVB needs that damping at ≤ 10 steps even
  without guidance (plain AB4 is outside its stability region there), see BENCHMARKS.md.
Between anchors β is interpolated linearly in the guidance scale. Past a reference step count the damping relaxes
towards 1, because artifacts come from large steps: (1 − β) shrinks like (n_ref/n)^p. For HB-type methods n_ref = 20,
p = 1 (the paper's gains vanish by 30-60 steps); for GHVB n_ref = 10, p = 2, fitted to the benchmark, where GHVB 3.8-3.9
is best from 20 steps on at every guidance scale. These are heuristics, measured in BENCHMARKS.md; they are not
validated on real checkpoints beyond the paper's figures.

Example:
    >>> recommended_beta(15.0, 8, "ghvb")
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
    "ghvb": ((7.5, 0.5), (15.0, 0.2), (22.5, 0.1)),
    "hb-dpm": ((1.0, 1.0), (7.5, 0.9), (10.0, 0.8), (22.5, 0.8)),
}
AUTO_METHODS = tuple(_ANCHORS)
"""Methods :func:`recommended_beta` knows: ``"hb"``, ``"nt"``, ``"ghvb"`` (PLMS family) and ``"hb-dpm"``."""

# (n_ref, p): up to n_ref steps the table holds; beyond, (1 − β) shrinks like (n_ref / n) ** p.
_RELAXATION: dict[str, tuple[int, int]] = {"hb": (20, 1), "nt": (20, 1), "hb-dpm": (20, 1), "ghvb": (10, 2)}


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
    reference, power = _RELAXATION[method]
    if num_inference_steps > reference:
        # Momentum need falls with the step size: shrink (1 − β) like (n_ref / n)^p.
        beta = 1.0 - (1.0 - beta) * (reference / num_inference_steps) ** power
    return round(min(max(beta, 0.01), 1.0), 3)
