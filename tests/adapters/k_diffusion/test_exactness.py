"""(b) Exactness on a problem with a known answer, and (c) identity at beta=1 with k-diffusion's own update rules.

The problem: data x0 ~ N(MU, STD²) elementwise, whose denoiser is exact in closed form and whose probability-flow
ODE dx/dσ = (x − D)/σ has the exact solution (x − MU)/sqrt(STD² + σ²) = const (see references.py).
"""

from __future__ import annotations

import math

import pytest
import torch

from inertia.k_diffusion import sample_ghvb, sample_hb, sample_hb_dpmpp_2m, sample_hb_dpmpp_3m, sample_nt
from tests.adapters.k_diffusion.references import (
    exact_solution,
    gaussian_denoiser,
    reference_dpmpp_2m,
    reference_dpmpp_3m,
    reference_lms,
    starting_sample,
)

PLMS = {"hb": sample_hb, "ghvb": sample_ghvb, "nt": sample_nt}


def _geometric(n: int, high: float = 10.0, low: float = 0.05) -> torch.Tensor:
    """n steps uniform in λ = −log σ (DPM-Solver's natural grid), ending above 0."""
    return torch.exp(torch.linspace(math.log(high), math.log(low), n + 1, dtype=torch.float64))


def _uniform(n: int, high: float = 3.0, low: float = 0.2) -> torch.Tensor:
    """n steps uniform in σ (the PLMS coefficients' assumption), ending above 0."""
    return torch.linspace(high, low, n + 1, dtype=torch.float64)


def _karras(n: int, low: float = 0.03, high: float = 14.6, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    sigmas = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _error(fn, sigmas: torch.Tensor, **options) -> float:
    x = torch.tensor([[-2.0, 0.5, 3.0]], dtype=torch.float64) * float(sigmas[0])
    out = fn(gaussian_denoiser, x, sigmas, disable=True, **options)
    return (out - exact_solution(x, float(sigmas[0]), float(sigmas[-1]))).abs().max().item()


def _observed_order(fn, grid, **options) -> tuple[float, list[float]]:
    errors = [_error(fn, grid(n), **options) for n in (20, 40, 80)]
    assert errors[0] > errors[1] > errors[2], f"no convergence: {errors}"
    return math.log2(errors[1] / errors[2]), errors


# ------------------------------------------------------------------------------------------------ (b) convergence


@pytest.mark.parametrize(
    ("fn", "beta", "expected"),
    [
        (sample_hb_dpmpp_2m, 1.0, 2),  # DPM-Solver++(2M)
        (sample_hb_dpmpp_2m, 0.8, 1),  # heavy ball makes it first order for β < 1 (as Theorem 1 for HB on PLMS)
        # 3M's first step is first order (in k-diffusion and diffusers too), which caps the global order at 2
        (sample_hb_dpmpp_3m, 1.0, 2),
        (sample_hb_dpmpp_3m, 0.8, 1),
    ],
)
def test_dpmpp_converges_to_the_exact_solution_with_the_expected_order(fn, beta: float, expected: int) -> None:
    order, errors = _observed_order(fn, _geometric, beta=beta)
    assert abs(order - expected) < 0.2, f"observed order {order:.2f}, expected {expected} (errors {errors})"


def test_dpmpp_3m_is_more_accurate_than_2m() -> None:
    for n in (20, 40, 80):
        assert _error(sample_hb_dpmpp_3m, _geometric(n), beta=1.0) < _error(
            sample_hb_dpmpp_2m, _geometric(n), beta=1.0
        )


@pytest.mark.parametrize(
    ("method", "order", "beta", "expected"),
    [
        ("ghvb", 1, 1.0, 1),
        ("ghvb", 2, 1.0, 2),
        ("ghvb", 3, 1.0, 3),
        ("ghvb", 1, 0.8, 1),
        ("ghvb", 2, 0.8, 2),  # GHVB keeps order k for every β (paper Theorem 2)
        ("ghvb", 3, 0.8, 3),
        ("hb", 2, 0.8, 1),  # HB is first order for β < 1 (paper Theorem 1)
        ("hb", 4, 0.8, 1),
        ("nt", 1, 0.8, 1),
        ("nt", 4, 0.8, 1),
    ],
)
def test_plms_family_converges_with_the_expected_order(method: str, order: int, beta: float, expected: int) -> None:
    observed, errors = _observed_order(PLMS[method], _uniform, order=order, beta=beta)
    assert abs(observed - expected) < 0.2, f"observed order {observed:.2f}, expected {expected} (errors {errors})"


@pytest.mark.parametrize("beta", [1.0, 0.8])
@pytest.mark.parametrize("order", [4, 5])
def test_high_order_ghvb_is_far_more_accurate_than_third_order(order: int, beta: float) -> None:
    # Orders 4-5 reach the floor set by the lower-order warm-up steps at about 80 steps, so their rate cannot be read
    # off; their error there is still 100x below third order's.
    third = _error(sample_ghvb, _uniform(80), order=3, beta=beta)
    assert _error(sample_ghvb, _uniform(80), order=order, beta=beta) < third / 50


# ------------------------------------------------------------------------------------------------ (c) identity


@pytest.mark.parametrize("grid", [_karras(12), _geometric(12)], ids=["karras-to-0", "geometric-above-0"])
@pytest.mark.parametrize(
    ("fn", "reference"), [(sample_hb_dpmpp_2m, reference_dpmpp_2m), (sample_hb_dpmpp_3m, reference_dpmpp_3m)]
)
def test_beta_1_is_k_diffusions_dpmpp(fn, reference, grid: torch.Tensor) -> None:
    x = starting_sample(sigma=float(grid[0]))
    ours = fn(gaussian_denoiser, x, grid, disable=True, beta=1.0)
    theirs = reference(gaussian_denoiser, x, grid)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), (ours - theirs).abs().max()


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("method", sorted(PLMS))
def test_beta_1_is_plms_which_is_k_diffusions_lms_on_a_uniform_grid(method: str, order: int) -> None:
    sigmas = torch.linspace(6.0, 0.0, 13, dtype=torch.float64)
    x = starting_sample(sigma=6.0)
    ours = PLMS[method](gaussian_denoiser, x, sigmas, disable=True, order=order, beta=1.0)
    theirs = reference_lms(gaussian_denoiser, x, sigmas, order=order)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12), (ours - theirs).abs().max()


