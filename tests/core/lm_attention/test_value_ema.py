"""The EMA-of-values term of Dai et al.'s momentum attention against a naive loop over queries and keys."""

from __future__ import annotations

import math

import pytest
import torch

from inertia.core.lm_attention.value_ema import (
    query_positions_from_mask,
    truncation_bound,
    value_momentum,
    value_weights,
)


def naive(values, positions, visible, eta, scale=1.0, normalized=False, window=None):
    """Σ_{i<t, visible, t-i <= window} η^(t-i) v_i, one query at a time, in float64."""
    batch, heads, keys, dim = values.shape
    out = torch.zeros(batch, heads, positions.shape[1], dim, dtype=torch.float64)
    for b in range(batch):
        for q in range(positions.shape[1]):
            t = int(positions[b, q])
            total, weight_sum = torch.zeros(heads, dim, dtype=torch.float64), 0.0
            for i in range(keys):
                if i < t and (visible is None or visible[b, q, i]) and (window is None or t - i <= window):
                    total += eta ** (t - i) * values[b, :, i].double()
                    weight_sum += eta ** (t - i)
            out[b, :, q] = scale * (total / weight_sum if normalized and weight_sum > 0 else total)
    return out


@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("eta", [0.05, 0.5, 0.9])
def test_matches_the_naive_loop(eta: float, window: int | None, normalized: bool) -> None:
    torch.manual_seed(0)
    values = torch.randn(2, 3, 9, 4)
    visible = torch.ones(2, 5, 9, dtype=torch.bool).tril(diagonal=4)  # 5 queries at positions 4..8, causal
    visible[1, :, :2] = False  # row 1 is left-padded by two
    positions = query_positions_from_mask(visible)
    assert positions.tolist() == [[4, 5, 6, 7, 8]] * 2
    out = value_momentum(values, positions, eta, scale=0.7, visible=visible, normalized=normalized, window=window)
    want = naive(values, positions, visible, eta, 0.7, normalized, window)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), want, atol=1e-6, rtol=1e-5)


def test_chunked_queries_equal_one_block(monkeypatch) -> None:
    torch.manual_seed(1)
    values = torch.randn(1, 2, 40, 3)
    positions = torch.arange(40)[None]
    whole = value_momentum(values, positions, 0.6)
    monkeypatch.setattr("inertia.core.lm_attention.value_ema.QUERY_CHUNK", 7)
    assert torch.equal(value_momentum(values, positions, 0.6), whole)


def test_eta_zero_and_first_query_give_zero() -> None:
    values = torch.randn(1, 1, 4, 2)
    assert torch.equal(value_momentum(values, torch.arange(4)[None], 0.0), torch.zeros(1, 1, 4, 2))
    assert torch.equal(value_momentum(values, torch.tensor([[0]]), 0.5), torch.zeros(1, 1, 1, 2))


def test_padding_rows_and_per_head_masks() -> None:
    values = torch.randn(1, 2, 3, 2)
    visible = torch.zeros(1, 1, 3, dtype=torch.bool)  # a query that sees nothing (a padding row)
    positions = query_positions_from_mask(visible)
    assert positions.tolist() == [[-1]]
    assert torch.equal(value_weights(positions, 3, 0.5, visible), torch.zeros(1, 1, 3))
    per_head = torch.ones(1, 4, 1, 3, dtype=torch.bool)  # 4 query heads over 2 value heads
    per_head[:, 1, :, 0] = False
    out = value_momentum(values, torch.tensor([[2]]), 0.5, visible=per_head)
    assert out.shape == (1, 4, 1, 2)
    torch.testing.assert_close(out[0, 0, 0], 0.25 * values[0, 0, 0] + 0.5 * values[0, 0, 1])
    torch.testing.assert_close(out[0, 1, 0], 0.5 * values[0, 0, 1])  # head 1 cannot see key 0


def test_dtypes_are_kept_and_float64_stays_float64() -> None:
    values = torch.randn(1, 1, 5, 2, dtype=torch.float64)
    assert value_momentum(values, torch.arange(5)[None], 0.5).dtype == torch.float64
    assert value_momentum(values.to(torch.bfloat16), torch.arange(5)[None], 0.5).dtype == torch.bfloat16


def test_window_error_is_within_its_bound() -> None:
    torch.manual_seed(2)
    values = torch.rand(1, 1, 60, 3) * 2 - 1  # |v| <= 1
    positions = torch.tensor([[59]])
    full, cut = value_momentum(values, positions, 0.8), value_momentum(values, positions, 0.8, window=10)
    error = float((full - cut).abs().max())
    assert 0 < error <= truncation_bound(0.8, 10, 1.0)
    assert truncation_bound(0.5, 2) == pytest.approx(0.125 / 0.5)
    with pytest.raises(ValueError, match="`eta` must be in \\[0, 1\\)"):
        truncation_bound(1.0, 3)


def test_far_keys_underflow_to_zero_not_nan() -> None:
    weights = value_weights(torch.tensor([[5000]]), 5001, 0.5)
    assert bool(torch.isfinite(weights).all()) and weights[0, 0, 0] == 0.0
    assert weights[0, 0, 4999].item() == pytest.approx(0.5) and math.isclose(weights.sum().item(), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("normalized", [False, True])
def test_per_head_eta_and_scale_equal_one_head_at_a_time(normalized: bool) -> None:
    torch.manual_seed(3)
    values = torch.randn(2, 2, 7, 3)  # two value heads shared by four query heads (GQA)
    positions = torch.arange(7).expand(2, -1)
    visible = torch.ones(2, 7, 7, dtype=torch.bool).tril()
    visible[0, :, :2] = False
    eta, scale = torch.tensor([0.1, 0.4, 0.7, 0.9]), torch.tensor([0.0, 0.5, 1.0, 2.0])
    out = value_momentum(values, positions, eta, scale, visible=visible, normalized=normalized)
    assert out.shape == (2, 4, 7, 3)
    for head in range(4):
        one = value_momentum(values[:, head // 2 : head // 2 + 1], positions, float(eta[head]), float(scale[head]),
                             visible=visible, normalized=normalized)  # fmt: skip
        torch.testing.assert_close(out[:, head : head + 1], one)


def test_per_head_parameters_are_differentiable() -> None:
    values = torch.randn(1, 1, 5, 2)
    logit = torch.zeros(2, requires_grad=True)
    gate = torch.full((2,), 0.5, requires_grad=True)
    value_momentum(values, torch.arange(5)[None], torch.sigmoid(logit), gate).sum().backward()
    assert logit.grad is not None and gate.grad is not None and bool((gate.grad != 0).all())
