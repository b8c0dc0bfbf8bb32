"""The guidance hook's overhead on SD-sized tensors (§4's overhead target), against one SD1.5 UNet forward.

The hook runs on a zero-cost stub denoiser, so a call's time is the hook's own work; the denominator is one forward
of a random-weight SD1.5-sized UNet (:mod:`benchmarks.common.sd15_unet`). Also timed by the GPU check
(:mod:`benchmarks.gpu.check`).
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DConditionModel

from benchmarks.common.sd15_unet import QUICK_UNET, SD15_UNET
from benchmarks.common.timing import seconds_of
from benchmarks.guidance.apg_higs_grid import guidance_methods
from benchmarks.samplers.accuracy_grid import base_config
from inertia.guidance import apply_guidance

__all__ = ["build_unet", "measure_overhead", "time_denoiser", "time_hooks"]


class _StubDenoiser(torch.nn.Module):
    """Returns a fixed ``[uncond; cond]`` output at ~zero cost: time spent on a call is the hook's own work."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: Any = None) -> tuple:
        return (self.output,)


class _Host:
    """The pipeline attributes the guidance hook reads: denoiser, scheduler, CFG flag and scale."""

    do_classifier_free_guidance = True

    def __init__(self, unet: torch.nn.Module, scheduler: Any, guidance_scale: float) -> None:
        self.unet, self.scheduler, self.guidance_scale = unet, scheduler, guidance_scale


def time_hooks(latent: Sequence[int], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of one denoiser call through the guidance hook per method (and bare: "no hook"), on a stub
    denoiser with a ``[uncond; cond]`` batch of ``latent``-shaped halves; interleaved, rotating order, steady state
    (the first 2 steps of each 50-step run, before momentum/history exist, are not timed)."""
    generator = torch.Generator().manual_seed(0)
    output = torch.randn((2, *latent), generator=generator).to(device)
    sample_in = torch.randn((2, *latent), generator=generator).to(device)
    scheduler = DPMSolverMultistepScheduler.from_config(base_config("leading"))
    scheduler.set_timesteps(50, device=device)
    variants = {"no hook": None, **guidance_methods(norm_threshold=15.0)}  # SDXL's r on SD-sized latents
    stubs = {}
    for name, methods in variants.items():
        stubs[name] = _StubDenoiser(output)
        host = _Host(stubs[name], scheduler, 7.5)
        if methods is not None:
            apply_guidance(host, *methods)
        stubs[name]._host = host  # keep the host alive: the hook holds a weak reference
    samples: dict[str, list[float]] = {name: [] for name in stubs}
    names, step = list(stubs), 0
    with torch.inference_mode():
        while min(map(len, samples.values())) < repeats:
            t = scheduler.timesteps[step % len(scheduler.timesteps)]
            shift = step % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = seconds_of(functools.partial(stubs[name], sample_in, t), device)
                if step % len(scheduler.timesteps) >= 2:
                    samples[name].append(elapsed)
            step += 1
    return {name: statistics.median(values) for name, values in samples.items()}


def build_unet(config: Mapping[str, Any], device: torch.device) -> UNet2DConditionModel:
    """A random-weight ``UNet2DConditionModel``, built on the meta device and filled with U(±0.035) (std 0.02).

    diffusers' own initialisation of SD1.5's 860M weights takes about a minute on one core; timing does not depend
    on the values.
    """
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    unet = unet.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for tensor in [*unet.parameters(), *unet.buffers()]:
            tensor.uniform_(-0.035, 0.035, generator=generator)  # std 0.02
    return unet.eval()


def time_denoiser(unet: UNet2DConditionModel, latent: Sequence[int], repeats: int, device: torch.device) -> float:
    """Median seconds of one ``[uncond; cond]`` forward (batch 2) of ``unet`` on ``latent``-shaped latents, after one
    warm-up call when ``repeats > 1``."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((2, *latent), generator=generator).to(device)
    text = torch.randn((2, 77, unet.config.cross_attention_dim), generator=generator).to(device)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + (repeats > 1)):
            times.append(seconds_of(lambda: unet(x, 500, encoder_hidden_states=text), device))
    return statistics.median(times[-repeats:])


def measure_overhead(
    quick: bool, device: torch.device, repeats: int = 200, unet_repeats: int | None = None
) -> list[dict[str, Any]]:
    """Hook time per method on SD1.5 (2x4x64x64) and SDXL (2x4x128x128) latents vs one SD1.5 UNet forward at 64x64.

    The SDXL rows use the same SD1.5-at-64² forward as the denominator: SDXL's UNet at 128x128 costs several times
    more, so their ratio is an upper bound. A full-size forward takes minutes on a CPU, so it runs once there
    (``unet_repeats``: default 1 on CPU, 3 on CUDA or with ``quick``). ``quick`` uses a tiny UNet and 4x8x8 /
    4x16x16 latents.
    """
    unet = build_unet(QUICK_UNET if quick else SD15_UNET, device)  # SD1.5's config
    shapes = ((4, 8, 8), (4, 16, 16)) if quick else ((4, 64, 64), (4, 128, 128))
    labels = ("tiny 2x4x8x8", "tiny 2x4x16x16") if quick else ("SD1.5 2x4x64x64", "SDXL 2x4x128x128")
    unet_repeats = unet_repeats or (3 if quick or device.type == "cuda" else 1)
    unet_seconds = time_denoiser(unet, shapes[0], unet_repeats, device)
    del unet
    rows = []
    for label, shape in zip(labels, shapes, strict=True):
        hooks = time_hooks(shape, 20 if quick else repeats, device)
        for name, seconds in hooks.items():
            extra = seconds - hooks["no hook"]
            rows.append(
                {
                    "shape": label,
                    "method": name,
                    "call_us": seconds * 1e6,
                    "extra_us": extra * 1e6,
                    "unet_ms": unet_seconds * 1e3,
                    "ratio": extra / unet_seconds,
                }
            )
    return rows
