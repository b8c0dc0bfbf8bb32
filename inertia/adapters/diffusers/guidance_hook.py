"""APG / HiGS for classic diffusers pipelines, through a model hook on the denoiser (no pipeline is forked).

`apply_guidance(pipe, *methods)` registers a diffusers `ModelHook` on ``pipe.unet`` / ``pipe.transformer``. On each
denoiser call the hook splits the pipeline's ``[uncond; cond]`` batch, converts both halves to x0 at that
evaluation's noise level, runs CFG or APG and then HiGS (`inertia.core.guidance.state.guide`), converts back and returns
``[g; g]``. The pipeline's own line ``u + w (c − u)`` then yields ``g`` exactly, for any ``w``, so nothing in the
pipeline is forked. Pipelines that run no CFG (``guidance_scale <= 1``, Flux's and Flux.2's guidance-distilled path)
get HiGS on the single conditional output.

Pipelines that run CFG as two calls in diffusers cache contexts (Wan: ``"cond"`` then ``"uncond"``) get their
conditional output back untouched; at the unconditional call the hook computes ``g`` from both and returns
``u' = (g − w c) / (1 − w)``, so the pipeline's ``u' + w (c − u')`` is ``g`` up to float rounding. How each pipeline
calls its denoiser (packed tokens, Z-Image's lists and −v output, LTX-2's video tokens) is in
:mod:`inertia.adapters.diffusers.guidance_layouts`; the support table is docs/hosts/pipelines.md.

Supported: `StableDiffusionPipeline`, `StableDiffusionXLPipeline`, `StableDiffusion3Pipeline`, their img2img
variants, `FluxPipeline` and `Flux2Pipeline` (HiGS only), `QwenImagePipeline` (HiGS without true CFG),
`WanPipeline` (one expert), `ZImagePipeline`, `LTX2Pipeline` (the video stream) and inertia's `DigitsPipeline`, with
any scheduler; second-order schedulers (Heun, KDPM2) are detected through ``scheduler.state_in_first_order``. SD3's
skip-layer-guidance calls and LTX-2's spatio-temporal / modality passes pass through (LTX-2 adds those terms to the
guided prediction).

State: one :class:`~inertia.core.guidance.state.GuidanceState` per thread, reset at the start of each generation (the
scheduler's ``timesteps`` tensor is replaced by every ``set_timesteps``; a rising timestep or a batch change also
resets), so nothing leaks between calls, and concurrent calls from different threads never share state. The hook
reads each call's timestep on the host once (one device sync per denoiser call on GPU).

APG's guidance interval (``APG(start=..., stop=..., sigma_range=...)``) is decided on the host from what the hook
already has: the step index is the number of sampler steps committed so far in this run (second-order corrector and
repeated evaluations belong to their step), the step count is read once per run from ``scheduler.timesteps``, from the
run's first timestep on (so img2img counts only the steps it runs) and limited to ``pipe._num_timesteps`` (SDXL's
``denoising_end``), and σ comes from the call's timestep (read on the host anyway): √((1 − ᾱ)/ᾱ) for VP models,
timestep / num_train_timesteps for flow models. No extra device sync per call.

Notes: with ``guidance_rescale > 0`` the pipeline rescales ``g`` against itself, which is a no-op. Flux's and
Qwen-Image's true CFG (``true_cfg_scale > 1`` with a negative prompt) run cond and uncond as separate calls with a scale
the hook cannot read; they are refused with a clear error rather than half-guided.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook

from inertia.adapters.diffusers.denoiser import find_denoiser
from inertia.adapters.diffusers.guidance_layouts import (
    GuidanceLayoutError,
    Layout,
    detect_layout,
    pack,
    token_grid,
    unpack,
)
from inertia.adapters.diffusers.private_api import CacheContextListener, hook_registry, pipeline_num_timesteps
from inertia.core.guidance.config import APG, CFG, HiGS, check_methods
from inertia.core.guidance.spaces import flow_alpha_sigma, from_x0, to_x0, vp_alpha_sigma, vp_sigma
from inertia.core.guidance.state import GuidanceState, guide

__all__ = ["HOOK_NAME", "GuidanceHook", "GuidanceLayoutError", "apply_guidance", "guidance_hook", "remove_guidance"]

HOOK_NAME = "inertia_guidance"
"""Name of the hook in the denoiser's diffusers `HookRegistry`."""

_SAMPLE_NAMES = ("sample", "hidden_states", "x")  # x: Z-Image's list of latents
_TIMESTEP_NAMES = ("timestep", "t")  # t: Z-Image
_PASSTHROUGH_CONTEXTS = ("uncond_stg", "uncond_modality")  # LTX-2's extra guidance passes


