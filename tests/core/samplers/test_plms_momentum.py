"""Exactness tests of the math core (inertia.core.samplers.plms_momentum) against the paper's tables and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from inertia.core.samplers.plms_momentum import (
    MomentumState,
    adams_bashforth_coefficients,
    backward_difference_coefficients,
    ghvb_coefficients,
    ghvb_direction,
    hb_direction,
    momentum_direction,
    momentum_number_to_order_beta,
    nt_direction,
    order_beta_to_momentum_number,
)

# Adams-Bashforth rows of the paper's HB update (eq. 13-14, Algorithm 1), newest first.
AB_TABLE = {
    1: [1.0],
    2: [3 / 2, -1 / 2],
    3: [23 / 12, -16 / 12, 5 / 12],
    4: [55 / 24, -59 / 24, 37 / 24, -9 / 24],
    5: [1901 / 720, -2774 / 720, 2616 / 720, -1274 / 720, 251 / 720],
}


def ghvb_table(order: int, b: float) -> list[float]:
    """The paper's GHVB table (§4.2, eq. 16-19, with eq. 19's sign as in the authors' code), row by row."""
    rows = {
        1: [1.0],
        2: [(2 + b) / (2 * b), -(2 - b) / (2 * b)],
        3: [(18 + 5 * b) / (12 * b), -(24 - 8 * b) / (12 * b), (6 - b) / (12 * b)],
        4: [(46 + 9 * b) / (24 * b), -(78 - 19 * b) / (24 * b), (42 - 5 * b) / (24 * b), -(10 - b) / (24 * b)],
        5: [
            (1650 + 251 * b) / (720 * b),
            -(3420 - 646 * b) / (720 * b),
            (2880 - 264 * b) / (720 * b),
            -(1380 - 106 * b) / (720 * b),
            (270 - 19 * b) / (720 * b),
        ],
    }
    return rows[order]


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_adams_bashforth_rows_match_table_exactly(order: int) -> None:
    assert list(adams_bashforth_coefficients(order)) == AB_TABLE[order]
    assert math.isclose(sum(adams_bashforth_coefficients(order)), 1.0, abs_tol=1e-12)


def test_backward_difference_coefficients() -> None:
    assert backward_difference_coefficients(6) == (1.0, 0.5, 5 / 12, 3 / 8, 251 / 720, 95 / 288)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("beta", [0.1, 0.25, 0.5, 0.8, 0.9, 1.0])
def test_ghvb_rows_match_paper_table_and_sum_to_one(order: int, beta: float) -> None:
    got = ghvb_coefficients(order, beta)
    np.testing.assert_allclose(got, ghvb_table(order, beta), rtol=1e-12, atol=1e-12)
    assert math.isclose(sum(got), 1.0, abs_tol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6, 8])
def test_ghvb_with_beta_one_is_adams_bashforth_bit_for_bit(order: int) -> None:
    assert ghvb_coefficients(order, 1.0) == adams_bashforth_coefficients(order)


def test_ghvb_closed_form_goes_past_order_five() -> None:
    row = ghvb_coefficients(7, 0.6)
    assert len(row) == 7 and math.isclose(sum(row), 1.0, abs_tol=1e-12)


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (3.8, (4, 0.8)),
        (1.5, (2, 0.5)),
        (0.5, (1, 0.5)),
        (4.0, (4, 1.0)),
        (4, (4, 1.0)),
        (2.9, (3, 0.9)),
        (5, (5, 1.0)),
    ],
)
def test_momentum_number_convention(number: float, expected: tuple[int, float]) -> None:
    assert momentum_number_to_order_beta(number) == expected
    assert order_beta_to_momentum_number(*expected) == float(number)


def test_hand_computed_updates() -> None:
    e1, e2, e3 = (torch.full((2,), v, dtype=torch.float64) for v in (1.0, 3.0, -2.0))
    # HB, order 1, β 0.5: v1 = e1 = 1; v2 = 0.5·1 + 0.5·3 = 2.
    s = MomentumState()
    assert hb_direction(s, e1, 1, 0.5).tolist() == [1.0, 1.0]
    assert hb_direction(s, e2, 1, 0.5).tolist() == [2.0, 2.0]
    # HB, order 2, β 0.5: p2 = 1.5·3 − 0.5·1 = 4; v2 = 0.5·1 + 0.5·4 = 2.5; p3 = 1.5·(−2) − 0.5·3 = −4.5;
    # v3 = 0.5·2.5 + 0.5·(−4.5) = −1.
    s = MomentumState()
    hb_direction(s, e1, 2, 0.5)
    assert hb_direction(s, e2, 2, 0.5).tolist() == [2.5, 2.5]
    assert hb_direction(s, e3, 2, 0.5).tolist() == [-1.0, -1.0]
    # GHVB, order 2, β 0.5: v1 = 1, u1 = 1; v2 = 0.5 + 1.5 = 2, u2 = 2.5·2 − 1.5·1 = 3.5.
    s = MomentumState()
    assert ghvb_direction(s, e1, 2, 0.5).tolist() == [1.0, 1.0]
    assert ghvb_direction(s, e2, 2, 0.5).tolist() == [3.5, 3.5]
    # NT, order 1, β 0.5: first u = p = 1; then v = 0.5·1 + 0.5·3 = 2, u = 0.5·2 + 0.5·3 = 2.5.
    s = MomentumState()
    assert nt_direction(s, e1, 1, 0.5).tolist() == [1.0, 1.0]
    assert nt_direction(s, e2, 1, 0.5).tolist() == [2.5, 2.5]


