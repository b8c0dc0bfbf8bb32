"""Conformance, part 3: the checks diffusers runs on its own DPM-Solver (past residuals over configs, solver orders and
types, step shapes, off-schedule timesteps, uneven and noised loops, half precision with thresholding), each run on
the stock `DPMSolverMultistepScheduler` and on ours side by side. ``momentum_beta=1.0`` must match the stock class bit
for bit; with momentum, the same checks must hold (finite, reproducible, shapes and dtypes kept).

Part 4 (``test_conformance_stock_configs.py``) has scheduler switching, duplicated timesteps, lower-order finals,
variance types, custom timesteps and the public API.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from tests.adapters.diffusers.schedulers.conformance_cases import (
    CASE_IDS,
    DIFFUSERS_DPM_CONFIG,
    DPM,
    PLMS,
    make,
    momentum_allowed,
    pixel_sample,
    run_loop,
    seeded_loop,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`algorithm_types dpmsolver:FutureWarning"),
]

STOCK = DPMSolverMultistepScheduler


def _config(**overrides: Any) -> dict[str, Any]:
    return {**DIFFUSERS_DPM_CONFIG, **overrides}


def _variants(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, scheduler) for the stock class, ours at β = 1 and, where allowed, ours with momentum."""
    out = [("stock", STOCK(**config)), ("beta1", DPM(**config, momentum_beta=1.0))]
    if momentum_allowed(config):
        out.append(("momentum", DPM(**config, momentum_beta=0.7)))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# check_over_configs with fake past residuals: the multistep history is pre-filled, the scheduler is saved and
# reloaded, and the first solver_order + 1 steps must agree; ours at β = 1 must equal the stock class.
PAST_RESIDUAL_CONFIGS: dict[str, dict[str, Any]] = {
    **{f"T{n}": {"num_train_timesteps": n} for n in (25, 50, 100, 999, 1000)},
    **{
        f"thres-o{o}-{s}-{p}-{v}": {
            "thresholding": True,
            "solver_order": o,
            "solver_type": s,
            "prediction_type": p,
            "sample_max_value": v,
        }
        for o in (1, 2, 3)
        for s in ("midpoint", "heun")
        for p in ("epsilon", "sample")
        for v in (0.5, 1.0, 2.0)
    },
    "v": {"prediction_type": "v_prediction"},
    "lower-order-final": {"lower_order_final": True},
    "euler-at-final": {"euler_at_final": True},
    "lambda-clipped": {"lambda_min_clipped": -5.1},
    "learned-range": {"variance_type": "learned_range"},
    "zero-snr": {"rescale_betas_zero_snr": True},
    "beta-sigmas": {"use_beta_sigmas": True},
    "exponential-sigmas": {"use_exponential_sigmas": True},
    "karras-3": {"use_karras_sigmas": True, "solver_order": 3},
}


@pytest.mark.parametrize("config", list(PAST_RESIDUAL_CONFIGS))
def test_past_residuals_over_configs(config, tmp_path):
    cfg = _config(**PAST_RESIDUAL_CONFIGS[config])
    sample = pixel_sample()
    residual = 0.1 * sample
    past = [residual + 0.2, residual + 0.15, residual + 0.10]
    results = {}
    for name, sched in _variants(cfg):
        sched.save_config(tmp_path / name)
        reloaded = type(sched).from_pretrained(tmp_path / name)
        outs = []
        for s in (sched, reloaded):
            s.set_timesteps(25)
            s.model_outputs = past[: s.config.solver_order]
            x, run = sample, []
            for i in range(s.config.solver_order + 1):
                x = s.step(residual, s.timesteps[i], x).prev_sample
                run.append(x)
            outs.append(run)
        for a, b in zip(*outs):
            assert torch.isfinite(a).all(), name
            assert torch.equal(a, b), name
        results[name] = outs[0]
    assert all(torch.equal(a, b) for a, b in zip(results["stock"], results["beta1"]))


