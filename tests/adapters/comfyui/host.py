"""What the ComfyUI tests share: the real ComfyUI 0.3.75 (or None), an exact denoiser in ComfyUI's model wrapper,
and a tiny SD1.5-layout model that ComfyUI's own model classes build."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from benchmarks.peers import comfyui

COMFY = comfyui.load()
SKIP = pytest.mark.skipif(
    COMFY is None, reason=f"ComfyUI {comfyui.VERSION} is not in the cache: run `{comfyui.FETCH}`"
)
FOLDER = Path(__file__).resolve().parents[3] / "comfyui" / "inertia_nodes"
MU = 2.0  # the conditional data mean


def gaussian_cfg(x: torch.Tensor, sigma: torch.Tensor, scale: float) -> torch.Tensor:
    """CFG of exact denoisers: data N(0, I) unconditionally, N(MU, I) conditionally (x0 = (x + σ²μ)/(1 + σ²))."""
    s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) ** 2
    uncond, cond = x / (1 + s2), (x + s2 * MU) / (1 + s2)
    return uncond + (cond - uncond) * scale


class ExactWrap:
    """Stands where ComfyUI's CFGGuider stands in ``KSAMPLER.sample(model_wrap, ...)``: called as
    ``model_wrap(x, sigma, model_options=..., seed=...)``, with ``inner_model.model_sampling`` (SD1.5's discrete
    ε schedule, ComfyUI's own class) for the noise scaling."""

    def __init__(self, scale: float = 15.0) -> None:
        assert COMFY is not None
        import comfy.model_sampling as ms

        sampling = type("Sampling", (ms.ModelSamplingDiscrete, ms.EPS), {})()
        self.inner_model = SimpleNamespace(model_sampling=sampling)
        self.scale, self.calls = scale, 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        return gaussian_cfg(x, sigma, self.scale)


def karras(steps: int) -> torch.Tensor:
    """ComfyUI's Karras sigmas for SD1.5 (float64)."""
    import comfy.samplers

    sampling = ExactWrap().inner_model.model_sampling
    return comfy.samplers.calculate_sigmas(sampling, "karras", steps).to(torch.float64)


def run_ksampler(sampler: Any, wrap: ExactWrap, sigmas: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``KSAMPLER.sample`` as CFGGuider calls it, from a seeded noise, float64."""
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    extra_args = {"model_options": {}, "seed": seed}
    return sampler.sample(wrap, sigmas, extra_args, None, noise, torch.zeros_like(noise), None, True)


def start(sigmas: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The start KSAMPLER.sample makes from :func:`run_ksampler`'s noise (σ_0 = σ_max: ``noise·√(1 + σ²)``)."""
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return noise * math.sqrt(1.0 + float(sigmas[0]) ** 2)


def tiny_sd15(seed: int = 0) -> Any:
    """A ``ModelPatcher`` around a tiny UNet in SD1.5's layout (320 channels, one level, one block, context 768),
    built by ComfyUI's own model detection from its config, with seeded random weights."""
    import comfy.model_detection
    import comfy.model_management
    import comfy.model_patcher

    unet_config = {
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
    config = comfy.model_detection.model_config_from_unet_config(unet_config)
    assert type(config).__name__ == "SD15", type(config)
    model = config.get_model({})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.diffusion_model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    cpu = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def conditioning(seed: int) -> list[list[Any]]:
    """A CONDITIONING value (what CLIPTextEncode returns) with a seeded random text embedding."""
    return [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(seed)), {}]]
