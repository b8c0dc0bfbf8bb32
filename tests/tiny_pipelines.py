"""Real diffusers pipelines with tiny random-weight components, built fully offline.

`make_pipeline(kind, img2img=...)` builds the genuine pipeline class (`StableDiffusionPipeline`,
`StableDiffusionXLPipeline`, `StableDiffusion3Pipeline`, `FluxPipeline` or their ``Img2Img`` variants) with
8/16-channel blocks, no text encoders and no tokenizers, and `make_call_kwargs(kind, ...)` gives matching
``prompt_embeds``; `run(pipe, **kwargs)` returns ``.images``. A 32x32, 4-step call takes ~0.1 s on CPU.

Latent shapes at 32x32 (the tiny VAE downsamples by 2, 4 latent channels): SD / SDXL / SD3 give
``(B, 4, 16, 16)``; Flux *packs* 2x2 patches, so its ``output_type="latent"`` result is ``(B, 64, 16)``
and the tensors its scheduler sees are ``(B, 64, 16)`` too.

Scheduler protocol of each pipeline (measured with `record_scheduler_calls`, diffusers 0.42.1, 4 steps)
-------------------------------------------------------------------------------------------------------
Common: every pipeline reads ``scheduler.timesteps`` and ``scheduler.order`` and calls
``step(model_output, t, sample, return_dict=False)[0]`` once per timestep, with CFG already combined (one
``model_output`` of batch B). SD/SDXL add ``eta=`` / ``generator=`` only if ``step``'s *signature* names them.
``retrieve_timesteps`` checks ``inspect.signature(set_timesteps)`` for ``sigmas`` / ``timesteps`` and raises if
a pipeline passes one the signature lacks, so a custom scheduler must name them explicitly (``**kwargs`` is
not enough). ``set_begin_index`` is called only ``if hasattr(scheduler, "set_begin_index")``.

* SD text-to-image: ``set_timesteps(4, device=cpu)``; latents ``*= init_noise_sigma``;
  ``scale_model_input(x, t)`` before each UNet call. No ``set_begin_index``.
* SDXL text-to-image: same plus ``set_begin_index(0)``.
* SD / SDXL img2img: ``set_timesteps(4, device=cpu)``; keeps ``timesteps[t_start * order:]`` with
  ``t_start = n - int(n * strength)``; ``set_begin_index(t_start * order)``;
  ``add_noise(init_latents, noise, timesteps[:1].repeat(B))``; then ``scale_model_input`` + ``step``.
  ``init_noise_sigma`` is not used.
* SD3 text-to-image: ``set_timesteps(4, device=cpu)`` (``mu=`` added only if ``config.use_dynamic_shifting``).
  No ``scale_model_input``, ``init_noise_sigma`` or ``set_begin_index``; ``t`` is in [0, 1000] (sigma * 1000).
* SD3 img2img: ``set_timesteps(4, device=cpu)``, ``set_begin_index(t_start * order)``,
  ``scale_noise(init_latents, timesteps[:1].repeat(B), noise)`` (order: sample, timestep, noise).
* Flux text-to-image: ``set_timesteps(sigmas=np.linspace(1, 1/n, n), device=cpu, mu=mu)`` -- keyword only,
  *no* ``num_inference_steps``; ``sigmas`` is dropped (then ``set_timesteps(n, device=cpu, mu=mu)``) only when
  ``scheduler.config.use_flow_sigmas`` is true. ``mu`` is always passed (0.4675 at 32x32: 64 packed tokens,
  extrapolated below ``base_image_seq_len``). Then ``set_begin_index(0)``. Sample / model output are packed
  ``(B, 64, 16)``.
* Flux img2img: ``set_timesteps(sigmas=..., device=cpu, mu=mu)`` **always** (no ``use_flow_sigmas`` escape),
  ``set_begin_index(t_start * order)``, then ``scale_noise(image_latents, timesteps[:1].repeat(B), noise)`` on
  the *unpacked* ``(B, 4, 16, 16)`` latents; ``step`` then sees packed ``(B, 64, 16)`` tensors.

Consequences: `PNDMScheduler` (the SD default) has no ``set_begin_index`` and yields ``n + 1`` timesteps for
``n`` steps (``skip_prk_steps`` repeats one), so SD makes 5 UNet calls for 4 steps (4 in img2img at 0.75).
`DPMSolverMultistepScheduler` works for text-to-image everywhere (SD3/Flux with
``prediction_type="flow_prediction", use_flow_sigmas=True``; Flux's ``mu`` then requires
``use_dynamic_shifting`` and overwrites ``config.flow_shift = exp(mu)``), but not for SD3/Flux img2img: it has no
``scale_noise``, and no ``sigmas`` argument for FluxImg2Img.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxImg2ImgPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    PNDMScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Img2ImgPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

PIPELINE_KINDS = ("sd", "sdxl", "sd3", "flux")
SCHEDULER_METHODS = ("set_timesteps", "set_begin_index", "scale_model_input", "add_noise", "scale_noise", "step")

# Text-side dimensions of the tiny models: (prompt_embeds width, pooled width or None).
TEXT_DIMS: dict[str, tuple[int, int | None]] = {"sd": (16, None), "sdxl": (16, 8), "sd3": (16, 16), "flux": (16, 16)}
SEQ_LEN = 8  # tokens per prompt; any length works since there is no tokenizer
LATENT_CHANNELS = 4

_PIPELINE_CLASSES: dict[str, tuple[type[DiffusionPipeline], type[DiffusionPipeline]]] = {
    "sd": (StableDiffusionPipeline, StableDiffusionImg2ImgPipeline),
    "sdxl": (StableDiffusionXLPipeline, StableDiffusionXLImg2ImgPipeline),
    "sd3": (StableDiffusion3Pipeline, StableDiffusion3Img2ImgPipeline),
    "flux": (FluxPipeline, FluxImg2ImgPipeline),
}


def _check_kind(kind: str) -> None:
    if kind not in PIPELINE_KINDS:
        raise ValueError(f"unknown pipeline kind {kind!r}; expected one of {PIPELINE_KINDS}")


def default_scheduler(kind: str) -> SchedulerMixin:
    """The scheduler (class and config) that the real checkpoints of `kind` ship with."""
    _check_kind(kind)
    if kind == "sd":  # runwayml/stable-diffusion-v1-5
        return PNDMScheduler(  # the checkpoint also lists clip_sample=False, which PNDM does not take
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            set_alpha_to_one=False,
            skip_prk_steps=True,
        )
    if kind == "sdxl":  # stabilityai/stable-diffusion-xl-base-1.0
        return EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
            interpolation_type="linear",
        )
    if kind == "sd3":  # stabilityai/stable-diffusion-3-medium-diffusers
        return FlowMatchEulerDiscreteScheduler(shift=3.0)
    return FlowMatchEulerDiscreteScheduler(  # black-forest-labs/FLUX.1-dev
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=8,
        sample_size=32,
        scaling_factor=1.0,
        shift_factor=0.0,  # SD3 / Flux read it unconditionally
        force_upcast=False,  # fp32 anyway; avoids SDXL img2img's `vae.to(float32)` round trip and its warning
    )


def _tiny_unet(kind: str) -> UNet2DConditionModel:
    text_dim, pooled_dim = TEXT_DIMS[kind]
    kwargs: dict[str, Any] = {}
    if kind == "sdxl":
        time_embed_dim = 8
        kwargs = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": time_embed_dim,
            # 6 micro-conditioning ids (original size, crop, target size) + the pooled text embedding
            "projection_class_embeddings_input_dim": 6 * time_embed_dim + pooled_dim,
            "use_linear_projection": True,
        }
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=text_dim,
        attention_head_dim=(2, 4),
        **kwargs,
    )


def _tiny_transformer(kind: str) -> SD3Transformer2DModel | FluxTransformer2DModel:
    text_dim, pooled_dim = TEXT_DIMS[kind]
    if kind == "sd3":
        return SD3Transformer2DModel(
            sample_size=16,
            patch_size=1,
            in_channels=LATENT_CHANNELS,
            out_channels=LATENT_CHANNELS,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=text_dim,
            caption_projection_dim=16,
            pooled_projection_dim=pooled_dim,
            pos_embed_max_size=32,
        )
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * LATENT_CHANNELS,  # Flux packs 2x2 latent patches
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=text_dim,
        pooled_projection_dim=pooled_dim,
        guidance_embeds=False,
        axes_dims_rope=(4, 4, 8),  # must sum to attention_head_dim
    )


def make_components(kind: str, seed: int = 0) -> dict[str, Any]:
    """The tiny denoiser and VAE of `kind`, each built right after `torch.manual_seed(seed)`.

    The global RNG state is restored afterwards, so building a pipeline does not perturb the caller's RNG.
    """
    _check_kind(kind)
    denoiser_name = "unet" if kind in ("sd", "sdxl") else "transformer"
    with torch.random.fork_rng(devices=[]), single_threaded():
        torch.manual_seed(seed)
        denoiser = _tiny_unet(kind) if kind in ("sd", "sdxl") else _tiny_transformer(kind)
        torch.manual_seed(seed)
        vae = _tiny_vae()
    components: dict[str, Any] = {
        denoiser_name: denoiser.eval(),
        "vae": vae.eval(),
        "text_encoder": None,
        "tokenizer": None,
    }
    if kind == "sd":
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    else:
        components.update(text_encoder_2=None, tokenizer_2=None)
        if kind == "sd3":
            components.update(text_encoder_3=None, tokenizer_3=None)
    return components


def make_pipeline(
    kind: str, img2img: bool = False, scheduler: SchedulerMixin | None = None, seed: int = 0
) -> DiffusionPipeline:
    """Build the real text-to-image (or img2img) pipeline of `kind` with tiny deterministic weights.

    The same `seed` gives identical weights, for text-to-image and img2img alike. `scheduler` defaults to
    `default_scheduler(kind)`, the scheduler the real checkpoints ship.
    """
    _check_kind(kind)
    components = make_components(kind, seed)
    components["scheduler"] = default_scheduler(kind) if scheduler is None else scheduler
    pipe = _PIPELINE_CLASSES[kind][int(img2img)](**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_modular_sdxl(seed: int = 0) -> Any:
    """The modular SDXL pipeline (`StableDiffusionXLAutoBlocks`) on `make_components("sdxl")`, no text encoder.

    Call it with `make_call_kwargs("sdxl")` minus ``guidance_scale``/``output_type`` (the guider component holds the
    scale) and ``output="latents"``.
    """
    from diffusers.modular_pipelines.stable_diffusion_xl import StableDiffusionXLAutoBlocks

    blocks = StableDiffusionXLAutoBlocks()
    blocks.sub_blocks.pop("text_encoder")  # we pass prompt embeddings; no tokenizer download
    pipe = blocks.init_pipeline()
    components = make_components("sdxl", seed)
    components["scheduler"] = default_scheduler("sdxl")
    pipe.update_components(**{k: v for k, v in components.items() if v is not None and k in pipe.component_names})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_digits_unet(seed: int = 0) -> torch.nn.Module:
    """A tiny class-conditional `UNet2DModel` (8x8, 11 classes incl. the null label) for `DigitsPipeline` tests."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=8,
        block_out_channels=(8, 8),
        norm_num_groups=4,
        num_class_embeds=11,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )


def _batched(batch_size: int, base_seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal rows; row i is drawn from seed `base_seed + i`, so it does not depend on `batch_size`."""
    rows = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(base_seed + i)) for i in range(batch_size)]
    return torch.stack(rows)


def make_image(batch_size: int = 1, height: int = 32, width: int = 32, seed: int = 0) -> torch.Tensor:
    """A deterministic smooth-plus-noise image batch in [0, 1], shape (batch_size, 3, height, width)."""
    ys = torch.linspace(0.0, 1.0, height).view(1, 1, height, 1)
    xs = torch.linspace(0.0, 1.0, width).view(1, 1, 1, width)
    colours = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    smooth = 0.5 + 0.4 * torch.sin(6.0 * (xs * colours + ys * (1 - colours)))
    noise = _batched(batch_size, 3000 + seed, (3, height, width))
    return (smooth + 0.05 * noise).clamp(0.0, 1.0)


def make_call_kwargs(
    kind: str,
    batch_size: int = 1,
    guidance_scale: float = 5.0,
    num_inference_steps: int = 4,
    seed: int = 0,
    img2img: bool = False,
    height: int = 32,
    width: int = 32,
    output_type: str = "latent",
) -> dict[str, Any]:
    """Everything to pass to `pipe(**kwargs)` for a pipeline from `make_pipeline(kind, img2img)`.

    The prompt embeddings are fixed (independent of `seed`; row i of a batch is always the same "prompt");
    `seed` drives the pipeline's `generator` only. Negative embeddings are always passed for SD/SDXL/SD3 (the
    pipelines need them for CFG without a tokenizer) and never for Flux, which thus stays on its single-branch,
    guidance-distilled path (`guidance_scale` is accepted but unused by the tiny Flux transformer).
    `output_type="latent"` (default) skips the VAE decode; use `"np"` or `"pt"` to decode.
    For img2img, `image` is `make_image(batch_size, height, width)` and `strength=0.75`.
    """
    _check_kind(kind)
    text_dim, pooled_dim = TEXT_DIMS[kind]
    kwargs: dict[str, Any] = {
        "prompt_embeds": _batched(batch_size, 1000, (SEQ_LEN, text_dim)),
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": output_type,
    }
    if pooled_dim is not None:
        kwargs["pooled_prompt_embeds"] = _batched(batch_size, 1100, (pooled_dim,))
    if kind != "flux":
        kwargs["negative_prompt_embeds"] = _batched(batch_size, 2000, (SEQ_LEN, text_dim))
        if pooled_dim is not None:
            kwargs["negative_pooled_prompt_embeds"] = _batched(batch_size, 2100, (pooled_dim,))
    if img2img:
        kwargs["image"] = make_image(batch_size, height, width)
        kwargs["strength"] = 0.75
    # SD / SDXL img2img take their size from `image` and have no height/width arguments.
    if not (img2img and kind in ("sd", "sdxl")):
        kwargs.update(height=height, width=width)
    return kwargs


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch ops on one intra-op thread inside the block, restoring the previous count afterwards.

    The tiny models gain nothing from threads, and on a busy 2-core machine (``pytest -n 2``, other jobs) torch's
    spinning OpenMP workers make a 0.1 s pipeline call take 5-20 s; one thread keeps it at 0.1 s.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run(pipe: DiffusionPipeline, **kwargs: Any) -> torch.Tensor | np.ndarray:
    """Call `pipe(**kwargs)` (single-threaded, see `single_threaded`) and return its `.images`."""
    with single_threaded():
        return pipe(**kwargs).images


def record_scheduler_calls(
    scheduler: SchedulerMixin, methods: tuple[str, ...] = SCHEDULER_METHODS
) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Wrap `methods` of this scheduler *instance* so each call appends `(name, args, kwargs)` to the returned list.

    The wrappers keep the original signatures (``functools.wraps``), so the pipelines' ``inspect.signature``
    checks on ``set_timesteps`` / ``step`` see the same parameters as without recording.
    """
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def recorder(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, args, kwargs))
            return original(*args, **kwargs)

        return recorder

    for name in methods:
        original = getattr(scheduler, name, None)
        if original is not None:
            setattr(scheduler, name, wrap(name, original))
    return calls
