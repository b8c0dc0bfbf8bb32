"""The 2026 diffusers pipelines with tiny random-weight components, built offline from configs in code.

`make_pipeline(kind)` builds the genuine classic pipeline class of ``kind`` (`Flux2Pipeline`, `QwenImagePipeline`,
`WanPipeline`, `ZImagePipeline`, `LTX2Pipeline`) with 8/16-channel blocks, no text encoder and no tokenizer;
`make_call_kwargs(kind, ...)` gives matching ``prompt_embeds``. `make_modular(kind)` builds the modular pipeline of
the same family (`Flux2ModularPipeline`, `QwenImageModularPipeline`, `WanModularPipeline`, `ZImageModularPipeline`,
`LTX2ModularPipeline`) from diffusers' auto blocks without their text-encoder block, with the same weights, and
`make_modular_kwargs(kind, ...)` its inputs. `cached_pipeline` / `cached_modular` build each once per process.
Every 4-step call takes well under 0.2 s on one CPU thread (`run` and `run_modular` pin one thread).

Sizes: images 32x32 (Flux.2, Qwen-Image, Z-Image), videos with 5 frames at 16x16 (Wan) and 32x32 (LTX-2 wants
multiples of 32).
Latents the scheduler sees: Flux.2 and Qwen-Image pack 2x2 patches into tokens, ``(B, 64, 16)``; Wan steps 5-D video
latents ``(B, 4, 3, 8, 8)``; Z-Image ``(B, 4, 16, 16)``; LTX-2 steps packed video tokens ``(B, 768, 4)`` (3 x 16 x 16)
and, with a copy of the scheduler, packed audio tokens ``(B, 5, 4)``.

Scheduler protocol of each pipeline (measured with `tiny_pipelines.record_scheduler_calls`, diffusers 0.42.1, 4 steps)
---------------------------------------------------------------------------------------------------------------------
Every pipeline reads ``scheduler.timesteps`` and ``scheduler.order`` and calls ``step(model_output, t, sample,
return_dict=False)[0]`` once per timestep on the combined prediction. ``retrieve_timesteps`` refuses a ``sigmas=``
the signature of ``set_timesteps`` does not name, which is how diffusers' DPM-Solver/UniPC/DEIS fail on these
pipelines (diffusers issues #11907, #9971, #12108).

* Flux.2: ``set_timesteps(4, cpu, sigmas=linspace(1, 1/4, 4), mu=mu)`` (``mu`` from ``compute_empirical_mu``: 1.9493 at
  64 tokens and 4 steps); ``sigmas`` is dropped (``None``) when ``scheduler.config.use_flow_sigmas`` is true. Then
  ``set_begin_index(0)``. The transformer gets ``timestep = t / 1000`` and ``guidance`` (the embedded, distilled
  scale); there is no second (unconditional) pass: no classifier-free guidance at all.
* Qwen-Image: ``set_timesteps(4, cpu, sigmas=linspace(1, 1/4, 4), mu=mu)`` always (no ``use_flow_sigmas`` escape;
  ``mu`` from ``calculate_shift`` on the config's ``base_/max_image_seq_len`` and ``base_/max_shift``: 0.4903 here), then
  ``set_begin_index(0)``. True CFG (``true_cfg_scale > 1`` and negative embeddings) runs a ``"cond"`` then an
  ``"uncond"`` transformer call, combines ``u + s (c − u)`` with the *local* ``true_cfg_scale`` and rescales the
  result to the conditional prediction's per-token norm. ``timestep = t / 1000``.
* Wan: ``set_timesteps(4, device=cpu)`` (no ``sigmas``, no ``mu``), then ``set_begin_index(0)``. CFG runs a ``"cond"``
  then an ``"uncond"`` call (with ``transformer_2`` and ``guidance_scale_2`` below ``boundary_ratio`` for Wan 2.2) and
  combines ``u + w (c − u)`` with ``pipe.guidance_scale``. The transformer gets ``timestep = t`` in [0, 1000] and 5-D
  ``hidden_states``. The stock checkpoints ship `UniPCMultistepScheduler` in flow mode (``flow_shift=3``).
* Z-Image: ``set_timesteps(4, cpu, sigmas=linspace(1, 1/4, 4), mu=mu)`` always (``mu`` 0.4675, ignored by its
  static-shift scheduler), then ``set_begin_index(0)``. CFG is
  one batched call on a *list* of ``(C, 1, H, W)`` latents ``[cond...; uncond...]`` (cond first) with ``timestep =
  (1000 − t) / 1000 = 1 − σ``; it combines ``c + s (c − u)`` (so ``s = 0`` is no guidance: standard ``w = 1 + s``) and
  steps on the *negated* output (the transformer predicts −v).
* LTX-2: ``set_timesteps(4, cpu, None, sigmas=linspace(1, 1/4, 4), mu=mu)`` on the scheduler and on a ``deepcopy``
  of it for the audio latents (``mu`` 0.8583), then ``set_begin_index(0)`` on both. (Recording with
  ``record_scheduler_calls`` needs care here: the ``deepcopy`` copies the instance wrappers, which then step the
  original.) CFG is one batched ``[uncond; cond]`` call that
  returns ``(video, audio)``; the pipeline converts both to x0 with ``scheduler.sigmas[i]`` and adds
  ``(w − 1)(c − u)`` with ``guidance_scale`` (video) and ``audio_guidance_scale`` (audio). ``timestep = t`` in
  [0, 1000]. Spatio-temporal (``stg_scale``) and modality guidance add calls in other cache contexts; these tiny
  calls switch them off (the legacy LTX-2.0 settings).

Modular pipelines call ``set_timesteps`` the same way in their ``set_timesteps`` blocks and ask the guider
(``guider.set_state(step, num_inference_steps, timestep=t)``) for the cond / uncond batches.
`Flux2ModularPipeline` has no guider component (Flux.2 [dev] is guidance-distilled).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLFlux2,
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    AutoencoderKLQwenImage,
    AutoencoderKLWan,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    Flux2Pipeline,
    Flux2Transformer2DModel,
    LTX2Pipeline,
    LTX2VideoTransformer3DModel,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
    UniPCMultistepScheduler,
    WanPipeline,
    WanTransformer3DModel,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tiny_pipelines import single_threaded

KINDS = ("flux2", "qwenimage", "wan", "zimage", "ltx2")
TEXT_DIM = 16
SEQ_LEN = 8
STEPS = 4
CLASSIC_CLASSES = {
    "flux2": Flux2Pipeline,
    "qwenimage": QwenImagePipeline,
    "wan": WanPipeline,
    "zimage": ZImagePipeline,
    "ltx2": LTX2Pipeline,
}
MODULAR_CLASS_NAMES = {
    "flux2": "Flux2ModularPipeline",
    "qwenimage": "QwenImageModularPipeline",
    "wan": "WanModularPipeline",
    "zimage": "ZImageModularPipeline",
    "ltx2": "LTX2ModularPipeline",
}
# The latents the classic pipeline returns with output_type="latent" (batch 1).
LATENT_SHAPES = {
    "flux2": (1, 64, 16),
    "qwenimage": (1, 64, 16),
    "wan": (1, 4, 3, 8, 8),
    "zimage": (1, 4, 16, 16),
    "ltx2": (1, 4, 3, 16, 16),
}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown pipeline kind {kind!r}; expected one of {KINDS}")


def default_scheduler(kind: str) -> SchedulerMixin:
    """The scheduler class and flow keys the published checkpoints of ``kind`` use (modelled, not downloaded)."""
    _check_kind(kind)
    if kind == "flux2":  # FLUX.2 [dev]
        return FlowMatchEulerDiscreteScheduler(
            shift=3.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
        )
    if kind == "qwenimage":  # Qwen-Image: dynamic shift plus a terminal stretch
        return FlowMatchEulerDiscreteScheduler(
            shift=1.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=0.9,
            base_image_seq_len=256,
            max_image_seq_len=8192,
            shift_terminal=0.02,
            time_shift_type="exponential",
        )
    if kind == "wan":  # Wan 2.1 / 2.2 text-to-video: UniPC in flow mode
        return UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0, num_train_timesteps=1000
        )
    if kind == "zimage":  # Z-Image: a static shift
        return FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=False)
    return FlowMatchEulerDiscreteScheduler(  # LTX-2: dynamic shift on LTX's sequence-length range, terminal stretch
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )


def _seeded(seed: int, build: Any) -> Any:
    with torch.random.fork_rng(devices=[]), single_threaded():
        torch.manual_seed(seed)
        return build()


def _flux2(seed: int) -> dict[str, Any]:
    transformer = _seeded(
        seed,
        lambda: Flux2Transformer2DModel(
            patch_size=1,
            in_channels=16,  # 4 latent channels, 2x2 patches
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=TEXT_DIM,
            timestep_guidance_channels=32,
            axes_dims_rope=(4, 4, 4, 4),  # sums to attention_head_dim
        ),
    )
    vae = _seeded(
        seed,
        lambda: AutoencoderKLFlux2(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=32,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
    )
    return {"transformer": transformer, "vae": vae}


def _qwenimage(seed: int) -> dict[str, Any]:
    transformer = _seeded(
        seed,
        lambda: QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=16,
            out_channels=4,
            num_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=TEXT_DIM,
            guidance_embeds=False,
            axes_dims_rope=(8, 4, 4),
        ),
    )
    vae = _seeded(
        seed,
        lambda: AutoencoderKLQwenImage(
            base_dim=8,
            z_dim=4,
            dim_mult=[1, 2],
            num_res_blocks=1,
            temperal_downsample=[False],
            latents_mean=[0.0] * 4,
            latents_std=[1.0] * 4,
        ),
    )
    return {"transformer": transformer, "vae": vae}


def _wan(seed: int) -> dict[str, Any]:
    transformer = _seeded(
        seed,
        lambda: WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=8,
            in_channels=4,
            out_channels=4,
            text_dim=TEXT_DIM,
            freq_dim=32,
            ffn_dim=16,
            num_layers=1,
            rope_max_seq_len=32,
        ),
    )
    vae = _seeded(
        seed,
        lambda: AutoencoderKLWan(
            base_dim=3,
            z_dim=4,
            dim_mult=[1, 1],
            num_res_blocks=1,
            temperal_downsample=[True],
            latents_mean=[0.0] * 4,
            latents_std=[1.0] * 4,
            scale_factor_spatial=2,
            scale_factor_temporal=2,
        ),
    )
    return {"transformer": transformer, "vae": vae, "transformer_2": None}


def _zimage(seed: int) -> dict[str, Any]:
    def build() -> ZImageTransformer2DModel:
        model = ZImageTransformer2DModel(
            all_patch_size=(2,),
            all_f_patch_size=(1,),
            in_channels=4,
            dim=32,
            n_layers=1,
            n_refiner_layers=1,
            n_heads=2,
            n_kv_heads=2,
            cap_feat_dim=TEXT_DIM,
            axes_dims=[8, 4, 4],
            axes_lens=[64, 16, 16],
        )
        with torch.no_grad():  # both pad tokens start as torch.empty: give them defined values
            model.x_pad_token.fill_(1.0)
            model.cap_pad_token.fill_(1.0)
        return model

    vae = _seeded(
        seed,
        lambda: AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(8, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=32,
            scaling_factor=1.0,
            shift_factor=0.0,
        ),
    )
    return {"transformer": _seeded(seed, build), "vae": vae}


def _ltx2(seed: int) -> dict[str, Any]:
    transformer = _seeded(
        seed,
        lambda: LTX2VideoTransformer3DModel(
            in_channels=4,
            out_channels=4,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=2,
            attention_head_dim=8,
            cross_attention_dim=16,
            audio_in_channels=4,
            audio_out_channels=4,
            audio_num_attention_heads=2,
            audio_attention_head_dim=4,
            audio_cross_attention_dim=8,
            num_layers=1,
            caption_channels=TEXT_DIM,
            rope_double_precision=False,
            rope_type="split",
        ),
    )
    connectors = _seeded(
        seed,
        lambda: LTX2TextConnectors(
            caption_channels=TEXT_DIM,
            text_proj_in_factor=2,  # the prompt embeddings stack 2 text-encoder layers of TEXT_DIM
            video_connector_num_attention_heads=2,
            video_connector_attention_head_dim=8,
            video_connector_num_layers=1,
            video_connector_num_learnable_registers=None,
            audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=8,
            audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=None,
            connector_rope_base_seq_len=32,
            rope_double_precision=False,
            rope_type="split",
        ),
    )

    def video_vae() -> AutoencoderKLLTX2Video:
        vae = AutoencoderKLLTX2Video(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8,),
            decoder_block_out_channels=(8,),
            layers_per_block=(1,),
            decoder_layers_per_block=(1, 1),
            spatio_temporal_scaling=(True,),
            decoder_spatio_temporal_scaling=(True,),
            decoder_inject_noise=(False, False),
            downsample_type=("spatial",),
            upsample_residual=(False,),
            upsample_factor=(1,),
            timestep_conditioning=False,
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        )
        vae.use_framewise_encoding = vae.use_framewise_decoding = False
        return vae

    audio_vae = _seeded(
        seed,
        lambda: AutoencoderKLLTX2Audio(
            base_channels=4,
            output_channels=2,
            ch_mult=(1,),
            num_res_blocks=1,
            attn_resolutions=None,
            in_channels=2,
            resolution=32,
            latent_channels=2,
            norm_type="pixel",
            causality_axis="height",
            dropout=0.0,
            mid_block_add_attention=False,
            sample_rate=16000,
            mel_hop_length=160,
            is_causal=True,
            mel_bins=8,
        ),
    )
    return {
        "transformer": transformer,
        "connectors": connectors,
        "vae": _seeded(seed, video_vae),
        "audio_vae": audio_vae,
        "vocoder": _seeded(
            seed,
            lambda: LTX2Vocoder(
                in_channels=2 * 8,  # audio VAE output channels x mel bins
                hidden_channels=8,
                out_channels=2,
                upsample_kernel_sizes=[4],
                upsample_factors=[2],
                resnet_kernel_sizes=[3],
                resnet_dilations=[[1]],
                leaky_relu_negative_slope=0.1,
                output_sampling_rate=16000,
            ),
        ),
    }


_BUILDERS = {"flux2": _flux2, "qwenimage": _qwenimage, "wan": _wan, "zimage": _zimage, "ltx2": _ltx2}


def make_components(kind: str, seed: int = 0) -> dict[str, Any]:
    """The tiny denoiser, VAE(s) and extra modules of ``kind``; the global RNG state is left as it was."""
    _check_kind(kind)
    components = _BUILDERS[kind](seed)
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.eval()
    components.update(text_encoder=None, tokenizer=None)
    return components


def make_pipeline(kind: str, scheduler: SchedulerMixin | None = None, seed: int = 0) -> DiffusionPipeline:
    """The real classic pipeline of ``kind`` with tiny weights and ``scheduler`` (default: `default_scheduler`)."""
    components = make_components(kind, seed)
    components["scheduler"] = default_scheduler(kind) if scheduler is None else scheduler
    pipe = CLASSIC_CLASSES[kind](**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@functools.cache
def cached_pipeline(kind: str) -> DiffusionPipeline:
    """`make_pipeline(kind)` built once per process; tests must restore what they change (scheduler, hooks)."""
    return make_pipeline(kind)


def _blocks(kind: str) -> Any:
    from diffusers import modular_pipelines as mp

    blocks = {
        "flux2": mp.Flux2AutoBlocks,
        "qwenimage": mp.QwenImageAutoBlocks,
        "wan": mp.WanBlocks,
        "zimage": mp.ZImageAutoBlocks,
        "ltx2": mp.LTX2AutoBlocks,
    }[kind]()
    for name in ("text_encoder", "prompt_enhancer"):  # we pass embeddings: no tokenizer, no download
        if name in blocks.sub_blocks:
            blocks.sub_blocks.pop(name)
    return blocks


def make_modular(kind: str, scheduler: SchedulerMixin | None = None, seed: int = 0) -> Any:
    """The modular pipeline of ``kind`` (auto blocks without the text encoder) with the classic builder's weights."""
    import logging

    from diffusers.utils import logging as diffusers_logging

    components = make_components(kind, seed)
    components["scheduler"] = default_scheduler(kind) if scheduler is None else scheduler
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity(logging.ERROR)  # "guiders are experimental" notices
    try:
        pipe = _blocks(kind).init_pipeline()
        pipe.update_components(**{k: v for k, v in components.items() if v is not None and k in pipe.component_names})
    finally:
        diffusers_logging.set_verbosity(level)
    _quiet_blocks(pipe._blocks)  # `pipe.blocks` is a copy
    return pipe


