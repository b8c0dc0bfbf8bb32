"""Momentum attention: speed on an SD1.5-sized UNet and quality on the embedded digits model, vs FasterCache's rule.

Usage::

    python -m benchmarks.attention.unet_attention [--quick] [--device cpu|cuda] [--rounds 2] [--images-per-digit 30]
                                         [--e2e] [--threads N] [--out benchmarks/out] [--no-figure-copy]

**Speed.** ``UNet2DConditionModel`` with Stable Diffusion 1.5's config (random weights; 859.5M parameters), 64x64
latents, batch 2 (batched CFG), text embeddings 77x768, DPM-Solver++(2M) at 20 steps, fp32. Variants: full
computation; ``extrapolate`` (our rule); ``first_order`` (FasterCache's rule, weight 0.5, through our hook; diffusers'
own FasterCache only matches transformer blocks named ``blocks`` / ``transformer_blocks``, not UNets), at matched skip
schedules (same ``skip_every``, window and targets). On a CPU one UNet call takes tens of seconds, so by default the
20-step time is *composed* from per-call medians: each round times, interleaved and in a rotating order, one full
call and, per rule, one computed call (hooks recording) and one skipped call (hooks predicting), each rule on its own
weight-sharing copy of the UNet whose state carries over from round to round. A 20-step time is then
``n_computed x t_computed + n_skipped x t_skipped`` (the scheduler and CFG arithmetic, milliseconds, are left out),
for every schedule from the same measurements. The rule arithmetic itself is timed separately. ``--e2e`` (the
default on CUDA) instead times whole ``StableDiffusionPipeline`` calls, interleaved.

**Quality.** The embedded digits model (`load_digits_pipeline`), DPM-Solver++(2M), 20 steps, guidance 3,
``images_per_digit`` x 10 digits from seed 0. Error against full computation (RMSE of the final images in [0, 1],
paired by initial noise), FD-digits and class accuracy for each rule and schedule, and for the experimental ``ema``
(our untested ``smooth`` proposal: β = 0.2 for the middle 20-80 % of steps) and ``heavy_ball``. A second full run from
seed 1 gives the seed-to-seed FD spread, the yardstick for "measurably improves FD-digits".

Writes ``attention.json``, ``attention.md`` and the figures ``attention_tradeoff.png`` and ``attention_samples.png``
to ``--out``; a full run also copies the figures to ``docs/figures/``.
"""

from __future__ import annotations

import os

# On a shared CPU, OpenMP threads that spin while waiting turn a 0.2 s call into 10 s whenever another process holds
# a core; passive waiting keeps timings meaningful. Only effective when torch is imported after this line.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DConditionModel

from benchmarks.attention.unet_attention_report import figures, report
from benchmarks.common.paths import FIGURE_DIR
from inertia.attention import (
    MomentumAttention,
    apply_momentum_attention,
    get_momentum_attention_tracker,
    remove_momentum_attention,
)
from inertia.attention.rules import (
    TensorState,
    extrapolate_observe,
    extrapolate_predict,
    first_order_observe,
    first_order_predict,
)

__all__ = ["SCHEDULES", "SD15_UNET", "compose", "main", "quality", "speed"]

STEPS = 20
WINDOW = (4, None)
SCHEDULES = (2, 3)
"""``skip_every`` values compared (window ``(4, None)``, self- and cross-attention)."""

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


def extrapolate(skip_every: int, start: int = WINDOW[0]) -> MomentumAttention:
    """Our rule at a schedule (defaults for β and λ)."""
    return MomentumAttention(mode="extrapolate", skip_every=skip_every, window=(start, None))


def baseline(skip_every: int, start: int = WINDOW[0]) -> MomentumAttention:
    """FasterCache's rule (weight 0.5) at the same schedule and targets."""
    return MomentumAttention.faster_cache(skip_every=skip_every, window=(start, None), targets=("self", "cross"))


# ---------------------------------------------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------------------------------------------


def _build_unets(config: dict[str, Any], device: torch.device, copies: int = 3) -> tuple[UNet2DConditionModel, ...]:
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    full, ours, theirs = _build_unets(unet_config, device)
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
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            unet(latents, t, encoder_hidden_states=text)
        _sync(device)
        return time.perf_counter() - start

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
                _sync(device)
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
                _sync(device)
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

    (unet,) = _build_unets(unet_config, device, copies=1)
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
            _sync(device)
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
            _sync(device)
            times[name].append(time.perf_counter() - start)
            remove_momentum_attention(pipe)
            print(f"  e2e round {r + 1}/{rounds}: {name} {times[name][-1]:.2f}s", flush=True)
    return times


# ---------------------------------------------------------------------------------------------------------------
# quality
# ---------------------------------------------------------------------------------------------------------------


def quality_variants(
    schedules: Sequence[int] = SCHEDULES, start: int = WINDOW[0], experimental: bool = True
) -> dict[str, MomentumAttention | None]:
    """The configurations compared on the digits model (None = full computation)."""
    variants: dict[str, MomentumAttention | None] = {"full": None}
    for k in schedules:
        variants[f"extrapolate k={k}"] = extrapolate(k, start)
        variants[f"first_order k={k}"] = baseline(k, start)
    if experimental:
        variants["ema (experimental)"] = MomentumAttention(mode="ema", beta=0.2, window=(4, 16))
        variants["heavy_ball (experimental)"] = MomentumAttention(
            mode="heavy_ball", beta=0.5, lookahead=0.5, window=(4, 16)
        )
        variants["full (seed 1)"] = None
    return variants


