"""The update rules of :mod:`inertia.core.attention.rules` against hand-computed sequences."""

from __future__ import annotations

import pytest
import torch

from inertia.core.attention.rules import (
    TensorState,
    ema_step,
    extrapolate_observe,
    extrapolate_predict,
    first_order_observe,
    first_order_predict,
    heavy_ball_step,
)


def t(*values: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def test_ema_matches_hand_computed_sequence() -> None:
    # M_0 = A_0; M_s = (1 − β)·A_s + β·M_{s−1} with β = 0.5 on A = 4, 0, 0, 8 -> 4, 2, 1, 4.5
    state = TensorState()
    out = [ema_step(state, t(a), beta=0.5).item() for a in (4.0, 0.0, 0.0, 8.0)]
    assert out == [4.0, 2.0, 1.0, 4.5]


def test_ema_beta_zero_returns_the_input_values_exactly() -> None:
    state = TensorState()
    values = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    for row in values:
        assert torch.equal(ema_step(state, row, beta=0.0), row)


def test_ema_first_step_returns_the_input_object_and_keeps_a_copy() -> None:
    state = TensorState()
    a = t(1.0, 2.0)
    assert ema_step(state, a, beta=0.25) is a
    a.add_(100.0)  # the caller may reuse its tensor: the state must not see it
    assert state.previous.tolist() == [1.0, 2.0]
    out = ema_step(state, t(5.0, 6.0), beta=0.25)
    assert out.tolist() == [0.75 * 5 + 0.25 * 1, 0.75 * 6 + 0.25 * 2]
    out.add_(1000.0)  # nor the returned tensor
    assert state.previous.tolist() == [4.0, 5.0]


def test_heavy_ball_matches_hand_computed_sequence() -> None:
    # μ = 0.5, λ = 1 on A = 1, 3, 4, 4: V = 0, 2, 2, 1 -> A + λV = 1, 5, 6, 5
    state = TensorState()
    out = [heavy_ball_step(state, t(a), beta=0.5, lookahead=1.0).item() for a in (1.0, 3.0, 4.0, 4.0)]
    assert out == [1.0, 5.0, 6.0, 5.0]


def test_heavy_ball_lookahead_zero_is_identity() -> None:
    state = TensorState()
    for a in (1.0, 3.0, -2.5, 7.25):
        assert heavy_ball_step(state, t(a), beta=0.9, lookahead=0.0).item() == a


def test_extrapolate_matches_hand_computed_sequence() -> None:
    # computed A_0 = 0, A_2 = 4, A_4 = 6 (skip_every 2), β = 0.5:
    # V after step 2 = (4 − 0)/2 = 2; after step 4 = 0.5·2 + (6 − 4)/2 = 2
    state = TensorState()
    extrapolate_observe(state, t(0.0), step=0, beta=0.5)
    assert extrapolate_predict(state, step=1, lookahead=1.0).item() == 0.0  # V = 0 before two observations
    extrapolate_observe(state, t(4.0), step=2, beta=0.5)
    assert extrapolate_predict(state, step=3, lookahead=1.0).item() == 6.0  # 4 + 1·1·2
    extrapolate_observe(state, t(6.0), step=4, beta=0.5)
    assert extrapolate_predict(state, step=5, lookahead=1.0).item() == 8.0  # 6 + 1·1·2
    assert extrapolate_predict(state, step=5, lookahead=0.5).item() == 7.0  # 6 + 0.5·1·2


def test_extrapolate_scales_with_the_gap() -> None:
    # skip_every 3: computed at 0 and 3, slope (6 − 0)/3 = 2; steps 4 and 5 are 1 and 2 steps ahead
    state = TensorState()
    extrapolate_observe(state, t(0.0), step=0, beta=0.3)
    extrapolate_observe(state, t(6.0), step=3, beta=0.3)
    assert extrapolate_predict(state, step=4, lookahead=1.0).item() == 8.0
    assert extrapolate_predict(state, step=5, lookahead=1.0).item() == 10.0
    assert extrapolate_predict(state, step=5, lookahead=0.25).item() == 7.0


def test_extrapolate_beta_zero_lookahead_one_is_linear_extrapolation() -> None:
    state = TensorState()

    def line(s: int) -> float:
        return 3.0 - 0.5 * s

    extrapolate_observe(state, t(line(0)), step=0, beta=0.0)
    for s in (2, 4, 6):
        extrapolate_observe(state, t(line(s)), step=s, beta=0.0)
        assert extrapolate_predict(state, step=s + 1, lookahead=1.0).item() == line(s + 1)


def test_extrapolate_errors() -> None:
    state = TensorState()
    with pytest.raises(ValueError, match="at least one observed output"):
        extrapolate_predict(state, step=1, lookahead=1.0)
    extrapolate_observe(state, t(1.0), step=3, beta=0.0)
    with pytest.raises(ValueError, match="`step` must increase"):
        extrapolate_observe(state, t(1.0), step=3, beta=0.0)
    with pytest.raises(ValueError, match="must come after the last observed step 3"):
        extrapolate_predict(state, step=2, lookahead=1.0)


def test_first_order_matches_diffusers_faster_cache_sequence() -> None:
    # FasterCache (w = 0.5): computed 2 at step 0 -> cache [2, 2]; skip -> 2; computed 6 -> [2, 6];
    # skip -> 6 + (6 − 2)·0.5 = 8 -> [6, 8]; computed 9 -> [8, 9]; skip -> 9 + (9 − 8)·0.5 = 9.5
    state = TensorState()
    outputs = []
    for computed in (2.0, None, 6.0, None, 9.0, None):
        if computed is None:
            value = first_order_predict(state, weight=0.5)
            first_order_observe(state, value)
            outputs.append(value.item())
        else:
            first_order_observe(state, t(computed))
            outputs.append(computed)
    assert outputs == [2.0, 2.0, 6.0, 8.0, 9.0, 9.5]


def test_first_order_needs_an_observation() -> None:
    with pytest.raises(ValueError, match="at least one observed output"):
        first_order_predict(TensorState(), weight=0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_state_in_fp32_or_fp64_and_results_in_the_input_dtype(dtype: torch.dtype) -> None:
    state = TensorState()
    ema_step(state, t(1.0, dtype=dtype), beta=0.5)
    assert ema_step(state, t(3.0, dtype=dtype), beta=0.5).dtype == dtype
    assert state.previous.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    hb = TensorState()
    heavy_ball_step(hb, t(1.0, dtype=dtype), beta=0.5, lookahead=1.0)
    assert heavy_ball_step(hb, t(2.0, dtype=dtype), beta=0.5, lookahead=1.0).dtype == dtype
    ex = TensorState()
    extrapolate_observe(ex, t(1.0, dtype=dtype), step=0, beta=0.5)
    assert extrapolate_predict(ex, step=1, lookahead=1.0, dtype=dtype).dtype == dtype


def test_rules_are_elementwise_over_the_batch() -> None:
    # a batch of two trajectories gives the same results as each trajectory alone
    seq = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1))
    batch, alone = TensorState(), [TensorState(), TensorState()]
    for step in range(4):
        together = heavy_ball_step(batch, seq[step], beta=0.7, lookahead=0.8)
        separate = torch.stack([heavy_ball_step(alone[i], seq[step, i], beta=0.7, lookahead=0.8) for i in range(2)])
        assert torch.equal(together, separate)


def test_num_buffers_counts_the_memory_per_rule() -> None:
    ema, hb, ex, fo = TensorState(), TensorState(), TensorState(), TensorState()
    for step in range(3):
        ema_step(ema, t(float(step)), beta=0.5)
        heavy_ball_step(hb, t(float(step)), beta=0.5, lookahead=1.0)
        extrapolate_observe(ex, t(float(step)), step=step, beta=0.5)
        first_order_observe(fo, t(float(step)))
    assert (ema.num_buffers(), hb.num_buffers(), ex.num_buffers(), fo.num_buffers()) == (1, 2, 2, 2)