# test_solver_order_and_type: every algorithm, solver type, order and prediction type runs a full loop.
SOLVER_GRID = [
    {"algorithm_type": a, "solver_type": s, "solver_order": o, "prediction_type": p}
    for a in ("dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++")
    for s in ("midpoint", "heun")
    for o in (1, 2, 3)
    for p in ("epsilon", "sample")
]


@pytest.mark.parametrize("solver", SOLVER_GRID, ids=["-".join(str(v) for v in c.values()) for c in SOLVER_GRID])
def test_solver_order_and_type_full_loop(solver, dummy_model):
    cfg = _config(**solver)
    if cfg["algorithm_type"] == "sde-dpmsolver" and cfg["solver_order"] == 3:
        pytest.skip("no 3rd-order SDE-DPM-Solver in diffusers (test_sde_dpmsolver_has_no_third_order)")
    sample = pixel_sample()
    results = {}
    for name, sched in _variants(cfg):
        sched.set_timesteps(10)
        results[name] = seeded_loop(sched, sample, dummy_model)
        assert not torch.isnan(results[name]).any(), name
    assert torch.equal(results["beta1"], results["stock"])
    if "momentum" in results:
        assert not torch.equal(results["momentum"], results["stock"])


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
def test_sde_dpmsolver_has_no_third_order(solver_type, dummy_model):
    cfg = _config(algorithm_type="sde-dpmsolver", solver_order=3, solver_type=solver_type, lower_order_final=True)
    sample = pixel_sample()
    stock, ours = STOCK(**cfg), DPM(**cfg, momentum_beta=1.0)
    # Up to 4 steps never reach a 3rd-order step (lower_order_final): both classes agree.
    for sched in (stock, ours):
        sched.set_timesteps(4)
    assert torch.equal(seeded_loop(ours, sample, dummy_model), seeded_loop(stock, sample, dummy_model))
    # From 5 steps on, the stock class fails inside its 3rd-order update; ours names the parameter.
    stock.set_timesteps(5)
    with pytest.raises(UnboundLocalError):
        seeded_loop(stock, sample, dummy_model)
    ours.set_timesteps(5)
    with pytest.raises(ValueError, match="solver_order"):
        seeded_loop(ours, sample, dummy_model)


# test_step_shape: several sample shapes (image, video, token sequences, flat), in order and from mid-schedule.
SHAPES = [(1, 3, 8, 8), (4, 4, 16, 16), (2, 16), (3,), (1, 4, 2, 8, 8), (2, 64, 16)]


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("case", CASE_IDS)
def test_step_shape_for_sample_shapes(case, shape, dummy_model):
    x = pixel_sample(shape)
    sched = make(case)
    sched.set_timesteps(6)
    out = run_loop(sched, x, dummy_model)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    if case == "dpm-beta1":
        stock = STOCK()
        stock.set_timesteps(6)
        assert torch.equal(out, run_loop(stock, x, dummy_model))
    # diffusers' DPM variant: history pre-filled, two steps starting at timesteps[5] and timesteps[6].
    sched = make(case)
    sched.set_timesteps(25)
    residual = 0.1 * x
    if isinstance(sched, DPM):
        sched.model_outputs = [residual + 0.2, residual + 0.15, residual + 0.1][: sched.config.solver_order]
    out0 = sched.step(residual, sched.timesteps[5], x).prev_sample
    out1 = sched.step(residual, sched.timesteps[6], x).prev_sample
    assert out0.shape == out1.shape == x.shape


