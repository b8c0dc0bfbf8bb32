"""The guidance benchmark's report: the markdown tables (cells, overhead, targets, sweep) and the picture grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.guidance.apg_higs_grid import (
    APG_FD_RATIO,
    HIGS_FD_RATIO,
    NUM_DIGITS,
    OVERHEAD_LIMIT,
    REPORT_SEED,
    SATURATION_TOLERANCE,
    TARGET_GUIDANCE,
    TARGET_NFE,
    TUNING_SEED,
)

__all__ = ["cell_tables", "overhead_table", "render_grid", "report", "target_lines", "tuning_table"]


def render_grid(
    strips: Mapping[tuple[str, float], torch.Tensor],
    methods: Sequence[str],
    guidances: Sequence[float],
    path: Path,
    title: str,
    scale: int = 4,
) -> Path:
    """Saves a PNG: one row per method, one column per guidance, each cell the digits 0-9 (2 rows of 5).

    Args:
        strips: ``(method, guidance) -> (10, 3, h, w)`` images in [0, 1], digit ``d`` at index ``d``.
        methods, guidances: row and column order.
        path: output file.
        title: caption at the top.
        scale: nearest-neighbour upscaling of each image.
    """
    from PIL import Image, ImageDraw, ImageFont

    sample = next(iter(strips.values()))
    h, w = int(sample.shape[-2]) * scale, int(sample.shape[-1]) * scale
    gap, label_w, head_h, title_h = 6, 110, 28, 30
    cell_w, cell_h = 5 * w, 2 * h
    font = ImageFont.load_default(size=16)
    width = max(label_w + len(guidances) * (cell_w + gap), int(font.getlength(title)) + 16)
    height = title_h + head_h + len(methods) * (cell_h + gap)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), title, fill="black", font=font)
    for col, guidance in enumerate(guidances):
        x0 = label_w + col * (cell_w + gap)
        draw.text((x0 + cell_w // 2 - 24, title_h + 4), f"w = {guidance:g}", fill="black", font=font)
    for row, method in enumerate(methods):
        y0 = title_h + head_h + row * (cell_h + gap)
        draw.text((8, y0 + cell_h // 2 - 8), method, fill="black", font=font)
        for col, guidance in enumerate(guidances):
            images = strips[(method, guidance)]
            pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            x0 = label_w + col * (cell_w + gap)
            for digit in range(min(NUM_DIGITS, len(pixels))):
                tile = Image.fromarray(pixels[digit]).resize((w, h), Image.NEAREST)
                canvas.paste(tile, (x0 + (digit % 5) * w, y0 + (digit // 5) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def cell_tables(cells: Sequence[dict], real: Mapping[str, Any]) -> list[str]:
    """One markdown table per NFE: rows = guidance x method, plus the real-data reference row."""
    lines = []
    for nfe in sorted({c["nfe"] for c in cells}):
        lines += [
            f"#### NFE {nfe}",
            "",
            "| w | method | images | saturation (÷ real) | clipped | accuracy | FD-digits |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for c in (c for c in cells if c["nfe"] == nfe):
            same = f" (= {c['identical_to']})" if c.get("identical_to") else ""
            lines.append(
                f"| {c['guidance']:g} | {c['method']}{same} | {c['images']} | {_fmt(c['mean_saturation'])} "
                f"({c['saturation_vs_real']:.2f}) | {_fmt(c['clipped_fraction'])} | {_fmt(c['class_accuracy'])} | "
                f"{_fmt(c['fd_digits'], 2)} |"
            )
        floors = ", ".join(f"{v:.2f} at n={k}" for k, v in real["fd_train_subset"].items())
        lines += [
            f"| | **real data** | {real['images']} | {_fmt(real['mean_saturation'])} (1.00) | "
            f"{_fmt(real['clipped_fraction'])} | {_fmt(real['class_accuracy'])} | {floors} |",
            "",
        ]
    return lines


def target_lines(targets: Mapping[str, Any]) -> list[str]:
    """The target check, one line per compared cell."""

    def verdict(met: bool) -> str:
        return "**met**" if met else "**missed**"

    def interval(row: Mapping[str, Any]) -> str:
        low, high = row["fd_ratio_interval"]
        return f"{row['fd_ratio']:.2f} (90% bootstrap {low:.2f}-{high:.2f})"

    lines = [
        f"- APG at w = {TARGET_GUIDANCE:g}: saturation within {SATURATION_TOLERANCE:.0%} of real, accuracy >= CFG's, "
        f"FD-digits <= {APG_FD_RATIO}x CFG's:"
    ]
    for r in targets["apg"]:
        lines.append(
            f"  - NFE {r['nfe']}: {verdict(r['met'])}: saturation {r['saturation_vs_real']:.2f}x real (CFG "
            f"{r['cfg_saturation_vs_real']:.2f}x) {'ok' if r['saturation_ok'] else 'MISSED'}; accuracy "
            f"{r['accuracy']:.3f} vs CFG {r['cfg_accuracy']:.3f} {'ok' if r['accuracy_ok'] else 'MISSED'}; FD ratio "
            f"{interval(r)} {'ok' if r['fd_ok'] else 'MISSED'}"
        )
    met = sum(r["met"] for r in targets["higs"])
    lines.append(
        f"- HiGS at NFE {TARGET_NFE}: FD-digits <= {HIGS_FD_RATIO}x the same sampler without it: met in {met} of "
        f"{len(targets['higs'])} cells:"
    )
    for r in targets["higs"]:
        lines.append(
            f"  - w {r['guidance']:g}, {r['method']} vs {r['baseline']}: FD ratio {interval(r)} {verdict(r['met'])}"
        )
    worst = max(targets["overhead"], key=lambda r: r["ratio"], default=None)
    if worst is not None:
        met_all = all(r["met"] for r in targets["overhead"])
        lines.append(
            f"- Overhead <= {OVERHEAD_LIMIT:.0%} of one denoiser call: {verdict(met_all)} (worst: {worst['method']} "
            f"on {worst['shape']}, {worst['ratio']:.3%})"
        )
    return lines


def overhead_table(rows: Sequence[dict], device: torch.device, threads: int) -> list[str]:
    """Markdown table of the hook timing."""
    lines = [
        f"Guidance hook on a zero-cost stub denoiser vs one UNet forward ({device.type}, {threads} "
        "thread(s), fp32; median of interleaved steady-state calls; extra = call − bare stub call; denominator: one "
        "SD1.5 UNet forward, batch 2 at 64x64, random weights; for SDXL latents an upper bound of the ratio):",
        "",
        "| latents | method | call µs | extra µs | SD1.5 UNet forward ms | extra ÷ UNet |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['method']} | {r['call_us']:.0f} | {r['extra_us']:.0f} | {r['unet_ms']:.0f} | "
            f"{r['ratio']:.4%} |"
        )
    return lines


def report(result: Mapping[str, Any], device: torch.device) -> str:
    """The markdown report of a run."""
    config, apg, higs = result["config"], result["config"]["apg"], result["config"]["higs"]
    lines = [
        "# Guidance benchmark (digits model)",
        "",
        f"DPM-Solver++(2M), seed {config['seed']}, class-balanced; APG(η={apg['eta']}, β={apg['momentum']}, "
        f"r={apg['norm_threshold']:.2f}), HiGS(w_h={higs['weight']}, α={higs['ema']}, t_min={higs['t_min']}, "
        f"R_c={higs['cutoff']}). "
        f"Saturation = mean HSV saturation; clipped = channel values at 0/255 (±1); FD-digits against the held-out "
        f"split (real row: FD of n class-balanced training images, the finite-sample floor; two disjoint real halves "
        f"of 718: {result['real']['fd_two_halves']:.2f}). FD is biased upwards at small n: compare within a guidance "
        "row group. Wall time "
        f"{result['wall_seconds'] / 60:.1f} min (load average {result['load_average']['start'][0]:.1f} at the start, "
        f"{result['load_average']['end'][0]:.1f} at the end).",
        "",
        *cell_tables(result["cells"], result["real"]),
        "### Overhead",
        "",
        *overhead_table(result["overhead"], device, config["threads"]),
        "",
        "### Targets",
        "",
        *target_lines(result["targets"]),
    ]
    return "\n".join(lines) + "\n"


def tuning_table(rows: Sequence[dict]) -> str:
    """Markdown table of the sweep."""
    lines = [
        f"Sweep on the tuning seed ({TUNING_SEED}; the report uses seed {REPORT_SEED}), "
        f"{rows[0]['images']} images per cell.",
        "",
        "| NFE | w | setting | saturation (÷ real) | clipped | accuracy | FD-digits | FD ÷ CFG |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['nfe']} | {r['guidance']:g} | {r['setting']} | {r['mean_saturation']:.3f} "
            f"({r['saturation_vs_real']:.2f}) | {r['clipped_fraction']:.3f} | {r['class_accuracy']:.3f} | "
            f"{r['fd_digits']:.2f} | {r['fd_vs_cfg']:.2f} |"
        )
    return "\n".join(lines) + "\n"
