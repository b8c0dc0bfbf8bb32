"""diffusers model hooks that run momentum attention on a denoiser: `apply_momentum_attention` / `remove_...`.

Host adapter. Built like diffusers' FasterCache and Pyramid Attention Broadcast: a `ModelHook` on every selected
attention module (``new_forward``: it may skip the module), plus one hook on the denoiser itself that counts the steps
and detects the start of each pipeline call (see :mod:`inertia.core.attention.session`). Processors are never replaced, so
``Attention.forward`` still filters the user's ``cross_attention_kwargs`` / ``joint_attention_kwargs`` by the
processor's signature and forwards them to whatever processor is set (a generic ``*args, **kwargs`` processor
wrapper would have them dropped). The hooks sit in the same ``HookRegistry`` chains as other diffusers hooks and
remove cleanly.

CFG contexts: the denoiser hook carries a :class:`~inertia.adapters.diffusers.private_api.CacheContextListener`, so diffusers' ``cache_context(name)`` (opened
by the Flux pipelines around the "cond" and "uncond" calls) reaches it and the state is kept per context name.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook

from inertia.adapters.diffusers.attention_targets import select_modules
from inertia.adapters.diffusers.denoiser import resolve_denoiser
from inertia.adapters.diffusers.private_api import CacheContextListener, hook_registry
from inertia.core.attention.config import MomentumAttention
from inertia.core.attention.rules import (
    TensorState,
    ema_step,
    extrapolate_observe,
    extrapolate_predict,
    first_order_observe,
    first_order_predict,
    heavy_ball_step,
)
from inertia.core.attention.session import CallTracker, LayerState, Trajectory

__all__ = [
    "LAYER_HOOK_NAME",
    "ROOT_HOOK_NAME",
    "MomentumAttentionHook",
    "MomentumAttentionRootHook",
    "apply_momentum_attention",
    "get_momentum_attention_tracker",
    "remove_momentum_attention",
]

ROOT_HOOK_NAME = "inertia_momentum_attention_root"
"""Name of the denoiser-level hook in the denoiser's ``HookRegistry``."""
LAYER_HOOK_NAME = "inertia_momentum_attention"
"""Name of the hook on every selected attention module."""

_SAMPLE_KWARGS = ("sample", "hidden_states", "x")


