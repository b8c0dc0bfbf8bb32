"""`python -m benchmarks.samplers.auto_beta_policy --quick`: the auto-β study runs, and its tuning rule and verdict."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.samplers import auto_beta_policy as study
from benchmarks.samplers.auto_beta_problems import AutoProblem, ProblemRun, SamplerSpec, host_config
from inertia.core.samplers.beta_policy import auto_beta


def _rows(errors: dict[tuple[float, int, float, str], float], diverged=lambda g, n, p: True) -> list[dict]:
    """Tuning rows of one sampler (HB-DPM++ order 2, kind vp) from {(guidance, steps, β, problem): RMSE}; the stock
    solver's magnitude score is 0.5 where ``diverged(guidance, steps, problem)``, else 0."""
    return [
        {"problem": p, "kind": "vp", "guidance": g, "steps": n, "method": "dpm", "order": 2, "beta": b, "rmse": e,
         "magnitude": 0.5 if b == 1.0 and diverged(g, n, p) else 0.0}
        for (g, n, b, p), e in errors.items()
    ]  # fmt: skip


def _grid(stock, damped: dict, guidances=(3.0, 7.5), steps=(6, 8), problems=("a", "b")):
    """Errors of β = 1 (``stock``) and of each damped β, constants or functions of (guidance, steps, problem)."""
    errors = {}
    for g in guidances:
        for n in steps:
            for p in problems:
                errors[(g, n, 1.0, p)] = stock(g, n, p) if callable(stock) else stock
                for beta, value in damped.items():
                    errors[(g, n, beta, p)] = value(g, n, p) if callable(value) else value
    return errors


def test_the_rule_damps_only_where_it_helps_everywhere_it_is_applied() -> None:
    # β 0.8 helps by 10% everywhere; β 0.6 helps more, but is worse than stock on one problem at guidance 7.5
    errors = _grid(1.0, {0.8: 0.9, 0.6: lambda g, n, p: 1.05 if (g, p) == (7.5, "b") else 0.7})
    policy = study.choose_policy(_rows(errors))
    # guidance 3's β is also applied up to 7.5, where 0.6 loses on problem b: 0.8 everywhere
    assert policy == {"hb-dpm++-2/vp": {"3/6": 0.8, "3/8": 0.8, "7.5/6": 0.8, "7.5/8": 0.8}}


def test_the_rule_keeps_the_stock_solver_without_a_measured_gain() -> None:
    assert study.choose_policy(_rows(_grid(1.0, {0.8: 0.99, 0.6: 1.2}))) == {}  # 1% on average is not enough
    assert study.choose_policy(_rows(_grid(1.0, {0.8: lambda g, n, p: 0.5 if p == "a" else 1.01}))) == {}


def test_damping_only_where_the_stock_solver_left_the_data_range_on_every_problem() -> None:
    errors = _grid(1.0, {0.8: 0.5}, steps=(6, 8, 10))
    assert study.choose_policy(_rows(errors, diverged=lambda g, n, p: False)) == {}  # a gain in range is not used
    some = study.choose_policy(_rows(errors, diverged=lambda g, n, p: g == 7.5 and (n < 10 or p == "a")))
    assert some == {"hb-dpm++-2/vp": {"7.5/6": 0.8, "7.5/8": 0.8}}


def test_a_cell_needs_every_smaller_step_count_damped() -> None:
    # the stock solver diverges at 6 and at 10 steps but not at 8: 10 steps is not the regime's shape
    errors = _grid(1.0, {0.8: 0.5}, steps=(6, 8, 10))
    policy = study.choose_policy(_rows(errors, diverged=lambda g, n, p: n != 8))
    assert policy == {"hb-dpm++-2/vp": {"3/6": 0.8, "7.5/6": 0.8}}


