"""The damping β of ``momentum_beta="auto"``: the stock solver (β = 1) unless momentum was measured to help.

A setting called ``auto`` must never be the reason a sample gets worse. So :func:`auto_beta` returns β = 1, which
is the stock solver bit for bit (DPM-Solver++ for ``"hb-dpm++"``, plain PLMS-k for ``"hb"``, ``"nt"`` and
``"ghvb"``), everywhere except the cells of a measured table: where the stock solver diverged (its samples left the
data range on every tuning problem) and a β < 1 was no worse than it on any tuning problem and at least 2% better on
average, at the cell and at the neighbouring tuned points the lookup applies it up to. That is the regime the momentum
paper is about: PLMS-4 with guidance at 6-10 steps (15 on the flow schedule at high guidance), and at up to 30 steps
on Karras sigmas. DPM-Solver++ never
diverged on every tuning problem of a cell, and where momentum lowered its error on the exact denoiser it raised the
clipped fraction on a trained network (the embedded digits model), so ``"hb-dpm++"`` auto is the stock DPM-Solver++.

The table comes from ``python -m benchmarks.samplers.auto_beta_policy --stage tune``: exact-denoiser problems (a
finite data set, so every error is the sampler's) on the SD1.5 and SDXL schedules (kind ``"vp"``), Karras sigmas
(``"karras"``) and SD3's flow schedule (``"flow"``), at guidance 3, 7.5, 12, 17.5 and 25 and 6-30 steps, RMSE to a
500-step reference. It was then checked on held-out problems (other data and noise seeds, guidance 1-30, a schedule
never tuned on) and on the embedded digits model; the method pages ("How auto chooses β") have the figures.

Between measured points the rule errs towards less damping: it reads the cell of the nearest tuned guidance scale at
or *below* ``guidance_scale`` and the nearest tuned step count at or *above* ``steps``; outside the tuned range (fewer
than 6 or more than 30 steps, guidance below 3) and for anything not measured (PLMS orders other than 4, another
schedule kind) it returns 1.

Example:
    >>> auto_beta("hb-dpm++", steps=30, guidance_scale=7.5, schedule_kind="vp")   # nothing to fix: the stock solver
    1.0
    >>> auto_beta("ghvb", steps=8, guidance_scale=15.0) < 1.0   # PLMS-4 diverges at 8 steps: damped
    True
"""

from __future__ import annotations

import math

from inertia.core.validation import check_choice, check_int, check_range

__all__ = [
    "AUTO_METHODS",
    "AUTO_SAMPLERS",
    "SCHEDULE_KINDS",
    "TUNED_GUIDANCE_SCALES",
    "TUNED_STEPS",
    "auto_beta",
    "measured_cells",
    "recommended_beta",
]

AUTO_SAMPLERS = ("hb-dpm++", "hb", "nt", "ghvb")
"""Samplers :func:`auto_beta` knows: heavy ball on DPM-Solver++, and HB, Nesterov and GHVB on PLMS."""
SCHEDULE_KINDS = ("vp", "karras", "flow", "other")
"""``"vp"``: diffusers' timestep spacings of a VP model ("leading", "trailing", "linspace"; k-diffusion's and
ComfyUI's "normal"); ``"karras"``: Karras et al.'s ρ = 7 sigmas; ``"flow"``: flow-matching sigmas (SD3, Flux);
``"other"``: any grid that was not measured (exponential, beta or Lu λ sigmas, ...): always β = 1."""
TUNED_GUIDANCE_SCALES = (3.0, 7.5, 12.0, 17.5, 25.0)
"""The guidance scales the table was tuned at."""
TUNED_STEPS = (6, 8, 10, 15, 20, 30)
"""The step counts the table was tuned at."""
_DEFAULT_ORDER = {"hb-dpm++": 2, "hb": 4, "nt": 4, "ghvb": 4}
_MAX_ORDER = {"hb-dpm++": 3, "hb": 5, "nt": 5, "ghvb": 5}

