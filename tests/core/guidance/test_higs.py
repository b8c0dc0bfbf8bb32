"""HiGS core: DCT against a direct reference, high-pass mask, schedule boundaries, history rules, identity."""

import math

import numpy as np
import pytest
import torch

from inertia.core.guidance.higs import dct2, dct_highpass, dct_matrix, highpass_mask, higs_schedule, higs_update, idct2

PARAMS = {"weight": 1.5, "ema": 0.75, "t_min": 0.4, "t_max": 1.0, "eta": 1.0, "cutoff": None, "sharpness": 50.0}


def _direct_dct2(x: np.ndarray) -> np.ndarray:
    """Orthonormal DCT-II by its defining double sum."""
    rows, cols = x.shape
    out = np.zeros_like(x)
    for k in range(rows):
        for m in range(cols):
            total = 0.0
            for i in range(rows):
                for j in range(cols):
                    total += (
                        x[i, j]
                        * math.cos(math.pi * (2 * i + 1) * k / (2 * rows))
                        * math.cos(math.pi * (2 * j + 1) * m / (2 * cols))
                    )
            ck = math.sqrt(1 / rows) if k == 0 else math.sqrt(2 / rows)
            cm = math.sqrt(1 / cols) if m == 0 else math.sqrt(2 / cols)
            out[k, m] = ck * cm * total
    return out


def test_dct2_matches_direct_reference():
    x = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert np.allclose(dct2(x).numpy(), _direct_dct2(x.numpy()), atol=1e-12)


def test_dct_matrix_is_orthonormal_and_roundtrips():
    c = dct_matrix(9)
    assert torch.allclose(c @ c.T, torch.eye(9, dtype=torch.float64), atol=1e-12)
    x = torch.randn(2, 3, 6, 10)
    assert torch.allclose(idct2(dct2(x)), x, atol=1e-5)


def test_dct_of_constant_is_dc_only():
    y = dct2(torch.ones(1, 1, 4, 4, dtype=torch.float64))
    assert math.isclose(y[0, 0, 0, 0].item(), 4.0)
    y[0, 0, 0, 0] = 0
    assert y.abs().max() < 1e-12


def test_highpass_mask_values():
    mask = highpass_mask(4, 8, cutoff=0.05, sharpness=50.0)
    assert math.isclose(mask[0, 0].item(), 1 / (1 + math.exp(2.5)))  # R = 0: sigmoid(-λR_c)
    radius = math.sqrt((1 / 4) ** 2 + (3 / 8) ** 2)
    assert math.isclose(mask[1, 3].item(), 1 / (1 + math.exp(-50 * (radius - 0.05))))


def test_highpass_keeps_detail_and_removes_tone():
    flat = torch.full((1, 1, 16, 16), 3.0)
    assert dct_highpass(flat, 0.05, 50.0).abs().max() < 0.3  # mostly removed (DC weight 0.076)
    checker = (torch.arange(16).view(16, 1) + torch.arange(16).view(1, 16)) % 2 * 2.0 - 1
    assert torch.allclose(dct_highpass(checker.view(1, 1, 16, 16), 0.05, 50.0), checker.view(1, 1, 16, 16), atol=5e-3)


def test_schedule_boundaries():
    t = torch.tensor([0.3, 0.4, 0.4 + 1e-6, 0.7, 1.0])
    gamma = higs_schedule(t, 2.0, 0.4, 1.0)
    assert gamma[0] == 0 and gamma[1] == 0  # t_min is exclusive
    assert gamma[2] > 0
    assert math.isclose(gamma[3].item(), 2.0 * math.sqrt(0.5), rel_tol=1e-6)
    assert gamma[4] == 2.0  # t_max is inclusive
    assert higs_schedule(torch.tensor([0.95]), 2.0, 0.4, 0.9)[0] == 0


def test_first_step_is_identity_and_seeds_history():
    d = torch.randn(2, 3, 4, 4)
    out, history = higs_update(d, None, torch.ones(2), **PARAMS)
    assert out is d
    assert torch.equal(history, 0.75 * d)


def test_hand_computed_sequence_without_filter():
    """D_0 = 1, D_1 = 3 at t = 0.7: g = 0.75, Δ = 2.25, γ = 1.5·√0.5; history -> 0.75·3 + 0.25·0.75."""
    d0, d1 = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)
    _, history = higs_update(d0, None, torch.tensor([1.0]), **PARAMS)
    out, history = higs_update(d1, history, torch.tensor([0.7]), **PARAMS)
    gamma = 1.5 * math.sqrt(0.5)
    assert torch.allclose(out, torch.full_like(d1, 3.0 + gamma * 2.25))
    assert torch.allclose(history, torch.full_like(d1, 0.75 * 3.0 + 0.25 * 0.75))


def test_eta_zero_removes_the_parallel_part():
    d0 = torch.randn(1, 2, 4, 4)
    d1 = torch.randn(1, 2, 4, 4)
    _, history = higs_update(d0, None, torch.ones(1), **PARAMS)
    params = {**PARAMS, "eta": 0.0}
    out, _ = higs_update(d1, history, torch.ones(1), **params)
    correction = (out - d1).double()
    assert abs((correction * d1.double()).sum().item()) < 1e-4  # orthogonal to D_1


def test_history_takes_the_unmodified_prediction():
    d0, d1 = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    _, history = higs_update(d0, None, torch.ones(1), **PARAMS)
    out, new_history = higs_update(d1, history, torch.ones(1), **PARAMS)
    assert not torch.allclose(out, d1)
    assert torch.allclose(new_history, 0.75 * d1 + 0.25 * history)


def test_weight_zero_is_identity_bit_for_bit():
    d0, d1 = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    params = {**PARAMS, "weight": 0.0, "cutoff": 0.05, "eta": 0.0}
    _, history = higs_update(d0, None, torch.ones(2), **params)
    out, _ = higs_update(d1, history, torch.full((2,), 0.8), **params)
    assert torch.equal(out, d1)


def test_outside_window_is_identity_but_history_advances():
    d0, d1 = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    _, history = higs_update(d0, None, torch.ones(1), **PARAMS)
    out, new_history = higs_update(d1, history, torch.tensor([0.2]), **PARAMS)
    assert torch.equal(out, d1)
    assert not torch.equal(new_history, history)


@pytest.mark.parametrize("cutoff", [None, 0.05])
def test_filter_switch(cutoff):
    d0, d1 = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8)
    _, history = higs_update(d0, None, torch.ones(1), **PARAMS)
    out, _ = higs_update(d1, history, torch.ones(1), **{**PARAMS, "cutoff": cutoff})
    delta = d1 - history
    expected = delta if cutoff is None else dct_highpass(delta, cutoff, 50.0)
    assert torch.allclose(out, d1 + 1.5 * expected, atol=1e-5)


def test_cached_filters_work_with_autograd_after_inference_mode():
    # The DCT matrices and the mask are cached; ones built under `torch.inference_mode()` must not leak into
    # grad-enabled calls (autograd cannot save inference tensors). Regression: CI ran an inference-mode test first.
    shape = (1, 2, 7, 5)  # a size no other test uses, so this test builds the cache itself
    with torch.inference_mode():
        dct_highpass(torch.randn(shape), 0.05, 50.0)
    x = torch.randn(shape, requires_grad=True)
    out = dct_highpass(x, 0.05, 50.0)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.inference_mode():
        assert torch.equal(dct_highpass(x.detach(), 0.05, 50.0), out.detach())
