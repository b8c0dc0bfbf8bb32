"""The guidance rules of diffusers' guiders, as pure functions and as combiners our classic hook can run.

A user at high guidance who does not use inertia reaches for one of diffusers' guiders (``diffusers.guiders``, modular
pipelines only) or for ``guidance_rescale``. To compare on pipelines that are not modular (SD, SDXL, our
``DigitsPipeline``), each rule is written here from its paper, in the diffusers-native form ``D_u + w (D_c − D_u)``
that the guiders use by default, and wrapped as a :class:`~inertia.core.guidance.config.Combiner` for
:func:`inertia.guidance.apply_guidance`. ``tests/bench_harness/peers/test_guidance.py`` checks every rule against
diffusers' own guider class on random tensors.

- :func:`rescale_guidance`: Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed" (WACV 2024,
  arXiv 2305.08891), §3.4; diffusers' ``guidance_rescale``.
- :func:`cfg_zero_star`: Fan et al., "CFG-Zero*: Improved Classifier-Free Guidance for Flow Matching Models" (arXiv
  2503.18886), §4: the optimized scale s* and zero-init.
- :func:`diffusers_apg`: diffusers' ``AdaptiveProjectedGuidance`` (Sadat et al., ICLR 2025, arXiv 2410.02416, Alg. 1,
  in diffusers' form ``D_u + w U`` on the raw model output; inertia's ``APG`` uses the paper's ``D_c + (w − 1) U`` on
  x0). Its momentum, clipping and projection are inertia's core :func:`~inertia.core.guidance.apg.apg_update`.
- :func:`tangential_cfg`: Kwon et al., "TCFG: Tangential Damping Classifier-free Guidance" (CVPR 2025, arXiv
  2503.18137): the unconditional prediction keeps only its component along the first right-singular vector of
  ``[D_c; D_u]``.
- :func:`frequency_decoupled`: Sadat et al., "Guidance in the Frequency Domain Enables High-Fidelity Sampling at Low
  CFG Scales" (arXiv 2506.19713), Alg. 2: CFG per level of a Laplacian pyramid (Burt & Adelson's 5x5 binomial
  kernel, reflect borders, bilinear resizing: the pyramid diffusers builds with kornia), one scale per level.
- :func:`magnitude_aware`: "MAMBO-G: Magnitude-Aware Mitigation for Boosted Guidance" (arXiv 2508.03442): the scale
  shrinks as ``1 + (w − 1) exp(−α ‖D_c − D_u‖ / ‖D_u‖)``.

Norms, inner products and standard deviations are per sample over all non-batch dims. Like the guiders, the rules act
on whatever prediction they get (``space="model_output"``: ε for the digits model, as in diffusers' modular SDXL);
``space="x0"`` runs them on denoised predictions instead. Not reproduced: ``use_original_formulation`` and the guiders'
``start``/``stop`` windows (defaults only), FDG's per-level windows and frequency-space rescaling.

Example:
    >>> import torch
    >>> from benchmarks.peers.guidance import CFGPeer, magnitude_aware
    >>> cond, uncond = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    >>> torch.allclose(magnitude_aware(cond, uncond, 7.5, alpha=0.0), uncond + 7.5 * (cond - uncond))
    True
    >>> pred, memory = CFGPeer(guidance_rescale=0.7).combine(cond, uncond, 7.5, step=0, memory=None)
    >>> tuple(pred.shape), memory is None
    ((2, 3, 8, 8), True)
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inertia.core.guidance.apg import apg_update, project

SPACES = ("model_output", "x0")
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # Burt & Adelson's 5-tap kernel, / 16 per axis


def _dims(x: torch.Tensor) -> list[int]:
    return list(range(1, x.ndim))


def _real(name: str, value: object, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``, else a ``ValueError`` naming ``name``, its value and the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= float(value) <= high:
        raise ValueError(f"`{name}` must be a real number in [{low}, {high}], got {value!r}.")
    return float(value)


def _space(value: object) -> str:
    if value not in SPACES:
        raise ValueError(f"`space` must be one of {SPACES}, got {value!r}.")
    return str(value)


def cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``D_u + w (D_c − D_u)``, the diffusers-native CFG every guider below starts from."""
    return uncond + scale * (cond - uncond)


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, rescale: float) -> torch.Tensor:
    """Lin et al. §3.4: ``φ · guided · std(D_c)/std(guided) + (1 − φ) · guided``, std per sample."""
    if rescale == 0.0:
        return guided
    ratio = cond.std(dim=_dims(cond), keepdim=True) / guided.std(dim=_dims(guided), keepdim=True)
    return rescale * (guided * ratio) + (1.0 - rescale) * guided  # std matched to D_c, blended by φ


