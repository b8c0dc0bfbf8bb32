"""Momentum attention's speed (§5): per-call times of full, computed and skipped UNet calls, and composed runs.

On a CPU one SD1.5-sized UNet call takes tens of seconds, so :func:`speed` times, interleaved and in a rotating order,
one full call and, per rule, one computed call (hooks recording) and one skipped call (hooks predicting), each rule
on its own weight-sharing copy of the UNet (:func:`benchmarks.common.sd15_unet.build_unets`); :func:`compose` turns
the medians into an N-step time for any schedule. :func:`end_to_end` times whole ``StableDiffusionPipeline`` calls
instead (the default on CUDA).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DConditionModel

from benchmarks.attention.unet_attention_grid import SCHEDULES, STEPS, WINDOW, baseline, extrapolate
from benchmarks.common.sd15_unet import build_unets
from benchmarks.common.timing import seconds_of, synchronize
from inertia.attention import (
    MomentumAttention,
    apply_momentum_attention,
    get_momentum_attention_tracker,
    remove_momentum_attention,
)
from inertia.core.attention.rules import (
    TensorState,
    extrapolate_observe,
    extrapolate_predict,
    first_order_observe,
    first_order_predict,
)

__all__ = ["SpeedResult", "compose", "end_to_end", "pooled", "rule_arithmetic_ms", "speed"]


@dataclass
class SpeedResult:
    """Medians (seconds) of one UNet call of each kind, and the raw samples."""

    full: float
    computed: dict[str, float]
    skipped: dict[str, float]
    samples: dict[str, list[float]]
    rule_ms: dict[str, float]


def speed(
    unet_config: dict[str, Any], rounds: int, device: torch.device, batch: int = 2, text_len: int = 77
) -> SpeedResult:
    """Per-call times (interleaved rounds) of full, computed-with-hooks and skipped calls, for both rules.

    Each rule's hooked UNet runs a continuing trajectory with ``skip_every=2`` from step 0 (decreasing timesteps,
    so its state is never reset): round r makes its calls at steps 2r (computed) and 2r + 1 (skipped).
    """
    full, ours, theirs = build_unets(unet_config, device)
    size = unet_config["sample_size"]
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, 4, size, size, generator=generator).to(device)
    text = torch.randn(batch, text_len, unet_config["cross_attention_dim"], generator=generator).to(device)
    rules = {
        "extrapolate": (ours, MomentumAttention(mode="extrapolate", skip_every=2, window=(0, None))),
        "first_order": (theirs, MomentumAttention.faster_cache(window=(0, None), targets=("self", "cross"))),
    }
    for unet, config in rules.values():
        apply_momentum_attention(unet, config)
    timesteps = torch.linspace(999.0, 1.0, 2 * rounds)
    samples: dict[str, list[float]] = {"full": []}
    for name in rules:
        samples[f"{name}/computed"], samples[f"{name}/skipped"] = [], []

    def timed(unet: UNet2DConditionModel, t: torch.Tensor) -> float:
        with torch.no_grad():
            return seconds_of(lambda: unet(latents, t, encoder_hidden_states=text), device)

    jobs: list[tuple[str, Callable[[int], None]]] = [
        ("full", lambda r: samples["full"].append(timed(full, timesteps[2 * r])))
    ]
    for name, (unet, _) in rules.items():

        def job(r: int, name: str = name, unet: UNet2DConditionModel = unet) -> None:
            samples[f"{name}/computed"].append(timed(unet, timesteps[2 * r]))
            samples[f"{name}/skipped"].append(timed(unet, timesteps[2 * r + 1]))

        jobs.append((name, job))
    try:
        for r in range(rounds):
            order = jobs[r % len(jobs) :] + jobs[: r % len(jobs)]
            for name, job in order:
                job(r)
                print(f"  speed round {r + 1}/{rounds}: {name} done", flush=True)
        layers = get_momentum_attention_tracker(ours)._session().contexts["default"].layers
        shapes = [layer.shapes[0] for layer in layers.values()]
    finally:
        for unet, _ in rules.values():
            remove_momentum_attention(unet)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    return SpeedResult(
        full=medians["full"],
        computed={n: medians[f"{n}/computed"] for n in rules},
        skipped={n: medians[f"{n}/skipped"] for n in rules},
        samples=samples,
        rule_ms=rule_arithmetic_ms(shapes, device),
    )


def rule_arithmetic_ms(shapes: Sequence[tuple[int, ...]], device: torch.device, repeats: int = 5) -> dict[str, float]:
    """Milliseconds of the rules' own arithmetic per denoiser call, over hooked-layer outputs of ``shapes``.

    ``observe`` is a computed step's bookkeeping (copy, velocity update), ``predict`` a skipped step's prediction;
    medians of ``repeats``, with the defaults of `extrapolate` and `baseline`.
    """
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(shape, generator=generator).to(device) for shape in shapes]
    ours, theirs = extrapolate(2), baseline(2)
    out: dict[str, float] = {}
    for rule in ("extrapolate", "first_order"):
        states = [TensorState() for _ in tensors]
        for state, tensor in zip(states, tensors):
            for step in range(2):
                if rule == "extrapolate":
                    extrapolate_observe(state, tensor, step, ours.beta)
                else:
                    first_order_observe(state, tensor)
        for phase in ("observe", "predict"):
            times = []
            for _ in range(repeats):
                synchronize(device)
                start = time.perf_counter()
                for state, tensor in zip(states, tensors):
                    if rule == "extrapolate" and phase == "observe":
                        extrapolate_observe(state, tensor, state.step + 2, ours.beta)
                    elif rule == "extrapolate":
                        extrapolate_predict(state, state.step + 1, ours.lookahead)
                    elif phase == "observe":
                        first_order_observe(state, tensor)
                    else:
                        first_order_observe(state, first_order_predict(state, theirs.lookahead))
                synchronize(device)
                times.append(time.perf_counter() - start)
            out[f"{rule}/{phase}"] = 1000 * statistics.median(times)
    return out


def pooled(result: SpeedResult) -> SpeedResult:
    """Both rules skip the same modules on the same steps: their computed (and skipped) calls are the same work, so
    pooling their samples halves the timing noise. Returns a result whose rule ``"pooled"`` holds those medians."""
    computed = [t for name, ts in result.samples.items() if name.endswith("/computed") for t in ts]
    skipped = [t for name, ts in result.samples.items() if name.endswith("/skipped") for t in ts]
    return SpeedResult(
        full=result.full,
        computed={"pooled": statistics.median(computed)},
        skipped={"pooled": statistics.median(skipped)},
        samples={},
        rule_ms={},
    )


def compose(result: SpeedResult, rule: str, config: MomentumAttention, steps: int = STEPS) -> float:
    """The composed ``steps``-step time of ``rule`` under ``config``'s schedule (seconds)."""
    skipped = config.num_skipped(steps)
    return (steps - skipped) * result.computed[rule] + skipped * result.skipped[rule]