# (sampler, order, schedule kind) -> {(tuned guidance scale, tuned steps): β}; cells not listed are β = 1.
# Written by `python -m benchmarks.samplers.auto_beta_policy --stage tune` (its `policy`); do not edit by hand.
# fmt: off
_MEASURED: dict[tuple[str, int, str], dict[tuple[float, int], float]] = {
    ("ghvb", 4, "flow"): {
        (3.0, 6): 0.2, (3.0, 8): 0.2, (3.0, 10): 0.2,
        (7.5, 6): 0.2, (7.5, 8): 0.2, (7.5, 10): 0.6,
        (12.0, 6): 0.2, (12.0, 8): 0.4, (12.0, 10): 0.4,
        (17.5, 6): 0.2, (17.5, 8): 0.2, (17.5, 10): 0.4, (17.5, 15): 0.8,
        (25.0, 6): 0.2, (25.0, 8): 0.2, (25.0, 10): 0.2, (25.0, 15): 0.6,
    },
    ("ghvb", 4, "karras"): {
        (3.0, 6): 0.2, (3.0, 8): 0.2, (3.0, 10): 0.2,
        (7.5, 6): 0.2, (7.5, 8): 0.2, (7.5, 10): 0.2, (7.5, 15): 0.2, (7.5, 20): 0.6,
        (12.0, 6): 0.2, (12.0, 8): 0.2, (12.0, 10): 0.2, (12.0, 15): 0.2, (12.0, 20): 0.6, (12.0, 30): 0.4,
        (17.5, 6): 0.2, (17.5, 8): 0.2, (17.5, 10): 0.2, (17.5, 15): 0.4, (17.5, 20): 0.6, (17.5, 30): 0.6,
        (25.0, 6): 0.2, (25.0, 8): 0.2, (25.0, 10): 0.2, (25.0, 15): 0.2, (25.0, 20): 0.4, (25.0, 30): 0.6,
    },
    ("ghvb", 4, "vp"): {
        (7.5, 6): 0.2, (7.5, 8): 0.4,
        (12.0, 6): 0.2, (12.0, 8): 0.2,
        (17.5, 6): 0.2, (17.5, 8): 0.2, (17.5, 10): 0.4,
        (25.0, 6): 0.2, (25.0, 8): 0.2, (25.0, 10): 0.4,
    },
    ("hb", 4, "flow"): {
        (3.0, 6): 0.6, (3.0, 8): 0.8, (3.0, 10): 0.8,
        (7.5, 6): 0.6, (7.5, 8): 0.8, (7.5, 10): 0.8,
        (12.0, 6): 0.6, (12.0, 8): 0.6, (12.0, 10): 0.8,
        (17.5, 6): 0.6, (17.5, 8): 0.6, (17.5, 10): 0.8, (17.5, 15): 0.9,
        (25.0, 6): 0.6, (25.0, 8): 0.6, (25.0, 10): 0.6, (25.0, 15): 0.9,
    },
    ("hb", 4, "karras"): {
        (3.0, 6): 0.6, (3.0, 8): 0.6, (3.0, 10): 0.6,
        (7.5, 6): 0.6, (7.5, 8): 0.6, (7.5, 10): 0.6, (7.5, 15): 0.6, (7.5, 20): 0.8,
        (12.0, 6): 0.6, (12.0, 8): 0.6, (12.0, 10): 0.6, (12.0, 15): 0.6, (12.0, 20): 0.4, (12.0, 30): 0.6,
        (17.5, 6): 0.6, (17.5, 8): 0.6, (17.5, 10): 0.6, (17.5, 15): 0.6, (17.5, 20): 0.8, (17.5, 30): 0.4,
        (25.0, 6): 0.6, (25.0, 8): 0.6, (25.0, 10): 0.6, (25.0, 15): 0.6, (25.0, 20): 0.8, (25.0, 30): 0.6,
    },
    ("hb", 4, "vp"): {
        (7.5, 6): 0.6, (7.5, 8): 0.6,
        (12.0, 6): 0.6, (12.0, 8): 0.6,
        (17.5, 6): 0.6, (17.5, 8): 0.6, (17.5, 10): 0.8,
        (25.0, 6): 0.6, (25.0, 8): 0.6, (25.0, 10): 0.6,
    },
    ("nt", 4, "flow"): {
        (3.0, 6): 0.4, (3.0, 8): 0.4, (3.0, 10): 0.6,
        (7.5, 6): 0.4, (7.5, 8): 0.4, (7.5, 10): 0.6,
        (12.0, 6): 0.4, (12.0, 8): 0.4, (12.0, 10): 0.6,
        (17.5, 6): 0.4, (17.5, 8): 0.4, (17.5, 10): 0.4, (17.5, 15): 0.8,
        (25.0, 6): 0.4, (25.0, 8): 0.4, (25.0, 10): 0.4, (25.0, 15): 0.6,
    },
    ("nt", 4, "karras"): {
        (3.0, 6): 0.4, (3.0, 8): 0.4, (3.0, 10): 0.4,
        (7.5, 6): 0.4, (7.5, 8): 0.4, (7.5, 10): 0.4, (7.5, 15): 0.4, (7.5, 20): 0.6,
        (12.0, 6): 0.4, (12.0, 8): 0.4, (12.0, 10): 0.4, (12.0, 15): 0.4, (12.0, 20): 0.6, (12.0, 30): 0.4,
        (17.5, 6): 0.4, (17.5, 8): 0.4, (17.5, 10): 0.4, (17.5, 15): 0.4, (17.5, 20): 0.6, (17.5, 30): 0.6,
        (25.0, 6): 0.4, (25.0, 8): 0.4, (25.0, 10): 0.4, (25.0, 15): 0.4, (25.0, 20): 0.6, (25.0, 30): 0.4,
    },
    ("nt", 4, "vp"): {
        (7.5, 6): 0.4, (7.5, 8): 0.4,
        (12.0, 6): 0.4, (12.0, 8): 0.4,
        (17.5, 6): 0.4, (17.5, 8): 0.4, (17.5, 10): 0.4,
        (25.0, 6): 0.4, (25.0, 8): 0.4, (25.0, 10): 0.4,
    },
}
# fmt: on

