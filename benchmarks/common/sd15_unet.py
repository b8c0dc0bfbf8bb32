"""A random-weight UNet with Stable Diffusion 1.5's configuration, for timing what runs around its calls.

Timings do not depend on the weights' values, so the UNets are built from the config alone (no download):
:data:`SD15_UNET` (859.5M parameters) and :data:`QUICK_UNET` (the same block types, tiny, for ``--quick``), and
:func:`build_unets`, copies sharing one set of weights (a plain call and one per rule, each with its own hooks).
Used by the momentum-attention speed (:mod:`benchmarks.attention.unet_attention_speed`), the cache peers
(:mod:`benchmarks.attention.vs_peers`) and the guidance hook's overhead (:mod:`benchmarks.guidance.hook_overhead`).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DConditionModel

__all__ = ["QUICK_UNET", "SD15_UNET", "build_unets"]

SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
"""``runwayml/stable-diffusion-v1-5``'s ``unet/config.json`` (the keys that differ from the class defaults)."""

QUICK_UNET: dict[str, Any] = {
    "sample_size": 8,
    "layers_per_block": 1,
    "block_out_channels": (8, 16),
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 8,
    "attention_head_dim": 2,
    "norm_num_groups": 8,
}
"""A tiny UNet with the same block types, for ``--quick``."""


def build_unets(config: dict[str, Any], device: torch.device, copies: int = 3) -> tuple[UNet2DConditionModel, ...]:
    """``copies`` UNets sharing one set of weights (full computation, and one per rule, each with its own hooks)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**config).eval().to(device)
    unets = [unet]
    state = unet.state_dict()
    for _ in range(copies - 1):
        with torch.device("meta"):
            shell = UNet2DConditionModel(**config).eval()
        shell.load_state_dict(state, assign=True)  # same tensors: no extra weight memory
        unets.append(shell)
    return tuple(unets)