def _alphas_cumprod(scheduler: Any) -> torch.Tensor:
    table = getattr(scheduler, "alphas_cumprod", None)
    if isinstance(table, torch.Tensor):
        return table
    from diffusers import DDPMScheduler  # the training schedule from the same config keys

    return DDPMScheduler.from_config(scheduler.config).alphas_cumprod


def call_argument(signature: inspect.Signature, args: tuple, kwargs: dict, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    names = [p for p in signature.parameters if p != "self"]
    index = names.index(name) if name in names else None
    return args[index] if index is not None and index < len(args) else None


def run_steps(schedule: list[float], first: float, order: int, limit: int | None = None) -> int:
    """Sampler steps of a run that starts at timestep ``first`` on the (non-increasing) ``schedule``.

    The run is the schedule from ``first`` on, cut to ``limit`` entries when given (a pipeline's ``_num_timesteps``).
    Second-order schedulers (Heun, KDPM2) spend two entries per step but the first; first-order ones one entry per
    distinct timestep (PNDM repeats one), matching the commits of :meth:`GuidanceState.observe`.

    Example:
        >>> run_steps([999.0, 749.0, 499.0, 249.0], 749.0, order=1)  # img2img from the second timestep
        3
        >>> run_steps([999.0, 666.0, 666.0, 333.0, 333.0], 999.0, order=2)  # Heun: 3 steps, 5 evaluations
        3
    """
    tolerance = 1e-6 * max(1.0, abs(first))
    begin = next((i for i, value in enumerate(schedule) if value <= first + tolerance), len(schedule))
    run = schedule[begin:]
    if limit is not None and 0 < limit <= len(run):
        run = run[:limit]
    if order == 2:
        return (len(run) + 1) // 2
    return sum(1 for i, value in enumerate(run) if i == 0 or value != run[i - 1])


_FLUX = Layout("flow", "flow", 1000.0, packing="flux")


def _unpack(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flux tokens ``(B, h·w, 4C)`` → latents ``(B, C, 2h, 2w)`` (inverse of FluxPipeline's 2x2 packing)."""
    return unpack(x, _FLUX, (height, width))


def _pack(x: torch.Tensor) -> torch.Tensor:
    return pack(x, _FLUX)


class GuidanceHook(ModelHook):
    """The denoiser hook behind :func:`apply_guidance` (see the module docstring).

    Example:
        >>> from diffusers import DDIMScheduler, UNet2DModel
        >>> from inertia.guidance import APG, remove_guidance
        >>> from inertia.pipelines import DigitsPipeline
        >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, num_class_embeds=11,
        ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> pipe = apply_guidance(DigitsPipeline(unet, DDIMScheduler()), APG())
        >>> hook = HookRegistry.check_if_exists_or_initialize(pipe.unet).get_hook(HOOK_NAME)
        >>> type(hook).__name__, hook.is_passthrough
        ('GuidanceHook', False)
        >>> _ = remove_guidance(pipe)
    """

    _is_stateful = True

    def __init__(self, pipe: Any, combiner: CFG | APG | None, higs: HiGS | None, layout: Layout) -> None:
        super().__init__()
        self._pipe = weakref.ref(pipe)
        self.combiner, self.higs, self.layout = combiner, higs, layout
        self._local = threading.local()
        self._signature: inspect.Signature | None = None
        self._context_probe = CacheContextListener()  # hears diffusers' cache contexts ("cond" / "uncond")

    @property
    def is_passthrough(self) -> bool:
        """True when every method is neutral: the hook returns the denoiser output untouched."""
        return (self.combiner is None or self.combiner.is_identity) and self.higs is None

    def initialize_hook(self, module: torch.nn.Module) -> torch.nn.Module:
        self._signature = inspect.signature(type(module).forward)
        return module

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self._local.state = None  # this thread's generation only
        return module

    def state(self) -> GuidanceState:
        """This thread's generation state."""
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = GuidanceState()
        return state

    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        self._local.call = (args, kwargs)
        return args, kwargs

    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        args, kwargs = self._local.call
        self._local.call = None
        if self.is_passthrough or kwargs.get("skip_layers") is not None:  # SD3 skip-layer-guidance pass
            return output
        pipe = self._pipe()
        if pipe is None:
            return output
        context_name = self._context_probe.name
        if context_name in _PASSTHROUGH_CONTEXTS:  # LTX-2 STG / modality passes: the pipeline adds them to ours
            return output
        out = output[0] if isinstance(output, tuple) else output.sample
        guided = self._guide(pipe, out, args, kwargs, context_name)
        if isinstance(output, tuple):
            return (guided, *output[1:])
        output.sample = guided
        return output

    def _inputs(self, pipe: Any, out: Any, args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(output, sample, timestep) of this call as tensors (Z-Image's lists stacked, its frame axis dropped)."""
        sample = next(
            (v for n in _SAMPLE_NAMES if (v := call_argument(self._signature, args, kwargs, n)) is not None), None
        )
        timestep = next(
            (v for n in _TIMESTEP_NAMES if (v := call_argument(self._signature, args, kwargs, n)) is not None), None
        )
        if self.layout.list_io and isinstance(out, list | tuple) and isinstance(sample, list | tuple):
            out, sample = torch.stack(list(out)).squeeze(2), torch.stack(list(sample)).squeeze(2)
        if not isinstance(sample, torch.Tensor) or timestep is None or sample.shape[0] != out.shape[0]:
            raise GuidanceLayoutError(f"{type(pipe).__name__}'s denoiser call has no `sample`/`timestep` to guide.")
        return out, sample, timestep

    def _guide(self, pipe: Any, raw: Any, args: tuple, kwargs: dict, context: str | None) -> Any:
        layout = self.layout
        out, sample, timestep = self._inputs(pipe, raw, args, kwargs)
        scale = None
        if layout.scale_known:
            scale = float(pipe.guidance_scale) + layout.scale_offset
        cfg_runs = layout.scale_known and bool(getattr(pipe, "do_classifier_free_guidance", False))
        if layout.calls == "sequential":
            if context == "uncond":
                pending = getattr(self._local, "pending", None)
                self._local.pending = None
                if not layout.scale_known:
                    raise GuidanceLayoutError(
                        f"{type(pipe).__name__} ran a separate unconditional call (true CFG) with a scale that only "
                        "its `__call__` knows; inertia guidance supports this pipeline without it (true_cfg_scale=1 "
                        "or no negative prompt)."
                    )
                if pending is None or pending.shape != out.shape:
                    raise GuidanceLayoutError(
                        f"{type(pipe).__name__} ran an unconditional call without a matching conditional one before it."
                    )
                guided = self._combine(pipe, pending, out, sample, timestep, kwargs, scale)
                assert scale is not None  # layout.scale_known was checked above
                # The pipeline computes u' + w (c − u'); this u' makes that g exactly (up to rounding), for w ≠ 1.
                return (guided - scale * pending) / (1.0 - scale)
            if cfg_runs:
                self._local.pending = out  # combined at the unconditional call
                return raw
            return self._combine(pipe, out, None, sample, timestep, kwargs, scale)
        batched = layout.calls == "batched" and cfg_runs
        if layout.list_io and batched and (getattr(pipe, "_cfg_truncation", None) or 1.0) < 1.0:
            raise GuidanceLayoutError(
                f"{type(pipe).__name__} with cfg_truncation < 1 drops the unconditional half mid-run; use "
                "cfg_truncation=1 with inertia guidance."
            )
        if batched and out.shape[0] % 2:
            raise GuidanceLayoutError(
                f"{type(pipe).__name__} runs classifier-free guidance but its denoiser batch {out.shape[0]} is not "
                "[uncond; cond]; only pipelines that batch the two branches are supported."
            )
        half = out.shape[0] // 2 if batched else 0
        uncond: torch.Tensor | None
        if batched and layout.cond_first:
            cond, uncond, rows = out[:half], out[half:], slice(0, half)
        else:
            cond, uncond, rows = out[half:], (out[:half] if batched else None), slice(half, None)
        timesteps = torch.as_tensor(timestep, device=out.device).flatten()
        timesteps = timesteps.expand(out.shape[0]) if timesteps.numel() == 1 else timesteps
        guided = self._combine(pipe, cond, uncond, sample[rows], timesteps[rows], kwargs, scale)
        guided = torch.cat([guided, guided]) if batched else guided
        if layout.list_io:
            return list(guided.unsqueeze(2).unbind(0))
        return guided

    def _combine(
        self,
        pipe: Any,
        cond: torch.Tensor,
        uncond: torch.Tensor | None,
        sample: torch.Tensor,
        timestep: Any,
        kwargs: dict,
        scale: float | None,
    ) -> torch.Tensor:
        """The guided output (CFG/APG of cond and uncond, then HiGS) in the denoiser's own output space."""
        layout = self.layout
        batch = cond.shape[0]
        x = sample[-batch:] if sample.shape[0] != batch else sample
        x = x.to(cond.dtype) if cond.dtype.is_floating_point else x
        timesteps = torch.as_tensor(timestep, device=cond.device).flatten()
        timesteps = timesteps.expand(batch) if timesteps.numel() == 1 else timesteps[-batch:]
        state = self.state()
        scheduler = pipe.scheduler
        num_train = float(scheduler.config.get("num_train_timesteps", 1000) or 1000)
        if layout.time_reversed:  # Z-Image passes 1 − σ
            timesteps = (1.0 - timesteps.float()) * num_train
        else:
            timesteps = timesteps.float() * layout.timestep_scale
        host_timestep = float(timesteps[0])  # one host read per call (see module docstring)
        commit = state.observe(
            host_timestep,
            key=(tuple(cond.shape), cond.dtype, cond.device),
            marker=getattr(scheduler, "timesteps", None),
            first_order=bool(getattr(scheduler, "state_in_first_order", True)),
        )
        interval = self._interval(pipe, state, host_timestep, num_train) if uncond is not None else {}
        if layout.family == "flow":
            a, s = flow_alpha_sigma(timesteps / num_train)
            t = timesteps / num_train
        else:
            if "alphas_cumprod" not in state.cache:
                state.cache["alphas_cumprod"] = _alphas_cumprod(scheduler)
            a, s = vp_alpha_sigma(timesteps, state.cache["alphas_cumprod"])
            time_mode = self.higs.time_mode if self.higs is not None else "timestep_fraction"
            t = timesteps / num_train if time_mode == "timestep_fraction" else (s / a) / (1 + s / a)
        if layout.negated:  # Z-Image predicts −v
            cond, uncond = -cond, (None if uncond is None else -uncond)
        if layout.packed:
            if "grid" not in state.cache:
                state.cache["grid"] = token_grid(layout, kwargs, cond)
            grid = state.cache["grid"]
            cond, x = unpack(cond, layout, grid), unpack(x, layout, grid)
            uncond = None if uncond is None else unpack(uncond, layout, grid)
        shape = (-1, *([1] * (cond.ndim - 1)))
        a, s = a.view(shape), s.view(shape)
        kind = layout.prediction_type
        guided = guide(
            state,
            self.combiner,
            self.higs,
            cond,
            uncond,
            1.0 if scale is None else scale,
            commit=commit,
            t=t,
            to_x0=lambda value: to_x0(value, x.to(value.dtype), a.to(value.dtype), s.to(value.dtype), kind),
            from_x0=lambda value: from_x0(value, x.to(value.dtype), a.to(value.dtype), s.to(value.dtype), kind),
            **interval,
        )
        if layout.packed:
            guided = pack(guided, layout)
        return -guided if layout.negated else guided

    def _interval(self, pipe: Any, state: GuidanceState, timestep: float, num_train: float) -> dict[str, Any]:
        """``step`` / ``num_steps`` / ``sigma`` for an APG with a guidance interval (host numbers; see module doc)."""
        apg = self.combiner
        if not isinstance(apg, APG) or apg.is_identity or not apg.has_interval:
            return {}
        scheduler = pipe.scheduler
        found: dict[str, Any] = {}
        if apg.start > 0.0 or apg.stop < 1.0:
            if "num_steps" not in state.cache:  # once per run
                schedule = getattr(scheduler, "timesteps", None)
                if not isinstance(schedule, torch.Tensor) or schedule.numel() == 0:
                    raise GuidanceLayoutError(
                        f"APG's start/stop needs {type(scheduler).__name__}.timesteps (call set_timesteps first)."
                    )
                limit = pipeline_num_timesteps(pipe)
                state.cache["num_steps"] = run_steps(
                    schedule.detach().flatten().double().cpu().tolist(),
                    timestep,
                    int(getattr(scheduler, "order", 1) or 1),
                    limit if isinstance(limit, int) else None,
                )
            found.update(step=max(state.steps - 1, 0), num_steps=state.cache["num_steps"])
        if apg.sigma_range is not None:
            if self.layout.family == "flow":
                found["sigma"] = timestep / num_train  # SD3 passes σ·1000
            else:
                if "alphas_cumprod_host" not in state.cache:  # once per run
                    state.cache["alphas_cumprod_host"] = _alphas_cumprod(scheduler).detach().cpu()
                table = state.cache["alphas_cumprod_host"]
                found["sigma"] = float(vp_sigma(torch.tensor([timestep], dtype=torch.float64), table)[0])
        return found


_NO_CFG_REASONS = {
    "FluxPipeline": "guidance-distilled; its optional true CFG scale `true_cfg_scale` is a local of `__call__`",
    "Flux2Pipeline": "FLUX.2 [dev] is guidance-distilled: one conditional call per step, no unconditional branch",
    "QwenImagePipeline": "`true_cfg_scale` is a local of `__call__` and the pipeline rescales the combination to the "
    "conditional norm; QwenImageModularPipeline takes APGGuider",
}


def apply_guidance(pipe: Any, *methods: CFG | APG | HiGS) -> Any:
    """Replaces a classic pipeline's classifier-free guidance with APG and/or HiGS, in place.

    Calling it again replaces the previous methods; :func:`remove_guidance` restores the stock pipeline. With no
    methods (or only neutral ones) the hook returns the denoiser's output untouched.

    Args:
        pipe: a diffusers pipeline with ``pipe.unet`` or ``pipe.transformer`` (SD, SDXL, SD3, their img2img
            variants, Flux, Flux.2, Qwen-Image, Wan, Z-Image, LTX-2, inertia's DigitsPipeline; see
            docs/hosts/pipelines.md for what each supports).
        *methods: at most one of :class:`CFG` / :class:`APG` and at most one :class:`HiGS` (applied on top).

    Returns:
        ``pipe``, for chaining.

    Raises:
        TypeError: a method is not a CFG / APG / HiGS instance.
        ValueError: an invalid combination, a pipeline without a denoiser or scheduler, a pipeline that runs no
            classifier-free guidance (no ``guidance_scale``, e.g. an unconditional ``DDPMPipeline``), APG on a
            pipeline whose CFG a hook cannot replace (Flux, Flux.2 [dev], Qwen-Image), or a Wan 2.2 pipeline with
            two experts.

    Example:
        >>> from diffusers import DDIMScheduler, UNet2DModel
        >>> from inertia.guidance import APG, HiGS, apply_guidance, remove_guidance
        >>> from inertia.pipelines import DigitsPipeline
        >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, num_class_embeds=11,
        ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> pipe = apply_guidance(DigitsPipeline(unet, DDIMScheduler()), APG(), HiGS(weight=1.0))
        >>> images = pipe([1, 2], num_inference_steps=3, guidance_scale=15, output_type="pt").images
        >>> tuple(images.shape)
        (2, 3, 8, 8)
        >>> _ = remove_guidance(pipe)
    """
    combiner, higs = check_methods(methods)
    denoiser = find_denoiser(pipe)
    layout = detect_layout(pipe, denoiser)
    takes_scale = hasattr(type(pipe), "guidance_scale") or "guidance_scale" in getattr(pipe, "__dict__", {})
    if layout.scale_known and not takes_scale:
        raise ValueError(
            f"`pipe` ({type(pipe).__name__}) runs no classifier-free guidance (it takes no `guidance_scale`: an "
            "unconditional or guidance-free pipeline), so there is no guidance for APG or HiGS to replace; give a "
            "pipeline with CFG (SD, SDXL, SD3, DigitsPipeline, ...)."
        )
    if higs is not None and higs.is_identity:
        higs = None
    if not layout.scale_known and isinstance(combiner, APG) and not combiner.is_identity:
        why = _NO_CFG_REASONS.get(type(pipe).__name__, "its optional true CFG scale is a local of `__call__`")
        raise ValueError(
            f"{type(pipe).__name__} runs no classifier-free guidance that a hook can replace ({why}), so APG cannot "
            "apply; use HiGS alone."
        )
    if getattr(pipe, "transformer_2", None) is not None:
        raise ValueError(
            f"{type(pipe).__name__} has a second expert (`transformer_2`, Wan 2.2 below `boundary_ratio`) that runs "
            "with its own `guidance_scale_2`; apply_guidance hooks one denoiser only. Use the modular Wan 2.2 "
            "pipeline with APGGuider / HiGSGuider as `guider` and `guider_2`, or a single-expert checkpoint."
        )
    remove_guidance(pipe)
    HookRegistry.check_if_exists_or_initialize(denoiser).register_hook(
        GuidanceHook(pipe, combiner, higs, layout), HOOK_NAME
    )
    return pipe


def remove_guidance(pipe: Any) -> Any:
    """Removes what :func:`apply_guidance` added (a no-op when nothing was added); returns ``pipe``."""
    denoiser = find_denoiser(pipe)
    registry = hook_registry(denoiser)
    if registry is not None and registry.get_hook(HOOK_NAME) is not None:
        registry.remove_hook(HOOK_NAME, recurse=False)
    return pipe


def guidance_hook(pipe: Any) -> GuidanceHook | None:
    """The active :class:`GuidanceHook` of ``pipe``'s denoiser, or None."""
    registry = hook_registry(find_denoiser(pipe))
    return None if registry is None else registry.get_hook(HOOK_NAME)
