"""FDM vs VP training study with several seeds per arm: how many steps FDM needs to reach VP's final FD-digits.

The Fast Diffusion Model paper (Wu et al., arXiv 2306.06991) reports that momentum-based training reaches a baseline's
quality in about half the steps; an independent study found about 0.6x. This study trains both arms on the embedded
digits data with ``inertia-train`` (same model, data, batch, learning rate and evaluation grid; only the
preconditioning differs) for ``--seeds`` seeds each, then reports, per seed, the first evaluation step at which the
FDM run's FD-digits is at or below the VP run's final FD-digits, divided by the VP run's final step, with the mean and
spread over seeds, and draws the training curves (median and range over seeds).

Two sub-commands::

    python -m benchmarks.training.fdm_study train --root runs/fdm-study [--seeds 0 1 2] [--max-steps 6000] [--resolution 32]
    python -m benchmarks.training.fdm_study report --root runs/fdm-study [--out benchmarks/out]

``train`` runs the 2 x seeds trainings one after the other (``--jobs N``: N at a time), each with ``--resume latest``: stopping and rerunning the
same command continues where it stopped (checkpoints every ``--checkpoint-every`` steps). On a GPU add ``--device
cuda`` (the default trains on the CPU). ``report`` reads every run's ``log.jsonl`` and writes ``fdm_study.md``,
``fdm_study.json`` and ``docs/figures/fdm_study.png`` (the documentation site shows what BENCHMARKS.md links there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common.outputs import save_figure
from benchmarks.common.paths import FIGURE_DIR

ARMS = ("vp", "fdm")
"""The two preconditionings compared (the baseline first)."""
WINDOW = 3
"""Evaluations averaged into each smoothed FD-digits value (the last 500 steps on the default 250-step grid)."""
FLAT = 0.1
SPEED_FACTORS = (2.0, 1.25, 1.0)
"""Quality levels for :func:`speed_ratios`, as multiples of VP's final smoothed FD-digits."""
"""A curve whose smoothed FD fell by less than this fraction over its last quarter counts as flat."""
FIGURE = FIGURE_DIR / "fdm_study.png"


def run_dir(root: Path, arm: str, seed: int) -> Path:
    """Where one training run of the study lives."""
    return root / f"{arm}-seed{seed}"


def train_command(args: argparse.Namespace, arm: str, seed: int) -> list[str]:
    """The ``inertia-train`` command line of one run (identical for both arms except the preconditioning)."""
    command = [sys.executable, "-m", "inertia.training.train", "--preconditioning", arm, "--seed", str(seed)]
    command += ["--model-size", args.model_size, "--resolution", str(args.resolution), "--batch-size", "64"]
    command += ["--max-steps", str(args.max_steps), "--eval-every", str(args.eval_every)]
    command += ["--checkpoint-every", str(args.checkpoint_every), "--checkpoints-total-limit", "2"]
    command += ["--eval-images-per-digit", str(args.eval_images_per_digit), "--no-progress-bar"]
    command += ["--output-dir", str(run_dir(args.root, arm, seed)), "--resume", "latest"]
    return command + (["--cpu"] if args.device == "cpu" else [])


def evaluations(run: Path) -> list[tuple[int, float, float]]:
    """``(step, FD-digits, class accuracy)`` of every logged evaluation of a run, by step."""
    rows = []
    log = run / "log.jsonl"
    if not log.is_file():
        return rows
    for line in log.read_text().splitlines():
        record = json.loads(line)
        metrics = record.get("eval") or {}
        if "fd_digits" in metrics:
            rows.append(
                (int(record["step"]), float(metrics["fd_digits"]), float(metrics.get("class_accuracy", "nan")))
            )
    return sorted(rows)


def smoothed(curve: list[tuple[int, float, float]], window: int = WINDOW) -> list[tuple[int, float]]:
    """``(step, mean FD-digits of the last window evaluations up to that step)``: FD on a few hundred images is noisy."""
    return [
        (step, statistics.mean(fd for _, fd, _ in curve[max(0, i + 1 - window) : i + 1]))
        for i, (step, _, _) in enumerate(curve)
    ]


def steps_to_match(baseline: list[tuple[int, float, float]], other: list[tuple[int, float, float]]) -> dict[str, Any]:
    """When ``other`` first reaches ``baseline``'s final FD-digits, both smoothed alike (see :func:`smoothed`)."""
    final_step, target = smoothed(baseline)[-1]
    reached = next((step for step, fd in smoothed(other) if fd <= target), None)
    return {
        "baseline_final_step": final_step,
        "baseline_final_fd": target,
        "step": reached,
        "ratio": None if reached is None else reached / final_step,
    }


