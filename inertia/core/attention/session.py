"""Per-call state of momentum attention: which step each CFG context is at, and every hooked layer's buffers.

Pure python/torch, no diffusers import. One `CallTracker` is shared by the hooks of one
``apply_momentum_attention`` call. The denoiser-level hook calls `CallTracker.begin_forward` before every denoiser
forward; the attention hooks then read `CallTracker.current`.

State is kept per thread (``threading.local``), so concurrent generations on one denoiser never share buffers. Inside a
thread, it is kept per CFG context: the name of the diffusers ``cache_context`` the pipeline opened (Flux runs "cond"
and "uncond" in separate contexts) or ``"default"`` (UNet pipelines batch both CFG branches in one call; the rules are
elementwise, so the halves never mix).

A new pipeline call (all contexts of the thread start again at step 0) is detected by:

* a new ``scheduler.timesteps`` object, when the tracker knows the pipeline: diffusers pipelines call
  ``scheduler.set_timesteps`` at the start of every call, which creates a new tensor (no host sync);
* otherwise (a bare denoiser), a timestep larger than the previous call's in the same context (one host read of the
  timestep per denoiser call);
* always, a change of the denoiser input's shape (batch size, resolution).

Example:
    >>> tracker = CallTracker()
    >>> [tracker.begin_forward("default", timestep=t, input_shape=(2, 4)).step for t in (999, 500, 1)]
    [0, 1, 2]
    >>> tracker.begin_forward("default", timestep=999, input_shape=(2, 4)).step   # timestep went up: new call
    0
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inertia.core.attention.rules import TensorState

__all__ = ["DEFAULT_CONTEXT", "CallTracker", "LayerState", "Trajectory"]

DEFAULT_CONTEXT = "default"
"""Context name when the pipeline opens no ``cache_context``."""


@dataclass
class LayerState:
    """One hooked layer's state in one context: a `TensorState` per output tensor, and the output's structure.

    Attributes:
        tensors: one state per position of the output (None for positions that are not tensors, e.g. a None
            ``encoder_hidden_states``).
        is_tuple: whether the module returns a tuple (joint attention) rather than a tensor.
        shapes: the shapes of the recorded outputs, to detect a shape change (which starts the layer again).
        dtypes: the dtypes of the recorded outputs (predictions are returned in them).
        residual: whether the states hold ``output − input / r`` (a module with a residual connection) rather than
            the output itself.

    Example:
        >>> layer = LayerState()
        >>> layer.is_empty
        True
        >>> layer.tensors = [TensorState(), None]   # joint attention whose second output is None
        >>> layer.is_empty, layer.num_buffers()
        (False, 0)
    """

    tensors: list[TensorState | None] = field(default_factory=list)
    is_tuple: bool = False
    shapes: tuple[tuple[int, ...] | None, ...] = ()
    dtypes: tuple[Any, ...] = ()
    residual: bool = False

    @property
    def is_empty(self) -> bool:
        """True until an output was recorded."""
        return not self.tensors

    def num_buffers(self) -> int:
        """Activation-sized buffers held (all output positions together)."""
        return sum(t.num_buffers() for t in self.tensors if t is not None)


@dataclass
class Trajectory:
    """The state of one context in one pipeline call: the current step and every layer's buffers.

    Example:
        >>> trajectory = Trajectory()
        >>> trajectory.layer("down.attn1") is trajectory.layer("down.attn1")   # created on first use, then reused
        True
        >>> trajectory.num_buffers()
        0
    """

    step: int = -1
    last_timestep: float | None = None
    input_shape: tuple[int, ...] | None = None
    layers: dict[str, LayerState] = field(default_factory=dict)

    def layer(self, key: str) -> LayerState:
        """The `LayerState` of layer ``key``, created empty on first use."""
        state = self.layers.get(key)
        if state is None:
            state = self.layers[key] = LayerState()
        return state

    def num_buffers(self) -> int:
        """Activation-sized buffers held by all layers of this context."""
        return sum(layer.num_buffers() for layer in self.layers.values())


class _Session:
    """One thread's state: the schedule object of the current call, the contexts, and the active trajectory."""

    def __init__(self) -> None:
        self.schedule: Any = None
        self.contexts: dict[str, Trajectory] = {}
        self.current: Trajectory | None = None
        self.context_name: str | None = None


