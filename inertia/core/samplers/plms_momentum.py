"""Math core of the heavy-ball (HB), generalized heavy-ball (GHVB) and Nesterov (NT) multistep samplers.

Pure torch/python: no diffusers import. Everything here follows Wizadwongsa et al., "Diffusion Sampling with Momentum
for Mitigating Divergence Artifacts" (ICLR 2024, arXiv 2307.11118) and the authors' code; equation numbers refer to the
arXiv version. A PLMS-family step on the ODE ``dx̄/dσ̄ = ε(x̄, σ̄)`` (paper eq. 2) is ``x̄_{n+1} = x̄_n + δ_n · u_n``; this
module computes the direction ``u_n`` from the newest ε and the method's state.

Example:
    >>> import torch
    >>> state = MomentumState()
    >>> eps = torch.ones(2, 4, 8, 8)
    >>> u = ghvb_direction(state, eps, order=4, beta=0.8)   # first call: u == eps (Euler start)
    >>> bool(torch.equal(u, eps))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, lru_cache

import torch

__all__ = [
    "MAX_ORDER",
    "MOMENTUM_METHODS",
    "MomentumState",
    "adams_bashforth_coefficients",
    "backward_difference_coefficients",
    "combine",
    "ghvb_coefficients",
    "ghvb_direction",
    "hb_direction",
    "momentum_direction",
    "momentum_number_to_order_beta",
    "nt_direction",
    "order_beta_to_momentum_number",
    "validate_beta",
    "validate_order",
]

MOMENTUM_METHODS = ("hb", "ghvb", "nt")
"""Names of the PLMS-family momentum methods: heavy ball (eq. 13-14), generalized heavy ball (eq. 15-19), Nesterov."""

MAX_ORDER = 5
"""Highest multistep order the schedulers accept (the paper's table stops at 5; the closed form goes further)."""


def validate_order(order: int, name: str = "solver_order", max_order: int = MAX_ORDER) -> int:
    """Checks a multistep order and returns it; raises ``ValueError`` naming ``name`` otherwise."""
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= max_order:
        raise ValueError(f"`{name}` must be an integer in [1, {max_order}], got {order!r}.")
    return order


def validate_beta(beta: float, name: str = "momentum_beta") -> float:
    """Checks a damping coefficient β ∈ (0, 1] and returns it as a float; raises ``ValueError`` otherwise."""
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not (0.0 < float(beta) <= 1.0):
        raise ValueError(f"`{name}` must be a number in (0, 1] (1 = no momentum), got {beta!r}.")
    return float(beta)


@cache
def _gamma(j: int) -> Fraction:
    """Adams-Bashforth backward-difference coefficient γ_j (γ = 1, 1/2, 5/12, 3/8, 251/720, ...), exactly.

    From the generating function: Σ_{i≤j} γ_i / (j + 1 − i) = 1.
    """
    if j < 0:
        return Fraction(0)
    return 1 - sum((_gamma(i) / (j + 1 - i) for i in range(j)), Fraction(0))


def backward_difference_coefficients(order: int) -> tuple[float, ...]:
    """γ_0 … γ_{order−1}: the AB weights of the backward differences ∇^j f_n."""
    validate_order(order, "order", max_order=64)
    return tuple(float(_gamma(j)) for j in range(order))


def _from_backward_differences(weights: list[Fraction]) -> tuple[float, ...]:
    # Σ_j w_j ∇^j f_n with ∇^j f_n = Σ_i (−1)^i C(j, i) f_{n−i}: collect the weight of f_{n−i} (newest first).
    c = len(weights)
    exact = [sum((weights[j] * (-1) ** i * math.comb(j, i) for j in range(i, c)), Fraction(0)) for i in range(c)]
    return tuple(float(x) for x in exact)


@cache
def adams_bashforth_coefficients(order: int) -> tuple[float, ...]:
    """Adams-Bashforth (PLMS) coefficients b_{order,i}, newest value first.

    Computed exactly in rational arithmetic and rounded once, so e.g. order 2 gives exactly ``(1.5, -0.5)`` and
    order 4 gives ``(55/24, -59/24, 37/24, -9/24)``.

    Args:
        order: the multistep order c ≥ 1.

    Returns:
        The c coefficients; they sum to 1.
    """
    validate_order(order, "order", max_order=64)
    return _from_backward_differences([_gamma(j) for j in range(order)])


@lru_cache(maxsize=4096)
def _ghvb_coefficients_exact(order: int, beta: Fraction) -> tuple[float, ...]:
    # Closed form (ours; it equals the paper's table): g_j = (β·γ_j + (1−β)·γ_{j−1})/β, u = Σ_{j<c} g_j ∇^j v_{n+1}.
    g = [(beta * _gamma(j) + (1 - beta) * _gamma(j - 1)) / beta for j in range(order)]
    return _from_backward_differences(g)


def ghvb_coefficients(order: int, beta: float) -> tuple[float, ...]:
    """GHVB combination coefficients C_{order,i}(β) on the velocity history, newest first (paper eq. 16-19).

    Every row sums to 1 and β = 1 gives the Adams-Bashforth row exactly. The closed form reproduces the paper's table
    for orders 1-5 (including the corrected sign of eq. 19 and the Algorithm 2 index typo, as in the authors' code).
    β is converted to an exact fraction first, so the only rounding is the final one.

    Args:
        order: the multistep order c ≥ 1.
        beta: damping coefficient β ∈ (0, 1].
    """
    validate_order(order, "order", max_order=64)
    return _ghvb_coefficients_exact(order, Fraction(validate_beta(beta, "beta")))


def momentum_number_to_order_beta(number: float, max_order: int = MAX_ORDER) -> tuple[int, float]:
    """Parses the papers' momentum number r into (order k, damping β) (paper §4.2, the authors' `update_order`).

    An integer r means k = r, β = 1 (plain PLMS-k); otherwise k = floor(r) + 1 and β = r − floor(r).
    E.g. 3.8 → (4, 0.8), 1.5 → (2, 0.5), 0.5 → (1, 0.5), 4.0 → (4, 1.0).

    Raises:
        ValueError: if r is not a finite number in (0, max_order].
    """
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise ValueError(f"`momentum_number` must be a finite number in (0, {max_order}], got {number!r}.")
    if not 0.0 < number <= max_order:
        raise ValueError(f"`momentum_number` must be in (0, {max_order}], got {number!r}.")
    # Round away binary noise (3.8 − 3 = 0.7999999999999998) so users get the β they wrote.
    whole = math.floor(round(number, 9))
    frac = round(number - whole, 9)
    if frac == 0.0:
        return int(whole), 1.0
    return int(whole) + 1, frac


def order_beta_to_momentum_number(order: int, beta: float) -> float:
    """Inverse of :func:`momentum_number_to_order_beta`: r = k − (1 − β), e.g. (4, 0.8) → 3.8."""
    validate_order(order, "order", max_order=64)
    validate_beta(beta, "beta")
    return round(order - (1.0 - beta), 9)


@dataclass
class MomentumState:
    """Per-generation state of a PLMS-family momentum sampler.

    Attributes:
        history: newest-first list of past ε's (HB, NT) or velocities (GHVB), at most ``order`` long.
        velocity: the heavy-ball velocity v_n, or None before the first step.

    Memory: at most ``order + 1`` latent-sized float32 tensors.

    Example:
        >>> import torch
        >>> state = MomentumState()
        >>> for eps in (torch.ones(2), torch.zeros(2)):
        ...     _ = ghvb_direction(state, eps, order=2, beta=0.5)
        >>> [v.tolist() for v in state.history], state.velocity.tolist()   # velocities, newest first
        ([[0.5, 0.5], [1.0, 1.0]], [0.5, 0.5])
        >>> state.reset(); state.history, state.velocity
        ([], None)
    """

    history: list[torch.Tensor] = field(default_factory=list)
    velocity: torch.Tensor | None = None

    def reset(self) -> None:
        """Forgets everything (start of a new generation)."""
        self.history.clear()
        self.velocity = None

    def check_shape(self, value: torch.Tensor) -> None:
        """Raises ``ValueError`` when ``value`` does not match the shape of the stored history (batch change mid-run)."""
        ref = self.velocity if self.velocity is not None else (self.history[0] if self.history else None)
        if ref is not None and ref.shape != value.shape:
            raise ValueError(
                f"`model_output` has shape {tuple(value.shape)} but this generation started with shape "
                f"{tuple(ref.shape)}; call `set_timesteps` before sampling a new batch."
            )


def combine(coefficients: tuple[float, ...], tensors: list[torch.Tensor]) -> torch.Tensor:
    """Σ_i c_i · tensors[i], evaluated left to right (newest first) in one fixed order.

    Keeping the order fixed is what makes β = 1 reproduce plain PLMS bit for bit.
    """
    out = tensors[0] * coefficients[0]
    for c, t in zip(coefficients[1:], tensors[1:]):
        out = out + t * c
    return out


def _push(state: MomentumState, value: torch.Tensor, order: int) -> None:
    state.history.insert(0, value)
    del state.history[order:]


def _ema(velocity: torch.Tensor | None, value: torch.Tensor, beta: float) -> torch.Tensor:
    # v_{n+1} = (1−β)·v_n + β·value (eq. 13 / eq. 15); the first call and β = 1 return value itself, exactly.
    if velocity is None or beta == 1.0:
        return value
    return velocity * (1.0 - beta) + value * beta


def hb_direction(state: MomentumState, eps: torch.Tensor, order: int, beta: float) -> torch.Tensor:
    """Polyak heavy ball on PLMS-k (paper eq. 13-14, Algorithm 1): v ← (1−β)v + β·Σ b_i ε_{n−i}; u = v.

    Warm-up uses the lower AB orders while the ε history is short. Convergence order is 1 for β ≠ 1 (Theorem 1).
    """
    state.check_shape(eps)
    _push(state, eps, order)
    p = combine(adams_bashforth_coefficients(len(state.history)), state.history)
    state.velocity = _ema(state.velocity, p, beta)
    return state.velocity


def nt_direction(state: MomentumState, eps: torch.Tensor, order: int, beta: float) -> torch.Tensor:
    """Nesterov variant (paper App. E): p = AB_k(ε history); v ← (1−β)v + βp; u = (1−β)v + βp.

    The first step returns p (= ε) exactly, which is what (1−β)p + βp equals in exact arithmetic.
    """
    state.check_shape(eps)
    first = state.velocity is None
    _push(state, eps, order)
    p = combine(adams_bashforth_coefficients(len(state.history)), state.history)
    state.velocity = _ema(state.velocity, p, beta)
    if first or beta == 1.0:
        return p
    return state.velocity * (1.0 - beta) + p * beta


def ghvb_direction(state: MomentumState, eps: torch.Tensor, order: int, beta: float) -> torch.Tensor:
    """Generalized heavy ball (paper eq. 15-19, Algorithm 2): v ← (1−β)v + βε; u = Σ_i C_{c,i}(β)·v_{n+1−i}.

    The EMA runs before the multistep combination, on a velocity history, and the coefficients depend on β so that
    order k is kept (Theorem 2). Warm-up uses lower-order GHVB rows with the same β (authors' code).
    """
    state.check_shape(eps)
    state.velocity = _ema(state.velocity, eps, beta)
    _push(state, state.velocity, order)
    return combine(ghvb_coefficients(len(state.history), beta), state.history)


_DIRECTIONS = {"hb": hb_direction, "ghvb": ghvb_direction, "nt": nt_direction}


def momentum_direction(method: str, state: MomentumState, eps: torch.Tensor, order: int, beta: float) -> torch.Tensor:
    """Dispatches to :func:`hb_direction`, :func:`ghvb_direction` or :func:`nt_direction` by name."""
    try:
        fn = _DIRECTIONS[method]
    except KeyError:
        raise ValueError(f"`momentum_method` must be one of {MOMENTUM_METHODS}, got {method!r}.") from None
    return fn(state, eps, order, beta)
