"""APG / HiGS for classic diffusers pipelines, through a model hook on the denoiser (no pipeline is forked).

`apply_guidance(pipe, *methods)` registers a diffusers `ModelHook` on ``pipe.unet`` / ``pipe.transformer``. On each
denoiser call the hook splits the pipeline's ``[uncond; cond]`` batch, converts both halves to x0 at that
evaluation's noise level, runs CFG or APG and then HiGS (`inertia.guidance.state.guide`), converts back and returns
``[g; g]``. The pipeline's own line ``u + w (c − u)`` then yields ``g`` exactly, for any ``w``, so nothing in the
pipeline is forked. Pipelines that run no batched CFG (``guidance_scale <= 1``, Flux's guidance-distilled path) get
HiGS on the single conditional output.

Supported: `StableDiffusionPipeline`, `StableDiffusionXLPipeline`, `StableDiffusion3Pipeline`, their img2img
variants, `FluxPipeline` (HiGS only) and inertia's `DigitsPipeline`, with any scheduler; second-order schedulers
(Heun, KDPM2) are detected through ``scheduler.state_in_first_order``. SD3's skip-layer-guidance calls pass through.

State: one :class:`~inertia.guidance.state.GuidanceState` per thread, reset at the start of each generation (the
scheduler's ``timesteps`` tensor is replaced by every ``set_timesteps``; a rising timestep or a batch change also
resets), so nothing leaks between calls, and concurrent calls from different threads never share state. The hook
reads each call's timestep on the host once (one device sync per denoiser call on GPU).

APG's guidance interval (``APG(start=..., stop=..., sigma_range=...)``) is decided on the host from what the hook
already has: the step index is the number of sampler steps committed so far in this run (second-order corrector and
repeated evaluations belong to their step), the step count is read once per run from ``scheduler.timesteps``, from the
run's first timestep on (so img2img counts only the steps it runs) and limited to ``pipe._num_timesteps`` (SDXL's
``denoising_end``), and σ comes from the call's timestep (read on the host anyway): √((1 − ᾱ)/ᾱ) for VP models,
timestep / num_train_timesteps for flow models. No extra device sync per call.

Notes: with ``guidance_rescale > 0`` the pipeline rescales ``g`` against itself, which is a no-op. Flux's true CFG
(``true_cfg_scale > 1`` with a negative prompt) runs cond and uncond as separate calls; it is refused with a clear
error rather than half-guided.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import BaseState, StateManager

from .config import APG, CFG, HiGS, check_methods
from .spaces import PREDICTION_TYPES, flow_alpha_sigma, from_x0, to_x0, vp_alpha_sigma, vp_sigma
from .state import GuidanceState, guide

HOOK_NAME = "inertia_guidance"
"""Name of the hook in the denoiser's diffusers `HookRegistry`."""

_SAMPLE_NAMES = ("sample", "hidden_states")


class GuidanceLayoutError(RuntimeError):
    """The pipeline called its denoiser in a way the guidance hook cannot interpret (raised, never guessed).

    Example:
        >>> issubclass(GuidanceLayoutError, RuntimeError)   # a host-side surprise, not a bad user argument
        True
    """


@dataclass(frozen=True)
class _Layout:
    """How a pipeline feeds its denoiser: model family, output kind and timestep units."""

    family: str  # "vp" or "flow"
    prediction_type: str
    timestep_scale: float  # training-timestep units per unit of the timestep the pipeline passes
    packed: bool  # Flux: 2x2 patches packed into tokens


class _NoState(BaseState):
    def reset(self, *args: Any, **kwargs: Any) -> None:
        pass


