"""Invalid configs, schedules and call sequences fail early with a ``ValueError`` that names the culprit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler, recommended_beta

PLMS = MomentumPLMSScheduler
DPM = MomentumDPMSolverMultistepScheduler
SHAPE = (2, 4, 8, 8)

# (parameter, bad value, extra kwargs); each must raise ValueError naming the parameter, for both classes.
BAD_SHARED: list[tuple[str, Any, dict[str, Any]]] = [
    ("momentum_beta", 0, {}),
    ("momentum_beta", -0.1, {}),
    ("momentum_beta", 1.5, {}),
    ("momentum_beta", math.nan, {}),
    ("momentum_beta", "fast", {}),
    ("momentum_beta", True, {}),
    ("momentum_beta", None, {}),
    ("momentum_guidance_scale", -1, {}),
    ("momentum_guidance_scale", math.inf, {}),
    ("momentum_guidance_scale", math.nan, {}),
    ("momentum_guidance_scale", "high", {}),
    ("prediction_type", "eps", {}),
    ("prediction_type", None, {}),
    ("timestep_spacing", "uniform", {}),
    ("final_sigmas_type", "one", {}),
    ("beta_schedule", "cosine", {}),
    ("beta_schedule", "", {}),
    ("time_shift_type", "quadratic", {}),
    ("flow_shift", 0, {}),
    ("flow_shift", -1, {}),
    ("flow_shift", math.nan, {}),
    ("steps_offset", -1, {}),
    ("steps_offset", 0.5, {}),
    ("num_train_timesteps", 1, {}),
    ("num_train_timesteps", 0, {}),
    ("num_train_timesteps", 100.0, {}),
    ("beta_start", 0.0, {}),
    ("beta_end", 1.5, {}),
    ("trained_betas", [0.1, 0.2, 0.3], {"num_train_timesteps": 2}),
    ("trained_betas", np.array([0.1]), {"num_train_timesteps": 2}),
]
BAD_PLMS_ONLY: list[tuple[str, Any, dict[str, Any]]] = [
    ("momentum_method", "adam", {}),
    ("momentum_method", "HB", {}),
    ("momentum_method", None, {}),
    ("solver_order", 0, {}),
    ("solver_order", 6, {}),
    ("solver_order", 2.5, {}),
    ("solver_order", True, {}),
    ("solver_order", "4", {}),
]
BAD_DPM_ONLY: list[tuple[str, Any, dict[str, Any]]] = [
    ("solver_order", 0, {}),
    ("solver_order", 4, {}),
    ("solver_order", 6, {}),
    ("solver_order", 2.5, {}),
    ("solver_order", True, {}),
    ("solver_order", 4, {"momentum_beta": 1.0}),
    # Momentum needs the multistep DPM-Solver++ data-prediction combination.
    ("algorithm_type", "sde-dpmsolver++", {}),
    ("algorithm_type", "sde-dpmsolver++", {"momentum_beta": "auto"}),
    ("algorithm_type", "dpmsolver", {"final_sigmas_type": "sigma_min"}),
    ("solver_order", 1, {}),
    ("solver_order", 1, {"momentum_beta": "auto"}),
]
BAD_CONFIGS = (
    [(cls, *case) for cls in (PLMS, DPM) for case in BAD_SHARED]
    + [(PLMS, *case) for case in BAD_PLMS_ONLY]
    + [(DPM, *case) for case in BAD_DPM_ONLY]
)


def _id(cls: type, name: str, value: Any, extra: dict[str, Any]) -> str:
    tag = "plms" if cls is PLMS else "dpm"
    return f"{tag}-{name}={value!r}" + (f"-{sorted(extra)}" if extra else "")


@pytest.mark.parametrize(("cls", "name", "value", "extra"), BAD_CONFIGS, ids=[_id(*c) for c in BAD_CONFIGS])
def test_bad_config_value_names_the_parameter(cls, name, value, extra):
    with pytest.raises(ValueError, match=name):
        cls(**{**extra, name: value})


# One bad value per (class, parameter) again through from_config.
FROM_CONFIG_CASES = list({(c[0], c[1]): c for c in reversed(BAD_CONFIGS)}.values())


@pytest.mark.parametrize(
    ("cls", "name", "value", "extra"), FROM_CONFIG_CASES, ids=[_id(*c) for c in FROM_CONFIG_CASES]
)
def test_bad_config_value_through_from_config(cls, name, value, extra):
    # Pipelines build schedulers with from_config: the same checks apply there.
    with pytest.raises(ValueError, match=name):
        cls.from_config(cls().config, **{**extra, name: value})


@pytest.mark.parametrize("name", ["algorithm_type", "solver_type"])
def test_dpm_unknown_solver_names_the_parameter(name):
    with pytest.raises(ValueError, match=name):
        DPM(**{name: "euler", "momentum_beta": 1.0})


@pytest.mark.parametrize(
    "overrides",
    [
        {"use_karras_sigmas": True, "use_exponential_sigmas": True},
        {"use_karras_sigmas": True, "use_beta_sigmas": True},
        {"use_exponential_sigmas": True, "use_beta_sigmas": True},
    ],
    ids=["karras+exponential", "karras+beta", "exponential+beta"],
)
def test_two_sigma_options_at_once(scheduler_class, overrides):
    first = next(iter(overrides))
    with pytest.raises(ValueError, match=first):
        scheduler_class(**overrides)


@pytest.mark.parametrize("other", ["use_karras_sigmas", "use_lu_lambdas", "use_exponential_sigmas"])
def test_flow_sigmas_with_vp_sigma_option(scheduler_class, other):
    with pytest.raises(ValueError, match="use_flow_sigmas"):
        scheduler_class(prediction_type="flow_prediction", use_flow_sigmas=True, **{other: True})


def test_flow_prediction_needs_flow_sigmas(scheduler_class):
    with pytest.raises(ValueError, match="use_flow_sigmas"):
        scheduler_class(prediction_type="flow_prediction")
    with pytest.raises(ValueError, match="prediction_type"):
        scheduler_class(prediction_type="flow_prediction", use_flow_sigmas=False)


@pytest.mark.parametrize("number", [0, -1, 5.5, math.nan, math.inf, True, "3.8"])
def test_from_momentum_number_bad_number(number):
    with pytest.raises(ValueError, match="momentum_number"):
        PLMS.from_momentum_number(PLMS().config, number)


@pytest.mark.parametrize("method", ["adam", "GHVB", "hb-dpm", None])
def test_from_momentum_number_bad_method(method):
    with pytest.raises(ValueError, match="method"):
        PLMS.from_momentum_number(PLMS().config, 3.8, method=method)


# ---------------------------------------------------------------------------------------------------------------------
# set_timesteps
@pytest.mark.parametrize("steps", [0, -1, 1001, 2.5, True, "10"])
def test_set_timesteps_bad_step_count(scheduler_class, steps):
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler_class().set_timesteps(steps)


def test_set_timesteps_step_count_above_train_timesteps(scheduler_class):
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler_class(num_train_timesteps=50).set_timesteps(51)


def test_set_timesteps_needs_something(scheduler_class):
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler_class().set_timesteps()


def test_set_timesteps_timesteps_and_sigmas(scheduler_class):
    with pytest.raises(ValueError, match=r"`timesteps` or `sigmas`"):
        scheduler_class().set_timesteps(timesteps=[900, 500, 100], sigmas=[10.0, 2.0, 0.5])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"timesteps": [900, 100]}, "timesteps"), ({"sigmas": [10.0, 1.0]}, "sigmas")],
    ids=["timesteps", "sigmas"],
)
def test_set_timesteps_length_mismatch(scheduler_class, kwargs, name):
    with pytest.raises(ValueError, match=name):
        scheduler_class().set_timesteps(3, **kwargs)


@pytest.mark.parametrize(
    "sigmas",
    [[1.0, 2.0], [2.0, 2.0], [3.0, 1.0, 1.5], [2.0, -0.5], [1.0, 0.0], [math.nan, 0.5], [math.inf, 1.0], []],
    ids=["increasing", "equal", "not-monotone", "negative", "zero", "nan", "inf", "empty"],
)
def test_set_timesteps_bad_vp_sigmas(scheduler_class, sigmas):
    with pytest.raises(ValueError, match="sigmas"):
        scheduler_class().set_timesteps(sigmas=sigmas)


@pytest.mark.parametrize(
    "timesteps",
    [[100, 900], [500, 500], [1000, 10], [900, -1]],
    ids=["increasing", "equal", "above-range", "negative"],
)
def test_set_timesteps_bad_vp_timesteps(scheduler_class, timesteps):
    with pytest.raises(ValueError, match="timesteps"):
        scheduler_class().set_timesteps(timesteps=timesteps)


@pytest.mark.parametrize(
    "sigmas",
    [[1.5, 0.5], [1.0, 1.2], [0.5, 0.9], [0.8, -0.1], [0.8, 0.0], [math.nan, 0.5]],
    ids=["above-1", "above-1-later", "increasing", "negative", "zero", "nan"],
)
def test_set_timesteps_bad_flow_sigmas(scheduler_class, sigmas):
    sched = scheduler_class.from_config(FlowMatchEulerDiscreteScheduler(shift=3.0).config)
    with pytest.raises(ValueError, match="sigmas"):
        sched.set_timesteps(sigmas=sigmas)


@pytest.mark.parametrize("mu", [math.nan, math.inf, "large"])
def test_set_timesteps_bad_mu(scheduler_class, mu):
    sched = scheduler_class.from_config(FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True).config)
    with pytest.raises(ValueError, match="mu"):
        sched.set_timesteps(sigmas=np.linspace(1.0, 0.1, 10), mu=mu)


def test_failed_set_timesteps_leaves_a_usable_scheduler(scheduler_class):
    sched = scheduler_class()
    sched.set_timesteps(5)
    with pytest.raises(ValueError):
        sched.set_timesteps(sigmas=[1.0, 2.0])
    sched.set_timesteps(5)
    x = torch.ones(SHAPE)
    for t in sched.timesteps:
        x = sched.step(x * 0.5, t, x).prev_sample
    assert torch.isfinite(x).all()


# ---------------------------------------------------------------------------------------------------------------------
# misuse of step
def test_step_before_set_timesteps(scheduler_class):
    sched = scheduler_class()
    x = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="set_timesteps"):
        sched.step(x, 999, x)


@pytest.mark.parametrize("begin_index", [None, 0])
def test_more_steps_than_the_schedule(scheduler_class, begin_index):
    sched = scheduler_class()
    sched.set_timesteps(4)
    if begin_index is not None:
        sched.set_begin_index(begin_index)
    x = torch.ones(SHAPE)
    for t in sched.timesteps:
        x = sched.step(x * 0.5, t, x).prev_sample
    with pytest.raises(ValueError, match="set_timesteps"):
        sched.step(x * 0.5, sched.timesteps[-1], x)


@pytest.mark.parametrize("new_batch", [1, 3])
@pytest.mark.parametrize("at_step", [1, 2, 3])
@pytest.mark.parametrize(
    "config", [{}, {"solver_order": 3}, {"momentum_beta": 1.0}], ids=["default", "order3", "beta1"]
)
def test_batch_shape_change_mid_run(scheduler_class, config, at_step, new_batch):
    if scheduler_class is PLMS and config.get("solver_order") == 3:
        config = {**config, "momentum_method": "hb"}
    sched = scheduler_class(**config)
    sched.set_timesteps(6)
    x = torch.ones(SHAPE)
    for t in sched.timesteps[:at_step]:
        x = sched.step(x * 0.5, t, x).prev_sample
    t = sched.timesteps[at_step]
    y = torch.ones((new_batch, *SHAPE[1:]))
    with pytest.raises(ValueError, match="model_output"):
        sched.step(y * 0.5, t, y)


@pytest.mark.parametrize(
    "output_shape", [(1, 4, 8, 8), (2, 4, 8, 9), (2, 3, 8, 8), (2, 4, 64)], ids=["batch", "width", "channels", "rank"]
)
def test_model_output_and_sample_shape_mismatch(scheduler_class, output_shape):
    sched = scheduler_class()
    sched.set_timesteps(5)
    x = torch.ones(SHAPE)
    with pytest.raises(ValueError, match="model_output"):
        sched.step(torch.ones(output_shape), sched.timesteps[0], x)


def test_scale_noise_needs_noise(scheduler_class):
    sched = scheduler_class.from_config(FlowMatchEulerDiscreteScheduler(shift=3.0).config)
    sched.set_timesteps(5)
    with pytest.raises(ValueError, match="noise"):
        sched.scale_noise(torch.ones(SHAPE), sched.timesteps[0], None)


# ---------------------------------------------------------------------------------------------------------------------
# recommended_beta
@pytest.mark.parametrize("method", ["adam", "HB", "dpm", None])
def test_recommended_beta_bad_method(method):
    with pytest.raises(ValueError, match="method"):
        recommended_beta(7.5, 20, method)


@pytest.mark.parametrize("scale", [-1.0, -1e-9, math.nan, math.inf, "7.5", True])
def test_recommended_beta_bad_guidance_scale(scale):
    with pytest.raises(ValueError, match="guidance_scale"):
        recommended_beta(scale, 20, "ghvb")


@pytest.mark.parametrize("steps", [0, -5, 2.5, True])
def test_recommended_beta_bad_step_count(steps):
    with pytest.raises(ValueError, match="num_inference_steps"):
        recommended_beta(7.5, steps, "hb-dpm")
