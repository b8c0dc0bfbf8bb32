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
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.attention.unet_attention_grid import SCHEDULES, STEPS, WINDOW, baseline, extrapolate, quality_variants
from benchmarks.attention.unet_attention_quality import quality
from benchmarks.attention.unet_attention_report import figures, report
from benchmarks.attention.unet_attention_speed import SpeedResult, compose, end_to_end, pooled, speed
from benchmarks.common.paths import FIGURE_DIR
from benchmarks.common.sd15_unet import QUICK_UNET, SD15_UNET

__all__ = ["main"]


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
