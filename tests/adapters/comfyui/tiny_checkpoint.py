"""A tiny SD1.5 checkpoint that ComfyUI's own model detection loads, written at test time (never committed).

The key layout and every tensor's shape come from ComfyUI 0.3.75's own classes, built on the ``meta`` device (no
memory, no weights): the UNet from ``model_detection.model_config_from_unet_config`` (SD1.5's 320 channels and
768-wide context, but one level with one res block and one transformer: ``CheckpointLoaderSimple`` reads those back
from the keys), the text encoder ``sd1_clip.SD1ClipModel`` and the VAE ``AutoencoderKL`` with the SD1.x config. The
text encoder and the VAE cannot be shrunk: ComfyUI builds them from fixed configs (CLIP ViT-L/14's text tower from
``sd1_clip_config.json``, the VAE from its hard-coded SD config) and refuses tensors of other shapes, so the file is
about 465 MB in float16 (UNet 26M, CLIP 123M, VAE 84M parameters). Weights are seeded Gaussians scaled by
``1/sqrt(fan_in)``; 1-D ``weight`` tensors (the norms' scales) are ones and biases zeros.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["TINY_UNET", "write_tiny_sd15"]

TINY_UNET = {
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1],
    "channel_mult": [1],
    "transformer_depth": [1],
    "transformer_depth_output": [1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "dims": 2,
}
"""The UNet config: SD1.5's (ComfyUI's ``SD15`` matches it) with a single level."""

SD_VAE = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}
"""The SD1.x VAE config ComfyUI builds for a ``first_stage_model.decoder.conv_in.weight`` with 4 channels."""


def _shapes() -> dict[str, torch.Size]:
    """Checkpoint key -> tensor shape, from ComfyUI's own modules built on the meta device."""
    import comfy.ldm.models.autoencoder
    import comfy.model_detection
    import comfy.sd1_clip
    import comfy.supported_models

    config = comfy.model_detection.model_config_from_unet_config(dict(TINY_UNET))
    assert isinstance(config, comfy.supported_models.SD15), type(config)
    with torch.device("meta"):
        unet = config.get_model({}).diffusion_model
        clip = comfy.sd1_clip.SD1ClipModel(device="meta", dtype=torch.float16)
        vae = comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=dict(SD_VAE), embed_dim=4)
    shapes = {f"model.diffusion_model.{k}": v.shape for k, v in unet.state_dict().items()}
    # the checkpoint names of the text encoder (cond_stage_model.transformer.text_model...), as ComfyUI saves them
    shapes |= {k: v.shape for k, v in config.process_clip_state_dict_for_saving(clip.state_dict()).items()}
    shapes |= {f"first_stage_model.{k}": v.shape for k, v in vae.state_dict().items()}
    return shapes


def write_tiny_sd15(path: Path, seed: int = 0) -> Path:
    """Writes the checkpoint (float16 safetensors) to ``path`` and returns it; ComfyUI must be loaded."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, shape in _shapes().items():
        if len(shape) >= 2:
            fan_in = shape[1:].numel()
            tensors[key] = (torch.randn(shape, generator=generator) * fan_in**-0.5).to(torch.float16)
        else:
            tensors[key] = (torch.ones if key.endswith("weight") else torch.zeros)(shape, dtype=torch.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path