def cfg_zero_star(
    cond: torch.Tensor, uncond: torch.Tensor, scale: float, step: int, zero_init_steps: int = 1
) -> torch.Tensor:
    """CFG-Zero* (§4): zero output on the first ``zero_init_steps`` steps, then CFG on ``s* D_u``.

    ``s* = ⟨D_c, D_u⟩ / ‖D_u‖²`` per sample (in float32, ‖·‖² + 1e-8 as diffusers does), the scale that best
    matches ``D_c`` along ``D_u``; the guided prediction is ``s* D_u + w (D_c − s* D_u)``.
    """
    if step < zero_init_steps:
        return torch.zeros_like(cond)  # zero-init: the first steps do not move along the prediction
    c, u = cond.flatten(1).float(), uncond.flatten(1).float()
    s_star = ((c * u).sum(1, keepdim=True) / ((u * u).sum(1, keepdim=True) + 1e-8)).to(cond.dtype)  # optimized scale
    scaled = uncond * s_star.view(-1, *([1] * (cond.ndim - 1)))
    return scaled + scale * (cond - scaled)


def diffusers_apg(
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scale: float,
    memory: torch.Tensor | None,
    *,
    momentum: float | None = None,
    norm_threshold: float = 15.0,
    eta: float = 1.0,
    norm_dims: tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """diffusers' APG guider: ``D_u + w U`` with APG's update ``U`` (Alg. 1: momentum, clipping, projection).

    Defaults are the guider's: no momentum (None), r = 15 (``<= 0`` disables clipping), η = 1 (no projection), so at
    its defaults it is CFG with the update clipped to norm 15. Returns the prediction and the momentum buffer.
    """
    dims = "per_sample" if norm_dims is None else norm_dims
    update, buffer = apg_update(
        cond - uncond,
        cond,
        memory,
        eta=eta,
        momentum=0.0 if momentum is None else momentum,
        norm_threshold=norm_threshold if norm_threshold > 0 else math.inf,
        norm_dims=dims,
    )
    return uncond + scale * update, buffer  # diffusers' form: from D_u, full w (the paper: D_c + (w − 1)U)


def tangential_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """TCFG: ``D_u`` projected onto the first right-singular vector ``v₁`` of the per-sample 2 x N matrix
    ``[D_c; D_u]`` (its tangential part damped), then CFG from it (float32, as diffusers computes it)."""
    stacked = torch.stack([cond, uncond], dim=1).flatten(2).float()  # (B, 2, N)
    v1 = torch.linalg.svd(stacked, full_matrices=False).Vh[:, :1]  # (B, 1, N): the dominant direction
    u = uncond.flatten(1).float().unsqueeze(1)
    damped = ((u @ v1.transpose(1, 2)) @ v1).reshape(uncond.shape).to(cond.dtype)  # ⟨D_u, v₁⟩ v₁
    return damped + scale * (cond - damped)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """5x5 binomial blur per channel with reflect borders."""
    tap = torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device) / 16.0
    kernel = (tap[:, None] * tap[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def _down(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(_blur(x), size=(x.shape[-2] // 2, x.shape[-1] // 2), mode="bilinear", align_corners=False)


def _up(x: torch.Tensor) -> torch.Tensor:
    return _blur(F.interpolate(x, size=(2 * x.shape[-2], 2 * x.shape[-1]), mode="bilinear", align_corners=False))


def check_pyramid(shape: tuple[int, ...], levels: int) -> None:
    """Raises a ``ValueError`` unless a ``levels``-level pyramid of a ``(B, C, H, W)`` tensor needs no padding."""
    if len(shape) != 4:
        raise ValueError(f"frequency-decoupled guidance needs (B, C, H, W) predictions, got shape {tuple(shape)}.")
    stride = 2 ** (levels - 1)
    height, width = shape[-2:]
    if height % stride or width % stride or (levels > 1 and min(height, width) // (stride // 2) < 3):
        raise ValueError(
            f"a {levels}-level pyramid needs H and W divisible by {stride} and at least {3 * stride // 2 or 1}, got "
            f"{height}x{width}."
        )


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels, finest first; the last is the coarsest Gaussian level (Alg. 2's frequency transform)."""
    gaussian = [x]
    for _ in range(levels - 1):
        gaussian.append(_down(gaussian[-1]))
    return [fine - _up(coarse) for fine, coarse in itertools.pairwise(gaussian)] + [gaussian[-1]]


def from_pyramid(bands: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`laplacian_pyramid` (upsample-and-blur the coarse level, add each band)."""
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = _up(image) + band
    return image


def frequency_decoupled(
    cond: torch.Tensor,
    uncond: torch.Tensor,
    level_scales: tuple[float, ...],
    parallel_weights: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """FDG (Alg. 2): CFG with scale ``level_scales[k]`` on pyramid level k (finest first), then the inverse transform.

    ``parallel_weights[k] != 1`` scales the part of level k's update parallel to ``D_c``'s level k (projection in
    float64), as APG does.
    """
    check_pyramid(tuple(cond.shape), len(level_scales))
    weights = parallel_weights or (1.0,) * len(level_scales)
    bands_c, bands_u = laplacian_pyramid(cond, len(level_scales)), laplacian_pyramid(uncond, len(level_scales))
    guided = []
    for c, u, w, weight in zip(bands_c, bands_u, level_scales, weights):
        shift = c - u
        if weight != 1.0:
            parallel, orthogonal = project(shift, c)
            shift = orthogonal + weight * parallel
        guided.append(u + w * shift)  # per-level CFG
    return from_pyramid(guided)


def magnitude_aware(cond: torch.Tensor, uncond: torch.Tensor, scale: float, alpha: float = 8.0) -> torch.Tensor:
    """MAMBO-G: CFG with ``w' = 1 + (w − 1) exp(−α ‖D_c − D_u‖/‖D_u‖)`` per sample."""
    shift = cond - uncond
    ratio = torch.linalg.vector_norm(shift, dim=_dims(shift), keepdim=True) / torch.linalg.vector_norm(
        uncond, dim=_dims(uncond), keepdim=True
    )
    return uncond + (1.0 + (scale - 1.0) * torch.exp(-alpha * ratio)) * shift  # large updates get a smaller scale


# ------------------------------------------------------------------------------------------ combiners for the hook
@dataclass(frozen=True)
class _Peer:
    """Shared members of the combiners: ``space``, ``guidance_rescale`` (φ, applied last) and ``is_identity``."""

    guidance_rescale: float = 0.0
    space: str = "model_output"

    def __post_init__(self) -> None:
        object.__setattr__(self, "guidance_rescale", _real("guidance_rescale", self.guidance_rescale, 0.0, 1.0))
        object.__setattr__(self, "space", _space(self.space))

    @property
    def is_identity(self) -> bool:
        """Always False: the hook runs the rule (even where it reduces to CFG)."""
        return False

    def rule(self, cond: torch.Tensor, uncond: torch.Tensor, scale: float, step: int, memory: torch.Tensor | None):
        raise NotImplementedError

    def combine(
        self, cond: torch.Tensor, uncond: torch.Tensor, scale: float, *, step: int, memory: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The guided prediction (then ``guidance_rescale``) and the new memory (see ``Combiner``)."""
        pred, memory = self.rule(cond, uncond, scale, step, memory)
        return rescale_guidance(pred, cond, self.guidance_rescale), memory


@dataclass(frozen=True)
class CFGPeer(_Peer):
    """diffusers' ``ClassifierFreeGuidance`` (``guidance_rescale`` φ in [0, 1]; 0.7 is the classic SD setting).

    Example:
        >>> CFGPeer(guidance_rescale=0.7).guidance_rescale
        0.7
    """

    def rule(self, cond, uncond, scale, step, memory):
        return cfg(cond, uncond, scale), memory


@dataclass(frozen=True)
class CFGZeroStar(_Peer):
    """diffusers' ``ClassifierFreeZeroStarGuidance``: :func:`cfg_zero_star` (``zero_init_steps`` >= 0, default 1).

    With ``guidance_rescale > 0`` diffusers rescales the zero-init steps' zeros to NaN; here they stay zero.

    Example:
        >>> CFGZeroStar().zero_init_steps
        1
    """

    zero_init_steps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        steps = self.zero_init_steps
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"`zero_init_steps` must be an int >= 0, got {steps!r}.")

    def rule(self, cond, uncond, scale, step, memory):
        return cfg_zero_star(cond, uncond, scale, step, self.zero_init_steps), memory

    def combine(self, cond, uncond, scale, *, step, memory):
        if step < self.zero_init_steps:
            return torch.zeros_like(cond), memory
        return super().combine(cond, uncond, scale, step=step, memory=memory)


@dataclass(frozen=True)
class DiffusersAPG(_Peer):
    """diffusers' ``AdaptiveProjectedGuidance`` at its defaults unless told: :func:`diffusers_apg`.

    Args:
        momentum: β, None (off, the default) or a finite number; the buffer advances once per sampler step.
        norm_threshold: r >= 0 (0 disables clipping), default 15.
        eta: η in [0, 1], default 1 (no projection).
        norm_dims: None (all non-batch dims) or a tuple of non-batch dims.

    Example:
        >>> DiffusersAPG().norm_threshold, DiffusersAPG().eta, DiffusersAPG().momentum
        (15.0, 1.0, None)
    """

    momentum: float | None = None
    norm_threshold: float = 15.0
    eta: float = 1.0
    norm_dims: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.momentum is not None:
            object.__setattr__(self, "momentum", _real("momentum", self.momentum, -math.inf, math.inf))
            if not math.isfinite(self.momentum):
                raise ValueError(f"`momentum` must be None or finite, got {self.momentum!r}.")
        object.__setattr__(self, "norm_threshold", _real("norm_threshold", self.norm_threshold, 0.0, math.inf))
        object.__setattr__(self, "eta", _real("eta", self.eta, 0.0, 1.0))
        dims = self.norm_dims
        if dims is not None and not (
            isinstance(dims, tuple) and dims and all(isinstance(d, int) and not isinstance(d, bool) for d in dims)
        ):
            raise ValueError(f"`norm_dims` must be None or a non-empty tuple of non-batch dims, got {dims!r}.")

    def rule(self, cond, uncond, scale, step, memory):
        return diffusers_apg(
            cond,
            uncond,
            scale,
            memory,
            momentum=self.momentum,
            norm_threshold=self.norm_threshold,
            eta=self.eta,
            norm_dims=self.norm_dims,
        )


@dataclass(frozen=True)
class TangentialCFG(_Peer):
    """diffusers' ``TangentialClassifierFreeGuidance``: :func:`tangential_cfg`.

    Example:
        >>> TangentialCFG().space
        'model_output'
    """

    def rule(self, cond, uncond, scale, step, memory):
        return tangential_cfg(cond, uncond, scale), memory


@dataclass(frozen=True)
class FrequencyDecoupled(_Peer):
    """diffusers' ``FrequencyDecoupledGuidance`` with level scales ``scale_factors[k] · w`` (finest level first).

    The guider's default ``guidance_scales=[10, 5]`` is ``scale_factors=(1.0, 0.5)`` at w = 10: the high
    frequencies get the pipeline's w, the low ones half of it. diffusers needs kornia for it; this needs nothing.

    Args:
        scale_factors: one positive factor per pyramid level (1-6 levels).
        parallel_weights: None (1 everywhere, plain CFG per level) or one weight in [0, 1] per level.

    Example:
        >>> FrequencyDecoupled().scale_factors
        (1.0, 0.5)
    """

    scale_factors: tuple[float, ...] = (1.0, 0.5)
    parallel_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        factors = self.scale_factors
        if not isinstance(factors, tuple) or not 1 <= len(factors) <= 6:
            raise ValueError(f"`scale_factors` must be a tuple of 1-6 positive numbers, got {factors!r}.")
        object.__setattr__(self, "scale_factors", tuple(_real("scale_factors", f, 1e-12, math.inf) for f in factors))
        weights = self.parallel_weights
        if weights is not None:
            if not isinstance(weights, tuple) or len(weights) != len(factors):
                raise ValueError(
                    f"`parallel_weights` must be None or a tuple of {len(factors)} numbers in [0, 1] (one per level), "
                    f"got {weights!r}."
                )
            object.__setattr__(
                self, "parallel_weights", tuple(_real("parallel_weights", w, 0.0, 1.0) for w in weights)
            )

    def rule(self, cond, uncond, scale, step, memory):
        scales = tuple(factor * scale for factor in self.scale_factors)
        return frequency_decoupled(cond, uncond, scales, self.parallel_weights), memory


@dataclass(frozen=True)
class MagnitudeAware(_Peer):
    """diffusers' ``MagnitudeAwareGuidance``: :func:`magnitude_aware` (α >= 0, default 8).

    Example:
        >>> MagnitudeAware().alpha
        8.0
    """

    alpha: float = 8.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "alpha", _real("alpha", self.alpha, 0.0, 1e6))

    def rule(self, cond, uncond, scale, step, memory):
        return magnitude_aware(cond, uncond, scale, self.alpha), memory


PEERS: dict[str, _Peer] = {
    "CFG + rescale 0.7": CFGPeer(guidance_rescale=0.7),
    "CFG-Zero*": CFGZeroStar(),
    "CFG-Zero*, no zero-init": CFGZeroStar(zero_init_steps=0),
    "APG (diffusers defaults)": DiffusersAPG(),
    "tangential CFG": TangentialCFG(),
    "frequency-decoupled": FrequencyDecoupled(),
    "magnitude-aware": MagnitudeAware(),
}
"""The peers of the guidance benchmark, at diffusers' defaults (plain CFG is the pipeline's own), plus CFG-Zero*
with its optimized scale alone: its zero-init step, meant for flow models, zeroes an ε model's noise prediction, which
makes the first x0 estimate x_T/α_T."""