def quality(
    images_per_digit: int,
    device: torch.device,
    steps: int = STEPS,
    variants: dict[str, MomentumAttention | None] | None = None,
) -> tuple[dict[str, dict], dict]:
    """Metrics of every `quality_variants` entry on the embedded digits model, and the images (for the figure)."""
    variants = quality_variants() if variants is None else variants
    from inertia.metrics import class_accuracy, fd_digits
    from inertia.pipelines.loading import load_digits_pipeline

    pipe = load_digits_pipeline(device=device, dtype=torch.float32)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    labels = torch.arange(10).repeat_interleave(images_per_digit)

    def generate(seed: int) -> tuple[torch.Tensor, float]:
        generator = torch.Generator().manual_seed(seed)
        _sync(device)
        start = time.perf_counter()
        images = pipe(
            list(range(10)),
            num_images_per_prompt=images_per_digit,
            num_inference_steps=steps,
            guidance_scale=3.0,
            generator=generator,
            output_type="pt",
        ).images
        _sync(device)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (tiny UNet, 10 images, 8 steps)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 2, quick 1)")
    parser.add_argument("--images-per-digit", type=int, default=None, help="digits quality (default 30, quick 1)")
    parser.add_argument("--schedules", type=int, nargs="+", default=list(SCHEDULES), help="skip_every values")
    parser.add_argument("--window-start", type=int, default=WINDOW[0], help="first step that may be skipped")
    parser.add_argument(
        "--speed-from", type=Path, default=None, help="reuse the per-call timings of an earlier attention.json"
    )
    parser.add_argument("--no-experimental", action="store_true", help="skip the ema / heavy_ball / seed-1 runs")
    parser.add_argument("--e2e", action="store_true", help="time whole pipeline calls (default on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    parser.add_argument("--no-figure-copy", action="store_true", help="do not copy the figures to docs/figures")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if any(k < 1 for k in args.schedules) or args.window_start < 0:
        parser.error("--schedules must be integers >= 1 and --window-start >= 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rounds = args.rounds or (1 if args.quick else 2)
    per_digit = args.images_per_digit or (1 if args.quick else 30)
    quality_steps = 8 if args.quick else STEPS
    unet_config = QUICK_UNET if args.quick else SD15_UNET
    schedules, start = tuple(args.schedules), args.window_start
    e2e_wanted = args.e2e or device.type == "cuda"
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    if args.speed_from is not None:
        previous = json.loads(args.speed_from.read_text())
        speed_result = SpeedResult(**previous["speed"])
        rounds = previous["meta"]["rounds"]
        print(f"== speed: per-call timings from {args.speed_from}", flush=True)
    else:
        print(
            f"== speed ({'quick UNet' if args.quick else 'SD1.5-sized UNet'}, {rounds} rounds, {device})", flush=True
        )
        speed_result = speed(unet_config, rounds, device)
    speeds: dict[str, dict[str, float]] = {}
    full_s = STEPS * speed_result.full
    for k in schedules:
        row = {"full_s": full_s, "skipped_steps": extrapolate(k, start).num_skipped(STEPS)}
        for rule, config in (("extrapolate", extrapolate(k, start)), ("first_order", baseline(k, start))):
            row[f"{rule}_s"] = compose(speed_result, rule, config)
            row[rule] = full_s / row[f"{rule}_s"]
        row["pooled_s"] = compose(pooled(speed_result), "pooled", extrapolate(k, start))
        row["pooled"] = full_s / row["pooled_s"]
        speeds[f"k={k}"] = row
    e2e = None
    if e2e_wanted:
        print("== end to end", flush=True)
        e2e = end_to_end(unet_config, max(rounds, 3 if device.type == "cuda" else 1), device, schedules, start)
    print(f"== quality (digits model, {per_digit * 10} images)", flush=True)
    variants = quality_variants(schedules, start, experimental=not args.no_experimental)
    qual, images = quality(per_digit, device, steps=quality_steps, variants=variants)

    import diffusers

    meta = {
        "command": " ".join(
            ["python -m benchmarks.attention.unet_attention", *(sys.argv[1:] if argv is None else argv)]
        ),
        "unet": "tiny UNet (--quick)" if args.quick else "SD1.5-sized UNet (random weights), 64x64 latents",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        + (torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "rounds": rounds,
        "speed_from": None if args.speed_from is None else str(args.speed_from),
        "schedules": list(schedules),
        "window_start": start,
        "images_per_digit": per_digit,
        "quality_steps": quality_steps,
        "steps": STEPS,
        "seconds": time.perf_counter() - started,
    }
    text = report(meta, speed_result, e2e, speeds, qual)
    (out / "attention.md").write_text(text)
    payload = {"meta": meta, "speed": asdict(speed_result), "composed": speeds, "e2e": e2e, "quality": qual}
    (out / "attention.json").write_text(json.dumps(payload, indent=2))
    paths = figures(out, speeds, qual, images, per_digit, schedules, STEPS)
    if not args.quick and not args.no_figure_copy:
        FIGURE_DIR.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, FIGURE_DIR / path.name)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