def find_denoiser(pipe: Any) -> torch.nn.Module:
    """``pipe.unet`` or ``pipe.transformer``; a ``ValueError`` naming the pipeline class otherwise."""
    for name in ("unet", "transformer"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ValueError(
        f"`pipe` must be a diffusers pipeline with a `unet` or `transformer` denoiser, got {type(pipe).__name__} "
        "without one."
    )


def _layout(pipe: Any, denoiser: torch.nn.Module) -> _Layout:
    config = getattr(getattr(pipe, "scheduler", None), "config", None)
    if config is None:
        raise ValueError(f"`pipe` ({type(pipe).__name__}) has no scheduler with a config; guidance needs one.")
    num_train = float(config.get("num_train_timesteps", 1000) or 1000)
    name = type(denoiser).__name__
    if name.startswith("Flux"):
        return _Layout("flow", "flow", num_train, packed=True)  # FluxPipeline passes timestep / 1000 = σ
    is_flow = (
        "FlowMatch" in type(pipe.scheduler).__name__
        or config.get("prediction_type") == "flow_prediction"
        or bool(config.get("use_flow_sigmas", False))
        or name.startswith("SD3")
    )
    if is_flow:
        return _Layout("flow", "flow", 1.0, packed=False)
    prediction_type = config.get("prediction_type", "epsilon")
    if prediction_type not in PREDICTION_TYPES[:3]:
        raise ValueError(
            f"`pipe.scheduler.config.prediction_type` must be one of {PREDICTION_TYPES[:3]} for a VP denoiser, "
            f"got {prediction_type!r}."
        )
    return _Layout("vp", prediction_type, 1.0, packed=False)


def _alphas_cumprod(scheduler: Any) -> torch.Tensor:
    table = getattr(scheduler, "alphas_cumprod", None)
    if isinstance(table, torch.Tensor):
        return table
    from diffusers import DDPMScheduler  # the training schedule from the same config keys

    return DDPMScheduler.from_config(scheduler.config).alphas_cumprod


def _argument(signature: inspect.Signature, args: tuple, kwargs: dict, name: str) -> Any:
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


def _unpack(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flux tokens ``(B, h·w, 4C)`` → latents ``(B, C, 2h, 2w)`` (inverse of FluxPipeline's 2x2 packing)."""
    batch, _, features = x.shape
    x = x.reshape(batch, height, width, features // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, features // 4, 2 * height, 2 * width)


def _pack(x: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = x.shape
    x = x.reshape(batch, channels, height // 2, 2, width // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(batch, (height // 2) * (width // 2), channels * 4)


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

    def __init__(self, pipe: Any, combiner: CFG | APG | None, higs: HiGS | None, layout: _Layout) -> None:
        super().__init__()
        self._pipe = weakref.ref(pipe)
        self.combiner, self.higs, self.layout = combiner, higs, layout
        self._local = threading.local()
        self._signature: inspect.Signature | None = None
        self._context_probe = StateManager(_NoState)  # receives diffusers cache contexts (Flux cond / uncond)

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
        context = self._context_probe._context
        if context is not None and context.name == "uncond":
            raise GuidanceLayoutError(
                f"{type(pipe).__name__} ran a separate unconditional call (true CFG); inertia guidance supports "
                "this pipeline without it (true_cfg_scale=1 or no negative prompt)."
            )
        out = output[0] if isinstance(output, tuple) else output.sample
        guided = self._guide(pipe, out, args, kwargs)
        if isinstance(output, tuple):
            return (guided, *output[1:])
        output.sample = guided
        return output

    def _guide(self, pipe: Any, out: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
        sample = next(
            (v for n in _SAMPLE_NAMES if (v := _argument(self._signature, args, kwargs, n)) is not None), None
        )
        timestep = _argument(self._signature, args, kwargs, "timestep")
        if sample is None or timestep is None or sample.shape[0] != out.shape[0]:
            raise GuidanceLayoutError(f"{type(pipe).__name__}'s denoiser call has no `sample`/`timestep` to guide.")
        batched = bool(getattr(pipe, "do_classifier_free_guidance", False))
        if batched and out.shape[0] % 2:
            raise GuidanceLayoutError(
                f"{type(pipe).__name__} runs classifier-free guidance but its denoiser batch {out.shape[0]} is not "
                "[uncond; cond]; only pipelines that batch the two branches are supported."
            )
        half = out.shape[0] // 2 if batched else 0
        cond, uncond = out[half:], (out[:half] if batched else None)
        x = sample[half:].to(cond.dtype) if cond.dtype.is_floating_point else sample[half:]
        timesteps = torch.as_tensor(timestep, device=out.device).flatten()
        timesteps = timesteps.expand(out.shape[0]) if timesteps.numel() == 1 else timesteps
        timesteps = timesteps[half:].float() * self.layout.timestep_scale

        state = self.state()
        scheduler = pipe.scheduler
        host_timestep = float(timesteps[0])  # one host read per call (see module docstring)
        commit = state.observe(
            host_timestep,
            key=(tuple(out.shape), out.dtype, out.device),
            marker=getattr(scheduler, "timesteps", None),
            first_order=bool(getattr(scheduler, "state_in_first_order", True)),
        )
        num_train = float(scheduler.config.get("num_train_timesteps", 1000) or 1000)
        interval = self._interval(pipe, state, host_timestep, num_train) if batched else {}
        if self.layout.family == "flow":
            a, s = flow_alpha_sigma(timesteps / num_train)
            t = timesteps / num_train
        else:
            if "alphas_cumprod" not in state.cache:
                state.cache["alphas_cumprod"] = _alphas_cumprod(scheduler)
            a, s = vp_alpha_sigma(timesteps, state.cache["alphas_cumprod"])
            time_mode = self.higs.time_mode if self.higs is not None else "timestep_fraction"
            t = timesteps / num_train if time_mode == "timestep_fraction" else (s / a) / (1 + s / a)

        if self.layout.packed:
            height, width = self._token_grid(state, kwargs, cond)
            cond, x = _unpack(cond, height, width), _unpack(x, height, width)
            uncond = None if uncond is None else _unpack(uncond, height, width)
        shape = (-1, *([1] * (cond.ndim - 1)))
        a, s = a.view(shape), s.view(shape)
        kind = self.layout.prediction_type
        guided = guide(
            state,
            self.combiner,
            self.higs,
            cond,
            uncond,
            float(pipe.guidance_scale),
            commit=commit,
            t=t,
            to_x0=lambda value: to_x0(value, x.to(value.dtype), a.to(value.dtype), s.to(value.dtype), kind),
            from_x0=lambda value: from_x0(value, x.to(value.dtype), a.to(value.dtype), s.to(value.dtype), kind),
            **interval,
        )
        if self.layout.packed:
            guided = _pack(guided)
        return torch.cat([guided, guided]) if batched else guided

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
                limit = getattr(pipe, "_num_timesteps", None)
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

    @staticmethod
    def _token_grid(state: GuidanceState, kwargs: dict, cond: torch.Tensor) -> tuple[int, int]:
        if "grid" not in state.cache:
            ids = kwargs.get("img_ids")
            if ids is None or ids.shape[-2] != cond.shape[1] or cond.shape[2] % 4:
                raise GuidanceLayoutError("Flux guidance needs the transformer's `img_ids` to unpack its tokens.")
            ids = ids.reshape(-1, ids.shape[-2], ids.shape[-1])[0]
            state.cache["grid"] = (int(ids[:, 1].max()) + 1, int(ids[:, 2].max()) + 1)
        return state.cache["grid"]


def apply_guidance(pipe: Any, *methods: CFG | APG | HiGS) -> Any:
    """Replaces a classic pipeline's classifier-free guidance with APG and/or HiGS, in place.

    Calling it again replaces the previous methods; :func:`remove_guidance` restores the stock pipeline. With no
    methods (or only neutral ones) the hook returns the denoiser's output untouched.

    Args:
        pipe: a diffusers pipeline with ``pipe.unet`` or ``pipe.transformer`` (SD, SDXL, SD3, their img2img
            variants, Flux, inertia's DigitsPipeline).
        *methods: at most one of :class:`CFG` / :class:`APG` and at most one :class:`HiGS` (applied on top).

    Returns:
        ``pipe``, for chaining.

    Raises:
        TypeError: a method is not a CFG / APG / HiGS instance.
        ValueError: an invalid combination, a pipeline without a denoiser or scheduler, or APG on a pipeline
            without batched CFG (Flux).

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
    layout = _layout(pipe, denoiser)
    if higs is not None and higs.is_identity:
        higs = None
    if layout.packed and isinstance(combiner, APG) and not combiner.is_identity:
        raise ValueError(
            f"{type(pipe).__name__} runs no batched classifier-free guidance, so APG cannot apply; use HiGS alone."
        )
    remove_guidance(pipe)
    HookRegistry.check_if_exists_or_initialize(denoiser).register_hook(
        GuidanceHook(pipe, combiner, higs, layout), HOOK_NAME
    )
    return pipe


def remove_guidance(pipe: Any) -> Any:
    """Removes what :func:`apply_guidance` added (a no-op when nothing was added); returns ``pipe``."""
    denoiser = find_denoiser(pipe)
    registry = getattr(denoiser, "_diffusers_hook", None)
    if registry is not None and registry.get_hook(HOOK_NAME) is not None:
        registry.remove_hook(HOOK_NAME, recurse=False)
    return pipe


def guidance_hook(pipe: Any) -> GuidanceHook | None:
    """The active :class:`GuidanceHook` of ``pipe``'s denoiser, or None."""
    registry = getattr(find_denoiser(pipe), "_diffusers_hook", None)
    return None if registry is None else registry.get_hook(HOOK_NAME)
