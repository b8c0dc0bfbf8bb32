"""First Block Cache and MagCache on UNets: `apply_unet_cache` (a benchmark adapter).

A UNet has no residual stream running through all its blocks, so "the rest of the network" is everything after the
probe (FBC: the first resnet block, whose ``output − input`` is the change indicator) and a skipped step returns the
network output of the last computed step (for FBC after running the probe, for MagCache without running anything).
The rules are those of :mod:`benchmarks.peers.caches`; the transformer-block version, checked against diffusers'
hooks, is :func:`benchmarks.peers.cache_hooks.apply_block_cache`.

Example:
    >>> import torch
    >>> from diffusers import UNet2DModel
    >>> from benchmarks.peers.caches import MagCache
    >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
    ...                    down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    >>> handle = apply_unet_cache(unet, MagCache(threshold=0.1, max_skip_steps=1, retention_ratio=0.0,
    ...                                          mag_ratios=(1.0,) * 4), num_inference_steps=4)
    >>> with torch.no_grad():
    ...     for t in (900, 600, 300, 100):
    ...         _ = unet(torch.zeros(1, 3, 8, 8), t)
    >>> [kind for kind, _ in handle.work]
    ['full', 'none', 'full', 'none']
    >>> handle.remove()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.hooks.hooks import HookRegistry, ModelHook

from benchmarks.peers.cache_hooks import LAYER_HOOK, ROOT_HOOK, CacheHandle, StepClock, sample_shape, timestep_of
from benchmarks.peers.caches import (
    FirstBlockCache,
    MagCache,
    MagCacheAccumulator,
    fbc_should_compute,
    magcache_should_compute,
    magnitude_ratio,
)

__all__ = ["apply_unet_cache"]


class _SkipRest(Exception):
    """Raised by the FBC probe to skip the rest of the UNet."""


@dataclass
class _UNetState:
    output: Any = None
    head_residual: torch.Tensor | None = None
    previous: torch.Tensor | None = None
    accumulator: MagCacheAccumulator = field(default_factory=MagCacheAccumulator)


class _UNetRootHook(ModelHook):
    _is_stateful = True

    def __init__(self, rule: FirstBlockCache | MagCache | None, num_steps: int, handle: CacheHandle) -> None:
        super().__init__()
        self.rule, self.num_steps, self.handle = rule, num_steps, handle
        self.clock, self.state = StepClock(), _UNetState()
        self.ratios = rule.ratios(num_steps) if isinstance(rule, MagCache) and rule.mag_ratios is not None else None

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        call = self.clock.call
        self.clock.tick(timestep_of(args, kwargs), sample_shape(args, kwargs))
        if self.clock.call != call:
            self.state, self.handle.ratios = _UNetState(), []  # a new pipeline call
        state, step = self.state, self.clock.step
        if isinstance(self.rule, MagCache) and self.ratios is not None:
            scale = self.ratios[step] if step < len(self.ratios) else 1.0
            retention = self.rule.retention_step(self.num_steps)
            has = state.output is not None
            rule = self.rule
            if not magcache_should_compute(
                state.accumulator, scale, step, retention, rule.threshold, rule.max_skip_steps, has
            ):
                self.handle.work.append(("none", 1.0))
                return state.output  # the last computed network output
        try:
            output = self.fn_ref.original_forward(*args, **kwargs)
        except _SkipRest:
            self.handle.work.append(("probe", 1.0))
            return state.output
        sample = output[0] if isinstance(output, tuple) else output.sample
        self.handle.ratios.append(magnitude_ratio(sample, state.previous, dim=1))  # MagCache calibration
        state.output, state.previous = output, sample
        self.handle.work.append(("full", 0.0))
        return output

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.clock.reset()
        self.state = _UNetState()
        return module


class _ProbeHook(ModelHook):
    """FBC on a UNet: the first resnet block's residual decides whether the rest of the network runs."""

    def __init__(self, root: _UNetRootHook, threshold: float) -> None:
        super().__init__()
        self.root, self.threshold = root, threshold

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        output = self.fn_ref.original_forward(*args, **kwargs)
        hidden = args[0] if args else kwargs["input_tensor"]
        residual = output - hidden
        state = self.root.state
        if state.output is not None and not fbc_should_compute(residual, state.head_residual, self.threshold):
            raise _SkipRest
        state.head_residual = residual  # updated only when the rest of the network runs, as in FBC
        return output


def apply_unet_cache(
    network: torch.nn.Module,
    rule: FirstBlockCache | MagCache,
    num_inference_steps: int,
    probe: str = "down_blocks.0.resnets.0",
) -> CacheHandle:
    """Installs FBC or MagCache on a UNet (``UNet2DModel`` / ``UNet2DConditionModel``).

    Args:
        network: the UNet itself (for the embedded digits model: ``pipe.unet.unet``, inside the preconditioning).
        rule: `FirstBlockCache`, or `MagCache` (``mag_ratios=None`` records the ratios in ``handle.ratios`` and
            never skips: calibration).
        num_inference_steps: the steps of one call.
        probe: FBC's first block: the qualified name of a residual block whose ``output − input`` is the indicator.
    """
    if not isinstance(rule, FirstBlockCache | MagCache):
        raise ValueError(f"`rule` must be a FirstBlockCache or MagCache, got {type(rule).__name__}.")
    handle = CacheHandle(modules=[network], names=(ROOT_HOOK, LAYER_HOOK))
    root = _UNetRootHook(rule, num_inference_steps, handle)
    HookRegistry.check_if_exists_or_initialize(network).register_hook(root, ROOT_HOOK)
    if isinstance(rule, FirstBlockCache):
        module = network.get_submodule(probe)
        HookRegistry.check_if_exists_or_initialize(module).register_hook(_ProbeHook(root, rule.threshold), LAYER_HOOK)
        handle.modules.append(module)
    return handle
