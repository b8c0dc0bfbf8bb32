"""The report and figures of :mod:`benchmarks.attention.unet_attention` (Markdown tables, target verdicts, two plots)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from benchmarks.common.outputs import save_figure

if TYPE_CHECKING:
    from benchmarks.attention.unet_attention_speed import SpeedResult


def verdicts(speeds: dict[str, dict[str, float]], qual: dict[str, dict], schedules: Sequence[int]) -> list[str]:
    """The issue's targets, checked on this run's numbers."""
    lines = []
    for k in schedules:
        ours, theirs = qual[f"extrapolate k={k}"], qual[f"first_order k={k}"]
        speedup = speeds[f"k={k}"]["extrapolate"]
        lines.append(
            f"- skip_every={k}: `extrapolate` speed-up {speedup:.2f}x ({'meets' if speedup >= 1.25 else 'misses'} the "
            f">= 1.25x target); error {ours['rmse']:.4f} vs the baseline's {theirs['rmse']:.4f} "
            f"({'lower' if ours['rmse'] < theirs['rmse'] else 'NOT lower'}, {theirs['rmse'] / ours['rmse']:.2f}x)."
        )
    if "full (seed 1)" not in qual:
        return lines
    spread = abs(qual["full"]["fd_digits"] - qual["full (seed 1)"]["fd_digits"])
    for name in ("ema (experimental)", "heavy_ball (experimental)"):
        gain = qual["full"]["fd_digits"] - qual[name]["fd_digits"]
        better = gain > spread
        lines.append(
            f"- {name.split()[0]}: FD-digits {qual[name]['fd_digits']:.3f} vs full {qual['full']['fd_digits']:.3f} "
            f"(seed-to-seed spread {spread:.3f}): {'a measurable improvement' if better else 'no measurable improvement'}"
            f"; it {'may leave' if better else 'stays'} experimental."
        )
    return lines


def report(meta: dict, speed_result: SpeedResult | None, e2e: dict | None, speeds: dict, qual: dict) -> str:
    """The Markdown report: speed (per call, composed, end to end), quality and the targets."""
    schedules, start = meta["schedules"], meta["window_start"]
    lines = [
        "# Momentum attention benchmark",
        "",
        f"Command: `{meta['command']}`; {meta['machine']}; torch {meta['torch']}, diffusers {meta['diffusers']}; "
        f"{meta['date']}; {meta['seconds']:.0f} s in all.",
        "",
    ]
    if speed_result is not None:
        r = speed_result
        lines += [
            f"## Speed: {meta['unet']}, batch 2, {meta['rounds']} interleaved rounds (medians)",
            "",
            "| call | extrapolate | first_order (FasterCache rule) |",
            "|---|---:|---:|",
            f"| full, no hooks | {r.full:.2f} s | {r.full:.2f} s |",
            f"| computed, hooks recording | {r.computed['extrapolate']:.2f} s | {r.computed['first_order']:.2f} s |",
            f"| skipped, hooks predicting | {r.skipped['extrapolate']:.2f} s | {r.skipped['first_order']:.2f} s |",
            f"| rule arithmetic, computed step | {r.rule_ms['extrapolate/observe']:.1f} ms | "
            f"{r.rule_ms['first_order/observe']:.1f} ms |",
            f"| rule arithmetic, skipped step | {r.rule_ms['extrapolate/predict']:.1f} ms | "
            f"{r.rule_ms['first_order/predict']:.1f} ms |",
            "",
            f"Composed {meta['steps']}-step times (n_computed x computed + n_skipped x skipped), window {(start, None)}:",
            "",
            "| schedule | skipped steps | full | extrapolate | speed-up | first_order | speed-up | both pooled |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for k in schedules:
            s = speeds[f"k={k}"]
            lines.append(
                f"| skip_every={k} | {s['skipped_steps']} | {s['full_s']:.0f} s | {s['extrapolate_s']:.0f} s "
                f"| {s['extrapolate']:.2f}x | {s['first_order_s']:.0f} s | {s['first_order']:.2f}x | {s['pooled']:.2f}x |"
            )
        lines += [
            "",
            'Both rules skip the same modules on the same steps; "both pooled" uses the median over both rules\' '
            "computed and skipped calls (the same work), which halves the timing noise.",
            "",
        ]
        if meta.get("speed_from"):
            lines += [f"Per-call timings reused from `{meta['speed_from']}`.", ""]
    if e2e is not None:
        lines += [
            "## End to end: StableDiffusionPipeline calls (medians)",
            "",
            "| variant | time | speed-up |",
            "|---|---:|---:|",
        ]
        full = statistics.median(e2e["full"])
        for name, times in e2e.items():
            lines.append(f"| {name} | {statistics.median(times):.2f} s | {full / statistics.median(times):.2f}x |")
        lines.append("")
    n = meta["images_per_digit"] * 10
    lines += [
        f"## Quality: embedded digits model, {n} images, DPM-Solver++(2M) {meta['quality_steps']} steps, guidance 3",
        "",
        "| variant | skipped steps | RMSE vs full | max abs | FD-digits | accuracy | time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in qual.items():
        rmse = f"{row['rmse']:.4f}" if "rmse" in row else "-"
        max_abs = f"{row['max_abs']:.3f}" if "max_abs" in row else "-"
        lines.append(
            f"| {name} | {row['skipped_steps']} | {rmse} | {max_abs} | {row['fd_digits']:.3f} | "
            f"{row['class_accuracy']:.3f} | {row['seconds']:.1f} s |"
        )
    lines += ["", "## Targets", "", *verdicts(speeds, qual, schedules)] if speeds else []
    return "\n".join(lines) + "\n"


def figures(
    out: Path,
    speeds: dict,
    qual: dict,
    images: dict[str, torch.Tensor],
    per_digit: int,
    schedules: Sequence[int],
    steps: int,
) -> list[Path]:
    """Writes the trade-off plot (speed-up vs error per rule) and the sample grid to ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for rule, label, marker in (
        ("extrapolate", "extrapolate (momentum)", "o"),
        ("first_order", "FasterCache rule, w=0.5", "s"),
    ):
        xs = [speeds[f"k={k}"][rule] for k in schedules]
        ys = [qual[f"{rule} k={k}"]["rmse"] for k in schedules]
        ax.plot(xs, ys, marker=marker, label=label)
        for k, x, y in zip(schedules, xs, ys):
            ax.annotate(f"skip_every={k}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axvline(1.25, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"UNet speed-up, {steps} steps (composed from per-call medians)")
    ax.set_ylabel("digits model: RMSE vs full computation")
    ax.set_title("Error at equal speed-up")
    ax.legend()
    paths.append(save_figure(fig, out / "attention_tradeoff.png", dpi=120))

    rows = [
        name
        for name in (
            "full",
            *(f"{r} k={k}" for k in schedules for r in ("extrapolate", "first_order")),
            "ema (experimental)",
        )
        if name in images
    ]
    fig, axes = plt.subplots(len(rows), 10, figsize=(10, 1.1 * len(rows) + 0.3))
    for i, name in enumerate(rows):
        for d in range(10):
            axis = axes[i][d]
            axis.imshow(images[name][d * per_digit].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        axes[i][0].set_ylabel(name.replace(" (experimental)", ""), rotation=0, ha="right", va="center", fontsize=8)
    paths.append(save_figure(fig, out / "attention_samples.png", dpi=100))
    return paths
