"""Math core of momentum attention: update rules on one attention layer's output trajectory.

Pure torch, no diffusers import. Let ``A_s`` be an attention module's output at denoising step ``s`` (one tensor of a
layer, one CFG context). Each rule keeps a small per-tensor state and returns what the layer should output:

* EMA smoothing: ``M_s = (1−β)·A_s + β·M_{s−1}``, ``M_{−1} = A_0``; returns ``M_s``. β = 0 is the identity.
* Heavy-ball look-ahead: ``V_s = μ·V_{s−1} + (A_s − A_{s−1})``, ``V_0 = 0``; returns ``A_s + λ·V_s``.
  λ = 0 is the identity.
* Momentum extrapolation (skip-and-extrapolate with a heavy-ball velocity): on each *computed* step ``s`` after the
  previous computed step ``s′``, ``V ← β·V + (A_s − A_{s′})/(s − s′)`` (a heavy-ball velocity in per-step units,
  ``V = 0`` before the second computed step); on a *skipped* step ``s`` it returns ``A_{s′} + λ·(s − s′)·V``.
  With β = 0 and λ = 1 this is linear extrapolation through the last two computed steps.
* First-order extrapolation, FasterCache's rule as diffusers 0.42 implements it (the baseline): keep the layer's
  last two *outputs* ``X_{s−1}, X_{s−2}`` (computed or themselves extrapolated; both equal ``A_0`` after one step)
  and return ``X_{s−1} + (X_{s−1} − X_{s−2})·w`` on a skipped step (``w = 0.5`` by default).

States are fp32 (fp64 inputs stay fp64) and results come back in the input's dtype. Everything is elementwise, so
batch items and batched CFG halves never mix, and nothing reads tensor values on the host.

Example:
    >>> import torch
    >>> state = TensorState()
    >>> [ema_step(state, torch.tensor([x]), beta=0.5).item() for x in (4.0, 0.0, 0.0)]
    [4.0, 2.0, 1.0]
    >>> state = TensorState()
    >>> extrapolate_observe(state, torch.tensor([1.0]), step=0, beta=0.0)
    >>> extrapolate_observe(state, torch.tensor([2.0]), step=2, beta=0.0)
    >>> extrapolate_predict(state, step=3, lookahead=1.0).item()   # slope 0.5 per step from step 2
    2.5
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inertia.core.tensors import compute_dtype

__all__ = [
    "TensorState",
    "ema_step",
    "extrapolate_observe",
    "extrapolate_predict",
    "first_order_observe",
    "first_order_predict",
    "heavy_ball_step",
    "state_dtype",
]


state_dtype = compute_dtype
"""Dtype of the buffers kept for a tensor of ``dtype``: float32, or float64 for float64 inputs."""


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    """A detached copy in the state dtype (a copy even when no conversion is needed: callers may reuse outputs)."""
    return tensor.detach().to(state_dtype(tensor.dtype), copy=True)


@dataclass
class TensorState:
    """Per-tensor state of one rule on one attention layer, one context and one output tensor.

    Attributes:
        previous: the last value the rule saw. EMA: the running mean ``M``; heavy ball: ``A_{s−1}``;
            extrapolation: ``A_{s′}``, the last computed output; first order: ``X_{s−1}``, the last output.
        older: first order only: ``X_{s−2}``, the output before ``previous``.
        velocity: heavy ball and extrapolation: ``V`` (None means 0).
        step: extrapolation only: the step index ``s′`` of ``previous``.

    Example:
        >>> import torch
        >>> state = TensorState()
        >>> state.is_empty
        True
        >>> _ = heavy_ball_step(state, torch.ones(2), beta=0.5, lookahead=1.0)
        >>> state.is_empty, state.num_buffers()   # A_0 recorded, no velocity yet
        (False, 1)
    """

    previous: torch.Tensor | None = None
    older: torch.Tensor | None = None
    velocity: torch.Tensor | None = None
    step: int = -1

    @property
    def is_empty(self) -> bool:
        """True before the first value was recorded."""
        return self.previous is None

    def num_buffers(self) -> int:
        """Number of activation-sized buffers held now (the state's memory in units of one output tensor)."""
        return sum(t is not None for t in (self.previous, self.older, self.velocity))


def ema_step(state: TensorState, attention: torch.Tensor, beta: float) -> torch.Tensor:
    """One EMA step: returns ``M_s = (1−β)·A_s + β·M_{s−1}``, ``attention`` itself on the first step.

    Args:
        state: the layer's `TensorState` (updated in place).
        attention: ``A_s``.
        beta: β in [0, 1).

    Returns:
        ``M_s`` in ``attention``'s dtype; on the first step (``M_{−1} = A_0``) the input object unchanged.
    """
    if state.previous is None:
        state.previous = _copy(attention)
        return attention
    # M_s = (1 − β)·A_s + β·M_{s−1}  (EMA)
    mean = attention.to(state.previous.dtype) * (1.0 - beta) + state.previous * beta
    state.previous = mean
    return mean.to(attention.dtype, copy=True)  # a copy: the caller may modify its output in place


def heavy_ball_step(state: TensorState, attention: torch.Tensor, beta: float, lookahead: float) -> torch.Tensor:
    """One heavy-ball look-ahead step: ``V_s = μ·V_{s−1} + (A_s − A_{s−1})``, returns ``A_s + λ·V_s``.

    Args:
        state: the layer's `TensorState` (updated in place).
        attention: ``A_s``.
        beta: the momentum μ in (−1, 1).
        lookahead: λ ≥ 0.

    Returns:
        ``A_s + λ·V_s`` in ``attention``'s dtype; on the first step (``V_0 = 0``) the input object unchanged.
    """
    current = _copy(attention)
    if state.previous is None:
        state.previous = current
        return attention
    difference = current - state.previous
    # V_s = μ·V_{s−1} + (A_s − A_{s−1})  (heavy ball; V_0 = 0)
    velocity = difference if state.velocity is None else state.velocity * beta + difference
    state.velocity = velocity
    state.previous = current
    # A_s + λ·V_s
    return (current + velocity * lookahead).to(attention.dtype)


def extrapolate_observe(state: TensorState, attention: torch.Tensor, step: int, beta: float) -> None:
    """Records a computed output ``A_s`` at step ``s`` and updates the heavy-ball velocity.

    ``V ← β·V + (A_s − A_{s′})/(s − s′)`` where ``s′`` is the previous computed step (no update on the first one).

    Args:
        state: the layer's `TensorState` (updated in place).
        attention: ``A_s``, the freshly computed output.
        step: ``s``; must be larger than the previous recorded step.
        beta: β in (−1, 1) (negative: reverse momentum, an acceleration-aware extrapolation).

    Raises:
        ValueError: when ``step`` does not increase.
    """
    current = _copy(attention)
    if state.previous is not None:
        gap = step - state.step
        if gap <= 0:
            raise ValueError(f"`step` must increase between observations, got {step} after {state.step}.")
        # per-step difference (A_s − A_{s′})/(s − s′)
        slope = (current - state.previous) / gap
        # V ← β·V + slope  (heavy ball over the computed steps; V = 0 before)
        state.velocity = slope if state.velocity is None else state.velocity * beta + slope
    state.previous = current
    state.step = step


def extrapolate_predict(
    state: TensorState, step: int, lookahead: float, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The skipped-step prediction ``Â_s = A_{s′} + λ·(s − s′)·V``.

    Args:
        state: a `TensorState` with at least one observation.
        step: ``s`` > ``s′``.
        lookahead: λ ≥ 0.
        dtype: dtype of the result (default: the state's).

    Returns:
        ``Â_s`` (a new tensor).

    Raises:
        ValueError: without an observation, or when ``step`` is not after the last observed step.
    """
    if state.previous is None:
        raise ValueError("extrapolate_predict needs at least one observed output; call extrapolate_observe first.")
    gap = step - state.step
    if gap <= 0:
        raise ValueError(f"`step` must come after the last observed step {state.step}, got {step}.")
    if state.velocity is None:
        prediction = state.previous.clone()
    else:
        # Â_s = A_{s′} + λ·(s − s′)·V
        prediction = state.previous + state.velocity * (lookahead * gap)
    return prediction if dtype is None else prediction.to(dtype)


def first_order_observe(state: TensorState, output: torch.Tensor) -> None:
    """Pushes the layer's latest output (computed or predicted) into FasterCache's two-slot cache.

    Like diffusers' ``FasterCacheBlockHook``: the first output fills both slots (``[A_0, A_0]``), then the cache
    shifts (``[X_{s−2}, X_{s−1}] ← [X_{s−1}, X_s]``).

    Args:
        state: the layer's `TensorState` (updated in place).
        output: the output the layer returned at this step.
    """
    current = _copy(output)
    state.older = current if state.previous is None else state.previous
    state.previous = current


def first_order_predict(state: TensorState, weight: float, dtype: torch.dtype | None = None) -> torch.Tensor:
    """FasterCache's skipped-step output ``X_{s−1} + (X_{s−1} − X_{s−2})·w``, in diffusers' order of operations.

    Args:
        state: a `TensorState` with at least one output pushed by `first_order_observe`.
        weight: ``w`` ≥ 0 (0.5 in diffusers by default).
        dtype: dtype of the result (default: the state's).

    Returns:
        The prediction (a new tensor).

    Raises:
        ValueError: when nothing was observed yet.
    """
    if state.previous is None or state.older is None:
        raise ValueError("first_order_predict needs at least one observed output; call first_order_observe first.")
    # X_{s−1} + (X_{s−1} − X_{s−2})·w   (diffusers faster_cache.py, `_compute_approximated_attention_output`)
    prediction = state.previous + (state.previous - state.older) * weight
    return prediction if dtype is None else prediction.to(dtype)
