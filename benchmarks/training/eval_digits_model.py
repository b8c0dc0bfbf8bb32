"""Scores trained digits pipelines against the issue's targets, and compares training runs (FDM vs VP).

Two sub-commands:

    python -m benchmarks.training.eval_digits_model score runs/vp/pipeline [runs/fdm/pipeline ...] [--images-per-digit 100]
    python -m benchmarks.training.eval_digits_model curves runs/vp runs/fdm

``score`` samples ``10 x images_per_digit`` images per pipeline with DPM-Solver++(2M), 30 steps, guidance 3 (the
issue's setting), and reports class accuracy, FD-digits, the FD between two disjoint halves of real data (the
yardstick: the target is FD <= 5x that), colour statistics against real data, and sampling speed (images/s at
batch 16, 20 steps). ``curves`` reads the runs' ``log.jsonl`` evaluations (logged during training with
``--eval-every``) and prints FD-digits vs training steps side by side, plus the steps the second run needs to reach
the first run's final FD.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import DPMSolverMultistepScheduler

from inertia.metrics import class_accuracy, colour_stats, fd_digits, real_colour_stats, real_fd_baseline
from inertia.pipelines.digits import DigitsPipeline


def score(path: Path, images_per_digit: int, steps: int = 30, guidance: float = 3.0, seed: int = 0) -> dict:
    """The issue's target metrics for one saved pipeline."""
    pipe = DigitsPipeline.from_pretrained(path)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    digits = list(range(10))
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    images = pipe(
        digits,
        num_images_per_prompt=images_per_digit,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=generator,
        output_type="pt",
    ).images
    sample_seconds = time.perf_counter() - start
    labels = torch.arange(10).repeat_interleave(images_per_digit)
    # Speed at the setting: batch 16, 20 steps (median of 3 calls after one warm-up).
    timings = []
    for _ in range(4):
        t0 = time.perf_counter()
        pipe([d % 10 for d in range(16)], num_inference_steps=20, guidance_scale=guidance, output_type="pt")
        timings.append(time.perf_counter() - t0)
    per_call = sorted(timings[1:])[1]
    return {
        "pipeline": str(path),
        "images": len(labels),
        "class_accuracy": class_accuracy(images, labels),
        "fd_digits": fd_digits(images),
        **{f"colour/{k}": v for k, v in colour_stats(images).items()},
        "sample_seconds": sample_seconds,
        "images_per_s_batch16_20steps": 16 / per_call,
    }


def _evals(run: Path) -> list[tuple[int, dict]]:
    rows = []
    for line in (run / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("eval"):
            rows.append((int(record["step"]), record["eval"]))
    return rows


def curves(runs: Sequence[Path]) -> str:
    """Markdown table of FD-digits and accuracy vs steps for each run, and the steps-to-match ratio."""
    evals = {run.name: dict(_evals(run)) for run in runs}
    steps = sorted({s for e in evals.values() for s in e})
    head = "| step | " + " | ".join(f"{n} FD-digits | {n} accuracy" for n in evals) + " |"
    lines = [head, "|---:|" + "---:|---:|" * len(evals)]
    for s in steps:
        cells = []
        for e in evals.values():
            r = e.get(s, {})
            cells += [
                f"{r['fd_digits']:.3f}" if "fd_digits" in r else "",
                f"{r['class_accuracy']:.3f}" if "class_accuracy" in r else "",
            ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    names = list(evals)
    if len(names) == 2 and evals[names[0]] and evals[names[1]]:
        base_name, other_name = names
        base_final_step = max(evals[base_name])
        target = evals[base_name][base_final_step]["fd_digits"]
        reached = [
            s for s in sorted(evals[other_name]) if evals[other_name][s].get("fd_digits", float("inf")) <= target
        ]
        if reached:
            ratio = reached[0] / base_final_step
            lines.append(
                f"\n{other_name} reaches {base_name}'s final FD-digits ({target:.3f} at step {base_final_step}) at step "
                f"{reached[0]}: {ratio:.2f}x the steps (eval grid resolution)."
            )
        else:
            lines.append(f"\n{other_name} never reaches {base_name}'s final FD-digits ({target:.3f}) in this budget.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_score = sub.add_parser("score")
    p_score.add_argument("pipelines", nargs="+", type=Path)
    p_score.add_argument("--images-per-digit", type=int, default=100)
    p_curves = sub.add_parser("curves")
    p_curves.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "curves":
        print(curves(args.runs))
        return 0
    baseline = real_fd_baseline()
    print(f"real-data FD baseline (two disjoint halves): {baseline:.3f}; target FD-digits <= {5 * baseline:.3f}")
    print("real colour stats:", json.dumps({k: round(v, 4) for k, v in real_colour_stats().items()}))
    for path in args.pipelines:
        print(
            json.dumps(
                {
                    k: (round(v, 4) if isinstance(v, float) else v)
                    for k, v in score(path, args.images_per_digit).items()
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