def plms_reference(eps_fn, x0: torch.Tensor, h: float, steps: int, order: int) -> torch.Tensor:
    """A plain, independent PLMS-k loop (lower-order start) with the literal AB table."""
    x, hist = x0.clone(), []
    for _ in range(steps):
        hist.insert(0, eps_fn(x))
        del hist[order:]
        row = AB_TABLE[len(hist)]
        u = hist[0] * row[0]
        for c, e in zip(row[1:], hist[1:]):
            u = u + e * c
        x = x + u * h
    return x


@pytest.mark.parametrize("method", ["hb", "ghvb", "nt"])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_beta_one_equals_plms_reference_bit_for_bit(method: str, order: int) -> None:
    a = torch.tensor([[0.0, 1.0], [-2.0, -0.3]], dtype=torch.float32)
    x0 = torch.tensor([1.0, 0.5])
    ref = plms_reference(lambda x: a @ x, x0, 0.05, 30, order)
    s, x = MomentumState(), x0.clone()
    for _ in range(30):
        x = x + momentum_direction(method, s, a @ x, order, 1.0) * 0.05
    assert torch.equal(x, ref)


# Paper App. C: dx/dt = [[0, 1], [−9, −10]]x, x(0) = [−1, 0], 26 steps on [0, 3]; L2 error at t = 3 (independent run).
TOY_ERRORS = [
    ("ghvb", 1.0, 1.36e-2),  # Euler
    ("ghvb", 2.0, 1.44),  # AB2 diverges
    ("hb", 1.8, 6.3e-3),  # AB2 + HB 0.8
    ("hb", 1.9, 2.9e-3),  # AB2 + HB 0.9
    ("ghvb", 1.8, 7.2e-4),
    ("ghvb", 1.9, 4.7e-2),
    ("ghvb", 4.0, 5e9),  # AB4 diverges
    ("ghvb", 3.8, 8e8),  # GHVB 3.8 diverges too (λ far outside the AB4 region)
]


@pytest.mark.parametrize(("method", "number", "expected"), TOY_ERRORS)
def test_toy_ode_reproduces_reference_error_table(method: str, number: float, expected: float) -> None:
    a = torch.tensor([[0.0, 1.0], [-9.0, -10.0]], dtype=torch.float64)
    x = torch.tensor([-1.0, 0.0], dtype=torch.float64)
    exact = torch.from_numpy(scipy.linalg.expm(3.0 * a.numpy()) @ x.numpy())
    order, beta = momentum_number_to_order_beta(number)
    state = MomentumState()
    for _ in range(26):
        x = x + momentum_direction(method, state, a @ x, order, beta) * (3.0 / 26)
    err = float((x - exact).norm())
    # The reference errors (an independent script with the authors' warm-up) have two significant figures, one for
    # the diverging runs.
    rel = 0.06 if expected < 1e3 else 0.15
    assert err == pytest.approx(expected, rel=rel)


def _global_error(method: str, number: float, steps: int) -> float:
    # dx/dt = −x + sin(t) style smooth scalar ODE written autonomously: y = (x, t), exact solution by formula.
    order, beta = momentum_number_to_order_beta(number)
    y = torch.tensor([1.0, 0.0], dtype=torch.float64)
    h = 2.0 / steps
    state = MomentumState()

    def f(v: torch.Tensor) -> torch.Tensor:
        return torch.stack([-v[0] + torch.sin(v[1]), torch.ones((), dtype=torch.float64)])

    for _ in range(steps):
        y = y + momentum_direction(method, state, f(y), order, beta) * h
    t = 2.0
    exact = 1.5 * math.exp(-t) + 0.5 * (math.sin(t) - math.cos(t))
    return abs(float(y[0]) - exact)


@pytest.mark.parametrize(
    ("method", "number", "expected_order"),
    [("hb", 1.8, 1.0), ("hb", 3.9, 1.0), ("ghvb", 1.8, 2.0), ("ghvb", 1.5, 2.0)],
)
def test_empirical_convergence_order(method: str, number: float, expected_order: float) -> None:
    """Theorem 1 (HB is first order for β ≠ 1) and Theorem 2 (GHVB keeps order k; k = 2 with the Euler start)."""
    e1, e2 = _global_error(method, number, 400), _global_error(method, number, 800)
    assert math.log2(e1 / e2) == pytest.approx(expected_order, abs=0.15)


def test_state_rejects_batch_change_and_resets() -> None:
    s = MomentumState()
    ghvb_direction(s, torch.zeros(2, 3), 2, 0.8)
    with pytest.raises(ValueError, match="model_output"):
        ghvb_direction(s, torch.zeros(3, 3), 2, 0.8)
    s.reset()
    assert ghvb_direction(s, torch.ones(3, 3), 2, 0.8).shape == (3, 3)


def test_history_is_bounded_by_order() -> None:
    s = MomentumState()
    for _ in range(10):
        hb_direction(s, torch.ones(4), 3, 0.9)
    assert len(s.history) == 3