def _quiet_blocks(blocks: Any) -> None:
    """No progress bars in any (nested) block: the pipeline's own setter reaches only the top level."""
    if hasattr(blocks, "set_progress_bar_config"):
        blocks.set_progress_bar_config(disable=True)
    for sub in getattr(blocks, "sub_blocks", {}).values():
        _quiet_blocks(sub)


@functools.cache
def cached_modular(kind: str) -> Any:
    """`make_modular(kind)` built once per process; tests must restore what they change (scheduler, guider)."""
    return make_modular(kind)


def _batched(batch_size: int, base_seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    rows = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(base_seed + i)) for i in range(batch_size)]
    return torch.stack(rows)


def _embeds(kind: str, batch_size: int, base_seed: int) -> torch.Tensor:
    width = 2 * TEXT_DIM if kind == "ltx2" else TEXT_DIM  # LTX-2: 2 stacked text-encoder layers
    return _batched(batch_size, base_seed, (SEQ_LEN, width))


def make_call_kwargs(
    kind: str,
    batch_size: int = 1,
    guidance_scale: float = 4.0,
    num_inference_steps: int = STEPS,
    seed: int = 0,
    cfg: bool = True,
    output_type: str = "latent",
) -> dict[str, Any]:
    """Inputs for ``make_pipeline(kind)(**kwargs)``: fixed prompt embeddings, ``seed`` for the generator.

    ``cfg=True`` passes negative embeddings, so the pipelines that run classifier-free guidance run it: Qwen-Image
    through ``true_cfg_scale=guidance_scale``, Z-Image with its own scale convention ``guidance_scale − 1`` (it
    computes ``c + s (c − u)``), LTX-2 for video and audio. Flux.2 has no unconditional branch and gets only the
    embedded ``guidance_scale``.
    """
    _check_kind(kind)
    kwargs: dict[str, Any] = {
        "num_inference_steps": num_inference_steps,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": output_type,
    }
    prompt, negative = _embeds(kind, batch_size, 1000), _embeds(kind, batch_size, 2000)
    mask = torch.ones(batch_size, SEQ_LEN, dtype=torch.long)
    if kind == "flux2":
        kwargs.update(prompt_embeds=prompt, guidance_scale=guidance_scale, height=32, width=32)
    elif kind == "qwenimage":
        kwargs.update(prompt_embeds=prompt, prompt_embeds_mask=mask, height=32, width=32)
        kwargs["true_cfg_scale"] = guidance_scale if cfg else 1.0
        if cfg:
            kwargs.update(negative_prompt_embeds=negative, negative_prompt_embeds_mask=mask)
    elif kind == "wan":
        kwargs.update(prompt_embeds=prompt, height=16, width=16, num_frames=5)
        kwargs["guidance_scale"] = guidance_scale if cfg else 1.0
        if cfg:
            kwargs["negative_prompt_embeds"] = negative
    elif kind == "zimage":
        kwargs.update(prompt_embeds=list(prompt), height=32, width=32)
        kwargs["guidance_scale"] = guidance_scale - 1.0 if cfg else 0.0
        if cfg:
            kwargs["negative_prompt_embeds"] = list(negative)
    else:
        scale = guidance_scale if cfg else 1.0
        kwargs.update(
            prompt_embeds=prompt,
            prompt_attention_mask=mask,
            height=32,  # LTX-2 wants multiples of 32
            width=32,
            num_frames=5,
            frame_rate=25.0,
            guidance_scale=scale,
            audio_guidance_scale=scale,
            stg_scale=0.0,
            audio_stg_scale=0.0,
            modality_scale=1.0,
            audio_modality_scale=1.0,
            guidance_rescale=0.0,
            audio_guidance_rescale=0.0,
            spatio_temporal_guidance_blocks=None,
            use_cross_timestep=False,
        )
        if cfg:
            kwargs.update(negative_prompt_embeds=negative, negative_prompt_attention_mask=mask)
    return kwargs


