"""diffusers model hooks that run the cache rules of :mod:`benchmarks.peers.caches` on any denoiser.

Benchmark adapters. diffusers' own cache hooks select modules by name (``transformer_blocks``,
``blocks``, ...), so most of them do not attach to UNets such as the embedded digits model or SD1.5's. These adapters
run the same rules where they do not:

* `apply_attention_cache`: TaylorSeer or PAB on every attention module of a denoiser (diffusers' TaylorSeer and
  PAB act on attention modules too). A module with a built-in residual connection (``UNet2DModel``'s attention
  blocks) is handled as inertia's momentum attention handles it: the rule acts on ``output − input / r`` and the
  current input is added back, so a skipped step never replays a stale residual stream.
* `apply_block_cache`: First Block Cache or MagCache on a transformer's block lists (``transformer_blocks``,
  ``single_transformer_blocks``), as diffusers does; used to check our rules against diffusers' hooks.
* :func:`benchmarks.peers.unet_cache_hooks.apply_unet_cache`: First Block Cache or MagCache on a UNet.

Every installation returns a `CacheHandle` whose ``work`` lists, per denoiser call, what was computed: the kind
(``"full"``, ``"probe"`` or ``"none"``) and the fraction of the hooked attention modules that were skipped. The
benchmark turns that into wall-clock with per-call costs measured on large models.

Example:
    >>> import torch
    >>> from diffusers import UNet2DModel
    >>> from benchmarks.peers.caches import TaylorSeer
    >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
    ...                    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    >>> handle = apply_attention_cache(unet, TaylorSeer(max_order=1, interval=2, before=2))
    >>> with torch.no_grad():
    ...     for t in (900, 600, 300, 100):
    ...         _ = unet(torch.zeros(1, 3, 8, 8), t)
    >>> [round(skipped, 2) for _, skipped in handle.work]   # steps 0, 1 and 3 computed, step 2 forecast
    [0.0, 0.0, 1.0, 0.0]
    >>> handle.remove()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.hooks._helpers import TransformerBlockRegistry
from diffusers.hooks.hooks import HookRegistry, ModelHook

from benchmarks.peers.caches import (
    FirstBlockCache,
    MagCache,
    MagCacheAccumulator,
    PyramidBroadcast,
    TaylorSeer,
    fbc_should_compute,
    magcache_should_compute,
    taylor_predict,
    taylor_update,
)
from inertia.adapters.diffusers.attention_targets import attention_kind, find_attention_modules

__all__ = [
    "LAYER_HOOK",
    "ROOT_HOOK",
    "CacheHandle",
    "StepClock",
    "apply_attention_cache",
    "apply_block_cache",
    "sample_shape",
    "timestep_of",
]

ROOT_HOOK = "peer_cache_root"
LAYER_HOOK = "peer_cache_layer"


@dataclass
class CacheHandle:
    """One installation: the per-call work log and how to take the hooks off again.

    Attributes:
        work: per denoiser call, ``(kind, skipped_attention_fraction)``; kind is ``"full"`` (the network ran, maybe
            with some attention modules skipped), ``"probe"`` (only the first block ran) or ``"none"``.
        ratios: MagCache calibration: the magnitude ratio of each step of the last call (`apply_unet_cache`).
    """

    modules: list[torch.nn.Module]
    names: tuple[str, str]
    work: list[tuple[str, float]] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def remove(self) -> None:
        """Removes every hook of this installation."""
        for module in self.modules:
            registry = getattr(module, "_diffusers_hook", None)
            for name in self.names:
                if registry is not None and registry.get_hook(name) is not None:
                    registry.remove_hook(name, recurse=False)


def timestep_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> float | None:
    value = kwargs.get("timestep", args[1] if len(args) > 1 else None)
    if isinstance(value, torch.Tensor):
        return float(value.reshape(-1)[0])
    return None if value is None else float(value)


def sample_shape(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...] | None:
    sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
    return tuple(sample.shape) if isinstance(sample, torch.Tensor) else None


class StepClock:
    """Step index of the current pipeline call: a rising timestep or a new input shape starts a new call."""

    def __init__(self) -> None:
        self.step, self.call, self.timestep, self.shape = -1, 0, None, None

    def tick(self, timestep: float | None, shape: tuple[int, ...] | None) -> None:
        rising = timestep is not None and self.timestep is not None and timestep > self.timestep
        if rising or shape != self.shape:
            self.step, self.call = -1, self.call + 1
        self.step, self.timestep, self.shape = self.step + 1, timestep, shape

    def reset(self) -> None:
        self.step, self.call, self.timestep, self.shape = -1, self.call + 1, None, None


# ---------------------------------------------------------------------------------------------------------------
# attention-level caches: TaylorSeer, PAB
# ---------------------------------------------------------------------------------------------------------------


class _ClockHook(ModelHook):
    """Denoiser-level hook: advances the clock and opens / closes the call's entry of the work log."""

    _is_stateful = True

    def __init__(self, clock: StepClock, handle: CacheHandle, counts: list[int]) -> None:
        super().__init__()
        self.clock, self.handle, self.counts = clock, handle, counts

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        self.clock.tick(timestep_of(args, kwargs), sample_shape(args, kwargs))
        self.counts[:] = [0, 0]
        return args, kwargs

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        computed, skipped = self.counts
        self.handle.work.append(("full", skipped / max(computed + skipped, 1)))
        return output

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.clock.reset()
        return module