def first_reach(curve: list[tuple[int, float, float]], target: float) -> int | None:
    """The first step at which the smoothed FD-digits of ``curve`` is at or below ``target`` (None: never)."""
    return next((step for step, fd in smoothed(curve) if fd <= target), None)


def speed_ratios(vp: list[tuple[int, float, float]], fdm: list[tuple[int, float, float]]) -> dict[str, Any]:
    """Steps each arm needs to reach ``factor`` x VP's final smoothed FD-digits, and FDM's / VP's, per factor.

    Once VP's curve is flat it reaches its own final value long before its last step, so "FDM's steps / VP's final
    step" shrinks with the budget; these ratios compare the two arms' times to the same quality instead.
    """
    target = smoothed(vp)[-1][1]
    out = {}
    for factor in SPEED_FACTORS:
        vp_step, fdm_step = first_reach(vp, factor * target), first_reach(fdm, factor * target)
        ratio = None if vp_step is None or fdm_step is None else fdm_step / vp_step
        out[f"{factor:g}"] = {"vp_step": vp_step, "fdm_step": fdm_step, "ratio": ratio}
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (NaN for one value), minimum and maximum."""
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else math.nan,
        "min": min(values),
        "max": max(values),
    }


def last_quarter_gain(curve: list[tuple[int, float, float]]) -> float:
    """How much the smoothed FD-digits still fell over the last quarter of the run, relative to its final value.

    A flat curve gives about 0 (noise either way); the study calls a curve flat below :data:`FLAT`.
    """
    points = smoothed(curve)
    final_step, final_fd = points[-1]
    earlier = [fd for step, fd in points if step <= 0.75 * final_step]
    return (earlier[-1] - final_fd) / final_fd if earlier else math.nan


def summarise(root: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """Per-seed ratios and their mean, standard deviation, minimum and maximum."""
    per_seed = {}
    for seed in seeds:
        curves = {arm: evaluations(run_dir(root, arm, seed)) for arm in ARMS}
        if all(curves.values()):
            gains = {arm: last_quarter_gain(curve) for arm, curve in curves.items()}
            per_seed[seed] = {
                "curves": curves,
                "last_quarter_gain": gains,
                "speed": speed_ratios(curves["vp"], curves["fdm"]),
                **steps_to_match(curves["vp"], curves["fdm"]),
            }
    ratios = [r["ratio"] for r in per_seed.values() if r["ratio"] is not None]
    summary: dict[str, Any] = {"seeds": per_seed, "ratios": ratios, "not_reached": len(per_seed) - len(ratios)}
    if ratios:
        summary.update(spread(ratios))
    speed = {}
    for factor in SPEED_FACTORS:
        key = f"{factor:g}"
        values = [r["speed"][key]["ratio"] for r in per_seed.values() if r["speed"][key]["ratio"] is not None]
        speed[key] = spread(values) if values else None
    summary["speed"] = speed
    return summary


def report(summary: dict[str, Any]) -> str:
    """The Markdown table of the study."""
    lines = [
        "| seed | VP final step | VP final FD | FDM reaches it at step | ratio | FDM final FD | VP / FDM final accuracy "
        "| FD fall over the last quarter, VP / FDM |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for seed, r in summary["seeds"].items():
        vp, fdm = r["curves"]["vp"], r["curves"]["fdm"]
        reached = "not reached" if r["step"] is None else str(r["step"])
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        gains = " / ".join(f"{100 * r['last_quarter_gain'][arm]:.1f}%" for arm in ARMS)
        lines.append(
            f"| {seed} | {r['baseline_final_step']} | {r['baseline_final_fd']:.3f} | {reached} | {ratio} | "
            f"{smoothed(fdm)[-1][1]:.3f} | {vp[-1][2]:.3f} / {fdm[-1][2]:.3f} | {gains} |"
        )
    flat = all(g < FLAT for r in summary["seeds"].values() for g in r["last_quarter_gain"].values())
    lines += [
        "",
        f"FD-digits values are means of the last {WINDOW} evaluations (VP's final and FDM's at each step alike). "
        + ("Every curve is flat" if flat else "**Not every curve is flat**")
        + f" (flat: the smoothed FD fell by less than {100 * FLAT:.0f}% over the last quarter of the run).",
    ]
    if summary["ratios"]:
        lines += [
            "",
            f"Steps for FDM to reach VP's final FD-digits: mean **{summary['mean']:.2f}x** over "
            f"{len(summary['ratios'])} seeds (std {summary['std']:.2f}, range {summary['min']:.2f}-{summary['max']:.2f})"
            + (f"; not reached in {summary['not_reached']} seed(s)" if summary["not_reached"] else "")
            + ".",
        ]
    elif summary["seeds"]:
        lines += ["", "FDM never reached VP's final FD-digits in this budget."]
    if summary["seeds"]:
        factors = [f"{f:g}" for f in SPEED_FACTORS]
        lines += [
            "",
            "Steps to the same quality (smoothed FD-digits at most the factor x VP's final), VP / FDM steps (FDM / VP):",
            "",
            "| seed | " + " | ".join(f"{f}x VP's final FD" for f in factors) + " |",
            "|---:|" + "---|" * len(factors),
        ]
        for seed, r in summary["seeds"].items():
            cells = []
            for f in factors:
                cell = r["speed"][f]
                ratio = "-" if cell["ratio"] is None else f"{cell['ratio']:.2f}"
                cells.append(f"{cell['vp_step'] or 'never'} / {cell['fdm_step'] or 'never'} ({ratio})")
            lines.append(f"| {seed} | " + " | ".join(cells) + " |")
        means = [
            "-"
            if summary["speed"][f] is None
            else f"**{summary['speed'][f]['mean']:.2f}** "
            f"(std {summary['speed'][f]['std']:.2f}, {summary['speed'][f]['min']:.2f}-{summary['speed'][f]['max']:.2f})"
            for f in factors
        ]
        lines.append("| mean FDM / VP | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def figure(summary: dict[str, Any], path: Path = FIGURE) -> Path:
    """FD-digits and class accuracy vs steps for both arms: the median over seeds, with the range as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (fd_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10.0, 4.0), dpi=120)
    for arm, colour in zip(ARMS, ("tab:blue", "tab:orange"), strict=True):
        curves = [r["curves"][arm] for r in summary["seeds"].values()]
        steps = sorted(set.intersection(*({s for s, _, _ in c} for c in curves))) if curves else []
        for axis, column in ((fd_axis, 1), (accuracy_axis, 2)):
            by_step = [[point[column] for c in curves for point in c if point[0] == step] for step in steps]
            axis.plot(steps, [statistics.median(v) for v in by_step], color=colour, label=f"{arm.upper()} (median)")
            axis.fill_between(steps, [min(v) for v in by_step], [max(v) for v in by_step], color=colour, alpha=0.2)
    fd_axis.set(xlabel="training step", ylabel="FD-digits (lower is better)", yscale="log")
    accuracy_axis.set(xlabel="training step", ylabel="class accuracy", ylim=(0.0, 1.02))
    fig.suptitle(f"FDM vs VP, {len(summary['seeds'])} seeds per arm (band: range over seeds)")
    fd_axis.legend()
    return save_figure(fig, path)


