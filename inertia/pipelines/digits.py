"""Class-conditional digit generation with batched classifier-free guidance and any diffusers scheduler.

`DigitsPipeline` wraps a class-conditional epsilon-prediction UNet (labels 0-9, plus the null label 10 for the
unconditional branch of classifier-free guidance) and a scheduler, following the Stable Diffusion sampling protocol
so that every diffusers scheduler and inertia's momentum schedulers can be swapped in.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, ModelMixin, SchedulerMixin
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor

# Saved pipelines name our components by module path, and diffusers only resolves modules that are already imported:
# today's paths, and the paths inertia 0.1 recorded (old import paths kept as module aliases).
import inertia.adapters.diffusers.scheduling_momentum_dpmsolver
import inertia.adapters.diffusers.scheduling_momentum_plms
import inertia.models.preconditioned_unet
import inertia.samplers.scheduling_momentum_dpmsolver
import inertia.samplers.scheduling_momentum_plms  # noqa: F401
from inertia.adapters.diffusers.private_api import execution_device

NUM_DIGIT_CLASSES = 10
"""Conditional labels are the digits 0-9."""

NULL_LABEL = 10
"""Class label of the unconditional (classifier-free guidance) branch."""

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
"""Valid ``output_type`` values."""

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _is_int(value: Any) -> bool:
    """True for Python / NumPy integers, but not for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