def test_the_verdict_counts_misses_with_the_floor_and_the_lead() -> None:
    base = {"sampler": "hb-dpm++-2", "schedule": "sd15", "kind": "vp", "problem": "p", "beta": 0.7}
    rows = [
        {**base, "guidance": 15.0, "steps": 6, "auto": 0.9, "stock": 1.0},  # ahead
        {**base, "guidance": 15.0, "steps": 8, "auto": 1.02 * 1.0 + 0.0009, "stock": 1.0},  # within 2% + floor
        {**base, "guidance": 5.0, "steps": 6, "auto": 0.0024, "stock": 0.0015},  # 60% worse, but within the floor
        {**base, "guidance": 5.0, "steps": 8, "auto": 0.2, "stock": 0.1, "beta": 0.6},  # a miss
        {**base, "guidance": 5.0, "steps": 20, "auto": math.inf, "stock": 0.1},  # a non-finite result is a miss
    ]
    result = study.verdict(rows)
    assert len(result["misses"]) == 2 and "g=5 n=8" in result["misses"][0]
    assert result["leads"] == {"hb-dpm++-2/sd15": (1, 2)}
    assert "| hb-dpm++-2 | sd15 | 5/5 | 2 |" in result["markdown"]


def test_the_runner_solves_every_schedule_and_auto_is_the_schedulers_own() -> None:
    for schedule in ("sd15", "sdxl", "linspace", "karras", "flow"):
        assert host_config(schedule)
        run = ProblemRun(AutoProblem(7, schedule, per_class=8), batch=4, reference_steps=40)
        stock = run.error(SamplerSpec("dpm", 2), 3.0, 6)
        assert math.isfinite(stock) and stock < 1.0, schedule
        beta = run.resolved_beta(SamplerSpec("ghvb", 4, "auto"), 15.0, 6)
        assert beta == auto_beta("ghvb", 6, 15.0, {"karras": "karras", "flow": "flow"}.get(schedule, "vp")) < 1.0


def test_quick_tune_and_heldout_write_their_outputs(tmp_path) -> None:
    assert study.main(["--stage", "tune", "--quick", "--out", str(tmp_path)]) == 0
    tuned = json.loads((tmp_path / "auto_beta_tune_quick.json").read_text())
    assert tuned["rows"] and set(tuned["policy"]) <= {f"{s}/vp" for s in ("hb-dpm++-2", "hb-dpm++-3", "ghvb-4",
                                                                        "hb-4", "nt-4")}  # fmt: skip
    assert tuned["literal"].startswith("{")
    assert study.main(["--stage", "heldout", "--quick", "--out", str(tmp_path)]) == 0
    verdict = json.loads((tmp_path / "auto_beta_heldout_quick.json").read_text())
    assert {r["sampler"] for r in verdict["rows"]} == {"hb-dpm++-2", "hb-dpm++-3", "ghvb-4", "hb-4", "nt-4"}
    assert (tmp_path / "auto_beta_heldout_quick.md").read_text().startswith("| sampler | schedule |")


@pytest.mark.slow
def test_quick_digits_check_runs(tmp_path) -> None:
    assert study.main(["--stage", "digits", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "auto_beta_digits_quick.json").read_text())["rows"]
    assert [r["auto"] for r in rows] == ["hb-dpm++", "ghvb", "hb", "nt"]
    hb_dpm, *plms = rows  # guidance 15 with 8 steps: PLMS-4 diverges and is damped; DPM-Solver++ is left as it is
    assert hb_dpm["beta"] == 1.0 and (hb_dpm["recognised"], hb_dpm["clipped"]) == (hb_dpm["stock_recognised"],
                                                                                hb_dpm["stock_clipped"])  # fmt: skip
    assert all(r["beta"] < 1.0 for r in plms)
    assert all(0.0 <= r["recognised"] <= 1.0 and 0.0 <= r["clipped"] <= 1.0 for r in rows)


def test_bad_arguments_exit_2() -> None:
    for argv in (["--threads", "0"], ["--jobs", "0"], ["--heldout-seeds", "a,b"], ["--stage", "nope"]):
        with pytest.raises(SystemExit) as info:
            study.main(argv)
        assert info.value.code == 2
