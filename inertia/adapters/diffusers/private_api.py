"""Every diffusers private name inertia uses, in one place, each behind a small public function or class.

Checked on diffusers |CHECKED_ON|. When a diffusers release renames one of these, this module (and the contract tests
in ``tests/adapters/diffusers/test_private_api.py``, which exercise each against the installed diffusers) is the only
place to mend. Nothing else in inertia imports a private diffusers module, reads a private attribute of a diffusers
object or borrows a private method (``tests/test_layering.py`` checks it).

What we rely on, and why:

- ``diffusers.hooks._common._ATTENTION_CLASSES``: the attention module classes diffusers' own caches hook
  (``Attention``, ``MochiAttention``, ...); momentum attention selects the same modules.
- ``module._diffusers_hook``: the ``HookRegistry`` diffusers attaches to a hooked module, read without creating one.
- ``diffusers.hooks.hooks.BaseState`` / ``StateManager`` / ``CacheContext``: diffusers' ``cache_context(name)`` (the
  "cond"/"uncond" calls of Flux, Wan, LTX-2, Qwen-Image) reaches a stateful hook only through a ``StateManager``
  attribute; :class:`CacheContextListener` is that attribute.
- ``DPMSolverMultistepScheduler``'s step-index members (``step_index``, ``begin_index``, ``set_begin_index``,
  ``index_for_timestep``, ``_init_step_index``), ``_sigma_to_alpha_sigma_t`` and ``add_noise``, borrowed by the PLMS
  scheduler through :class:`DPMSolverIndexing` so that img2img (``set_begin_index``) behaves as in DPM-Solver;
  ``_sigma_to_t`` and ``_step_index`` / ``_begin_index`` of a DPM-Solver used as a timestep grid.
- ``pipe._num_timesteps`` (SDXL's ``denoising_end`` cuts it) and ``pipe._execution_device``.

Example:
    >>> import torch
    >>> from diffusers import UNet2DModel
    >>> hook_registry(torch.nn.Linear(2, 2)) is None   # never hooked: no registry, none created
    True
    >>> listener = CacheContextListener()
    >>> listener.name is None
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.hooks import HookRegistry
from diffusers.hooks._common import _ATTENTION_CLASSES
from diffusers.hooks.hooks import BaseState, CacheContext, StateManager

__all__ = [
    "ATTENTION_CLASSES",
    "CHECKED_ON",
    "CacheContextListener",
    "DPMSolverIndexing",
    "execution_device",
    "hook_registry",
    "pipeline_num_timesteps",
    "reset_step_index",
    "sigma_to_alpha_sigma_t",
    "sigma_to_timestep",
]

CHECKED_ON = "0.42.1"
"""The diffusers release every name here was read from (the lock's; ``make test-latest`` runs the newest)."""

ATTENTION_CLASSES: tuple[type[torch.nn.Module], ...] = tuple(_ATTENTION_CLASSES)
"""The attention module classes diffusers' caches hook."""

__doc__ = __doc__.replace("|CHECKED_ON|", CHECKED_ON)


def hook_registry(module: torch.nn.Module) -> HookRegistry | None:
    """The ``HookRegistry`` diffusers attached to ``module``, or None (none is created)."""
    return getattr(module, "_diffusers_hook", None)


class _NoState(BaseState):
    def reset(self, *args: Any, **kwargs: Any) -> None:
        pass


class CacheContextListener(StateManager):
    """Hears diffusers' ``cache_context(name)``: keep one as an attribute of a stateful ``ModelHook``
    (``_is_stateful = True``) and diffusers' ``_set_cache_context`` hands it each context as it opens and closes.

    Args:
        on_change: called with the new context name (None when the pipeline closes it), if given.

    Attributes:
        name: the open context's name (``"cond"``, ``"uncond"``, ...), or None outside any.
    """

    def __init__(self, on_change: Callable[[str | None], None] | None = None) -> None:
        super().__init__(_NoState)
        self.name: str | None = None
        self._on_change = on_change

    def set_context(self, context: CacheContext | None) -> None:
        super().set_context(context)
        self.name = None if context is None else context.name
        if self._on_change is not None:
            self._on_change(self.name)


class DPMSolverIndexing:
    """DPM-Solver's step-index bookkeeping and forward process, for a scheduler that is not a DPM-Solver subclass.

    The class using it keeps ``timesteps``, ``sigmas``, ``alphas_t``-style tables as DPM-Solver does, and the
    attributes ``_step_index`` and ``_begin_index`` that these members read and write.
    """

    step_index = DPMSolverMultistepScheduler.step_index
    begin_index = DPMSolverMultistepScheduler.begin_index
    set_begin_index = DPMSolverMultistepScheduler.set_begin_index
    index_for_timestep = DPMSolverMultistepScheduler.index_for_timestep
    _init_step_index = DPMSolverMultistepScheduler._init_step_index
    _sigma_to_alpha_sigma_t = DPMSolverMultistepScheduler._sigma_to_alpha_sigma_t
    add_noise = DPMSolverMultistepScheduler.add_noise


def init_step_index(scheduler: Any, timestep: Any) -> None:
    """DPM-Solver's ``_init_step_index``: the step index of ``timestep`` (or the begin index set for img2img)."""
    scheduler._init_step_index(timestep)


def sigma_to_alpha_sigma_t(scheduler: Any, sigma: torch.Tensor) -> Any:
    """(α_t, σ_t) of a DPM-Solver σ (VP: α = 1/√(1 + σ²); flow: α = 1 − σ), by the scheduler's own rule."""
    return scheduler._sigma_to_alpha_sigma_t(sigma)


def sigma_to_timestep(scheduler: Any, sigma: float, log_sigmas: np.ndarray) -> float:
    """DPM-Solver's interpolation of a VP σ onto the training timesteps (``log_sigmas`` = log of the train σs)."""
    return float(scheduler._sigma_to_t(sigma, log_sigmas))


def reset_step_index(scheduler: Any) -> None:
    """Forgets a DPM-Solver's step and begin index (as its ``set_timesteps`` does)."""
    scheduler._step_index = None
    scheduler._begin_index = None


def pipeline_num_timesteps(pipe: Any) -> int | None:
    """The number of steps the pipeline's call will run (SDXL's ``denoising_end`` lowers it), or None."""
    return getattr(pipe, "_num_timesteps", None)


def execution_device(pipe: Any) -> torch.device:
    """The device a pipeline runs its denoiser on (diffusers' ``_execution_device``, else ``pipe.device``)."""
    device: Any = getattr(pipe, "_execution_device", None) or getattr(pipe, "device", "cpu")
    return torch.device(device)