AUTO_METHODS = ("hb", "nt", "ghvb", "hb-dpm")
"""Methods :func:`recommended_beta` knows (``"hb-dpm"`` is :func:`auto_beta`'s ``"hb-dpm++"``)."""


def measured_cells(sampler: str, order: int, schedule_kind: str) -> dict[tuple[float, int], float]:
    """The tuned cells with β < 1 of one sampler, order and schedule kind: ``{(guidance, steps): β}`` (a copy)."""
    return dict(_MEASURED.get((sampler, order, schedule_kind), {}))


def auto_beta(
    sampler: str,
    steps: int,
    guidance_scale: float,
    schedule_kind: str = "vp",
    order: int | None = None,
) -> float:
    """The β that ``momentum_beta="auto"`` uses: 1 (the stock solver) unless damping was measured to help.

    Args:
        sampler: ``"hb-dpm++"`` (heavy ball on DPM-Solver++), ``"hb"``, ``"nt"`` or ``"ghvb"`` (on PLMS).
        steps: the number of sampler steps (``num_inference_steps``).
        guidance_scale: the classifier-free guidance scale the sampler will run with (1 = no guidance).
        schedule_kind: the noise-level grid, one of :data:`SCHEDULE_KINDS` (``"vp"`` by default).
        order: the solver order: 2 or 3 for ``"hb-dpm++"`` (default 2), 1-5 for the PLMS family (default 4, the
            schedulers' and the presets' default). The table covers orders 2 and 3 of ``"hb-dpm++"`` and order 4
            of the PLMS family; other orders get β = 1 (their stock solver).

    Returns:
        β in (0, 1]; exactly 1.0 means no momentum, the stock solver.

    Raises:
        ValueError: naming the parameter, for an unknown sampler or schedule kind, a step count below 1, a negative
            or non-finite guidance scale, or an order outside the sampler's range.

    Example:
        >>> auto_beta("hb-dpm++", steps=20, guidance_scale=1.0)   # no guidance: the stock DPM-Solver++(2M)
        1.0
        >>> auto_beta("hb", steps=50, guidance_scale=15.0)   # more steps than measured: no momentum
        1.0
        >>> auto_beta("hb-dpm++", steps=8, guidance_scale=7.5, schedule_kind="other")   # an unmeasured grid
        1.0
    """
    check_choice("sampler", sampler, AUTO_SAMPLERS)
    steps = check_int("steps", steps, 1)
    guidance = check_range("guidance_scale", guidance_scale, 0.0)
    check_choice("schedule_kind", schedule_kind, SCHEDULE_KINDS)
    order = _DEFAULT_ORDER[sampler] if order is None else check_int("order", order, 1, _MAX_ORDER[sampler])
    cells = _MEASURED.get((sampler, order, schedule_kind))
    if not cells or steps > TUNED_STEPS[-1] or steps < TUNED_STEPS[0] or guidance < TUNED_GUIDANCE_SCALES[0]:
        return 1.0
    # Towards less damping between tuned points: the tuned guidance at or below, the tuned step count at or above.
    tuned_guidance = max(g for g in TUNED_GUIDANCE_SCALES if g <= guidance)
    tuned_steps = min(n for n in TUNED_STEPS if n >= steps)
    return cells.get((tuned_guidance, tuned_steps), 1.0)


def recommended_beta(guidance_scale: float, num_inference_steps: int, method: str = "ghvb") -> float:
    """:func:`auto_beta` on a VP schedule at the samplers' default order, with the former argument order.

    Args:
        guidance_scale: the classifier-free guidance scale w (1 = no guidance).
        num_inference_steps: the number of sampler steps.
        method: ``"ghvb"``, ``"hb"``, ``"nt"`` (order 4) or ``"hb-dpm++"`` (order 2; ``"hb-dpm"`` also accepted).

    Returns:
        The β ``momentum_beta="auto"`` uses there; 1.0 means "no momentum".

    Raises:
        ValueError: on an unknown method, a non-finite or negative guidance scale, or a step count below 1.

    Example:
        >>> recommended_beta(1.0, 20, "hb-dpm")
        1.0
    """
    if method not in (*AUTO_METHODS, "hb-dpm++"):
        raise ValueError(f"`method` must be one of {(*AUTO_METHODS, 'hb-dpm++')}, got {method!r}.")
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float):
        raise ValueError(f"`guidance_scale` must be a finite number >= 0, got {guidance_scale!r}.")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"`guidance_scale` must be a finite number >= 0, got {guidance_scale!r}.")
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be an integer >= 1, got {num_inference_steps!r}.")
    sampler = "hb-dpm++" if method == "hb-dpm" else method
    return auto_beta(sampler, num_inference_steps, float(guidance_scale), "vp")
