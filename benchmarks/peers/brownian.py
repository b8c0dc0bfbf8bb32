"""A seeded Brownian motion in σ, queried in any order: the noise of k-diffusion's SDE samplers, without torchsde.

k-diffusion's SDE samplers (``sample_dpmpp_sde``, ``sample_dpmpp_2m_sde``, ``sample_dpmpp_3m_sde``) draw their noise
from ``BrownianTreeNoiseSampler`` (a ``torchsde.BrownianTree``): the normalised increment
``(W(σ_next) − W(σ))/sqrt(|σ_next − σ|)`` of one fixed Brownian path ``W``. Because the path does not depend on the
step sizes, the samples of one seed converge to one solution of the reverse SDE as the steps shrink, so a sampler's
strong error can be measured against a many-step run on the same path. torchsde is not available here; this module
builds the same kind of object from first principles.

The path lives on ``[σ_min, σ_max]`` with ``W(σ_min) = 0``. It is defined by dyadic refinement (Lévy's construction):
the value at the midpoint of an interval ``[a, b]`` is the Brownian-bridge draw
``(W(a) + W(b))/2 + sqrt((b − a)/4)·z`` with ``z`` a standard normal seeded by the interval's position in the tree,
so the value at a point never depends on which points were asked for before. A query descends until the interval
is shorter than ``resolution`` and interpolates linearly inside it.

Example:
    >>> x = torch.zeros(2, 3)
    >>> noise = BrownianNoiseSampler(x, 0.03, 14.6, seed=0)
    >>> a = noise(14.6, 3.0)
    >>> b = BrownianNoiseSampler(x, 0.03, 14.6, seed=0)(14.6, 3.0)
    >>> bool(torch.equal(a, b)), a.shape
    (True, torch.Size([2, 3]))
"""

from __future__ import annotations

import math

import torch

__all__ = ["BrownianNoiseSampler"]

_MASK = (1 << 63) - 1


def _mix(seed: int, key: int) -> int:
    """A 63-bit seed for tree node ``key`` (splitmix64 finaliser of the pair)."""
    z = (seed * 0x9E3779B97F4A7C15 + key * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & _MASK


class BrownianNoiseSampler:
    """``noise(sigma, sigma_next)``: the normalised increment of one seeded Brownian path, shaped like ``x``.

    Args:
        x: a tensor whose shape, dtype and device the noise takes.
        sigma_min, sigma_max: the interval the path is defined on (queries are clamped to it).
        seed: the path's seed; ``None`` draws one from torch's global generator (as k-diffusion does).
        resolution: queries closer than this (in σ) share one interpolated segment.
        cache_size: how many recent point values are kept (a sampler queries each σ about twice).
    """

    def __init__(
        self,
        x: torch.Tensor,
        sigma_min: float,
        sigma_max: float,
        seed: int | None = None,
        resolution: float = 1e-9,
        cache_size: int = 8,
    ) -> None:
        sigma_min, sigma_max = float(sigma_min), float(sigma_max)
        if not 0.0 <= sigma_min < sigma_max or not math.isfinite(sigma_max):
            raise ValueError(f"need 0 <= sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
        if not resolution > 0.0:
            raise ValueError(f"`resolution` must be > 0, got {resolution!r}")
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device
        self.low, self.high = sigma_min, sigma_max
        self.seed = int(torch.randint(0, 2**62, []).item()) if seed is None else int(seed)
        self.depth = max(1, math.ceil(math.log2((sigma_max - sigma_min) / resolution)))
        self._root_end = math.sqrt(sigma_max - sigma_min) * self._normal(1)  # W(σ_max) ~ N(0, σ_max − σ_min)
        self._cache: dict[float, torch.Tensor] = {}
        self._cache_size = cache_size

    def _normal(self, key: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(_mix(self.seed, key))
        return torch.randn(self.shape, generator=generator, dtype=torch.float64)

    def value(self, sigma: float) -> torch.Tensor:
        """``W(sigma)`` (float64, on the CPU)."""
        s = min(max(float(sigma), self.low), self.high)
        if s in self._cache:
            return self._cache[s]
        a, b = self.low, self.high
        w_a, w_b = torch.zeros(self.shape, dtype=torch.float64), self._root_end
        key = 1  # heap index of the interval [a, b] in the dyadic tree
        for _ in range(self.depth):
            if s == a or s == b:
                break
            m = 0.5 * (a + b)
            # Brownian bridge at the midpoint: mean (W(a)+W(b))/2, variance (b−a)/4 (Lévy's construction)
            w_m = 0.5 * (w_a + w_b) + math.sqrt(0.25 * (b - a)) * self._normal(2 * key)
            if s < m:
                b, w_b, key = m, w_m, 2 * key
            else:
                a, w_a, key = m, w_m, 2 * key + 1
        out = w_a if s == a else w_b if s == b else w_a + (w_b - w_a) * ((s - a) / (b - a))
        if self._cache_size > 0:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))  # oldest first
            self._cache[s] = out
        return out

    def __call__(self, sigma: torch.Tensor | float, sigma_next: torch.Tensor | float) -> torch.Tensor:
        """``(W(sigma_next) − W(sigma))/sqrt(|sigma_next − sigma|)``, a standard normal, in ``x``'s dtype/device."""
        s0, s1 = float(sigma), float(sigma_next)
        if s0 == s1:
            raise ValueError(f"the noise of an empty interval is undefined (sigma = sigma_next = {s0!r})")
        # k-diffusion's BatchedBrownianTree orders the endpoints and signs the increment (t0 < t1 internally)
        lo, hi = min(s0, s1), max(s0, s1)
        increment = (self.value(hi) - self.value(lo)) * (1.0 if s1 > s0 else -1.0)
        return (increment / math.sqrt(hi - lo)).to(dtype=self.dtype, device=self.device)
