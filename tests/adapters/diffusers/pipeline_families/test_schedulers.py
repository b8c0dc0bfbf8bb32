"""Scheduler swap on the 2026 pipelines (classic and modular): flow mode from each stock config, the stock
solver at neutral settings, momentum changes the result. The table in docs/hosts/pipelines.md cites these tests."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler
from tiny_pipelines_flux2_qwen_wan_zimage_ltx2 import (
    CLASSIC_CLASSES,
    KINDS,
    LATENT_SHAPES,
    MODULAR_CLASS_NAMES,
    cached_modular,
    cached_pipeline,
    default_scheduler,
    make_call_kwargs,
    make_modular_kwargs,
    run,
    run_modular,
)

from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

# Pipelines that always pass `sigmas=` to set_timesteps: diffusers' DPM-Solver refuses them (issues #11907, #9971,
# #12108); the others (Flux.2 drops them for `use_flow_sigmas` schedulers, Wan passes none) run the stock DPM-Solver.
ALWAYS_SIGMAS = ("qwenimage", "zimage", "ltx2")


def _generate(kind: str, scheduler, modular: bool = False, seed: int = 0) -> torch.Tensor:
    pipe = cached_modular(kind) if modular else cached_pipeline(kind)
    stock = pipe.scheduler
    try:
        if modular:
            pipe.update_components(scheduler=scheduler)
            return run_modular(pipe, **make_modular_kwargs(kind, seed=seed))
        pipe.scheduler = scheduler
        return run(pipe, **make_call_kwargs(kind, seed=seed))
    finally:
        if modular:
            pipe.update_components(scheduler=stock)
        else:
            pipe.scheduler = stock


def _stock_dpm(config) -> DPMSolverMultistepScheduler:
    flow = {"prediction_type": "flow_prediction", "use_flow_sigmas": True}
    if "shift" in config:
        flow["flow_shift"] = config["shift"]
    return DPMSolverMultistepScheduler.from_config(config, **flow)


@pytest.mark.parametrize("kind", KINDS)
def test_the_tiny_pipelines_are_the_real_classes(kind: str) -> None:
    pipe, modular = cached_pipeline(kind), cached_modular(kind)
    assert type(pipe) is CLASSIC_CLASSES[kind]
    assert type(modular).__name__ == MODULAR_CLASS_NAMES[kind]
    assert modular.transformer is not None and type(modular.transformer) is type(pipe.transformer)
    out = run(pipe, **make_call_kwargs(kind))
    assert tuple(out.shape) == LATENT_SHAPES[kind] and torch.isfinite(out).all()
    assert torch.equal(out, run(pipe, **make_call_kwargs(kind)))
    assert not torch.equal(out, run(pipe, **make_call_kwargs(kind, seed=1)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cls", [MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler])
def test_flow_mode_is_detected_from_the_stock_config(kind: str, cls) -> None:
    config = default_scheduler(kind).config
    ours = cls.from_config(config)
    assert ours.config.prediction_type == "flow_prediction" and ours.config.use_flow_sigmas
    assert ours.config.flow_shift == config.get("shift", config.get("flow_shift"))
    assert ours.config.use_dynamic_shifting == config.get("use_dynamic_shifting", False)
    assert ours.config.shift_terminal == config.get("shift_terminal")


@pytest.mark.parametrize("kind", (*ALWAYS_SIGMAS, "flux2"))
def test_custom_sigmas_and_mu_give_the_stock_flow_schedule_bit_for_bit(kind: str) -> None:
    """The sigmas, mu and shift_terminal these pipelines pass give FlowMatchEuler's float32 timesteps exactly."""
    stock = default_scheduler(kind)
    mu = 0.7 if stock.config.use_dynamic_shifting else None
    sigmas = np.linspace(1.0, 1 / 6, 6)
    stock.set_timesteps(sigmas=sigmas, mu=mu)
    for cls in (MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler):
        ours = cls.from_config(stock.config)
        ours.set_timesteps(sigmas=sigmas, mu=mu)
        assert torch.equal(ours.timesteps, stock.timesteps), cls.__name__
        assert torch.equal(ours.sigmas, stock.sigmas), cls.__name__


@pytest.mark.parametrize("kind", ALWAYS_SIGMAS)
def test_diffusers_dpm_solver_refuses_these_pipelines_and_ours_runs(kind: str) -> None:
    config = cached_pipeline(kind).scheduler.config
    with pytest.raises(ValueError, match="does not support custom sigmas"):
        _generate(kind, _stock_dpm(config))
    out = _generate(kind, MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta=0.8))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ALWAYS_SIGMAS)
@pytest.mark.parametrize("modular", [False, True], ids=["classic", "modular"])
def test_neutral_first_order_is_the_stock_flow_euler(kind: str, modular: bool) -> None:
    """PLMS order 1 without momentum is DDIM, which on a flow model is the Euler step of the stock scheduler."""
    config = default_scheduler(kind).config
    stock = _generate(kind, default_scheduler(kind), modular)
    ours = _generate(kind, MomentumPLMSScheduler.from_config(config, solver_order=1, momentum_beta=1.0), modular)
    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ("flux2", "wan"))
@pytest.mark.parametrize("modular", [False, True], ids=["classic", "modular"])
def test_neutral_dpm_is_diffusers_dpm_solver_bit_for_bit(kind: str, modular: bool) -> None:
    config = default_scheduler(kind).config
    stock = _generate(kind, _stock_dpm(config), modular)
    ours = _generate(kind, MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta=1.0), modular)
    assert torch.equal(ours, stock)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("modular", [False, True], ids=["classic", "modular"])
def test_momentum_changes_the_result_and_stays_finite(kind: str, modular: bool) -> None:
    config = default_scheduler(kind).config
    plain = _generate(kind, MomentumPLMSScheduler.from_config(config, solver_order=3, momentum_beta=1.0), modular)
    for scheduler in (
        MomentumPLMSScheduler.from_momentum_number(config, 3.8, method="ghvb"),
        MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta=0.6),
    ):
        out = _generate(kind, scheduler, modular)
        assert torch.isfinite(out).all() and out.shape == plain.shape
        assert not torch.allclose(out, plain, atol=1e-4), type(scheduler).__name__
        assert torch.equal(out, _generate(kind, copy.deepcopy(scheduler), modular))


def test_shift_terminal_is_validated_and_stretches_the_plain_schedule() -> None:
    with pytest.raises(ValueError, match="`shift_terminal`"):
        MomentumPLMSScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, shift_terminal=1.0)
    plain = MomentumDPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True)
    stretched = MomentumDPMSolverMultistepScheduler.from_config(plain.config, shift_terminal=0.1)
    plain.set_timesteps(5)
    stretched.set_timesteps(5)
    assert float(stretched.sigmas[-2]) == pytest.approx(0.1, abs=1e-6)  # the last sigma before 0
    # FlowMatchEuler's stretch: 1 − σ scaled by (1 − shift_terminal) / (1 − σ_last)
    expected = 1 - (1 - plain.sigmas[:-1].double()) * 0.9 / (1 - plain.sigmas[-2].double())
    torch.testing.assert_close(stretched.sigmas[:-1].double(), expected, rtol=0, atol=1e-6)


def test_flow_euler_reference_really_is_the_pipelines_stock_scheduler() -> None:
    for kind in ALWAYS_SIGMAS:
        assert type(cached_pipeline(kind).scheduler) is FlowMatchEulerDiscreteScheduler
