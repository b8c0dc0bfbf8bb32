"""Guidance method configurations: :class:`CFG`, :class:`APG` and :class:`HiGS`.

Each is a frozen dataclass validated at construction, so a bad value fails before any pipeline work. The configs
carry no state: the per-generation state lives in :class:`inertia.core.guidance.state.GuidanceState`.

Paper notation ↔ code names: APG's η → ``eta``, β → ``momentum``, r → ``norm_threshold``; HiGS's w_h → ``weight``,
α → ``ema``, η → ``eta``, R_c → ``cutoff``, λ → ``sharpness``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from inertia.core.guidance.apg import NORM_DIMS, NormDims

if TYPE_CHECKING:
    import torch
from inertia.core.presets.apg import apg_preset
from inertia.core.validation import check_choice, check_range, check_real

SPACES = ("x0", "model_output")
"""Where a nonlinear method runs: on denoised (x0) predictions (the papers) or on raw model outputs."""

TIME_MODES = ("timestep_fraction", "sigma_fraction")
"""HiGS time normalisation: ``timestep / num_train_timesteps`` (σ for flow models), or σ/(1+σ) for VP models."""


@dataclass(frozen=True)
class CFG:
    """Plain classifier-free guidance, ``D_u + w (D_c − D_u)``, computed exactly as diffusers' pipelines do.

    Applying ``CFG()`` alone reproduces the stock pipeline bit for bit; it is the neutral baseline that
    :class:`APG` replaces. The scale ``w`` is the pipeline's ``guidance_scale``.

    Example:
        >>> from inertia.guidance import CFG
        >>> CFG().is_identity
        True
    """

    @property
    def is_identity(self) -> bool:
        """Always True: CFG is what the pipeline computes anyway."""
        return True


@dataclass(frozen=True)
class APG:
    """Adaptive projected guidance (Sadat, Hilliges & Weber, ICLR 2025, Alg. 1), paper formulation.

    Per step, with ``Δ = D_c − D_u`` on denoised predictions: momentum ``M = Δ + βM`` (a sum, not an EMA), norm
    clipping ``Δ ← M·min(1, r/‖M‖)``, projection onto ``D_c``, and ``D = D_c + (w − 1)(Δ⊥ + η Δ∥)``. The scale
    ``w`` is the pipeline's ``guidance_scale`` (diffusers convention, ``w = 1`` means no guidance).

    APG can be limited to part of the schedule (a guidance interval, Kynkäänniemi et al. 2024): on steps outside it
    the step is plain CFG, bit for bit, and the momentum buffer is left as it is (not updated, not reset), so it
    resumes where it stopped, as in diffusers' ``AdaptiveProjectedGuidance``, whose buffer only changes inside its
    window. Both limits below apply together.

    Args:
        eta: weight η of the parallel component, in [0, 1]; 0 removes the saturating part (paper default).
        momentum: β in (−1, 1); negative is the paper's "reverse momentum" (−0.5 for SDXL, −0.75 for EDM2); 0 off.
        norm_threshold: r > 0, per-sample L2 bound on the update in the units of ``space`` (x0 latents: 15 for
            SDXL at 1024², about 7.5 for SD 1.5 at 512²); ``float("inf")`` disables clipping.
        space: ``"x0"`` (the paper: project denoised predictions) or ``"model_output"`` (raw ε / v / flow outputs,
            as diffusers' modular ``AdaptiveProjectedGuidance`` does; it barely differs from CFG, paper Fig. 12).
        start: first fraction of the denoising steps with APG, in [0, 1]. As in diffusers' guiders, APG runs on
            step ``i`` of ``n`` when ``int(start·n) <= i < int(stop·n)``; ``n`` counts sampler steps (a Heun step's
            two model calls are one step).
        stop: end fraction, in [start, 1]; ``start == stop`` never applies APG (plain CFG throughout).
        sigma_range: ``(σ_lo, σ_hi)``: APG only on model calls with ``σ_lo < σ <= σ_hi`` (Kynkäänniemi et al.'s
            half-open interval), σ the noise level of the call: the scheduler's σ = √((1 − ᾱ)/ᾱ) for VP models, the
            flow σ in [0, 1] for SD3-style models. ``0 <= σ_lo <= σ_hi``; σ_hi may be ``inf``. None: every σ.
        norm_dims: the dims norm clipping and projection reduce over: ``"per_sample"`` (all non-batch dims, the
            paper), ``"per_frame"`` (C, H, W of 5-D ``(B, C, F, H, W)`` video latents: one norm per sample and frame)
            or a tuple of non-batch dims. Checked against the latent's shape at call time.

    Raises:
        ValueError: for any value outside the ranges above.

    Example:
        >>> from inertia.guidance import APG
        >>> APG() == APG(eta=0.0, momentum=-0.5, norm_threshold=15.0, space="x0", start=0.0, stop=1.0)
        True
        >>> APG(eta=1.0, momentum=0.0, norm_threshold=float("inf")).is_identity  # reduces exactly to CFG
        True
        >>> [APG(start=0.2, stop=0.6).in_interval(step, 10) for step in (1, 2, 5, 6)]  # steps 2-5 of 10
        [False, True, True, False]
        >>> APG.preset("sd15", momentum=-0.75).norm_threshold
        7.5
    """

    eta: float = 0.0
    momentum: float = -0.5
    norm_threshold: float = 15.0
    space: str = "x0"
    start: float = 0.0
    stop: float = 1.0
    sigma_range: tuple[float, float] | None = None
    norm_dims: NormDims = "per_sample"

    def __post_init__(self) -> None:
        object.__setattr__(self, "eta", check_range("eta", self.eta, 0.0, 1.0))
        object.__setattr__(
            self, "momentum", check_range("momentum", self.momentum, -1.0, 1.0, low_open=True, high_open=True)
        )
        threshold = check_real("norm_threshold", self.norm_threshold, finite=False)
        if not threshold > 0:
            raise ValueError(
                f"`norm_threshold` must be > 0 (use float('inf') to disable clipping), got {self.norm_threshold!r}."
            )
        object.__setattr__(self, "norm_threshold", threshold)
        check_choice("space", self.space, SPACES)
        start = check_range("start", self.start, 0.0, 1.0)
        object.__setattr__(self, "start", start)
        stop = check_real("stop", self.stop, finite=False)
        if not start <= stop <= 1.0:
            raise ValueError(f"`stop` must be in [start, 1] = [{start}, 1.0], got {self.stop!r}.")
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "sigma_range", _sigma_range(self.sigma_range))
        object.__setattr__(self, "norm_dims", _norm_dims(self.norm_dims))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> APG:
        """The APG of a named per-model preset, with ``overrides`` replacing its fields.

        Presets (:data:`inertia.core.presets.apg.APG_PRESETS`, each with its ``source`` and the
        ``guidance_scale`` it was set for): ``"sdxl"`` (the paper's), ``"sd21"`` (community), ``"sd15"`` and
        ``"sd3"`` (inertia's latent-size rule, unmeasured), ``"digits-16"`` (measured, docs/benchmarks/guidance.md §4). ``"flux"``
        has none: FluxPipeline runs no batched CFG for APG to act on.

        Raises:
            ValueError: an unknown name (the message lists the valid ones), an override that is not an APG field,
                or an override value out of range.

        Example:
            >>> APG.preset("sdxl") == APG(eta=0.0, momentum=-0.5, norm_threshold=15.0)
            True
            >>> APG.preset("sdxl", start=0.2).start
            0.2
        """
        settings = apg_preset(name).settings
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(f"`overrides` {unknown} are not APG fields; valid: {', '.join(fields)}.")
        return cls(**{**settings, **overrides})

    @property
    def clips(self) -> bool:
        """Whether norm clipping is on (a finite threshold)."""
        return math.isfinite(self.norm_threshold)

    @property
    def has_interval(self) -> bool:
        """Whether APG is limited to part of the schedule (``start``/``stop`` or ``sigma_range`` set)."""
        return self.start > 0.0 or self.stop < 1.0 or self.sigma_range is not None

    @property
    def is_identity(self) -> bool:
        """True when APG equals CFG exactly: η = 1, no momentum, no clipping; or an empty interval."""
        empty = self.start == self.stop or (
            self.sigma_range is not None and self.sigma_range[0] == self.sigma_range[1]
        )
        return (self.eta == 1.0 and self.momentum == 0.0 and not self.clips) or empty

    def in_interval(self, step: int | None = None, num_steps: int | None = None, sigma: float | None = None) -> bool:
        """Whether APG applies on step ``step`` (0-based) of ``num_steps`` at noise level ``sigma``.

        Host-side arithmetic on Python numbers (no tensors). ``step``/``num_steps`` are needed only when
        ``start``/``stop`` limit the steps, ``sigma`` only when ``sigma_range`` is set.

        Raises:
            ValueError: a needed value is missing.
        """
        if self.start > 0.0 or self.stop < 1.0:
            if step is None or num_steps is None:
                raise ValueError(
                    f"APG(start={self.start}, stop={self.stop}) needs the step index and step count, got "
                    f"`step`={step!r}, `num_steps`={num_steps!r}."
                )
            # diffusers' guiders: int(start·n) <= step < int(stop·n)
            if not int(self.start * num_steps) <= step < int(self.stop * num_steps):
                return False
        if self.sigma_range is not None:
            if sigma is None:
                raise ValueError(
                    f"APG(sigma_range={self.sigma_range}) needs the call's noise level, got `sigma`=None."
                )
            low, high = self.sigma_range
            if not low < sigma <= high:  # Kynkäänniemi et al.'s interval (σ_lo, σ_hi]
                return False
        return True


def _sigma_range(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"`sigma_range` must be None or a pair (σ_lo, σ_hi) with 0 <= σ_lo <= σ_hi, got {value!r}.")
    low, high = (check_real("sigma_range", bound, finite=False) for bound in value)
    if not 0.0 <= low <= high:
        raise ValueError(f"`sigma_range` must satisfy 0 <= σ_lo <= σ_hi (σ_hi may be inf), got {value!r}.")
    return (low, high)


def _norm_dims(value: object) -> NormDims:
    if isinstance(value, str):
        return check_choice("norm_dims", value, NORM_DIMS)
    if isinstance(value, tuple | list) and value:
        dims = tuple(value)
        if all(isinstance(d, int) and not isinstance(d, bool) for d in dims) and 0 not in dims:
            if len(set(dims)) == len(dims):
                return dims
    raise ValueError(
        f"`norm_dims` must be one of {', '.join(map(repr, NORM_DIMS))} or a non-empty tuple of distinct non-batch "
        f"dims (ints, not 0), got {value!r}."
    )


@dataclass(frozen=True)
class HiGS:
    """History-guided sampling (Sadat, Salehi & Weber, ICLR 2026, Eqs. 5-9, Alg. 1-3).

    Per step: ``Δ = D − g`` against an EMA ``g`` of past predictions, optional projection (η), a DCT high-pass
    (cutoff R_c, sharpness λ), and ``D + γ(t) Δ`` with ``γ = w_h √((t − t_min)/(t_max − t_min))`` on
    ``t_min < t ≤ t_max`` (t = 1 is noise). ``D`` is the guided prediction (CFG or APG output), or the conditional
    one when the pipeline runs no guidance. Defaults are the paper's SDXL/SD3 settings (Table 10).

    Args:
        weight: w_h ≥ 0; 0 is the identity. The paper uses 0.75-2.5; with multistep solvers (DPM++, UniPC,
            inertia's momentum samplers) start near 1: they already extrapolate, and HiGS App. B shows the correction
            is an Adams-Bashforth-like extrapolation.
        ema: α in (0, 1], the history EMA weight (``g ← αD + (1 − α)g``).
        t_min: start of the active window, in [0, 1), exclusive.
        t_max: end of the active window, in (t_min, 1], inclusive.
        eta: weight of the component of Δ parallel to D, in [0, 1] (0 removes it, 1 keeps Δ unprojected).
        cutoff: DCT radius R_c in [0, √2] of the high-pass ``sigmoid(λ(R − R_c))``; ``None`` disables the filter.
        sharpness: λ > 0 of the high-pass.
        space: ``"x0"`` (the paper) or ``"model_output"``.
        time_mode: ``"timestep_fraction"`` (t = timestep / num_train_timesteps; σ for flow models) or
            ``"sigma_fraction"`` (t = σ/(1 + σ) for VP models, the community convention).

    Raises:
        ValueError: for any value outside the ranges above.

    Example:
        >>> from inertia.guidance import HiGS
        >>> HiGS(weight=1.0).ema
        0.75
        >>> HiGS(weight=0.0).is_identity
        True
    """

    weight: float = 1.75
    ema: float = 0.75
    t_min: float = 0.4
    t_max: float = 1.0
    eta: float = 0.0
    cutoff: float | None = 0.05
    sharpness: float = 50.0
    space: str = "x0"
    time_mode: str = "timestep_fraction"

    def __post_init__(self) -> None:
        weight = check_real("weight", self.weight, finite=False)
        if not (0.0 <= weight < math.inf):
            raise ValueError(f"`weight` must be finite and >= 0, got {self.weight!r}.")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "ema", check_range("ema", self.ema, 0.0, 1.0, low_open=True))
        object.__setattr__(self, "t_min", check_range("t_min", self.t_min, 0.0, 1.0, high_open=True))
        t_max = check_range("t_max", self.t_max, 0.0, 1.0, low_open=True)
        if t_max <= self.t_min:
            raise ValueError(f"`t_max` must be in (t_min, 1] = ({self.t_min}, 1.0], got {self.t_max!r}.")
        object.__setattr__(self, "t_max", t_max)
        object.__setattr__(self, "eta", check_range("eta", self.eta, 0.0, 1.0))
        if self.cutoff is not None:
            cutoff = check_range("cutoff", self.cutoff, 0.0, math.sqrt(2.0))
            object.__setattr__(self, "cutoff", cutoff)
        sharpness = check_real("sharpness", self.sharpness, finite=False)
        if not (0.0 < sharpness < math.inf):
            raise ValueError(f"`sharpness` must be finite and > 0, got {self.sharpness!r}.")
        object.__setattr__(self, "sharpness", sharpness)
        check_choice("space", self.space, SPACES)
        check_choice("time_mode", self.time_mode, TIME_MODES)

    @property
    def is_identity(self) -> bool:
        """True when HiGS changes nothing (``weight == 0``)."""
        return self.weight == 0.0


class Combiner(Protocol):
    """A custom rule for the CFG line (duck-typed): what :func:`inertia.core.guidance.state.guide` calls on it.

    Any object with these members can stand where :class:`CFG` / :class:`APG` do, e.g. another paper's guidance
    rule in a side-by-side benchmark. ``combine`` gets the conditional and unconditional predictions in ``space``
    (float32 or float64), the scale ``w``, the 0-based sampler step of this evaluation and the ``memory`` it returned
    at the previous committed step (None at a run's first step), and returns the guided prediction and the new
    memory. The host stores that memory only on evaluations that may commit (see
    :meth:`inertia.core.guidance.state.GuidanceState.observe`), so a stateful rule advances once per sampler step.

    Example:
        >>> import torch
        >>> class Halfway:
        ...     space, is_identity = "model_output", False
        ...     def combine(self, cond, uncond, scale, *, step, memory):
        ...         return uncond + 0.5 * scale * (cond - uncond), memory
        >>> is_combiner(Halfway()), is_combiner(APG())
        (True, False)
    """

    space: str

    @property
    def is_identity(self) -> bool:
        """True when the rule is plain CFG (the host may then skip it)."""
        ...

    def combine(
        self, cond: torch.Tensor, uncond: torch.Tensor, scale: float, *, step: int, memory: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The guided prediction and the memory to keep for the next step."""
        ...


def is_combiner(method: object) -> bool:
    """Whether ``method`` is a custom :class:`Combiner` (not CFG / APG / HiGS): it has a callable ``combine``."""
    return not isinstance(method, CFG | APG | HiGS) and callable(getattr(method, "combine", None))


GuidanceMethod = CFG | APG | HiGS
"""Any guidance configuration accepted by :func:`inertia.guidance.apply_guidance` (or a custom :class:`Combiner`)."""


def check_methods(methods: tuple[object, ...]) -> tuple[CFG | APG | Combiner | None, HiGS | None]:
    """Validates a method combination and returns ``(combiner, higs)``.

    At most one of :class:`CFG` / :class:`APG` / a custom :class:`Combiner` (they replace the same CFG line) and at
    most one :class:`HiGS` (applied on top of the combiner's output).

    Raises:
        TypeError: an element is not a CFG / APG / HiGS instance or a custom combiner.
        ValueError: two combiners, two HiGS, or a custom combiner whose ``space`` is not one of :data:`SPACES`.
    """
    combiner: CFG | APG | Combiner | None = None
    higs: HiGS | None = None
    for index, method in enumerate(methods):
        if isinstance(method, CFG | APG) or is_combiner(method):
            if combiner is not None:
                raise ValueError(
                    f"`methods` may hold one of CFG / APG / a custom combiner, got {combiner!r} and {method!r}; "
                    "each replaces the CFG line."
                )
            if is_combiner(method):
                check_choice(f"methods[{index}].space", getattr(method, "space", None), SPACES)
            combiner = method  # type: ignore[assignment]
        elif isinstance(method, HiGS):
            if higs is not None:
                raise ValueError(f"`methods` may hold one HiGS, got {higs!r} and {method!r}.")
            higs = method
        else:
            raise TypeError(
                f"`methods[{index}]` must be a CFG, APG or HiGS instance (from inertia.guidance) or a custom combiner "
                f"with a `combine` method, got {method!r}."
            )
    return combiner, higs
