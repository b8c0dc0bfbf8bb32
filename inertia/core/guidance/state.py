"""Per-generation guidance state and the step function that chains CFG/APG → HiGS (HiGS Table 7, App. D).

One :class:`GuidanceState` belongs to one generation. Host adapters call :meth:`GuidanceState.observe` once per
denoiser evaluation; it starts a new run (clearing APG's momentum and HiGS's history) when

- the batch signature (shape, dtype, device) changes,
- the host's run marker changes (classic pipelines: the scheduler's ``timesteps`` tensor, which every
  ``set_timesteps`` call replaces), or
- the timestep rises,

and tells whether the evaluation may *commit* its state update. Repeated evaluations of the last committed timestep
and second-order corrector / midpoint evaluations (``first_order=False``, e.g. Heun, KDPM2) use the committed state
read-only, so momentum and history advance once per sampler step. HiGS is still applied on those
evaluations: a Heun step averages its two slopes, and correcting only one of them would halve the effect.

Example:
    >>> import torch
    >>> from inertia.guidance import APG
    >>> from inertia.core.guidance.state import GuidanceState, guide
    >>> state = GuidanceState()
    >>> cond, uncond = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    >>> commit = state.observe(999.0, key=(1, 4, 8, 8))
    >>> out = guide(state, APG(space="model_output"), None, cond, uncond, 7.5, commit=commit)
    >>> state.momentum is not None
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from inertia.core.guidance.apg import apg_guidance, cfg_guidance, resolve_norm_dims
from inertia.core.guidance.config import APG, CFG, Combiner, HiGS, is_combiner
from inertia.core.guidance.higs import higs_update
from inertia.core.tensors import compute_dtype

Converter = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GuidanceState:
    """APG momentum ``M`` and HiGS history ``g`` of one generation, with the run bookkeeping.

    Memory: at most two tensors the size of one guided prediction (batch B, not 2B).

    Example:
        >>> state = GuidanceState()
        >>> [state.observe(t, key=(1, 4, 8, 8)) for t in (999.0, 999.0, 500.0)]   # a repeat does not commit
        [True, False, True]
        >>> state.steps, state.observe(999.0, key=(1, 4, 8, 8)), state.steps      # the timestep rose: a new run
        (2, True, 1)
    """

    momentum: torch.Tensor | None = None  # APG's M, or a custom combiner's memory
    history: torch.Tensor | None = None
    last_timestep: float | None = None
    key: tuple[Any, ...] | None = None
    marker: Any = None
    steps: int = 0
    cache: dict[str, Any] = field(default_factory=dict)  # per-run values an adapter derives once (host reads)

    def reset(self) -> None:
        """Forget everything (a new generation)."""
        self.momentum = self.history = self.last_timestep = self.key = self.marker = None
        self.steps = 0
        self.cache = {}

    def observe(self, timestep: float, key: tuple[Any, ...], marker: Any = None, first_order: bool = True) -> bool:
        """Applies the reset rules for an evaluation at ``timestep``; returns whether it may commit."""
        new_run = (
            self.key is None
            or key != self.key
            or (marker is not None and marker is not self.marker)
            or (self.last_timestep is not None and timestep > self.last_timestep)
        )
        if new_run:
            self.reset()
            self.key, self.marker = key, marker
        if not first_order or timestep == self.last_timestep:
            return False  # corrector / midpoint / repeated evaluation: read-only
        self.last_timestep = timestep
        self.steps += 1
        return True


def guide(
    state: GuidanceState,
    combiner: CFG | APG | Combiner | None,
    higs: HiGS | None,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    scale: float,
    *,
    commit: bool,
    t: torch.Tensor | None = None,
    to_x0: Converter | None = None,
    from_x0: Converter | None = None,
    step: int | None = None,
    num_steps: int | None = None,
    sigma: float | None = None,
) -> torch.Tensor:
    """The guided model output for one evaluation.

    Args:
        state: this generation's state (updated in place when ``commit``).
        combiner: ``CFG()``, an ``APG``, a custom :class:`~inertia.core.guidance.config.Combiner` or None (plain CFG).
            Ignored when ``uncond`` is None. A custom combiner gets this evaluation's 0-based step (the run's committed
            steps so far, minus one) and its memory in ``state.momentum``.
        higs: a ``HiGS`` or None.
        cond: conditional model output D_c (raw output space).
        uncond: unconditional model output D_u, or None when the host runs no guidance.
        scale: CFG scale w.
        commit: whether to store the new momentum / history (see :meth:`GuidanceState.observe`).
        t: normalised time per sample (1 = noise), needed by HiGS.
        to_x0, from_x0: conversions between the raw output and x0 at this evaluation, needed by x0-space methods.
        step, num_steps: this evaluation's sampler step (0-based) and the run's step count, needed by an APG with
            ``start``/``stop`` (see :meth:`inertia.guidance.APG.in_interval`).
        sigma: this evaluation's noise level (a host float), needed by an APG with ``sigma_range``.

    Outside an APG's interval the step is plain CFG (:func:`~inertia.core.guidance.apg.cfg_guidance`, bit for bit) and
    ``state.momentum`` is left untouched, so APG resumes with it when the interval is entered again.

    Returns:
        The output the sampler should use, in ``cond``'s dtype and space.

    Raises:
        ValueError: the APG's ``norm_dims`` do not fit ``cond``'s shape, or its interval needs a value not given
            (both checked before any computation).
    """
    dtype, work = cond.dtype, compute_dtype(cond.dtype)
    space = "model_output"

    def into(target: str, value: torch.Tensor, current: str) -> torch.Tensor:
        if target == current:
            return value
        if to_x0 is None or from_x0 is None:
            raise ValueError("x0-space guidance needs `to_x0` and `from_x0` converters.")
        return to_x0(value) if target == "x0" else from_x0(value)

    apg = combiner if isinstance(combiner, APG) and not combiner.is_identity and uncond is not None else None
    dims = resolve_norm_dims(apg.norm_dims, cond.ndim) if apg is not None else ()  # bad dims fail before any work
    if apg is not None and not apg.in_interval(step, num_steps, sigma):
        apg = None  # outside the interval: CFG below
    custom = combiner if is_combiner(combiner) and not combiner.is_identity and uncond is not None else None
    if uncond is None:
        pred = cond
    elif custom is not None:
        space = custom.space
        c, u = into(space, cond.to(work), "model_output"), into(space, uncond.to(work), "model_output")
        pred, memory = custom.combine(c, u, scale, step=max(state.steps - 1, 0), memory=state.momentum)
        if commit:
            state.momentum = memory
    elif apg is not None:
        space = apg.space
        c, u = into(space, cond.to(work), "model_output"), into(space, uncond.to(work), "model_output")
        pred, momentum = apg_guidance(
            c,
            u,
            scale,
            state.momentum,
            eta=apg.eta,
            momentum=apg.momentum,
            norm_threshold=apg.norm_threshold,
            norm_dims=dims,
        )
        if commit:
            state.momentum = momentum
    else:  # CFG, or APG outside its interval (momentum untouched)
        pred = cfg_guidance(cond, uncond, scale)  # the pipeline's own expression: identity by construction

    if higs is not None and not higs.is_identity:
        if t is None:
            raise ValueError("HiGS needs the normalised time `t`.")
        pred = into(higs.space, pred.to(work), space)
        space = higs.space
        pred, history = higs_update(
            pred,
            state.history,
            t,
            weight=higs.weight,
            ema=higs.ema,
            t_min=higs.t_min,
            t_max=higs.t_max,
            eta=higs.eta,
            cutoff=higs.cutoff,
            sharpness=higs.sharpness,
        )
        if commit:
            state.history = history
    return into("model_output", pred, space).to(dtype)