# test_scheduler_outputs_equivalence: a first step at a timestep that is not in the schedule (0) starts at the last
# index, as diffusers' index lookup does; the dict and tuple outputs agree.
@pytest.mark.parametrize("case", CASE_IDS)
def test_off_schedule_timestep_dict_and_tuple(case):
    sample = pixel_sample()
    residual = 0.1 * sample
    sched = make(case)
    sched.set_timesteps(50)
    assert 0 not in sched.timesteps.tolist()
    as_dict = sched.step(residual, 0, sample)
    assert sched.step_index == 50
    sched.set_timesteps(50)
    as_tuple = sched.step(residual, 0, sample, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    assert torch.equal(as_tuple[0], as_dict.prev_sample)
    assert torch.isfinite(as_tuple[0]).all()
    if case == "dpm-beta1":
        stock = STOCK()
        stock.set_timesteps(50)
        assert torch.equal(stock.step(residual, 0, sample).prev_sample, as_dict.prev_sample)


# test_full_uneven_loop and test_full_loop_with_noise: start mid-schedule without set_begin_index.
@pytest.mark.parametrize("case", CASE_IDS)
def test_full_uneven_loop(case, dummy_model):
    sample = pixel_sample()
    sched = make(case)
    sched.set_timesteps(50)
    out = run_loop(sched, sample, dummy_model, start=3)
    assert sched.step_index == 50
    assert torch.isfinite(out).all()
    if case == "dpm-beta1":
        stock = STOCK()
        stock.set_timesteps(50)
        assert torch.equal(out, run_loop(stock, sample, dummy_model, start=3))


@pytest.mark.parametrize("override", [{}, {"final_sigmas_type": "sigma_min"}, {"use_karras_sigmas": True}])
@pytest.mark.parametrize("case", CASE_IDS)
def test_full_loop_with_noise(case, override, noise, dummy_model):
    sample = pixel_sample(noise.shape)
    sched, stock = make(case, **override), STOCK(**override)
    results = []
    for s in (sched, stock):
        s.set_timesteps(10)
        timesteps = s.timesteps[5 * s.order :]
        noisy = s.add_noise(sample, noise, timesteps[:1])
        results.append((noisy, run_loop(s, noisy, dummy_model, start=5 * s.order)))
    (noisy, out), (stock_noisy, stock_out) = results
    assert torch.equal(noisy, stock_noisy)  # both use the stock add_noise on the same sigmas
    assert torch.isfinite(out).all()
    assert sched.step_index == 10
    if case == "dpm-beta1":
        assert torch.equal(out, stock_out)


# test_fp16_support (with thresholding) and the thresholded full loop, in half precision and in float32.
THRESHOLDING = {
    "ratio-0": {"thresholding": True, "dynamic_thresholding_ratio": 0.0},
    "ratio-0.87-max-0.5": {"thresholding": True, "dynamic_thresholding_ratio": 0.87, "sample_max_value": 0.5},
    "sample-order3": {"thresholding": True, "prediction_type": "sample", "solver_order": 3},
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("config", list(THRESHOLDING))
def test_thresholding_in_half_precision(config, dtype, dummy_model):
    cfg = _config(**THRESHOLDING[config])
    sample = pixel_sample().to(dtype)
    results = {}
    for name, sched in _variants(cfg):
        sched.set_timesteps(10)
        x = sample
        for t in sched.timesteps:
            x = sched.step(dummy_model(x, t).to(dtype), t, x).prev_sample
            assert x.dtype == dtype, name
        assert torch.isfinite(x.float()).all(), name
        results[name] = x
    assert torch.equal(results["beta1"], results["stock"])


def test_half_precision_plms_matches_float32_closely(dummy_model):
    # PLMS computes in float32 and returns the caller's dtype: the fp16 run stays within fp16 rounding of fp32.
    sample = pixel_sample()
    runs = []
    for dtype in (torch.float32, torch.float16):
        sched = PLMS()
        sched.set_timesteps(10)
        x = sample.to(dtype)
        for t in sched.timesteps:
            x = sched.step(dummy_model(x, t).to(dtype), t, x).prev_sample
        assert x.dtype == dtype
        runs.append(x.float())
    assert torch.allclose(runs[0], runs[1], atol=2e-2)
