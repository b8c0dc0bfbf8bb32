"""inertia.core.samplers.beta_policy: ``momentum_beta="auto"`` is the stock solver unless damping was measured to help."""

from __future__ import annotations

import math

import pytest

from inertia.core.samplers import beta_policy
from inertia.core.samplers.beta_policy import (
    AUTO_METHODS,
    AUTO_SAMPLERS,
    SCHEDULE_KINDS,
    TUNED_GUIDANCE_SCALES,
    TUNED_STEPS,
    auto_beta,
    measured_cells,
    recommended_beta,
)

MEASURED = beta_policy._MEASURED
DEFAULT_ORDER = {"hb-dpm++": 2, "hb": 4, "nt": 4, "ghvb": 4}


def test_the_table_is_tuned_cells_with_damping_only() -> None:
    assert MEASURED, "the measured table is empty: auto would never damp"
    for (sampler, order, kind), cells in MEASURED.items():
        assert sampler in AUTO_SAMPLERS and kind in SCHEDULE_KINDS and kind != "other"
        assert order in ((2, 3) if sampler == "hb-dpm++" else (4,))
        for (guidance, steps), beta in cells.items():
            assert guidance in TUNED_GUIDANCE_SCALES and steps in TUNED_STEPS
            assert 0.0 < beta < 1.0  # a listed cell damps; every other cell is the stock solver


def test_the_measured_verdicts_per_sampler() -> None:
    """PLMS-4 diverges with guidance at few steps and is damped there; DPM-Solver++ never diverged on every tuning
    problem of a cell (and damping it raised clipping on the digits model), so its auto is the stock solver."""
    for kind in SCHEDULE_KINDS:
        for order in (2, 3):
            for steps in range(1, 40):
                for guidance in (1.0, 3.0, 7.5, 10.0, 15.0, 22.5, 30.0):
                    assert auto_beta("hb-dpm++", steps, guidance, kind, order=order) == 1.0
    for sampler in ("ghvb", "hb", "nt"):
        for kind in ("vp", "karras", "flow"):
            assert all(auto_beta(sampler, n, g, kind) < 1.0 for g in (15.0, 22.5, 30.0) for n in (6, 7, 8))
    assert auto_beta("ghvb", 8, 15.0) == 0.2 and auto_beta("hb", 8, 15.0) == 0.6 and auto_beta("nt", 8, 15.0) == 0.4
    assert auto_beta("ghvb", 20, 15.0, "karras") == 0.6  # PLMS-4 on Karras sigmas diverges up to 30 steps
    assert auto_beta("ghvb", 20, 15.0, "vp") == 1.0  # ... on the VP spacings it has converged by then


def test_every_measured_cell_is_what_auto_returns_there() -> None:
    for (sampler, order, kind), cells in MEASURED.items():
        assert measured_cells(sampler, order, kind) == cells
        for (guidance, steps), beta in cells.items():
            assert auto_beta(sampler, steps, guidance, kind, order=order) == beta


def test_between_tuned_points_auto_reads_the_cell_that_needs_less_damping() -> None:
    """Guidance rounds down to a tuned scale, steps round up to a tuned count: never more damping than measured."""
    guidances = (*TUNED_GUIDANCE_SCALES, math.inf)
    for (sampler, order, kind), cells in MEASURED.items():
        for (guidance, steps), beta in cells.items():
            next_guidance = guidances[guidances.index(guidance) + 1]
            previous_steps = TUNED_STEPS[TUNED_STEPS.index(steps) - 1] if steps != TUNED_STEPS[0] else steps - 1
            for g in (guidance, guidance + 0.01, min(next_guidance - 0.01, 1e3)):
                for n in range(previous_steps + 1, steps + 1):
                    assert auto_beta(sampler, n, g, kind, order=order) == beta