def test_order_1_beta_1_is_k_diffusions_euler_on_any_grid() -> None:
    sigmas = _karras(10)
    x = starting_sample(sigma=float(sigmas[0]))
    theirs = reference_lms(gaussian_denoiser, x, sigmas, order=1)  # LMS of order 1 is Euler
    for fn in PLMS.values():
        ours = fn(gaussian_denoiser, x, sigmas, disable=True, order=1, beta=1.0)
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", [1, 3, 5])
def test_at_beta_1_the_three_methods_are_bit_identical(order: int) -> None:
    sigmas = _karras(9)
    x = starting_sample(sigma=float(sigmas[0]))
    outs = [fn(gaussian_denoiser, x, sigmas, disable=True, order=order, beta=1.0) for fn in PLMS.values()]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("fn", [sample_hb_dpmpp_2m, sample_hb_dpmpp_3m], ids=lambda f: f.__name__)
def test_a_per_step_beta_sequence(fn) -> None:
    grid = _karras(8)
    x = starting_sample(sigma=float(grid[0]))
    steps = len(grid) - 1
    # one value repeated is the scalar, bit for bit; all ones is plain DPM-Solver++
    assert torch.equal(fn(gaussian_denoiser, x, grid, disable=True, beta=[0.7] * steps),
                       fn(gaussian_denoiser, x, grid, disable=True, beta=0.7))  # fmt: skip
    assert torch.equal(fn(gaussian_denoiser, x, grid, disable=True, beta=(1.0,) * steps),
                       fn(gaussian_denoiser, x, grid, disable=True, beta=1.0))  # fmt: skip
    # the first step and the step to σ = 0 take no momentum: their entries change nothing
    unused = [0.3] + [0.7] * (steps - 2) + [0.3]
    assert torch.equal(fn(gaussian_denoiser, x, grid, disable=True, beta=unused),
                       fn(gaussian_denoiser, x, grid, disable=True, beta=0.7))  # fmt: skip
    # β at one step only: the trajectory equals plain DPM-Solver++ up to that step, then departs
    seen: dict[str, list[torch.Tensor]] = {"plain": [], "one": []}
    one = [1.0] * steps
    one[4] = 0.5
    for key, beta in (("plain", 1.0), ("one", one)):
        fn(gaussian_denoiser, x, grid, disable=True, beta=beta,
           callback=lambda info, key=key: seen[key].append(info["x"].clone()))  # fmt: skip
    for i, (a, b) in enumerate(zip(seen["plain"], seen["one"], strict=True)):
        assert torch.equal(a, b) == (i <= 4), i  # x_5 is the first state after the damped step 4
