"""`MomentumAttention`: the validated, stateless configuration of momentum attention.

Pure python: no torch or diffusers import. The per-call state lives in :mod:`inertia.core.attention.session`, the update
rules in :mod:`inertia.core.attention.rules`, the diffusers hooks in :mod:`inertia.adapters.diffusers.attention_hooks`.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field

from inertia.core.validation import check_int, check_real

__all__ = ["BETA_RANGES", "DEFAULTS", "EXPERIMENTAL_MODES", "MODES", "SKIP_MODES", "TARGETS", "MomentumAttention"]

MODES = ("ema", "heavy_ball", "extrapolate", "first_order")
"""Update rules: EMA smoothing, heavy-ball look-ahead, momentum skip-and-extrapolate, and FasterCache's first-order
skip-and-extrapolate (the baseline)."""

SKIP_MODES = ("extrapolate", "first_order")
"""Modes that skip the attention computation on some steps and predict its output instead."""

EXPERIMENTAL_MODES = ("ema", "heavy_ball")
"""Modes with no measured benefit (docs/methods/momentum-attention.md): they alter every output and save nothing."""

TARGETS = ("self", "cross")
"""Attention kinds: ``"self"`` (including the joint text-image attention of SD3 / Flux) and ``"cross"``."""

DEFAULTS: dict[str, dict[str, object]] = {
    "ema": {"beta": 0.0, "skip_every": 1, "window": (0, None)},
    "heavy_ball": {"beta": 0.0, "lookahead": 0.0, "skip_every": 1, "window": (0, None)},
    "extrapolate": {"beta": -0.4, "lookahead": None, "skip_every": 2, "window": (4, None)},
    "first_order": {"lookahead": 0.5, "skip_every": 2, "window": (4, None)},
}
"""Per-mode defaults of the parameters left as ``None``. ``ema`` and ``heavy_ball`` default to the identity;
``extrapolate``'s lookahead defaults to ``1 − beta`` (exact on linearly changing outputs)."""

BETA_RANGES = {"ema": (0.0, 1.0), "heavy_ball": (-1.0, 1.0), "extrapolate": (-1.0, 1.0)}
"""Valid β per mode: an EMA weight in [0, 1); a momentum coefficient in (−1, 1) (negative = reverse momentum)."""

_UNUSED = {
    "ema": ("lookahead",),
    "heavy_ball": (),
    "extrapolate": (),
    "first_order": ("beta",),
}
"""Parameters a mode does not use: passing them is an error rather than silently ignored."""


def _step_index(name: str, value: object) -> int:
    return check_int(name, value, 0)