class DigitsPipeline(DiffusionPipeline):
    r"""Class-conditional digit generation (labels 0-9) with batched classifier-free guidance.

    The ``unet`` follows the diffusers `UNet2DModel` call convention, ``unet(sample, timestep,
    class_labels=labels).sample``, and predicts the noise (epsilon) of a VP schedule; label 10 is the null
    (unconditional) class. Images live in [-1, 1]; sample size and channels are read from ``unet.config``.

    Sampling follows the Stable Diffusion protocol (``set_timesteps`` / ``init_noise_sigma`` /
    ``scale_model_input`` / ``step``), so any diffusers scheduler (DDIM, DDPM, PNDM, DPM-Solver, UniPC, DEIS,
    Euler, Heun, LMS, KDPM2, ...) and inertia's momentum schedulers can be swapped in with
    ``pipe.scheduler = OtherScheduler.from_config(pipe.scheduler.config)``.

    The UNet runs in its own dtype and device; latents and scheduler arithmetic are kept in float32 (float64 for a
    float64 UNet), so float16 / bfloat16 UNets work.

    Args:
        unet: class-conditional epsilon-prediction model with at least 11 class embeddings (0-9 and null 10).
        scheduler: any diffusers-compatible scheduler.

    Example:
        >>> import torch
        >>> from diffusers import DDIMScheduler, UNet2DModel
        >>> from inertia.pipelines.digits import DigitsPipeline
        >>> unet = UNet2DModel(
        ...     sample_size=16, block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        ...     up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=4,
        ...     num_class_embeds=11,
        ... )
        >>> pipe = DigitsPipeline(unet=unet, scheduler=DDIMScheduler())
        >>> generator = torch.Generator().manual_seed(0)
        >>> images = pipe([3, 7], num_images_per_prompt=2, num_inference_steps=4, generator=generator).images
        >>> len(images), images[0].size
        (4, (16, 16))
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["latents"]  # noqa: RUF012 (diffusers convention: a plain class-level list)

    def __init__(self, unet: ModelMixin, scheduler: SchedulerMixin) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        self._guidance_scale = 1.0
        self._num_timesteps = 0

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        """diffusers' ``save_pretrained``, plus the model's tuned preset settings (``inertia_presets.json``) if any."""
        from inertia.core.presets.models import write_model_presets

        super().save_pretrained(save_directory, *args, **kwargs)
        presets = getattr(self, "inertia_presets", None) or {}
        if any(presets.get(section) for section in ("guidance", "attention", "sampler")):
            write_model_presets(save_directory, presets)

    @property
    def guidance_scale(self) -> float:
        """Guidance scale of the current (or last) call."""
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Whether the current (or last) call runs the unconditional branch (``guidance_scale > 1``)."""
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        """Number of scheduler timesteps of the current (or last) call."""
        return self._num_timesteps

    def _sample_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one sample, from ``unet.config``."""
        config = self.unet.config
        size = config.sample_size
        height, width = (size, size) if _is_int(size) else (int(size[0]), int(size[1]))
        return int(config.in_channels), int(height), int(width)

    @staticmethod
    def _normalize_digits(digits: int | Sequence[int]) -> list[int]:
        """Validates ``digits`` and returns it as a list of Python ints."""
        if _is_int(digits):
            digit_list = [digits]
        elif isinstance(digits, list | tuple):
            if len(digits) == 0:
                raise ValueError("`digits` must be a non-empty list of ints in 0..9, got an empty list.")
            digit_list = list(digits)
        else:
            raise ValueError(
                f"`digits` must be an int in 0..9 or a list of them, got {digits!r} of type {type(digits).__name__}."
            )
        for digit in digit_list:
            if not _is_int(digit) or not 0 <= digit < NUM_DIGIT_CLASSES:
                raise ValueError(
                    f"`digits` must contain ints in 0..{NUM_DIGIT_CLASSES - 1}, got {digit!r} "
                    f"(type {type(digit).__name__}) in {digits!r}."
                )
        return [int(d) for d in digit_list]

    def check_inputs(
        self,
        digits: int | Sequence[int],
        num_images_per_prompt: int,
        num_inference_steps: int,
        guidance_scale: float,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
        output_type: str,
        callback_on_step_end: Callable[..., Any] | PipelineCallback | MultiPipelineCallbacks | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
    ) -> list[int]:
        """Validates every argument of `__call__` before any work; returns the digits as a list.

        Raises:
            ValueError: naming the offending parameter, its value and the valid range.
        """
        digit_list = self._normalize_digits(digits)
        if not _is_int(num_images_per_prompt) or num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be an int >= 1, got {num_images_per_prompt!r}.")
        if not _is_int(num_inference_steps) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be an int >= 1, got {num_inference_steps!r}.")
        if (
            not isinstance(guidance_scale, numbers.Real)
            or isinstance(guidance_scale, bool | np.bool_)
            or not math.isfinite(guidance_scale)
            or guidance_scale < 0
        ):
            raise ValueError(f"`guidance_scale` must be a finite number >= 0, got {guidance_scale!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {list(OUTPUT_TYPES)}, got {output_type!r}.")

        batch_size = len(digit_list) * num_images_per_prompt
        if isinstance(generator, list):
            if len(generator) != batch_size or not all(isinstance(g, torch.Generator) for g in generator):
                raise ValueError(
                    f"`generator` as a list must hold one torch.Generator per image ({batch_size} = {len(digit_list)} "
                    f"digits x {num_images_per_prompt} images per prompt), got a list of {len(generator)}."
                )
        elif generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(
                f"`generator` must be None, a torch.Generator or a list of {batch_size} of them, "
                f"got {type(generator).__name__}."
            )

        if latents is not None:
            expected = (batch_size, *self._sample_shape())
            if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != expected:
                got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
                raise ValueError(f"`latents` must be a tensor of shape {expected}, got {got}.")

        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError(
                f"`callback_on_step_end` must be callable or None, got {type(callback_on_step_end).__name__}."
            )
        if isinstance(callback_on_step_end_tensor_inputs, str):
            raise ValueError(
                "`callback_on_step_end_tensor_inputs` must be a list of names in "
                f"{self._callback_tensor_inputs}, got the string {callback_on_step_end_tensor_inputs!r}."
            )
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` must be in {self._callback_tensor_inputs}, got unknown {unknown}."
            )

        if guidance_scale > 1.0:
            num_class_embeds = getattr(self.unet.config, "num_class_embeds", None)
            if _is_int(num_class_embeds) and num_class_embeds <= NULL_LABEL:
                raise ValueError(
                    f"`guidance_scale` {guidance_scale} > 1 needs the null label {NULL_LABEL}, but the unet has "
                    f"num_class_embeds={num_class_embeds}; use guidance_scale <= 1 or a unet with >= "
                    f"{NULL_LABEL + 1} classes."
                )
        return digit_list

    def _latent_dtype(self) -> torch.dtype:
        """Dtype of latents and scheduler arithmetic: float32 for low-precision UNets, else the UNet's dtype."""
        dtype = self.unet.dtype
        return torch.float32 if dtype in _LOW_PRECISION or not dtype.is_floating_point else dtype

    @torch.no_grad()
    def __call__(
        self,
        digits: int | Sequence[int],
        num_images_per_prompt: int = 1,
        num_inference_steps: int = 20,
        guidance_scale: float = 3.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict[str, Any]], dict[str, Any] | None]
        | PipelineCallback
        | MultiPipelineCallbacks
        | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> ImagePipelineOutput | tuple:
        """Generates images of the given digits.

        Args:
            digits: a digit in 0..9 or a non-empty list of them; images are ordered digit by digit, each repeated
                ``num_images_per_prompt`` times (``[3, 7]`` with 2 per prompt gives 3, 3, 7, 7).
            num_images_per_prompt: images per digit, >= 1.
            num_inference_steps: scheduler steps, >= 1 (some schedulers make more UNet calls, e.g. Heun, PNDM).
            guidance_scale: classifier-free guidance scale, finite and >= 0. Above 1, each step makes one UNet
                call on the batch ``[uncond, cond]`` (null label 10 for uncond) and uses ``u + s * (c - u)``; at or
                below 1 only the conditional branch runs.
            generator: a `torch.Generator`, or a list with one per image (image ``i`` with generator ``i`` equals
                the same image generated alone), for the initial noise and stochastic schedulers.
            latents: initial noise of shape ``(len(digits) * num_images_per_prompt, C, H, W)``; sampled from
                ``generator`` when None. It is multiplied by ``scheduler.init_noise_sigma`` as in diffusers.
            output_type: ``"pil"`` (list of PIL images), ``"np"`` (NHWC float array in [0, 1]), ``"pt"``
                (NCHW float tensor in [0, 1]) or ``"latent"`` (the final sample as the sampler left it: NCHW, data
                range [-1, 1], unclamped, as diffusers' pipelines return their latents; for divergence measurements
                such as :func:`inertia.metrics.magnitude_score`).
            return_dict: return an `ImagePipelineOutput` (default) or a 1-tuple ``(images,)``.
            callback_on_step_end: called after each step as ``callback(pipe, i, t, callback_kwargs)``;
                ``callback_kwargs`` holds the tensors named in ``callback_on_step_end_tensor_inputs``. It may return
                a dict whose ``"latents"`` replaces the latents. A diffusers `PipelineCallback` /
                `MultiPipelineCallbacks` supplies its own ``tensor_inputs``.
            callback_on_step_end_tensor_inputs: names passed to the callback; valid: ``["latents"]``.

        Returns:
            `ImagePipelineOutput` with ``images``, or ``(images,)`` when ``return_dict`` is False.

        Raises:
            ValueError: for an invalid argument, before any work.
        """
        if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        digit_list = self.check_inputs(
            digits,
            num_images_per_prompt,
            num_inference_steps,
            guidance_scale,
            generator,
            latents,
            output_type,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        self._guidance_scale = float(guidance_scale)
        do_cfg = self.do_classifier_free_guidance

        device = execution_device(self)
        model_dtype = self.unet.dtype
        latent_dtype = self._latent_dtype()
        batch_size = len(digit_list) * num_images_per_prompt

        labels = torch.tensor(digit_list, device=device, dtype=torch.long).repeat_interleave(num_images_per_prompt)
        if do_cfg:
            labels = torch.cat([torch.full_like(labels, NULL_LABEL), labels])

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)

        if latents is None:
            shape = (batch_size, *self._sample_shape())
            latents = randn_tensor(shape, generator=generator, device=device, dtype=latent_dtype)
        else:
            latents = latents.to(device=device, dtype=latent_dtype)
        latents = latents * self.scheduler.init_noise_sigma

        step_kwargs: dict[str, Any] = {}
        if "generator" in inspect.signature(self.scheduler.step).parameters:
            step_kwargs["generator"] = generator

        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                model_input = self.scheduler.scale_model_input(latents, t)
                if do_cfg:
                    model_input = torch.cat([model_input, model_input])
                model_input = model_input.to(model_dtype)
                timestep = t.to(device).expand(model_input.shape[0]) if torch.is_tensor(t) else t
                noise_pred = self.unet(model_input, timestep, class_labels=labels).sample.to(latent_dtype)
                if do_cfg:
                    noise_uncond, noise_cond = noise_pred.chunk(2)
                    noise_pred = noise_uncond + self._guidance_scale * (noise_cond - noise_uncond)

                latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=False)[0]

                if callback_on_step_end is not None:
                    available = {"latents": latents}
                    callback_kwargs = {name: available[name] for name in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    if callback_outputs is not None:
                        latents = callback_outputs.pop("latents", latents)
                progress_bar.update()

        if output_type == "latent":
            images = latents
        else:
            images = (latents / 2 + 0.5).clamp(0, 1)
        if output_type in ("np", "pil"):
            images = images.float().cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)

        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