class _AttentionCacheHook(ModelHook):
    """One attention module under TaylorSeer or PAB."""

    _is_stateful = True

    def __init__(
        self,
        rule: TaylorSeer | PyramidBroadcast,
        clock: StepClock,
        counts: list[int],
        residual_factor: float | None,
        timestep_callback: Callable[[], Any],
        factors_dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.rule, self.clock, self.counts = rule, clock, counts
        self.residual_factor, self.timestep_callback = residual_factor, timestep_callback
        self.factors_dtype = factors_dtype
        self._reset()

    def _reset(self) -> None:
        self.call = self.clock.call
        self.factors: list[list[torch.Tensor]] | None = None  # TaylorSeer
        self.cache: list[torch.Tensor] | None = None  # PAB
        self.last_step: int | None = None
        self.dtypes: tuple[torch.dtype, ...] = ()
        self.is_tuple = False

    def _base(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
        if self.residual_factor is None:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        return hidden if self.residual_factor == 1.0 else hidden / self.residual_factor

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.call != self.clock.call:
            self._reset()  # a new pipeline call: start the trajectory again
        step = self.clock.step
        if isinstance(self.rule, TaylorSeer):
            compute = self.rule.computes(step) or self.last_step is None
        else:
            compute = self.rule.computes(step, self.timestep_callback(), has_cache=self.cache is not None)
        base = self._base(args, kwargs)
        if compute:
            output = self.fn_ref.original_forward(*args, **kwargs)
            self.counts[0] += 1
            self.is_tuple = isinstance(output, tuple)
            parts = list(output) if self.is_tuple else [output]
            if base is not None:
                parts = [part - base for part in parts]  # the attention part of a residual module
            self.dtypes = tuple(part.dtype for part in parts)
            if isinstance(self.rule, TaylorSeer):
                delta = None if self.last_step is None else step - self.last_step
                self.factors = taylor_update(self.factors, parts, delta, self.rule.max_order, self.factors_dtype)
                self.last_step = step
            else:
                self.cache = parts
            return output
        self.counts[1] += 1
        if isinstance(self.rule, TaylorSeer):
            parts = taylor_predict(self.factors, step - self.last_step, self.dtypes)
        else:
            parts = list(self.cache)
        if base is not None:
            parts = [part + base for part in parts]
        return tuple(parts) if self.is_tuple else parts[0]

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self._reset()
        self.call = -1  # force a reset at the next forward as well
        return module


def apply_attention_cache(
    denoiser: torch.nn.Module,
    rule: TaylorSeer | PyramidBroadcast,
    targets: tuple[str, ...] = ("self", "cross"),
    timestep_callback: Callable[[], Any] | None = None,
    factors_dtype: torch.dtype = torch.float32,
) -> CacheHandle:
    """Installs TaylorSeer or PAB on every attention module of ``denoiser`` whose kind is in ``targets``.

    Args:
        denoiser: a diffusers UNet or transformer (or any module with diffusers attention modules).
        rule: `TaylorSeer` or `PyramidBroadcast`.
        targets: attention kinds, ``"self"`` and / or ``"cross"`` (inertia's classification).
        timestep_callback: PAB's current timestep (default: the ``timestep`` the denoiser was called with).
        factors_dtype: TaylorSeer's storage dtype of the Taylor factors (diffusers' default is bfloat16; float32
            here, as our other rules keep fp32 state).

    Returns:
        The `CacheHandle` (``work`` fills as the denoiser runs).
    """
    if not isinstance(rule, TaylorSeer | PyramidBroadcast):
        raise ValueError(f"`rule` must be a TaylorSeer or PyramidBroadcast, got {type(rule).__name__}.")
    if not isinstance(factors_dtype, torch.dtype) or not factors_dtype.is_floating_point:
        raise ValueError(f"`factors_dtype` must be a floating torch dtype, got {factors_dtype!r}.")
    clock, counts = StepClock(), [0, 0]
    handle = CacheHandle(modules=[denoiser], names=(ROOT_HOOK, LAYER_HOOK))
    callback = timestep_callback or (lambda: clock.timestep)
    HookRegistry.check_if_exists_or_initialize(denoiser).register_hook(_ClockHook(clock, handle, counts), ROOT_HOOK)
    for _, module in find_attention_modules(denoiser):
        if attention_kind(module) not in targets:
            continue
        residual = float(module.rescale_output_factor) if getattr(module, "residual_connection", False) else None
        hook = _AttentionCacheHook(rule, clock, counts, residual, callback, factors_dtype)
        HookRegistry.check_if_exists_or_initialize(module).register_hook(hook, LAYER_HOOK)
        handle.modules.append(module)
    return handle


# ---------------------------------------------------------------------------------------------------------------
# block-level caches on transformers: First Block Cache, MagCache (diffusers' structure)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _BlockState:
    should_compute: bool = True
    head_output: Any = None
    head_residual: torch.Tensor | None = None
    tail_residuals: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
    head_input: torch.Tensor | None = None
    previous_residual: torch.Tensor | None = None
    accumulator: MagCacheAccumulator = field(default_factory=MagCacheAccumulator)
    step: int = 0


def _pack(meta: Any, hidden: torch.Tensor, encoder: torch.Tensor | None, is_tuple: bool) -> Any:
    """A block's output structure from its two streams (at the registry's indices)."""
    if not is_tuple:
        return hidden
    out = [None] * (max(meta.return_hidden_states_index, meta.return_encoder_hidden_states_index) + 1)
    out[meta.return_hidden_states_index] = hidden
    out[meta.return_encoder_hidden_states_index] = encoder
    return tuple(out)


def _add_residual(hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """MagCache's ``input + residual``; a residual over the image tokens only goes to the end of the sequence."""
    if residual.shape == hidden.shape:
        return hidden + residual
    diff = hidden.shape[1] - residual.shape[1]
    if hidden.ndim == 3 and residual.ndim == 3 and diff > 0:
        hidden = hidden.clone()
        hidden[:, diff:, :] = hidden[:, diff:, :] + residual
    return hidden


class _BlockHook(ModelHook):
    """A transformer block under FBC / MagCache: the head decides, the others compute or pass their input on."""

    _is_stateful = True

    def __init__(
        self, rule: FirstBlockCache | MagCache, state: _BlockState, role: str, num_steps: int, handle: CacheHandle
    ) -> None:
        super().__init__()
        self.rule, self.state, self.role, self.num_steps, self.handle = rule, state, role, num_steps, handle
        self.ratios = rule.ratios(num_steps) if isinstance(rule, MagCache) else None

    def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
        self.meta = TransformerBlockRegistry.get(type(module))
        return module

    def _get(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.meta._get_parameter_from_args_kwargs(name, args, kwargs)

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.role == "head":
            return (
                self._head_fbc(args, kwargs)
                if isinstance(self.rule, FirstBlockCache)
                else self._head_mag(args, kwargs)
            )
        return self._other(args, kwargs)

    def _head_fbc(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state, meta = self.state, self.meta
        hidden_in = self._get("hidden_states", args, kwargs)
        output = self.fn_ref.original_forward(*args, **kwargs)
        is_tuple = isinstance(output, tuple)
        hidden = output[meta.return_hidden_states_index] if is_tuple else output
        residual = hidden - hidden_in
        state.should_compute = fbc_should_compute(residual, state.head_residual, self.rule.threshold)
        self.handle.work.append(("full" if state.should_compute else "probe", 0.0 if state.should_compute else 1.0))
        if not state.should_compute:
            # head output + the cached residual of the remaining blocks, for both streams
            encoder = None
            if meta.return_encoder_hidden_states_index is not None:
                encoder = state.tail_residuals[1] + output[meta.return_encoder_hidden_states_index]
            return _pack(meta, state.tail_residuals[0] + hidden, encoder, is_tuple)
        state.head_output = (hidden, output[meta.return_encoder_hidden_states_index]) if is_tuple else hidden
        state.head_residual = residual
        return output

    def _head_mag(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state, meta, rule = self.state, self.meta, self.rule
        hidden_in = self._get(meta.hidden_states_argument_name, args, kwargs)
        state.head_input = hidden_in
        step = state.step
        scale = self.ratios[step] if step < len(self.ratios) else 1.0
        state.should_compute = magcache_should_compute(
            state.accumulator,
            scale,
            step,
            rule.retention_step(self.num_steps),
            rule.threshold,
            rule.max_skip_steps,
            has_residual=state.previous_residual is not None,
        )
        self.handle.work.append(("full" if state.should_compute else "none", 0.0 if state.should_compute else 1.0))
        if state.should_compute:
            return self.fn_ref.original_forward(*args, **kwargs)
        hidden = _add_residual(hidden_in, state.previous_residual)  # input + the last computed residual
        if meta.return_encoder_hidden_states_index is None:
            return hidden
        return _pack(meta, hidden, self._get("encoder_hidden_states", args, kwargs), True)

    def _other(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state, meta = self.state, self.meta
        if not state.should_compute:
            if self.role == "tail" and isinstance(self.rule, MagCache):
                self._advance()
            hidden = self._get(meta.hidden_states_argument_name, args, kwargs)
            if meta.return_encoder_hidden_states_index is None:
                return hidden
            return _pack(meta, hidden, self._get("encoder_hidden_states", args, kwargs), True)
        output = self.fn_ref.original_forward(*args, **kwargs)
        if self.role != "tail":
            return output
        is_tuple = isinstance(output, tuple)
        hidden = output[meta.return_hidden_states_index] if is_tuple else output
        if isinstance(self.rule, FirstBlockCache):
            if is_tuple:
                encoder = output[meta.return_encoder_hidden_states_index]
                state.tail_residuals = (hidden - state.head_output[0], encoder - state.head_output[1])
            else:
                state.tail_residuals = (hidden - state.head_output, None)
            return output
        head_in = state.head_input
        if hidden.shape == head_in.shape:
            residual = hidden - head_in
        else:  # the tail returned text + image tokens: the image tokens are at the end
            residual = hidden[:, -head_in.shape[1] :] - head_in
        state.previous_residual = residual
        self._advance()
        return output

    def _advance(self) -> None:
        state = self.state
        state.step += 1
        if state.step >= self.num_steps:  # end of the call: MagCache starts over
            state.step, state.previous_residual = 0, None
            state.accumulator.reset()

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        fresh = _BlockState()
        for name in fresh.__dataclass_fields__:
            setattr(self.state, name, getattr(fresh, name))
        return module


def apply_block_cache(
    transformer: torch.nn.Module, rule: FirstBlockCache | MagCache, num_inference_steps: int
) -> CacheHandle:
    """Installs FBC or MagCache on a transformer's block lists, head = first block, tail = last (as diffusers).

    Args:
        transformer: a diffusers transformer whose block classes are in diffusers' ``TransformerBlockRegistry``.
        rule: `FirstBlockCache` or `MagCache` (with calibrated ``mag_ratios``).
        num_inference_steps: the steps of one call (MagCache's ratios are resampled to it).
    """
    blocks = [
        block
        for name, child in transformer.named_children()
        if name in ("transformer_blocks", "single_transformer_blocks", "blocks", "layers")
        and isinstance(child, torch.nn.ModuleList)
        for block in child
    ]
    if len(blocks) < 2:
        raise ValueError(f"`transformer` needs at least two transformer blocks, found {len(blocks)}.")
    state = _BlockState()
    handle = CacheHandle(modules=blocks, names=(LAYER_HOOK,))
    for index, block in enumerate(blocks):
        role = "head" if index == 0 else "tail" if index == len(blocks) - 1 else "block"
        hook = _BlockHook(rule, state, role, num_inference_steps, handle)
        HookRegistry.check_if_exists_or_initialize(block).register_hook(hook, LAYER_HOOK)
    return handle