def _first_tensor(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    for key in _SAMPLE_KWARGS:
        if isinstance(kwargs.get(key), torch.Tensor):
            return kwargs[key]
    return None


def _as_float(value: Any) -> float:
    """A timestep as a python float (a host read of the first element for tensors)."""
    if isinstance(value, torch.Tensor):
        return float(value.reshape(-1)[0])
    return float(value)


class MomentumAttentionRootHook(ModelHook):
    """Denoiser-level hook: before each forward, advance the step of the current context (or start a new call).

    Args:
        tracker: the `CallTracker` shared with the attention hooks.
        timestep_index: position of the ``timestep`` parameter in the denoiser's ``forward`` (None if absent); the
            timestep is read only when the tracker has no pipeline schedule to watch.

    Example:
        >>> from inertia.core.attention.session import CallTracker
        >>> hook = MomentumAttentionRootHook(CallTracker(), timestep_index=1)
        >>> _ = hook.pre_forward(None, torch.zeros(2, 4), 999)
        >>> hook.tracker.current().step
        0
    """

    _is_stateful = True

    def __init__(self, tracker: CallTracker, timestep_index: int | None) -> None:
        super().__init__()
        self.tracker = tracker
        self.context_listener = CacheContextListener(tracker.set_context_name)  # hears diffusers' cache contexts
        self.timestep_index = timestep_index

    def _timestep(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], float] | None:
        if kwargs.get("timestep") is not None:
            return lambda: _as_float(kwargs["timestep"])
        index = self.timestep_index
        if index is not None and index < len(args) and args[index] is not None:
            return lambda: _as_float(args[index])
        return None

    def pre_forward(
        self, module: torch.nn.Module, *args: Any, **kwargs: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sample = _first_tensor(args, kwargs)
        self.tracker.begin_forward(
            timestep=self._timestep(args, kwargs), input_shape=None if sample is None else tuple(sample.shape)
        )
        return args, kwargs

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        self.tracker.end_forward()
        return output

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.tracker.reset()
        return module


def _split(output: Any) -> tuple[list[Any], bool]:
    if isinstance(output, tuple):
        return list(output), True
    return [output], False


def _join(parts: list[Any], is_tuple: bool) -> Any:
    return tuple(parts) if is_tuple else parts[0]


class MomentumAttentionHook(ModelHook):
    """Attention-module hook: applies the configured rule to the module's output, or skips the module.

    Args:
        key: the module's qualified name (keys its state).
        config: the `MomentumAttention` configuration.
        tracker: the `CallTracker` shared with the denoiser-level hook.
        residual_factor: for modules that add their input back (``residual_connection=True``), the
            ``rescale_output_factor`` r: the rules then act on ``output − input / r``. None otherwise.

    Example:
        >>> from inertia.attention import MomentumAttention
        >>> from inertia.core.attention.session import CallTracker
        >>> hook = MomentumAttentionHook("attn", MomentumAttention.off(), CallTracker(), residual_factor=None)
        >>> hook.config.is_identity
        True
    """

    _is_stateful = True

    def __init__(
        self, key: str, config: MomentumAttention, tracker: CallTracker, residual_factor: float | None
    ) -> None:
        super().__init__()
        self.key = key
        self.config = config
        self.tracker = tracker
        self.residual_factor = residual_factor

    # -- residual handling ---------------------------------------------------------------------------------------
    def _base(self, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any = None) -> torch.Tensor | None:
        """``input / r`` for residual modules (when the output is a tensor of the input's shape), else None."""
        if self.residual_factor is None:
            return None
        hidden = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(hidden, torch.Tensor):
            return None
        if output is not None and (not isinstance(output, torch.Tensor) or output.shape != hidden.shape):
            return None
        return hidden if self.residual_factor == 1.0 else hidden / self.residual_factor

    @staticmethod
    def _matches(layer: LayerState, parts: list[Any], is_tuple: bool, residual: bool) -> bool:
        shapes = tuple(tuple(p.shape) if isinstance(p, torch.Tensor) else None for p in parts)
        return layer.is_tuple == is_tuple and layer.shapes == shapes and layer.residual == residual

    @staticmethod
    def _start(layer: LayerState, parts: list[Any], is_tuple: bool, residual: bool) -> None:
        layer.tensors = [TensorState() if isinstance(p, torch.Tensor) else None for p in parts]
        layer.is_tuple = is_tuple
        layer.shapes = tuple(tuple(p.shape) if isinstance(p, torch.Tensor) else None for p in parts)
        layer.dtypes = tuple(p.dtype if isinstance(p, torch.Tensor) else None for p in parts)
        layer.residual = residual

    def _record_layer(
        self, trajectory: Trajectory, output: Any, base: torch.Tensor | None
    ) -> tuple[LayerState, list[Any], bool]:
        """The layer's state for this output (started again if the output's structure or shapes changed)."""
        parts, is_tuple = _split(output)
        layer = trajectory.layer(self.key)
        if not self._matches(layer, parts, is_tuple, base is not None):
            self._start(layer, parts, is_tuple, base is not None)
        return layer, parts, is_tuple

    # -- forward -------------------------------------------------------------------------------------------------
    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        config = self.config
        trajectory = self.tracker.current()
        if trajectory is None or config.is_identity:
            return self.fn_ref.original_forward(*args, **kwargs)
        step = trajectory.step
        if config.window_passed(step):
            trajectory.layers.pop(self.key, None)  # no later step uses the buffers: free them
            return self.fn_ref.original_forward(*args, **kwargs)
        if config.is_skip_mode:
            return self._skip_or_record(trajectory, step, args, kwargs)
        output = self.fn_ref.original_forward(*args, **kwargs)
        if not config.in_window(step):
            return output
        return self._filter(trajectory, output, args, kwargs)

    def _filter(self, trajectory: Trajectory, output: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """EMA / heavy ball on a computed output."""
        config = self.config
        base = self._base(args, kwargs, output)
        layer, parts, is_tuple = self._record_layer(trajectory, output, base)
        result = list(parts)
        for i, (part, state) in enumerate(zip(parts, layer.tensors)):
            if state is None:
                continue
            attention = part - base if base is not None else part
            if config.mode == "ema":
                filtered = ema_step(state, attention, config.beta)
            else:
                filtered = heavy_ball_step(state, attention, config.beta, config.lookahead)
            if filtered is not attention:  # the first step returns its input: keep the module's own output
                result[i] = filtered + base if base is not None else filtered
        return _join(result, is_tuple)

    def _skip_or_record(self, trajectory: Trajectory, step: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Skip modes: predict the output on skipped steps, else compute it and record it."""
        config = self.config
        layer = trajectory.layers.get(self.key)
        if config.skips(step) and layer is not None and not layer.is_empty:
            if not layer.residual:
                return self._predict(layer, step, None)
            base = self._base(args, kwargs)
            if base is not None and tuple(base.shape) == layer.shapes[0]:
                return self._predict(layer, step, base)
            # the input no longer matches the recorded output: compute this step instead
        output = self.fn_ref.original_forward(*args, **kwargs)
        base = self._base(args, kwargs, output)
        layer, parts, _ = self._record_layer(trajectory, output, base)
        for part, state in zip(parts, layer.tensors):
            if state is None:
                continue
            attention = part - base if base is not None else part
            if config.mode == "extrapolate":
                extrapolate_observe(state, attention, step, config.beta)
            else:
                first_order_observe(state, attention)
        return output

    def _predict(self, layer: LayerState, step: int, base: torch.Tensor | None) -> Any:
        """The skipped step's output, in the recorded structure and dtypes."""
        config = self.config
        result: list[Any] = []
        for state, dtype in zip(layer.tensors, layer.dtypes):
            if state is None:
                result.append(None)
                continue
            if config.mode == "extrapolate":
                prediction = extrapolate_predict(state, step, config.lookahead)
            else:
                prediction = first_order_predict(state, config.lookahead)
                first_order_observe(state, prediction)  # FasterCache's cache holds outputs, predicted ones too
            if base is not None:
                prediction = prediction + base
            result.append(prediction.to(dtype))
        return _join(result, layer.is_tuple)

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.tracker.reset()
        return module


def _schedule_source(pipeline: Any) -> Callable[[], Any]:
    """Reads ``pipeline.scheduler.timesteps`` through a weak reference (no cycle pipeline -> hook -> pipeline)."""
    ref = weakref.ref(pipeline)

    def source() -> Any:
        pipe = ref()
        scheduler = getattr(pipe, "scheduler", None) if pipe is not None else None
        return getattr(scheduler, "timesteps", None)

    return source


def _timestep_index(denoiser: torch.nn.Module) -> int | None:
    try:
        names = list(inspect.signature(denoiser.forward).parameters)
    except (TypeError, ValueError):
        return None
    return names.index("timestep") if "timestep" in names else None


def get_momentum_attention_tracker(pipe_or_denoiser: Any) -> CallTracker | None:
    """The `CallTracker` of the momentum attention installed on this pipeline's denoiser (None if not installed)."""
    denoiser, _ = resolve_denoiser(pipe_or_denoiser)
    registry = hook_registry(denoiser)
    hook = registry.get_hook(ROOT_HOOK_NAME) if registry is not None else None
    return hook.tracker if hook is not None else None


def apply_momentum_attention(pipe_or_denoiser: Any, config: MomentumAttention) -> tuple[str, ...]:
    """Installs momentum attention on a pipeline's denoiser (``pipe.unet`` / ``pipe.transformer``) or a denoiser.

    Given a pipeline, a new ``scheduler.timesteps`` object (every diffusers pipeline calls ``set_timesteps`` at the
    start of a call) starts a new trajectory; given a bare denoiser, a rising timestep does. A change of the input
    shape always does. State is kept per thread and per ``cache_context`` (CFG branch) name.

    Args:
        pipe_or_denoiser: a diffusers ``DiffusionPipeline`` (SD, SDXL, SD3, Flux, Flux.2, Qwen-Image, Wan, Z-Image,
            LTX-2, `DigitsPipeline`, ...), a modular ``ModularPipeline`` of them, or a denoiser
            (``UNet2DConditionModel``, ``FluxTransformer2DModel``, ``WanTransformer3DModel``, ...).
        config: a `MomentumAttention`.

    Returns:
        The qualified names of the hooked attention modules.

    Raises:
        ValueError: for a config that is not a `MomentumAttention`, an object without a denoiser, targets that match
            no attention module, or when momentum attention is already installed (remove it first).

    Example:
        >>> import torch
        >>> from diffusers import UNet2DConditionModel
        >>> from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention
        >>> unet = UNet2DConditionModel(
        ...     sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8,
        ...     down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        ...     cross_attention_dim=8, attention_head_dim=4,
        ... )
        >>> names = apply_momentum_attention(unet, MomentumAttention(mode="extrapolate", targets=("self",)))
        >>> names[0]
        'down_blocks.1.attentions.0.transformer_blocks.0.attn1'
        >>> remove_momentum_attention(unet)
        True
    """
    if not isinstance(config, MomentumAttention):
        raise ValueError(f"`config` must be a MomentumAttention, got {type(config).__name__}.")
    denoiser, pipeline = resolve_denoiser(pipe_or_denoiser)
    selected = select_modules(denoiser, config)
    registry = HookRegistry.check_if_exists_or_initialize(denoiser)
    if registry.get_hook(ROOT_HOOK_NAME) is not None:
        raise ValueError(
            f"momentum attention is already installed on this {type(denoiser).__name__}; call "
            "remove_momentum_attention first."
        )
    tracker = CallTracker(schedule_source=_schedule_source(pipeline) if pipeline is not None else None)
    registry.register_hook(MomentumAttentionRootHook(tracker, _timestep_index(denoiser)), ROOT_HOOK_NAME)
    for name, module in selected:
        residual = (
            float(getattr(module, "rescale_output_factor", 1.0))
            if getattr(module, "residual_connection", False)
            else None
        )
        hook = MomentumAttentionHook(name, config, tracker, residual_factor=residual)
        HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, LAYER_HOOK_NAME)
    # New hooks on child modules stale the registry's cached child list (used by `cache_context`).
    registry.invalidate_child_registries_cache()
    return tuple(name for name, _ in selected)


def remove_momentum_attention(pipe_or_denoiser: Any) -> bool:
    """Removes momentum attention from a pipeline's denoiser or a denoiser; other hooks stay in place.

    Returns:
        True if it was installed, False if there was nothing to remove.
    """
    denoiser, _ = resolve_denoiser(pipe_or_denoiser)
    registry = hook_registry(denoiser)
    if registry is None or registry.get_hook(ROOT_HOOK_NAME) is None:
        return False
    registry.get_hook(ROOT_HOOK_NAME).tracker.reset()
    registry.remove_hook(LAYER_HOOK_NAME, recurse=True)
    registry.remove_hook(ROOT_HOOK_NAME, recurse=False)
    registry.invalidate_child_registries_cache()
    return True