def run_all(commands: list[list[str]], jobs: int) -> int:
    """Run the trainings, ``jobs`` at a time (each limited to one CPU thread when more than one runs at once)."""
    env = dict(os.environ, OMP_NUM_THREADS="1") if jobs > 1 else None
    pending, running = list(commands), []
    while pending or running:
        while pending and len(running) < jobs:
            command = pending.pop(0)
            print(" ".join(command), flush=True)
            running.append(subprocess.Popen(command, env=env))
        finished = next((p for p in running if p.poll() is not None), None)
        if finished is None:
            time.sleep(5)
            continue
        running.remove(finished)
        if finished.returncode:
            for process in running:
                process.terminate()
            return finished.returncode
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "report"):
        p = sub.add_parser(name)
        p.add_argument("--root", type=Path, default=Path("runs/fdm-study"))
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p_train = sub.choices["train"]
    p_train.add_argument("--max-steps", type=int, default=6000)
    p_train.add_argument("--eval-every", type=int, default=250)
    p_train.add_argument("--checkpoint-every", type=int, default=250)
    p_train.add_argument("--eval-images-per-digit", type=int, default=20)
    p_train.add_argument("--resolution", type=int, choices=(16, 32), default=32)
    p_train.add_argument("--model-size", default="small-32")
    p_train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p_train.add_argument("--jobs", type=int, default=1, help="trainings run at once (one CPU thread each on the CPU)")
    sub.choices["report"].add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < 1 or min(args.seeds) < 0:
        parser.error(f"--seeds must be integers >= 0, got {args.seeds}")
    if args.command == "train":
        if args.jobs < 1:
            parser.error(f"--jobs must be >= 1, got {args.jobs}")
        if args.max_steps < args.eval_every or args.eval_every < 1:
            parser.error(f"--eval-every must be in [1, --max-steps], got {args.eval_every} and {args.max_steps}")
        return run_all([train_command(args, arm, seed) for seed in args.seeds for arm in ARMS], args.jobs)
    summary = summarise(args.root, args.seeds)
    if not summary["seeds"]:
        print(f"fdm_study: no finished pair of runs under {args.root}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    text = report(summary)
    (args.out / "fdm_study.md").write_text(text)
    (args.out / "fdm_study.json").write_text(json.dumps(summary, indent=2, default=str))
    print(text)
    print(f"figure: {figure(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
