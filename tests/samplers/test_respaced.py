"""RespacedDPMSolverMultistepScheduler and its core: identity at neutral settings, re-placed steps, bounds, errors."""

from __future__ import annotations

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from inertia.samplers.respaced import bounded_2m_combination, recommended_settings, respace_sigmas
from inertia.samplers.scheduling_respaced_dpmsolver import RespacedDPMSolverMultistepScheduler as Respaced

VP = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "timestep_spacing": "trailing"}
FLOW = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}
NEUTRAL = {"momentum_beta": 1.0, "sigma_rho": None, "max_correction_weight": None}


def _loop(scheduler, steps: int = 8) -> torch.Tensor:
    scheduler.set_timesteps(steps)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps:
        x = scheduler.step(torch.sin(3.0 * x + float(t) / 100.0), t, x).prev_sample
    return x


@pytest.mark.parametrize("config", [VP, FLOW], ids=["vp", "flow"])
def test_neutral_settings_are_the_stock_solver_bit_for_bit(config):
    stock = DPMSolverMultistepScheduler(**config)
    ours = Respaced(**config, **NEUTRAL)
    assert torch.equal(_loop(stock), _loop(ours))
    assert torch.equal(stock.timesteps, ours.timesteps)


def test_each_setting_changes_the_result():
    base = _loop(Respaced(**VP, **NEUTRAL))
    for change in ({"momentum_beta": 0.7}, {"sigma_rho": 1.0}, {"max_correction_weight": 0.1}):
        assert not torch.allclose(base, _loop(Respaced(**VP, **{**NEUTRAL, **change})), atol=1e-4), change


def test_respacing_keeps_ends_count_and_integer_timesteps():
    stock = DPMSolverMultistepScheduler(**VP)
    stock.set_timesteps(8)
    ours = Respaced(**VP, momentum_beta=1.0, sigma_rho=1.0, max_correction_weight=None)
    ours.set_timesteps(8)
    assert len(ours.timesteps) == 8 and ours.timesteps[0] == stock.timesteps[0]
    assert ours.timesteps[-1] == stock.timesteps[-1] and ours.timesteps.dtype == stock.timesteps.dtype
    assert (ours.timesteps[:-1] > ours.timesteps[1:]).all()
    assert not torch.equal(ours.timesteps, stock.timesteps)
    gaps = ours.sigmas[:-2] - ours.sigmas[1:-1]
    assert float(gaps.max() / gaps.min()) < 1.1  # ρ = 1: (nearly, after rounding to timesteps) uniform in σ


def test_custom_sigmas_are_not_respaced():
    ours = Respaced(**VP, momentum_beta=1.0, sigma_rho=1.0, max_correction_weight=None)
    ours.set_timesteps(sigmas=[14.0, 5.0, 1.0, 0.3])
    assert torch.allclose(ours.sigmas[:-1], torch.tensor([14.0, 5.0, 1.0, 0.3]))


def test_step_has_no_host_syncs(monkeypatch):
    sched = Respaced(**VP, momentum_beta=0.8, sigma_rho=1.0, max_correction_weight=0.5)
    sched.set_timesteps(8)
    sched.set_begin_index(0)

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync in step")

    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    timesteps = list(sched.timesteps)
    for name in ("item", "cpu", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for t in timesteps:
        x = sched.step(0.5 * x, t, x).prev_sample
    monkeypatch.undo()
    assert torch.isfinite(x).all()


def test_core_functions():
    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5])
    placed = respace_sigmas(sigmas, 1.0)
    assert (
        placed[0] == 10.0
        and placed[-1] == 0.5
        and torch.allclose(placed[1:] - placed[:-1], torch.tensor(-2.375, dtype=torch.float64))
    )
    assert torch.equal(respace_sigmas(sigmas, None), sigmas.double())
    m0, m1 = torch.ones(3), torch.zeros(3)
    assert torch.equal(bounded_2m_combination(m0, m1, 1.0, 1.0, None), torch.full((3,), 1.5))
    h, h_last = torch.tensor(4.0), torch.tensor(1.0)
    assert torch.equal(bounded_2m_combination(m0, m1, h, h_last, 0.5), torch.full((3,), 1.5))
    assert torch.equal(bounded_2m_combination(m0, m1, h, h_last, None), torch.full((3,), 3.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma_rho": 0.0}, "sigma_rho"),
        ({"sigma_rho": "fast"}, "sigma_rho"),
        ({"max_correction_weight": -1.0}, "max_correction_weight"),
        ({"momentum_beta": 1.5}, "momentum_beta"),
        ({"solver_order": 3, "momentum_beta": 0.8}, "solver_order"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Respaced(**VP, **kwargs)


def test_bad_auto_arguments_are_refused():
    with pytest.raises(ValueError, match="guidance_scale"):
        recommended_settings(-1.0, 8)
    with pytest.raises(ValueError, match="num_inference_steps"):
        recommended_settings(7.5, 0)
    with pytest.raises(ValueError, match="rho"):
        respace_sigmas(torch.tensor([2.0, 1.0, 0.5]), -1.0)
