"""Prediction-space conversions: round trips for every type, and the σ(t) table against diffusers' schedulers."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler

from inertia.core.guidance.spaces import PREDICTION_TYPES, flow_alpha_sigma, from_x0, to_x0, vp_alpha_sigma


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_roundtrip(kind):
    generator = torch.Generator().manual_seed(0)
    x, out = torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator)
    if kind == "flow":
        a, s = flow_alpha_sigma(torch.tensor([0.9, 0.5, 0.1]).view(3, 1, 1, 1))
    else:
        a, s = vp_alpha_sigma(torch.tensor([999.0, 500.0, 20.0]), DDIMScheduler().alphas_cumprod)
        a, s = a.view(3, 1, 1, 1), s.view(3, 1, 1, 1)
    x0 = to_x0(out, x, a, s, kind)
    assert torch.allclose(from_x0(x0, x, a, s, kind), out, atol=1e-4)
    assert torch.allclose(to_x0(from_x0(x0, x, a, s, kind), x, a, s, kind), x0, atol=1e-4)


def test_conversions_recover_the_clean_sample():
    x0, eps = torch.randn(2, 3), torch.randn(2, 3)
    a, s = torch.tensor([[0.6], [0.8]]), torch.tensor([[0.8], [0.6]])
    x = a * x0 + s * eps
    assert torch.allclose(to_x0(eps, x, a, s, "epsilon"), x0, atol=1e-6)
    assert torch.allclose(to_x0(a * eps - s * x0, x, a, s, "v_prediction"), x0, atol=1e-6)
    sigma = torch.tensor([[0.3], [0.7]])
    xf = (1 - sigma) * x0 + sigma * eps
    assert torch.allclose(to_x0(eps - x0, xf, 1 - sigma, sigma, "flow"), x0, atol=1e-6)


def test_vp_table_matches_the_training_schedule_and_euler_interpolation():
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    t = torch.tensor([0.0, 1.0, 500.0, 999.0])
    a, s = vp_alpha_sigma(t, scheduler.alphas_cumprod)
    expected = scheduler.alphas_cumprod[t.long()].sqrt()
    assert torch.allclose(a, expected.float(), atol=1e-6)
    assert torch.allclose(a**2 + s**2, torch.ones(4), atol=1e-6)
    # fractional (Karras) timesteps: EulerDiscrete's linear interpolation of σ
    euler = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    table = ((1 - euler.alphas_cumprod) / euler.alphas_cumprod).sqrt().numpy()
    a, s = vp_alpha_sigma(torch.tensor([123.4]), euler.alphas_cumprod)
    assert np.isclose((s / a).item(), np.interp(123.4, np.arange(1000), table), rtol=1e-5)


def test_unknown_prediction_type():
    with pytest.raises(ValueError, match="`prediction_type`"):
        to_x0(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.ones(1), "noise")
