"""``momentum_beta="auto"`` in the schedulers: the β of `auto_beta`, and the stock solver bit for bit where it is 1."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

from inertia.core.samplers import beta_policy
from inertia.core.samplers.beta_policy import auto_beta
from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "timestep_spacing": "trailing"}
SDXL = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "timestep_spacing": "leading",
        "steps_offset": 1}  # fmt: skip
KARRAS = {**SD, "use_karras_sigmas": True}
FLOW = FlowMatchEulerDiscreteScheduler(shift=3.0).config  # SD3's: our schedulers switch to flow mode by themselves
FLOW_KEYS = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}  # the same, for stock


def _loop(scheduler: Any, steps: int, sample: torch.Tensor, model: Any) -> torch.Tensor:
    scheduler.set_timesteps(steps)
    x = sample * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(model(scheduler.scale_model_input(x, t), t), t, x).prev_sample
    return x


def _damped(sampler: str, order: int, kind: str) -> tuple[float, int, float]:
    """The damped cell of the table with the highest guidance and the fewest steps: (guidance, steps, β)."""
    cells = beta_policy.measured_cells(sampler, order, kind)
    (guidance, steps), beta = max(cells.items(), key=lambda item: (item[0][0], -item[0][1]))
    return guidance, steps, beta


CONFIGS = {"vp": SD, "karras": KARRAS, "flow": FLOW}
DAMPED = sorted(beta_policy._MEASURED)  # (sampler, order, kind) with at least one damped cell


# Cells where auto keeps the stock solver: DPM-Solver++ everywhere (it never diverged on every tuning problem), and
# no guidance, many steps, an unmeasured grid or solver form in general.
STOCK_CELLS = [
    ("no guidance", SD, {}, 1.0, 20),
    ("flow, high guidance, few steps", FLOW_KEYS, {}, 22.5, 6),
    ("mild guidance, 30 steps", SDXL, {}, 7.5, 30),
    ("high guidance, 40 steps", SD, {}, 15.0, 40),
    ("exponential sigmas", {**SD, "use_exponential_sigmas": True}, {}, 15.0, 8),
    ("heun", SD, {"solver_type": "heun"}, 22.5, 8),
    ("karras, mild guidance", KARRAS, {}, 3.0, 20),
    ("high guidance, few steps", SD, {}, 15.0, 8),
    ("sdxl, very high guidance, 6 steps", SDXL, {}, 22.5, 6),
    ("karras, high guidance, 6 steps", KARRAS, {}, 15.0, 6),
]


@pytest.mark.parametrize(("config", "extra", "guidance", "steps"), [c[1:] for c in STOCK_CELLS],
                         ids=[c[0] for c in STOCK_CELLS])  # fmt: skip
@pytest.mark.parametrize("order", [2, 3])
def test_dpm_auto_is_the_stock_dpm_solver_bit_for_bit_where_it_is_1(config, extra, guidance, steps, order, sample,
                                                                    dummy_model) -> None:  # fmt: skip
    ours = MomentumDPMSolverMultistepScheduler(
        **config, **extra, solver_order=order, momentum_beta="auto", momentum_guidance_scale=guidance
    )
    stock = DPMSolverMultistepScheduler(**config, **extra, solver_order=order)
    out = _loop(ours, steps, sample, dummy_model)
    assert ours.momentum_beta == 1.0
    assert torch.equal(out, _loop(stock, steps, sample, dummy_model))


@pytest.mark.parametrize("method", ["hb", "nt", "ghvb"])
@pytest.mark.parametrize(("config", "guidance", "steps"), [(SD, 1.0, 20), (SDXL, 7.5, 30), (SD, 15.0, 40)])
def test_plms_auto_is_plain_plms_bit_for_bit_where_it_is_1(method, config, guidance, steps, sample,
                                                           dummy_model) -> None:  # fmt: skip
    ours = MomentumPLMSScheduler(**config, momentum_method=method, momentum_beta="auto",
                                 momentum_guidance_scale=guidance)  # fmt: skip
    plain = MomentumPLMSScheduler(**config, momentum_method=method, momentum_beta=1.0)  # PLMS-4, tested elsewhere
    out = _loop(ours, steps, sample, dummy_model)
    assert ours.momentum_beta == 1.0
    assert torch.equal(out, _loop(plain, steps, sample, dummy_model))


def test_every_sampler_and_schedule_kind_has_a_measured_verdict() -> None:
    """The table damps the PLMS family on every schedule kind; DPM-Solver++ never diverged on every tuning problem of
    a cell, so its auto is the stock solver everywhere (tested bit for bit above, at high guidance and few steps too)."""
    assert set(DAMPED) == {(m, 4, k) for m in ("ghvb", "hb", "nt") for k in CONFIGS}


@pytest.mark.parametrize(("sampler", "order", "kind"), DAMPED)
def test_where_damping_was_measured_auto_damps_and_changes_the_result(sampler, order, kind, sample,
                                                                      dummy_model) -> None:  # fmt: skip
    config = CONFIGS[kind]
    guidance, steps, beta = _damped(sampler, order, kind)
    if sampler == "hb-dpm++":
        ours = MomentumDPMSolverMultistepScheduler.from_config(
            config, solver_order=order, momentum_beta="auto", momentum_guidance_scale=guidance
        )
        plain = MomentumDPMSolverMultistepScheduler.from_config(config, solver_order=order, momentum_beta=1.0)
    else:
        ours = MomentumPLMSScheduler.from_config(
            config, momentum_method=sampler, momentum_beta="auto", momentum_guidance_scale=guidance
        )
        plain = MomentumPLMSScheduler.from_config(config, momentum_method=sampler, momentum_beta=1.0)
    out = _loop(ours, steps, sample, dummy_model)
    assert ours.momentum_beta == beta == auto_beta(sampler, steps, guidance, kind, order=order) < 1.0
    assert not torch.equal(out, _loop(plain, steps, sample, dummy_model))


@pytest.mark.parametrize("cls", [MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler])
def test_the_schedule_kind_auto_plans_for(cls) -> None:
    def kind(config: Any, **call: Any) -> str:
        scheduler = cls.from_config(config, momentum_beta="auto")
        scheduler.set_timesteps(**{"num_inference_steps": 8, **call})
        return scheduler._auto_schedule_kind()

    assert kind(SD) == kind(SDXL) == kind({**SD, "timestep_spacing": "linspace"}) == "vp"
    assert kind(KARRAS) == "karras"
    assert kind(FLOW) == "flow"
    assert kind(FLOW, num_inference_steps=None, sigmas=[1.0, 0.8, 0.6, 0.4, 0.2]) == "flow"  # Flux passes sigmas
    for unmeasured in ("use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "rescale_betas_zero_snr"):
        assert kind({**SD, unmeasured: True}) == "other", unmeasured
    assert kind(SD, num_inference_steps=None, timesteps=[999, 800, 500, 200]) == "other"
    assert kind(SD) == "vp"  # the next schedule is judged on its own


def test_auto_follows_the_step_count_of_every_set_timesteps_call() -> None:
    guidance, steps, beta = _damped("ghvb", 4, "vp")
    scheduler = MomentumPLMSScheduler(**SD, momentum_beta="auto", momentum_guidance_scale=guidance)
    scheduler.set_timesteps(steps)
    assert scheduler.momentum_beta == beta
    scheduler.set_timesteps(40)
    assert scheduler.momentum_beta == 1.0
    scheduler.set_timesteps(steps)
    assert scheduler.momentum_beta == beta
