"""Conformance, part 2: flow mode (SD3/Flux configs), img2img bookkeeping, full loops (``momentum_beta=1.0`` is the
stock DPM-Solver++ bit for bit) and no host syncs in ``step``. Part 1 (diffusers' common scheduler checks) is in
``test_conformance.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
)

from tests.adapters.diffusers.schedulers.conformance_cases import (
    CASE_IDS,
    CASES,
    DEFAULT_CASES,
    DPM,
    FLOW,
    FLUX_LIKE,
    SCHEDULE_OVERRIDES,
    make,
    run_loop,
)

pytestmark = [
    # numpy-2 interop chatter of torch tensors inside diffusers' schedule code (thousands per test otherwise).
    pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"),
    # diffusers' own deprecation of algorithm_type "dpmsolver"/"sde-dpmsolver", exercised on purpose below.
    pytest.mark.filterwarnings("ignore:`algorithm_types dpmsolver:FutureWarning"),
]


# 6. flow mode (SD3 / Flux configs).
@pytest.mark.parametrize("flux", [False, True], ids=["sd3", "flux"])
def test_flow_config_switches_to_flow_mode(scheduler_class, flux):
    config = FlowMatchEulerDiscreteScheduler(**(FLUX_LIKE if flux else {"shift": 3.0})).config
    sched = scheduler_class.from_config(config)
    assert sched.config.prediction_type == "flow_prediction"
    assert sched.config.use_flow_sigmas is True
    assert sched.config.flow_shift == 3.0
    assert sched.config.use_dynamic_shifting is flux
    if flux:
        for key in ("base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len"):
            assert sched.config[key] == FLUX_LIKE[key]
    # Also from a plain dict without `_class_name` (an in-memory FlowMatch config).
    plain = {k: v for k, v in config.items() if not k.startswith("_")}
    assert scheduler_class.from_config(plain).config.prediction_type == "flow_prediction"


def test_flow_config_explicit_kwargs_win(scheduler_class):
    config = FlowMatchEulerDiscreteScheduler(shift=3.0).config
    sched = scheduler_class.from_config(config, flow_shift=5.0, prediction_type="epsilon", momentum_beta=0.9)
    assert sched.config.flow_shift == 5.0
    assert sched.config.prediction_type == "epsilon"
    assert sched.config.use_flow_sigmas is True
    assert sched.config.momentum_beta == 0.9


def test_vp_config_stays_vp(scheduler_class):
    sched = scheduler_class.from_config(EulerDiscreteScheduler().config)
    assert sched.config.prediction_type == "epsilon"
    assert sched.config.use_flow_sigmas is False


def test_flow_mu_ignored_without_dynamic_shifting(scheduler_class, sample, dummy_model):
    config = FlowMatchEulerDiscreteScheduler(shift=3.0).config
    a, b = scheduler_class.from_config(config), scheduler_class.from_config(config)
    a.set_timesteps(10)
    b.set_timesteps(10, mu=0.8)
    assert torch.equal(a.sigmas, b.sigmas)
    assert torch.equal(a.timesteps, b.timesteps)
    assert b.config.flow_shift == 3.0
    n = 10
    a.set_timesteps(sigmas=np.linspace(1, 1 / n, n))
    b.set_timesteps(sigmas=np.linspace(1, 1 / n, n), mu=0.8)
    assert torch.equal(a.sigmas, b.sigmas)
    assert torch.equal(run_loop(a, sample, dummy_model), run_loop(b, sample, dummy_model))


@pytest.mark.parametrize("time_shift_type", ["exponential", "linear"])
def test_flow_shift_config_not_changed_by_mu(scheduler_class, time_shift_type, sample, dummy_model):
    config = FlowMatchEulerDiscreteScheduler(**FLUX_LIKE, time_shift_type=time_shift_type).config
    sched = scheduler_class.from_config(config)
    assert sched.config.time_shift_type == time_shift_type
    sched.set_timesteps(10, mu=1.1)
    shifted = sched.sigmas.clone()
    assert sched.config.flow_shift == 3.0
    sched.set_timesteps(10, mu=0.2)
    assert sched.config.flow_shift == 3.0
    assert not torch.equal(sched.sigmas, shifted)  # mu acts on the schedule, not on the config
    sched.set_timesteps(10, mu=1.1)
    assert torch.equal(sched.sigmas, shifted)
    assert torch.isfinite(run_loop(sched, sample, dummy_model)).all()
    # Saving after set_timesteps(mu=...) stores the original flow_shift.
    assert scheduler_class.from_config(sched.config).config.flow_shift == 3.0


@pytest.mark.parametrize("flux", [False, True], ids=["sd3", "flux"])
@pytest.mark.parametrize("begin", [0, 3, 7])
def test_scale_noise_matches_flowmatch_euler(scheduler_class, flux, begin, sample, noise):
    fm_kwargs = FLUX_LIKE if flux else {"shift": 3.0}
    mu = 0.9 if flux else None
    n = 10
    sigmas = np.linspace(1.0, 1.0 / n, n)
    stock = FlowMatchEulerDiscreteScheduler(**fm_kwargs)
    stock.set_timesteps(sigmas=sigmas, mu=mu)
    sched = scheduler_class.from_config(FlowMatchEulerDiscreteScheduler(**fm_kwargs).config)
    sched.set_timesteps(sigmas=sigmas, mu=mu)
    assert torch.allclose(sched.sigmas, stock.sigmas, atol=1e-6)
    stock.set_begin_index(begin)
    sched.set_begin_index(begin)
    t = sched.timesteps[begin]
    expected = stock.scale_noise(sample, stock.timesteps[begin][None], noise)
    got = sched.scale_noise(sample, t, noise)
    assert got.shape == sample.shape
    assert torch.allclose(got, expected, atol=1e-6)
    # A python float timestep works too.
    assert torch.allclose(sched.scale_noise(sample, float(t), noise), expected, atol=1e-6)


# 7. img2img bookkeeping.
@pytest.mark.parametrize("override", ["epsilon", "v", "karras", "flow"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_img2img_begin_index(case, override, sample, noise, dummy_model):
    n, k = 10, 4
    sched = make(case, **SCHEDULE_OVERRIDES[override])
    sched.set_timesteps(n)
    sched.set_begin_index(k)
    assert sched.begin_index == k
    t_start = sched.timesteps[k : k + 1]
    noisy = sched.add_noise(sample, noise, t_start)
    sigma = float(sched.sigmas[k])
    if sched.config.use_flow_sigmas:
        alpha_t, sigma_t = 1.0 - sigma, sigma
    else:
        alpha_t = 1.0 / math.sqrt(sigma**2 + 1.0)
        sigma_t = sigma * alpha_t
    assert torch.allclose(noisy, alpha_t * sample + sigma_t * noise, atol=1e-5)
    steps = 0
    x = noisy
    for t in sched.timesteps[k:]:
        x = sched.step(dummy_model(x, t), t, x).prev_sample
        steps += 1
        assert sched.step_index == k + steps
    assert steps == n - k
    assert torch.isfinite(x).all()
    # Without set_begin_index the first timestep locates the start index: same walk, same result.
    other = make(case, **SCHEDULE_OVERRIDES[override])
    other.set_timesteps(n)
    y = other.scale_noise(sample, t_start, noise) if override == "flow" else other.add_noise(sample, noise, t_start)
    assert torch.allclose(y, noisy, atol=1e-6)
    y = run_loop(other, noisy, dummy_model, start=k)
    assert torch.equal(x, y)


# 8. full loops with the toy model; momentum_beta=1.0 is the stock DPM-Solver++ bit for bit.
@pytest.mark.parametrize("override", list(SCHEDULE_OVERRIDES), ids=list(SCHEDULE_OVERRIDES))
@pytest.mark.parametrize("case", DEFAULT_CASES)
def test_full_loop_finite(case, override, sample, dummy_model):
    sched = make(case, **SCHEDULE_OVERRIDES[override])
    sched.set_timesteps(12)
    x = run_loop(sched, sample * sched.init_noise_sigma, dummy_model)
    assert torch.isfinite(x).all()
    assert x.abs().max() < 1e3


STOCK_GRID = [
    {"prediction_type": p, "solver_type": s, "solver_order": o}
    for p in ("epsilon", "sample", "v_prediction")
    for s in ("midpoint", "heun")
    for o in (2, 3)
] + [
    {**FLOW, "solver_type": "midpoint", "solver_order": 2},
    {**FLOW, "solver_type": "heun", "solver_order": 3},
    {"use_karras_sigmas": True, "solver_order": 2},
    {"use_karras_sigmas": True, "solver_order": 3, "solver_type": "heun"},
    {"use_lu_lambdas": True, "solver_order": 2},
    {"use_lu_lambdas": True, "solver_order": 3},
    {"use_exponential_sigmas": True},
    {"final_sigmas_type": "sigma_min", "lower_order_final": False},
    {"euler_at_final": True, "timestep_spacing": "trailing"},
    {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "prediction_type": "v_prediction"},
    {"thresholding": True, "prediction_type": "sample", "sample_max_value": 0.8},
    {"algorithm_type": "dpmsolver", "solver_order": 2, "final_sigmas_type": "sigma_min"},
    {"algorithm_type": "dpmsolver", "solver_order": 3, "final_sigmas_type": "sigma_min"},
    {"solver_order": 1},
]


def _grid_id(cfg: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in cfg.items() if k not in ("use_flow_sigmas", "flow_shift"))


@pytest.mark.parametrize("config", STOCK_GRID, ids=[_grid_id(c) for c in STOCK_GRID])
def test_dpm_beta_one_is_stock_bit_for_bit(config, sample, dummy_model):
    ours = DPM(**config, momentum_beta=1.0)
    stock = DPMSolverMultistepScheduler(**config)
    for n in (7, 15):
        ours.set_timesteps(n)
        stock.set_timesteps(n)
        assert torch.equal(ours.timesteps, stock.timesteps)
        assert torch.equal(ours.sigmas, stock.sigmas)
        assert torch.equal(run_loop(ours, sample, dummy_model), run_loop(stock, sample, dummy_model))


@pytest.mark.parametrize("algorithm_type", ["sde-dpmsolver++", "sde-dpmsolver"])
def test_dpm_beta_one_is_stock_sde(algorithm_type, sample, dummy_model):
    config = {"algorithm_type": algorithm_type, "final_sigmas_type": "sigma_min"}
    ours = DPM(**config, momentum_beta=1.0)
    stock = DPMSolverMultistepScheduler(**config)
    ours.set_timesteps(8)
    stock.set_timesteps(8)
    a = run_loop(ours, sample, dummy_model, generator=torch.Generator().manual_seed(3))
    b = run_loop(stock, sample, dummy_model, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "config", [{}, {"solver_order": 3}, FLOW, {"use_karras_sigmas": True}], ids=["2", "3", "flow", "karras"]
)
def test_dpm_beta_one_is_stock_img2img(config, sample, noise, dummy_model):
    ours = DPM(**config, momentum_beta=1.0)
    stock = DPMSolverMultistepScheduler(**config)
    n, k = 12, 5
    results = []
    for sched in (ours, stock):
        sched.set_timesteps(n)
        sched.set_begin_index(k)
        x = sched.add_noise(sample, noise, sched.timesteps[k : k + 1])
        results.append(run_loop(sched, x, dummy_model, start=k))
    assert torch.equal(results[0], results[1])


def test_dpm_beta_one_custom_timesteps_stock(sample, dummy_model):
    ours, stock = DPM(momentum_beta=1.0), DPMSolverMultistepScheduler()
    timesteps = [901, 700, 480, 300, 121, 20]
    ours.set_timesteps(timesteps=timesteps)
    stock.set_timesteps(timesteps=timesteps)
    assert torch.equal(ours.sigmas, stock.sigmas)
    assert torch.equal(run_loop(ours, sample, dummy_model), run_loop(stock, sample, dummy_model))


@pytest.mark.parametrize("case", ["dpm-default", "dpm-3", "dpm-heun", "dpm-3-heun"])
def test_dpm_momentum_changes_the_result(case, sample, dummy_model):
    # Sanity of the grid above: with β < 1 the sampler really differs from the stock solver.
    kwargs = CASES[case][1]
    ours = make(case)
    stock = DPMSolverMultistepScheduler(**{k: v for k, v in kwargs.items() if not k.startswith("momentum")})
    ours.set_timesteps(10)
    stock.set_timesteps(10)
    a, b = run_loop(ours, sample, dummy_model), run_loop(stock, sample, dummy_model)
    assert not torch.equal(a, b)
    assert torch.isfinite(a).all()


# 9. No host syncs in step: with `begin_index` set, a whole loop runs with Tensor.item/.cpu/.tolist forbidden. This
# holds for both classes (the parent DPM-Solver's step only indexes its CPU sigmas with python ints).
@pytest.mark.parametrize("override", ["epsilon", "v", "karras", "flow"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_step_has_no_host_syncs(case, override, sample, dummy_model, monkeypatch):
    sched = make(case, **SCHEDULE_OVERRIDES[override])
    sched.set_timesteps(8)
    sched.set_begin_index(0)
    inputs = [(t, float(t) / (float(t) + 1.0)) for t in sched.timesteps]
    unindexed = make(case, **SCHEDULE_OVERRIDES[override])
    unindexed.set_timesteps(8)

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync in step")

    monkeypatch.setattr(torch.Tensor, "item", forbidden)
    monkeypatch.setattr(torch.Tensor, "cpu", forbidden)
    monkeypatch.setattr(torch.Tensor, "tolist", forbidden)
    x = sample
    for t, factor in inputs:
        x = sched.step(x * factor, t, x).prev_sample
    # The patch does bite: without begin_index, the first step looks its timestep up with `.item()`.
    with pytest.raises(AssertionError, match="host sync"):
        unindexed.step(sample, inputs[0][0], sample)
    monkeypatch.undo()
    unindexed.set_timesteps(8)  # fresh start after the aborted step
    assert torch.isfinite(x).all()
    assert sched.step_index == 8
    # And the result is the ordinary one (same inputs, no begin_index, nothing patched).
    y = sample
    for t, factor in inputs:
        y = unindexed.step(y * factor, t, y).prev_sample
    assert torch.equal(x, y)
