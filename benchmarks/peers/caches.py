"""The caching rules of diffusers' cache hooks, written as small pure functions (the peers of `extrapolate`).

Benchmark reference code, not product code. Pure torch, no diffusers import; the adapters that
run these rules on a denoiser are in :mod:`benchmarks.peers.cache_hooks`. Each rule is transcribed from its
paper and from diffusers 0.42.1's hook (``diffusers/hooks/<name>.py``), in the same order of operations, so that
where diffusers' hook attaches (transformer blocks) both give the same outputs
(``tests/bench_harness/peers/test_caches.py``).

* **TaylorSeer** (Liu et al. 2025, "From Reusing to Forecasting: Accelerating Diffusion Models with TaylorSeers",
  arXiv 2503.06923, Eq. 8-9): on computed steps keep the finite-difference estimates of a module output's
  derivatives along the step index, ``Δ^{j+1} = (Δ^j_now − Δ^j_then) / (s − s′)``, up to ``max_order``; on
  skipped steps forecast ``Σ_j Δ^j · k^j / j!`` with ``k`` steps since the last computed one. Schedule: compute
  the first ``before`` steps, then every ``interval``-th (diffusers' ``cache_interval``).
* **Pyramid Attention Broadcast** (PAB; Zhao et al. 2024, "Real-Time Video Generation with Pyramid Attention
  Broadcast", arXiv 2408.12588, Sec. 3.2): reuse the attention output of the last computed step, recomputing
  every ``block_skip_range``-th call, inside a timestep range.
* **First Block Cache** (ParaAttention's FBCache, after TeaCache, Liu et al. 2024, arXiv 2411.19108): compute the
  first block; if the relative L1 change of its residual since the last fully computed step is at most
  ``threshold``, skip the remaining blocks and reuse their cached residual.
* **MagCache** (Ma et al. 2025, "MagCache: Fast Video Generation with Magnitude-Aware Cache", arXiv 2506.09045,
  Sec. 3.3): the ratio of residual magnitudes between consecutive steps is nearly model-independent; accumulate
  ``|1 − Π ratio|`` over skipped steps and skip while it stays at most ``threshold`` and at most ``max_skip_steps``
  steps were skipped in a row. The ratios are calibrated once per model (`magnitude_ratio`).

FasterCache's attention rule (Lv et al. 2024, arXiv 2410.19355, Eq. 7) is inertia's own ``first_order`` mode
(:func:`inertia.core.attention.rules.first_order_predict`), which is tested against diffusers' hook already.

Example:
    >>> import torch
    >>> factors = taylor_update(None, [torch.tensor([1.0])], delta_step=None, max_order=1)
    >>> factors = taylor_update(factors, [torch.tensor([3.0])], delta_step=2, max_order=1)
    >>> taylor_predict(factors, step_offset=1, dtypes=[torch.float32])[0].item()   # 3 + 1 * (3 - 1) / 2
    4.0
    >>> [taylorseer_computes(s, interval=2, before=4) for s in range(8)]
    [True, True, True, True, False, True, False, True]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "FirstBlockCache",
    "MagCache",
    "MagCacheAccumulator",
    "PyramidBroadcast",
    "TaylorSeer",
    "fbc_should_compute",
    "magcache_should_compute",
    "magnitude_ratio",
    "nearest_interp",
    "pab_computes",
    "taylor_predict",
    "taylor_update",
    "taylorseer_computes",
]


def _positive_int(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    return value


def _non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return float(value)


# ---------------------------------------------------------------------------------------------------------------
# TaylorSeer
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaylorSeer:
    """TaylorSeer on attention outputs (diffusers' ``TaylorSeerCacheConfig`` defaults: interval 5, before 3).

    Args:
        max_order: highest Taylor order (1: linear forecast, 2: adds the curvature term), an integer >= 1.
        interval: ``cache_interval``: after the warm-up, one computed step every ``interval`` steps (>= 1).
        before: ``disable_cache_before_step``: steps ``0 .. before−1`` are always computed (>= 1).
        after: ``disable_cache_after_step``: steps ``>= after`` are always computed (None: never).

    Example:
        >>> TaylorSeer(max_order=2, interval=3, before=4).num_skipped(20)
        11
    """

    max_order: int = 1
    interval: int = 5
    before: int = 3
    after: int | None = None

    def __post_init__(self) -> None:
        _positive_int("max_order", self.max_order)
        _positive_int("interval", self.interval)
        _positive_int("before", self.before)
        if self.after is not None:
            _positive_int("after", self.after)

    def computes(self, step: int) -> bool:
        """Whether step ``step`` is computed (see `taylorseer_computes`)."""
        return taylorseer_computes(step, self.interval, self.before, self.after)

    def num_skipped(self, num_steps: int) -> int:
        """How many of ``num_steps`` denoiser calls forecast instead of computing."""
        return sum(not self.computes(s) for s in range(num_steps))


def taylorseer_computes(step: int, interval: int, before: int, after: int | None = None) -> bool:
    """TaylorSeer's schedule as diffusers counts it: warm-up, then one computed step per ``interval``.

    Computed when ``step < before``, when ``(step − before − 1) % interval == 0`` or when ``step >= after``
    (diffusers ``TaylorSeerCacheHook._measure_should_compute``; step ``before`` itself is forecast from the warm-up).
    """
    return step < before or (step - before - 1) % interval == 0 or (after is not None and step >= after)


def taylor_update(
    factors: list[list[torch.Tensor]] | None,
    outputs: Sequence[torch.Tensor],
    delta_step: int | None,
    max_order: int,
    dtype: torch.dtype = torch.float32,
) -> list[list[torch.Tensor]]:
    """New Taylor factors from freshly computed outputs: ``Δ^0 = A_s`` and recursive divided differences.

    Args:
        factors: per output tensor, the factors ``[Δ^0, Δ^1, ...]`` of the last computed step (None: first update).
        outputs: the module's outputs at this step (one tensor per output position).
        delta_step: ``s − s′``, steps since the last update (ignored on the first update; must not be 0).
        max_order: highest order kept.
        dtype: storage dtype of the factors (diffusers' ``taylor_factors_dtype``).

    Returns:
        The factors of this step, per output tensor.
    """
    updated = []
    for i, features in enumerate(outputs):
        new = [features]
        if factors is not None:
            if delta_step == 0:
                raise ValueError("`delta_step` cannot be 0 for a TaylorSeer update.")
            previous = factors[i] if i < len(factors) else []
            for j in range(max_order):
                if j >= len(previous) or previous[j].shape != new[j].shape:
                    break  # no older estimate of this order (or a shape change): the expansion stops here
                # Δ^{j+1} ≈ (Δ^j(s) − Δ^j(s′)) / (s − s′)   (TaylorSeer Eq. 8, finite differences)
                new.append((new[j] - previous[j].to(features.dtype)) / delta_step)
        updated.append([factor.to(dtype) for factor in new])
    return updated


def taylor_predict(
    factors: list[list[torch.Tensor]], step_offset: int, dtypes: Sequence[torch.dtype]
) -> list[torch.Tensor]:
    """The forecast ``Σ_j Δ^j · k^j / j!`` at ``k = step_offset`` steps after the last update (TaylorSeer Eq. 9).

    Every output uses as many orders as the first output has (diffusers' convention).
    """
    if not factors:
        raise ValueError("taylor_predict needs the factors of at least one computed step.")
    orders = len(factors[0])
    outputs = []
    for per_output, dtype in zip(factors, dtypes):
        output = torch.zeros_like(per_output[0], dtype=dtype)
        for order in range(orders):
            # k^j / j!: the Taylor coefficient of order j
            output = output + per_output[order].to(dtype) * (step_offset**order / math.factorial(order))
        outputs.append(output)
    return outputs


# ---------------------------------------------------------------------------------------------------------------
# Pyramid Attention Broadcast
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PyramidBroadcast:
    """PAB on attention outputs (diffusers' ``PyramidAttentionBroadcastConfig``, spatial attention).

    Args:
        block_skip_range: recompute every ``block_skip_range``-th call (``N``: ``N − 1`` reuses in a row), >= 1.
        timestep_range: ``(low, high)``: reuse only while ``low < t < high`` (diffusers timesteps; PAB's default
            ``(100, 800)``).

    Example:
        >>> pab = PyramidBroadcast(block_skip_range=2)
        >>> [pab.computes(i, t, has_cache=i > 0) for i, t in enumerate((999, 750, 500, 250, 50))]
        [True, False, True, False, True]
    """

    block_skip_range: int = 2
    timestep_range: tuple[float, float] = (100, 800)

    def __post_init__(self) -> None:
        _positive_int("block_skip_range", self.block_skip_range)
        low, high = self.timestep_range
        if not low < high:
            raise ValueError(f"`timestep_range` must be (low, high) with low < high, got {self.timestep_range!r}.")

    def computes(self, iteration: int, timestep: float, has_cache: bool) -> bool:
        """Whether call ``iteration`` (at ``timestep``) computes attention (see `pab_computes`)."""
        return pab_computes(iteration, timestep, has_cache, self.block_skip_range, self.timestep_range)


def pab_computes(
    iteration: int, timestep: float, has_cache: bool, block_skip_range: int, timestep_range: tuple[float, float]
) -> bool:
    """PAB's rule: compute without a cache, on the first call, outside the timestep range or every N-th call."""
    inside = timestep_range[0] < timestep < timestep_range[1]
    return not has_cache or iteration == 0 or not inside or iteration % block_skip_range == 0


# ---------------------------------------------------------------------------------------------------------------
# First Block Cache
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirstBlockCache:
    """First Block Cache (diffusers' ``FirstBlockCacheConfig``; default threshold 0.05).

    Args:
        threshold: skip the rest of the network while the first block's residual changed by at most this
            relative L1 amount since the last fully computed step; >= 0 (0 never skips).

    Example:
        >>> FirstBlockCache(threshold=0.1).threshold
        0.1
    """

    threshold: float = 0.05

    def __post_init__(self) -> None:
        _non_negative("threshold", self.threshold)


def fbc_should_compute(residual: torch.Tensor, previous: torch.Tensor | None, threshold: float) -> bool:
    """Whether the remaining blocks must run: ``mean|r − r′| / mean|r′| > threshold`` (one host read).

    ``residual`` is the first block's output minus its input now, ``previous`` the same at the last fully computed
    step (None: compute).
    """
    if previous is None:
        return True
    # relative L1 change of the first block's residual (TeaCache's indicator, FBCache's form)
    change = (residual - previous).abs().mean() / previous.abs().mean()
    return change.item() > threshold


# ---------------------------------------------------------------------------------------------------------------
# MagCache
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MagCache:
    """MagCache (diffusers' ``MagCacheConfig``: threshold 0.06, ``max_skip_steps`` 3, retention 0.2).

    Args:
        threshold: the largest accumulated error ``Σ |1 − Π ratio|`` that may be skipped over, >= 0.
        max_skip_steps: ``K``, the most consecutive skipped steps, >= 1.
        retention_ratio: the first ``round(retention_ratio · num_steps)`` steps are always computed, in [0, 1].
        mag_ratios: the calibrated per-step magnitude ratios (None: calibrate first, see `magnitude_ratio`).

    Example:
        >>> MagCache(threshold=0.1, mag_ratios=(1.0, 1.0, 0.99, 0.98)).retention_step(4)
        1
    """

    threshold: float = 0.06
    max_skip_steps: int = 3
    retention_ratio: float = 0.2
    mag_ratios: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _non_negative("threshold", self.threshold)
        _positive_int("max_skip_steps", self.max_skip_steps)
        if not 0.0 <= _non_negative("retention_ratio", self.retention_ratio) <= 1.0:
            raise ValueError(f"`retention_ratio` must be in [0, 1], got {self.retention_ratio!r}.")

    def retention_step(self, num_steps: int) -> int:
        """The first step that may be skipped (diffusers rounds half up)."""
        return int(self.retention_ratio * num_steps + 0.5)

    def ratios(self, num_steps: int) -> torch.Tensor:
        """The calibrated ratios resampled to ``num_steps`` (float32, nearest neighbour, as diffusers does)."""
        if self.mag_ratios is None:
            raise ValueError("`mag_ratios` is None: calibrate the model first (magnitude_ratio).")
        ratios = torch.tensor(self.mag_ratios)
        return ratios if len(ratios) == num_steps else nearest_interp(ratios, num_steps)


@dataclass
class MagCacheAccumulator:
    """MagCache's running products over the current run of skipped steps."""

    ratio: float | torch.Tensor = 1.0
    error: float | torch.Tensor = 0.0
    steps: int = 0

    def reset(self) -> None:
        """Back to no skipped steps (after a computed step)."""
        self.ratio, self.error, self.steps = 1.0, 0.0, 0


def magcache_should_compute(
    accumulator: MagCacheAccumulator,
    scale: float | torch.Tensor,
    step: int,
    retention_step: int,
    threshold: float,
    max_skip_steps: int,
    has_residual: bool,
) -> bool:
    """MagCache's decision at ``step`` (updates ``accumulator``); ``scale`` is this step's calibrated ratio."""
    if step < retention_step:
        return True
    accumulator.ratio = accumulator.ratio * scale  # Π γ over the skipped run (MagCache Sec. 3.3)
    accumulator.steps += 1
    accumulator.error = accumulator.error + abs(1.0 - accumulator.ratio)  # accumulated error Σ |1 − Π γ|
    if has_residual and accumulator.error <= threshold and accumulator.steps <= max_skip_steps:
        return False
    accumulator.reset()
    return True


def magnitude_ratio(current: torch.Tensor, previous: torch.Tensor | None, dim: int = -1) -> float:
    """One calibration ratio: the mean over positions of ``‖r_s‖ / ‖r_{s−1}‖`` (norms over ``dim``); 1 at first."""
    if previous is None:
        return 1.0
    current_norm = torch.linalg.norm(current.float(), dim=dim)
    previous_norm = torch.linalg.norm(previous.float(), dim=dim)
    return float((current_norm / (previous_norm + 1e-8)).mean())


def nearest_interp(values: torch.Tensor, length: int) -> torch.Tensor:
    """``values`` resampled to ``length`` entries by nearest neighbour on a uniform grid (ends kept)."""
    if length == 1:
        return values[-1:]
    scale = (len(values) - 1) / (length - 1)
    index = torch.round(torch.arange(length, dtype=torch.float32) * scale).long()
    return values[index]
