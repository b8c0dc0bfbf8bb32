"""Momentum attention's quality (§5) on the embedded digits model: error against full computation, FD-digits and
class accuracy of every variant of :func:`benchmarks.attention.unet_attention_grid.quality_variants`."""

from __future__ import annotations

import json
import time
from typing import Any

import torch
from diffusers import DPMSolverMultistepScheduler

from benchmarks.attention.unet_attention_grid import STEPS, quality_variants
from benchmarks.common.timing import synchronize
from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention

__all__ = ["digits_pipeline", "quality", "sample_digits"]


def digits_pipeline(device: torch.device) -> Any:
    """The embedded digits model in float32 with DPM-Solver++(2M), progress bar off."""
    from inertia.pipelines.loading import load_digits_pipeline

    pipe = load_digits_pipeline(device=device, dtype=torch.float32)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_digits(pipe: Any, per_digit: int, steps: int, seed: int) -> torch.Tensor:
    """``per_digit`` images of each digit 0-9 at guidance 3 from one generator of ``seed`` (images in [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return pipe(
            list(range(10)),
            num_images_per_prompt=per_digit,
            num_inference_steps=steps,
            guidance_scale=3.0,
            generator=generator,
            output_type="pt",
        ).images


def quality(
    images_per_digit: int,
    device: torch.device,
    steps: int = STEPS,
    variants: dict[str, MomentumAttention | None] | None = None,
) -> tuple[dict[str, dict], dict]:
    """Metrics of every `quality_variants` entry on the embedded digits model, and the images (for the figure)."""
    variants = quality_variants() if variants is None else variants
    from inertia.metrics import class_accuracy, fd_digits

    pipe = digits_pipeline(device)
    labels = torch.arange(10).repeat_interleave(images_per_digit)

    def generate(seed: int) -> tuple[torch.Tensor, float]:
        synchronize(device)
        start = time.perf_counter()
        images = sample_digits(pipe, images_per_digit, steps, seed)
        synchronize(device)
        return images.float().cpu(), time.perf_counter() - start

    results: dict[str, dict] = {}
    images: dict[str, torch.Tensor] = {}
    reference = None
    for name, config in variants.items():
        if config is not None:
            apply_momentum_attention(pipe, config)
        try:
            out, seconds = generate(1 if name == "full (seed 1)" else 0)
        finally:
            remove_momentum_attention(pipe)
        reference = out if name == "full" else reference
        row = {
            "fd_digits": fd_digits(out),
            "class_accuracy": class_accuracy(out, labels),
            "seconds": seconds,
            "skipped_steps": 0 if config is None else config.num_skipped(steps),
        }
        if name != "full (seed 1)":
            diff = out - reference
            row["rmse"] = float(diff.pow(2).mean().sqrt())
            row["max_abs"] = float(diff.abs().max())
        results[name] = row
        images[name] = out
        print(f"  quality {name}: {json.dumps({k: round(v, 5) for k, v in row.items()})}", flush=True)
    return results, images
