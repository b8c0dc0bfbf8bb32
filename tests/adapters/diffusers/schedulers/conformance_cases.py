"""Scheduler cases and loop helpers shared by the conformance tests (`test_conformance*.py`)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

PLMS = MomentumPLMSScheduler
DPM = MomentumDPMSolverMultistepScheduler
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (class, config overrides) per configuration family we support.
CASES: dict[str, tuple[type, dict[str, Any]]] = {
    "plms-default": (PLMS, {}),
    "plms-hb-1": (PLMS, {"momentum_method": "hb", "solver_order": 1}),
    "plms-hb-2": (PLMS, {"momentum_method": "hb", "solver_order": 2, "momentum_beta": 0.6}),
    "plms-ghvb-3": (PLMS, {"momentum_method": "ghvb", "solver_order": 3, "momentum_beta": 0.5}),
    "plms-nt-4": (PLMS, {"momentum_method": "nt", "solver_order": 4, "momentum_beta": 0.8}),
    "plms-ghvb-5": (PLMS, {"momentum_method": "ghvb", "solver_order": 5, "momentum_beta": 0.8}),
    "plms-beta1": (PLMS, {"momentum_beta": 1.0}),
    "plms-auto": (PLMS, {"momentum_beta": "auto", "momentum_guidance_scale": 15.0}),
    "dpm-default": (DPM, {}),
    "dpm-3": (DPM, {"solver_order": 3}),
    "dpm-heun": (DPM, {"solver_type": "heun"}),
    "dpm-3-heun": (DPM, {"solver_order": 3, "solver_type": "heun", "momentum_beta": 0.5}),
    "dpm-beta1": (DPM, {"momentum_beta": 1.0}),
    "dpm-auto": (DPM, {"momentum_beta": "auto", "momentum_guidance_scale": 12.0}),
}
CASE_IDS = list(CASES)
DEFAULT_CASES = ["plms-default", "dpm-default"]


FLOW = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}
FLUX_LIKE = {
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}

# Schedule configurations diffusers' per-scheduler tests sweep with `check_over_configs`.
SCHEDULE_OVERRIDES: dict[str, dict[str, Any]] = {
    "T25": {"num_train_timesteps": 25},
    "T100": {"num_train_timesteps": 100},
    "T1000": {"num_train_timesteps": 1000},
    "epsilon": {"prediction_type": "epsilon"},
    "sample": {"prediction_type": "sample"},
    "v": {"prediction_type": "v_prediction"},
    "linspace": {"timestep_spacing": "linspace"},
    "leading": {"timestep_spacing": "leading"},
    "trailing": {"timestep_spacing": "trailing"},
    "leading-offset1": {"timestep_spacing": "leading", "steps_offset": 1},
    "scaled-linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    "cosine": {"beta_schedule": "squaredcos_cap_v2"},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "beta-sigmas": {"use_beta_sigmas": True},
    "lu": {"use_lu_lambdas": True},
    "final-sigma-min": {"final_sigmas_type": "sigma_min"},
    "zero-snr": {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"},
    "flow": FLOW,
}


def make(case: str, **overrides: Any):
    cls, kwargs = CASES[case]
    return cls(**{**kwargs, **overrides})


def run_loop(sched, sample: torch.Tensor, model, start: int = 0, **step_kwargs: Any) -> torch.Tensor:
    for t in sched.timesteps[start:]:
        sample = sched.step(model(sample, t), t, sample, **step_kwargs).prev_sample
    return sample


def loop_outputs(sched, sample: torch.Tensor, model) -> list[torch.Tensor]:
    outs = []
    for t in sched.timesteps:
        sample = sched.step(model(sample, t), t, sample).prev_sample
        outs.append(sample)
    return outs


def init_config(sched) -> dict[str, Any]:
    keys = set(inspect.signature(type(sched).__init__).parameters) - {"self", "kwargs"}
    return {k: v for k, v in sched.config.items() if k in keys}


def plain_config(sched) -> dict[str, Any]:
    return {k: v for k, v in sched.config.items() if k != "_use_default_values"}


def same(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return a.shape == b.shape and float(torch.sum(torch.abs(a.double() - b.double()))) < tol


# The base config of diffusers' own DPM-Solver tests (`final_sigmas_type="sigma_min"` lets every algorithm type run).
DIFFUSERS_DPM_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "solver_order": 2,
    "prediction_type": "epsilon",
    "thresholding": False,
    "sample_max_value": 1.0,
    "algorithm_type": "dpmsolver++",
    "solver_type": "midpoint",
    "lower_order_final": False,
    "euler_at_final": False,
    "lambda_min_clipped": -float("inf"),
    "variance_type": None,
    "final_sigmas_type": "sigma_min",
}


def momentum_allowed(config: dict[str, Any]) -> bool:
    """Whether `MomentumDPMSolverMultistepScheduler` takes ``momentum_beta`` < 1 with this config."""
    return config.get("algorithm_type", "dpmsolver++") == "dpmsolver++" and config.get("solver_order", 2) in (2, 3)


def pixel_sample(shape: tuple[int, ...] = (4, 3, 8, 8)) -> torch.Tensor:
    """Seeded uniform sample in [0, 1) of a 3-channel pixel model (the shape of diffusers' scheduler tests)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


def seeded_loop(sched, sample: torch.Tensor, model, start: int = 0) -> torch.Tensor:
    """``run_loop`` with a fresh seeded generator, so stochastic (SDE) solvers draw the same noise for each run."""
    return run_loop(sched, sample, model, start=start, generator=torch.Generator().manual_seed(0))