class CallTracker:
    """Shared step counter and layer buffers of one momentum-attention installation.

    Args:
        schedule_source: optional zero-argument callable returning the current ``scheduler.timesteps`` object of the
            pipeline; when given, a new object marks a new call and timesteps are never read on the host.

    Example:
        >>> timesteps = [object()]                  # stands for the pipeline's ``scheduler.timesteps`` tensor
        >>> tracker = CallTracker(schedule_source=lambda: timesteps[0])
        >>> [tracker.begin_forward().step for _ in range(3)]
        [0, 1, 2]
        >>> timesteps[0] = object()                 # ``set_timesteps`` at the start of the next call
        >>> tracker.begin_forward().step, tracker.context_name
        (0, 'default')
    """

    def __init__(self, schedule_source: Callable[[], Any] | None = None) -> None:
        self.schedule_source = schedule_source
        self._local = threading.local()

    def _session(self) -> _Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = _Session()
        return session

    # -- context (set by diffusers' `cache_context` through the hook adapter) ----------------------------------
    def set_context_name(self, name: str | None) -> None:
        """Sets (or clears, with None) the CFG context of the calling thread."""
        self._session().context_name = name

    @property
    def context_name(self) -> str:
        """The calling thread's CFG context name, `DEFAULT_CONTEXT` when none is set."""
        name = self._session().context_name
        return DEFAULT_CONTEXT if name is None else name

    # -- per denoiser forward ----------------------------------------------------------------------------------
    def begin_forward(
        self,
        context: str | None = None,
        timestep: float | Callable[[], float] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> Trajectory:
        """Starts one denoiser forward in ``context`` (default: the thread's context) and returns its trajectory.

        Args:
            context: the CFG context name; None reads the one set by `set_context_name`.
            timestep: the call's timestep, or a callable producing it (only called, i.e. read on the host, when no
                ``schedule_source`` is known); None disables the timestep rule.
            input_shape: the denoiser input's shape; a change starts a new call.

        Returns:
            The `Trajectory` whose ``step`` is the index of this forward in the current call (0 for the first).
        """
        session = self._session()
        name = self.context_name if context is None else context
        new_call = False
        value: float | None = None
        if self.schedule_source is not None:
            schedule = self.schedule_source()
            if schedule is not session.schedule:
                session.schedule = schedule
                new_call = True
        elif timestep is not None:
            value = float(timestep() if callable(timestep) else timestep)
        trajectory = session.contexts.get(name)
        if trajectory is not None and not new_call:
            shape_changed = input_shape is not None and trajectory.input_shape != tuple(input_shape)
            went_up = value is not None and trajectory.last_timestep is not None and value > trajectory.last_timestep
            new_call = shape_changed or went_up
        if new_call:
            session.contexts.clear()  # every context of the previous call is finished
            trajectory = None
        if trajectory is None:
            trajectory = session.contexts[name] = Trajectory(
                input_shape=None if input_shape is None else tuple(input_shape)
            )
        trajectory.step += 1
        trajectory.last_timestep = value
        session.current = trajectory
        return trajectory

    def current(self) -> Trajectory | None:
        """The trajectory of the denoiser forward running in this thread (None outside any forward)."""
        return self._session().current

    def end_forward(self) -> None:
        """Marks the end of the calling thread's denoiser forward (attention modules called later are left alone)."""
        self._session().current = None

    def reset(self) -> None:
        """Drops every thread's state (diffusers' ``reset_stateful_hooks`` and removal call this)."""
        self._local = threading.local()

    def num_buffers(self) -> int:
        """Activation-sized buffers the calling thread holds now, all contexts and layers together."""
        return sum(t.num_buffers() for t in self._session().contexts.values())