@pytest.mark.parametrize("sampler", AUTO_SAMPLERS)
def test_outside_the_measured_range_auto_is_the_stock_solver(sampler: str) -> None:
    for kind in SCHEDULE_KINDS:
        for guidance in (0.0, 1.0, 2.99, 7.5, 15.0, 22.5, 100.0):
            for steps in (1, 2, 5, 31, 50, 1000):  # fewer or more steps than were measured
                assert auto_beta(sampler, steps, guidance, kind) == 1.0
        for steps in TUNED_STEPS:
            for guidance in (0.0, 1.0, 2.99):  # below the lowest tuned guidance scale
                assert auto_beta(sampler, steps, guidance, kind) == 1.0
    for steps in range(1, 40):  # a grid nothing was measured on
        for guidance in (1.0, 7.5, 15.0, 30.0):
            assert auto_beta(sampler, steps, guidance, "other") == 1.0


def test_orders_that_were_not_measured_keep_the_stock_solver() -> None:
    for sampler, orders in (("hb-dpm++", (1,)), ("hb", (1, 2, 3, 5)), ("nt", (1, 2, 3, 5)), ("ghvb", (1, 2, 3, 5))):
        for order in orders:
            for kind in SCHEDULE_KINDS:
                for steps in TUNED_STEPS:
                    for guidance in TUNED_GUIDANCE_SCALES:
                        assert auto_beta(sampler, steps, guidance, kind, order=order) == 1.0


def test_the_default_orders_are_the_presets() -> None:
    for sampler, order in DEFAULT_ORDER.items():
        for kind in SCHEDULE_KINDS:
            for steps in (6, 8, 20):
                for guidance in (3.0, 17.5):
                    assert auto_beta(sampler, steps, guidance, kind) == auto_beta(
                        sampler, steps, guidance, kind, order=order
                    )


def test_recommended_beta_is_auto_beta_on_a_vp_schedule() -> None:
    assert AUTO_METHODS == ("hb", "nt", "ghvb", "hb-dpm")
    for method, sampler in (
        ("hb", "hb"),
        ("nt", "nt"),
        ("ghvb", "ghvb"),
        ("hb-dpm", "hb-dpm++"),
        ("hb-dpm++", "hb-dpm++"),
    ):
        for steps in (4, 6, 7, 8, 12, 20, 30, 40):
            for guidance in (1, 3.0, 5.0, 7.5, 10.0, 15.0, 22.5, 30.0):
                assert recommended_beta(guidance, steps, method) == auto_beta(sampler, steps, guidance, "vp")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sampler": "dpm"}, r"`sampler` must be one of 'hb-dpm\+\+', 'hb', 'nt', 'ghvb', got 'dpm'"),
        ({"sampler": "hb-dpm"}, "`sampler`"),
        ({"steps": 0}, r"`steps` must be an integer >= 1, got 0"),
        ({"steps": 2.5}, "`steps`"),
        ({"steps": True}, "`steps`"),
        ({"guidance_scale": -1.0}, r"`guidance_scale` must be in \[0.0, inf\), got -1.0"),
        ({"guidance_scale": math.nan}, "`guidance_scale`"),
        ({"guidance_scale": math.inf}, "`guidance_scale`"),
        ({"guidance_scale": "7.5"}, "`guidance_scale`"),
        ({"schedule_kind": "karas"}, r"`schedule_kind` must be one of 'vp', 'karras', 'flow', 'other', got 'karas'"),
        ({"order": 4}, r"`order` must be an integer in \[1, 3\], got 4"),
        ({"sampler": "ghvb", "order": 6}, r"`order` must be an integer in \[1, 5\], got 6"),
        ({"order": 0}, "`order`"),
    ],
)
def test_bad_input_is_named(kwargs: dict, match: str) -> None:
    arguments = {"sampler": "hb-dpm++", "steps": 8, "guidance_scale": 15.0, "schedule_kind": "vp", **kwargs}
    with pytest.raises(ValueError, match=match):
        auto_beta(**arguments)