def end_to_end(
    unet_config: dict[str, Any],
    rounds: int,
    device: torch.device,
    schedules: Sequence[int] = SCHEDULES,
    start: int = WINDOW[0],
    steps: int = STEPS,
) -> dict[str, list[float]]:
    """Whole ``StableDiffusionPipeline`` calls (latent output), interleaved: full vs each rule at each schedule."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    (unet,) = build_unets(unet_config, device, copies=1)
    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4).eval().to(device)
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=None,
        tokenizer=None,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    dim = unet_config["cross_attention_dim"]
    prompt, negative = torch.randn(2, 1, 77, dim, generator=generator).to(device)
    size = unet_config["sample_size"] * pipe.vae_scale_factor
    variants: dict[str, MomentumAttention | None] = {"full": None}
    for k in schedules:
        variants[f"extrapolate k={k}"] = extrapolate(k, start)
        variants[f"first_order k={k}"] = baseline(k, start)
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if variants[name] is not None:
                apply_momentum_attention(pipe, variants[name])
            synchronize(device)
            start = time.perf_counter()
            pipe(
                prompt_embeds=prompt,
                negative_prompt_embeds=negative,
                num_inference_steps=steps,
                height=size,
                width=size,
                guidance_scale=7.5,
                output_type="latent",
            )
            synchronize(device)
            times[name].append(time.perf_counter() - start)
            remove_momentum_attention(pipe)
            print(f"  e2e round {r + 1}/{rounds}: {name} {times[name][-1]:.2f}s", flush=True)
    return times