@dataclass(frozen=True)
class MomentumAttention:
    """Momentum on attention outputs along the denoising trajectory, training-free.

    Each hooked attention module ℓ sees its output ``A_s`` at denoising step ``s`` (``s`` counts the denoiser calls
    of one pipeline call, per CFG context) and, inside ``window``, returns:

    * ``mode="ema"`` (experimental): ``M_s = (1−β)·A_s + β·M_{s−1}`` (smoothing; β = 0 is the identity).
    * ``mode="heavy_ball"`` (experimental): ``A_s + λ·V_s`` with ``V_s = β·V_{s−1} + (A_s − A_{s−1})``
      (look-ahead along the trajectory; λ = 0 is the identity).
    * ``mode="extrapolate"``: computes attention only on steps ``s`` with ``s % skip_every == 0`` and, on the
      others, skips the module and returns ``A_{s′} + λ·(s − s′)·V`` from the last computed step ``s′`` and the
      heavy-ball velocity ``V ← β·V + (A_s − A_{s′})/(s − s′)`` updated on computed steps. This saves compute.
    * ``mode="first_order"``: the same skip schedule with FasterCache's rule ``X_{s−1} + w·(X_{s−1} − X_{s−2})``
      on the module's last two outputs (``w`` = ``lookahead``, 0.5 by default); the baseline `extrapolate` is
      measured against. `faster_cache` builds it.

    Steps outside ``window`` are computed and returned unchanged. For modules with a built-in residual connection
    (``Attention(residual_connection=True)``, e.g. ``UNet2DModel``'s attention blocks) the rules act on the
    attention part ``output − input / rescale_output_factor`` and the current input is added back, so a skipped
    step never replays a stale residual stream.

    All rules are affine combinations with weights summing to one, so they commute with the affine output projection
    (``to_out``) and can act on the module's output. Memory: per hooked layer and CFG context (and per thread), fp32
    buffers the size of the layer's output (both outputs for joint attention): 1 for ``ema``, 2 for the other
    modes. They are freed at the next call, by ``remove_momentum_attention`` or when the window ends (skip modes).

    Args:
        mode: ``"ema"``, ``"heavy_ball"``, ``"extrapolate"`` or ``"first_order"``.
        beta: β: the EMA weight of the past in [0, 1) (``ema``); the momentum of the velocity in (−1, 1)
            (``heavy_ball``, ``extrapolate``; negative is reverse momentum: for ``extrapolate`` it weights the latest
            slope up and older slopes down, an acceleration-aware extrapolation). Default: 0 (identity) for
            ``ema``/``heavy_ball``, −0.4 for ``extrapolate`` (chosen on a development split,
            docs/methods/momentum-attention.md).
        lookahead: λ ≥ 0 (``heavy_ball``, ``extrapolate``) or FasterCache's weight ``w`` ≥ 0 (``first_order``).
            Default: 0 (identity) for ``heavy_ball``; ``1 − β`` for ``extrapolate``, which makes the velocity's
            weights sum to one, so outputs that change linearly are predicted exactly; 0.5 for ``first_order``.
        skip_every: skip modes compute attention on steps ``s`` with ``s % skip_every == 0`` inside ``window``
            (FasterCache's ``spatial_attention_block_skip_range``); an integer >= 1, default 2; 1 skips nothing.
            Must be 1 (or None) for ``ema`` and ``heavy_ball``.
        window: ``(start, end)`` step indices; the rule acts on steps ``start <= s < end`` (``end=None``: to the
            last step). Default ``(0, None)`` for ``ema``/``heavy_ball`` and ``(4, None)`` for the skip modes.
        targets: attention kinds to hook, a non-empty subset of ``("self", "cross")``. Joint attention (SD3, Flux)
            counts as ``"self"``; cross-attention is a module with ``is_cross_attention=True`` (UNet ``attn2``).
        layers: optional regular expressions; when given, only modules whose qualified name matches one of them
            (``re.search``) are hooked, e.g. ``("up_blocks",)``.

    Raises:
        ValueError: naming the parameter, its value and the valid range, at construction.

    Example:
        >>> from inertia.attention import MomentumAttention
        >>> MomentumAttention.off().is_identity
        True
        >>> fast = MomentumAttention(mode="extrapolate", skip_every=2, window=(4, None))
        >>> [fast.skips(s) for s in range(8)]
        [False, False, False, False, False, True, False, True]
        >>> fast.beta, fast.lookahead
        (-0.4, 1.4)
        >>> MomentumAttention(mode="ema", beta=1.5)
        Traceback (most recent call last):
        ...
        ValueError: `beta` must be in [0, 1) for mode='ema', got 1.5.
    """

    mode: str = "ema"
    beta: float | None = None
    lookahead: float | None = None
    skip_every: int | None = None
    window: tuple[int, int | None] | None = None
    targets: tuple[str, ...] = ("self", "cross")
    layers: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ValueError(f"`mode` must be one of {', '.join(map(repr, MODES))}, got {self.mode!r}.")
        defaults = DEFAULTS[self.mode]
        for name in _UNUSED[self.mode]:
            if getattr(self, name) is not None:
                raise ValueError(
                    f"`{name}` is not used by mode={self.mode!r}; leave it None, got {getattr(self, name)!r}."
                )
        set_ = object.__setattr__
        if self.beta is not None or "beta" in defaults:
            beta = check_real("beta", defaults["beta"] if self.beta is None else self.beta)
            low, high = BETA_RANGES[self.mode]
            if not (low <= beta < high if low == 0.0 else low < beta < high):
                interval = f"[{low:g}, {high:g})" if low == 0.0 else f"({low:g}, {high:g})"
                raise ValueError(f"`beta` must be in {interval} for mode={self.mode!r}, got {self.beta!r}.")
            set_(self, "beta", beta)
        if self.lookahead is None and self.mode == "extrapolate":
            assert self.beta is not None  # extrapolate has a default beta, set just above
            set_(self, "lookahead", 1.0 - self.beta)  # λ = 1 − β: the prediction is exact on a linear trajectory
        elif self.lookahead is not None or "lookahead" in defaults:
            lookahead = check_real("lookahead", defaults["lookahead"] if self.lookahead is None else self.lookahead)
            if lookahead < 0.0:
                raise ValueError(f"`lookahead` must be a finite number >= 0, got {self.lookahead!r}.")
            set_(self, "lookahead", lookahead)
        set_(self, "skip_every", self._check_skip_every(defaults))
        set_(self, "window", self._check_window(defaults))
        set_(self, "targets", self._check_targets())
        set_(self, "layers", self._check_layers())

    def _check_skip_every(self, defaults: dict[str, object]) -> int:
        value = defaults["skip_every"] if self.skip_every is None else self.skip_every
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"`skip_every` must be an integer >= 1 (1 = never skip), got {self.skip_every!r}.")
        if self.mode not in SKIP_MODES and value != 1:
            raise ValueError(
                f"`skip_every` only applies to the skip modes {SKIP_MODES}; it must be 1 or None for "
                f"mode={self.mode!r}, got {self.skip_every!r}."
            )
        return int(value)

    def _check_window(self, defaults: dict[str, object]) -> tuple[int, int | None]:
        window = defaults["window"] if self.window is None else self.window
        if not isinstance(window, tuple | list) or len(window) != 2:
            raise ValueError(f"`window` must be a (start, end) pair of step indices, got {self.window!r}.")
        start = _step_index("window[0]", window[0])
        end = window[1]
        if end is not None:
            end = _step_index("window[1]", end)
            if end <= start:
                raise ValueError(f"`window` must satisfy 0 <= start < end (or end=None), got {self.window!r}.")
        return (start, end)

    def _check_targets(self) -> tuple[str, ...]:
        targets = (self.targets,) if isinstance(self.targets, str) else self.targets
        if not isinstance(targets, tuple | list) or not targets or any(t not in TARGETS for t in targets):
            raise ValueError(f"`targets` must be a non-empty subset of {TARGETS}, got {self.targets!r}.")
        return tuple(t for t in TARGETS if t in targets)

    def _check_layers(self) -> tuple[str, ...] | None:
        if self.layers is None:
            return None
        if isinstance(self.layers, str) or not isinstance(self.layers, tuple | list) or not self.layers:
            raise ValueError(
                f"`layers` must be None or a non-empty tuple of regular expressions, got {self.layers!r}."
            )
        for pattern in self.layers:
            if not isinstance(pattern, str):
                raise ValueError(f"`layers` must contain strings, got {pattern!r} in {self.layers!r}.")
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"`layers` entry {pattern!r} is not a valid regular expression: {err}.") from err
        return tuple(self.layers)

    # -- presets -----------------------------------------------------------------------------------------------
    @classmethod
    def off(cls) -> MomentumAttention:
        """The exact identity (EMA with β = 0): hooked pipelines give bit-identical results."""
        return cls(mode="ema", beta=0.0)

    @classmethod
    def faster_cache(
        cls,
        skip_every: int = 2,
        window: tuple[int, int | None] = (4, None),
        weight: float = 0.5,
        targets: tuple[str, ...] = ("self",),
    ) -> MomentumAttention:
        """FasterCache's attention extrapolation (diffusers' rule and default weight 0.5) on our hook: the baseline.

        Its attention part only (no CFG-branch cache); the window is in steps instead of FasterCache's timestep
        range ``(-1, 681)``, which is steps ``(7, None)`` of a 20-step linear schedule over 1000 timesteps.
        """
        return cls(mode="first_order", lookahead=weight, skip_every=skip_every, window=window, targets=targets)

    # -- schedule (pure functions of the step index) -----------------------------------------------------------
    @property
    def is_skip_mode(self) -> bool:
        """Whether this config skips attention computations (``extrapolate`` / ``first_order``)."""
        return self.mode in SKIP_MODES

    @property
    def is_identity(self) -> bool:
        """True when every step returns the module's own output: β = 0 (``ema``), λ = 0 (``heavy_ball``) or
        ``skip_every`` = 1 (skip modes)."""
        if self.mode == "ema":
            return self.beta == 0.0
        if self.mode == "heavy_ball":
            return self.lookahead == 0.0
        return self.skip_every == 1

    @property
    def is_experimental(self) -> bool:
        """True for ``ema`` and ``heavy_ball``, which have no measured benefit (docs/methods/momentum-attention.md)."""
        return self.mode in EXPERIMENTAL_MODES

    def in_window(self, step: int) -> bool:
        """Whether step ``step`` lies in ``window``."""
        assert self.window is not None  # __post_init__ replaced None by the mode's default
        start, end = self.window
        return step >= start and (end is None or step < end)

    def window_passed(self, step: int) -> bool:
        """Whether ``step`` is at or past the window's end (no later step can use the state)."""
        assert self.window is not None  # __post_init__ replaced None by the mode's default
        end = self.window[1]
        return end is not None and step >= end

    def skips(self, step: int) -> bool:
        """Whether a skip mode skips the attention computation at ``step`` (in the window, ``step % skip_every``
        != 0, as FasterCache counts its iterations)."""
        assert self.skip_every is not None  # __post_init__ replaced None by the mode's default
        return self.is_skip_mode and self.in_window(step) and step % self.skip_every != 0

    def num_skipped(self, num_steps: int) -> int:
        """How many of ``num_steps`` denoiser calls skip attention (the first call is never skipped)."""
        return sum(self.skips(s) for s in range(1, num_steps))
