"""One-command training run of the 32x32 digits model for a session with a GPU lent, scored at the headline protocol.

The embedded model's FD-digits target (docs/benchmarks/embedded-models.md §9: at most 2.5x the real-halves FD at guidance 3) needs more
training than a 2-core CPU gives in a session; a GPU gives it in minutes. This script fits a whole run into a fixed
wall-clock budget, so it can go to a lent machine as one command (docs/gpu.md), with a learning rate that still
anneals to 0 at the end:

1. a calibration phase (``--calibration-steps``, constant rate after the warm-up) measures seconds per step;
2. the run resumes from it with ``max_steps`` set to what fits in the rest of ``--minutes`` (capped by
   ``--max-steps``) and a linear decay to 0 over the last ``--decay-fraction`` of the steps;
3. the EMA pipeline is scored with :class:`benchmarks.product.embedded_scoring.Scorer` on the evaluation seeds: DPM-Solver++(2M),
   20 steps, guidance 3, ``--images`` images (accuracy, FD-digits and its ratio to the real-halves FD), and the class
   accuracy at guidance 1 (how strong the conditional is without guidance).

It writes ``OUT/pipeline/`` (``model_index.json``, ``scheduler/``, ``unet/``: a folder ``load_image_pipeline`` and
``benchmarks.product.embedded_model report`` read), ``OUT/gpu_train_report.json`` and ``OUT/gpu_train_report.md``, and the
training log ``OUT/log.jsonl``: eight files at most, two folders deep, as the device tool brings back.

Usage (``--device cpu --quick`` runs the whole path in about a minute on a CPU)::

    python -m benchmarks.gpu.train_digits --out benchmarks/out/gpu_train [--minutes 7] [--model-size small-32-adagn]
        [--batch-size 128] [--lr 5e-4] [--max-steps 60000] [--images 1000] [--device auto|cpu|cuda] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["fitted_steps", "main", "run"]

PIPELINE_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
)


def fitted_steps(done: int, seconds_per_step: float, seconds_left: float, max_steps: int, margin: float = 0.9) -> int:
    """Total steps of a run that has done ``done`` steps and may spend ``margin·seconds_left`` more, at most ``max_steps``.

    Example:
        >>> fitted_steps(200, 0.01, 100.0, 60000)
        9200
        >>> fitted_steps(200, 0.01, 100.0, 5000)
        5000
    """
    if seconds_per_step <= 0 or not math.isfinite(seconds_per_step):
        raise ValueError(f"`seconds_per_step` must be a positive finite number, got {seconds_per_step!r}.")
    more = int(margin * max(seconds_left, 0.0) / seconds_per_step)
    return max(done, min(int(max_steps), done + more))


def _seconds_per_step(log: Path, first_step: int) -> float:
    """Median seconds per logged step after ``first_step`` (skips the warm-up and first-call compile costs)."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "wall_time_s" in r and "loss" in r and r["step"] >= first_step]
    gaps = [(b["wall_time_s"] - a["wall_time_s"]) / (b["step"] - a["step"]) for a, b in itertools.pairwise(rows)]
    gaps = sorted(g for g in gaps if g > 0)
    if not gaps:
        raise RuntimeError(f"no timed steps after step {first_step} in {log}; raise --calibration-steps")
    return gaps[len(gaps) // 2]


def _check(args: argparse.Namespace) -> None:
    """Bad input, named, before any work."""
    from inertia.training.config import MODEL_PRESETS

    checks = [
        ("--minutes", args.minutes, 0.5, 600),
        ("--batch-size", args.batch_size, 1, 4096),
        ("--lr", args.lr, 1e-6, 1e-1),
        ("--max-steps", args.max_steps, args.calibration_steps + 1, 10**7),
        ("--calibration-steps", args.calibration_steps, 20, 10**5),
        ("--decay-fraction", args.decay_fraction, 0.0, 1.0),
        ("--images", args.images, 10, 100000),
        ("--ema-halflife-kimg", args.ema_halflife_kimg, 0.01, 10000),
        ("--seed", args.seed, 0, 2**31 - 1),
        ("--score-seconds", args.score_seconds, 0, 3600),
    ]
    for name, value, low, high in checks:
        if not low <= value <= high:
            raise SystemExit(f"error: {name} must be in [{low}, {high}], got {value!r}.")
    if args.model_size not in MODEL_PRESETS:
        raise SystemExit(f"error: --model-size must be one of {sorted(MODEL_PRESETS)}, got {args.model_size!r}.")
    if args.images % 10:
        raise SystemExit(f"error: --images must be a multiple of 10 (one digit per image in turn), got {args.images}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but torch sees no CUDA device.")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Calibrate, train to the fitted step count, score; returns the report dict (also written to ``args.out``)."""
    from benchmarks.product.embedded_scoring import Scorer, Setting
    from inertia.metrics import real_fd_baseline
    from inertia.pipelines import load_image_pipeline
    from inertia.training.train import TrainConfig, train

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_train_digits_"))
    start = time.perf_counter()
    base = {
        "preconditioning": "vp",
        "model_size": args.model_size,
        "resolution": 32,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "ema_halflife_kimg": args.ema_halflife_kimg,
        "seed": args.seed,
        "output_dir": str(work),
        "cpu": not cuda,
        "progress_bar": False,
        "checkpoint_every": 10**9,  # a checkpoint at each phase's end only
        "checkpoints_total_limit": 1,
        "log_every": 10,
    }
    calibration = train(TrainConfig(**base, max_steps=args.calibration_steps), evaluate=None)
    per_step = _seconds_per_step(work / "log.jsonl", first_step=min(args.calibration_steps // 2, 200))
    budget = 60.0 * args.minutes - (time.perf_counter() - start) - args.score_seconds
    total = fitted_steps(calibration["step"], per_step, budget, args.max_steps)
    decay_from = max(calibration["step"], int(total * (1.0 - args.decay_fraction)))
    result = train(
        TrainConfig(**base, max_steps=total, lr_decay_from=decay_from, resume="latest", max_minutes=None),
        evaluate=None,
    )
    train_s = time.perf_counter() - start

    pipe = load_image_pipeline(result["pipeline_dir"], device="cuda" if cuda else "cpu")
    pipe.set_progress_bar_config(disable=True)
    scorer = Scorer(pipe, 0, log=False)
    headline = scorer.score(Setting(), args.images // 10)
    unguided = scorer.score(Setting(scale=1.0), max(1, args.images // 50))
    real = real_fd_baseline()
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.gpu.train_digits " + " ".join(sys.argv[1:]),
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "model_size": args.model_size,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "ema_halflife_kimg": args.ema_halflife_kimg,
        "seed": args.seed,
        "steps": result["step"],
        "lr_decay_from": decay_from,
        "seconds_per_step": per_step,
        "train_wall_s": train_s,
        "headline": headline,
        "real_halves_fd": real,
        "fd_ratio": headline["fd_digits"] / real,
        "unguided": unguided,
    }
    for name in PIPELINE_FILES:
        target = out / "pipeline" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(result["pipeline_dir"]) / name, target)
    shutil.copyfile(work / "log.jsonl", out / "log.jsonl")
    (out / "gpu_train_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_train_report.md").write_text(_markdown(report))
    shutil.rmtree(work, ignore_errors=True)
    return report


def _markdown(r: dict[str, Any]) -> str:
    h, u = r["headline"], r["unguided"]
    return (
        f"`{r['command']}` ({r['date']}; {r['device']}, torch {r['torch']})\n\n"
        f"Training: VP, `{r['model_size']}`, batch {r['batch_size']}, AdamW {r['lr']:g} (linear decay to 0 from step "
        f"{r['lr_decay_from']:,}), EMA half-life {r['ema_halflife_kimg']:g} kimg, seed {r['seed']}: {r['steps']:,} "
        f"steps in {r['train_wall_s'] / 60:.1f} min ({1000 * r['seconds_per_step']:.1f} ms/step).\n\n"
        "| protocol | images | accuracy | FD-digits | real-halves FD | ratio | clipped |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        f"| DPM++2M, 20 steps, w 3 | {h['images']} | {h['class_accuracy']:.3f} | {h['fd_digits']:.3f} | "
        f"{r['real_halves_fd']:.3f} | {r['fd_ratio']:.2f} | {h['clipped_fraction']:.3f} |\n"
        f"| DPM++2M, 20 steps, w 1 | {u['images']} | {u['class_accuracy']:.3f} | {u['fd_digits']:.3f} | | | "
        f"{u['clipped_fraction']:.3f} |\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu.train_digits", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/out/gpu_train")
    p.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget, training and scoring (default 7)")
    p.add_argument("--model-size", default="small-32-adagn")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--ema-halflife-kimg", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=60000)
    p.add_argument("--calibration-steps", type=int, default=400)
    p.add_argument("--decay-fraction", type=float, default=0.3, help="share of the steps the rate decays over")
    p.add_argument("--score-seconds", type=float, default=60.0, help="kept back from --minutes for the scoring")
    p.add_argument("--images", type=int, default=1000, help="headline images (guidance 1: a fifth of them)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny model, 40 steps, 50 images")
    args = p.parse_args(argv)
    if args.quick:
        args.model_size, args.batch_size, args.calibration_steps = "tiny", 16, 20
        args.max_steps, args.images, args.score_seconds = 40, 50, 0.0
    _check(args)
    report = run(args)
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