def make_modular_kwargs(kind: str, batch_size: int = 1, seed: int = 0, cfg: bool = True) -> dict[str, Any]:
    """Inputs for ``make_modular(kind)(**kwargs, output="latents")``; the guider sets the scale."""
    kwargs = make_call_kwargs(kind, batch_size=batch_size, seed=seed, cfg=cfg)
    for key in (
        "guidance_scale",
        "true_cfg_scale",
        "output_type",
        "audio_guidance_scale",
        "stg_scale",
        "audio_stg_scale",
        "modality_scale",
        "audio_modality_scale",
        "guidance_rescale",
        "audio_guidance_rescale",
        "spatio_temporal_guidance_blocks",
    ):
        kwargs.pop(key, None)
    if kind == "flux2":
        kwargs["guidance_scale"] = 4.0  # the embedded scale of the distilled model
    if kind == "ltx2":  # the modular LTX-2 blocks take the connector outputs
        kwargs = _ltx2_modular_kwargs(kwargs, cfg)
    return kwargs


def _ltx2_modular_kwargs(kwargs: dict[str, Any], cfg: bool) -> dict[str, Any]:
    connectors = cached_pipeline("ltx2").connectors
    out = {k: kwargs[k] for k in ("num_inference_steps", "generator", "height", "width", "num_frames", "frame_rate")}
    with torch.no_grad():
        video, audio, mask = connectors(kwargs["prompt_embeds"], kwargs["prompt_attention_mask"])
        out.update(connector_prompt_embeds=video, connector_audio_prompt_embeds=audio, connector_attention_mask=mask)
        if cfg:
            video, audio, mask = connectors(kwargs["negative_prompt_embeds"], kwargs["negative_prompt_attention_mask"])
            out.update(
                negative_connector_prompt_embeds=video,
                negative_connector_audio_prompt_embeds=audio,
                negative_connector_attention_mask=mask,
            )
    out.update(use_cross_timestep=False, batch_size=kwargs["prompt_embeds"].shape[0], dtype=torch.float32)
    return out


def run(pipe: DiffusionPipeline, **kwargs: Any) -> torch.Tensor:
    """``pipe(**kwargs)`` on one thread; the latents (``.images``, or ``.frames`` for the video pipelines)."""
    with single_threaded(), torch.no_grad():
        out = pipe(**kwargs)
    return out.frames if hasattr(out, "frames") else out.images


def run_modular(pipe: Any, **kwargs: Any) -> torch.Tensor:
    """``pipe(**kwargs, output="latents")`` on one thread."""
    with single_threaded(), torch.no_grad():
        return pipe(**kwargs, output="latents")


def sigmas_of(values: Any) -> np.ndarray:
    """A ``sigmas=`` argument as a float64 array (lists, arrays and tensors alike)."""
    return np.asarray(values.tolist() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
