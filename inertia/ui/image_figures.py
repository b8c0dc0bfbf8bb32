"""The Image tab's figures: colour statistics and recognised digits of a run, and the Markdown table of the runs.

Example:
    >>> figures = {"chosen": {"config": {"sampler": "ghvb", "guidance": "apg", "attention": "off"}, "seconds": 1.0,
    ...            "mean_saturation": 0.5, "clipped_fraction": 0.01, "recognised": 1.0,
    ...            "settings": {"momentum_beta": 0.2}}}
    >>> figures_table(figures).splitlines()[-1]
    '| **chosen** | `ghvb` auto β 0.2 | `apg` | 1.00 | 0.500 | 0.010 | 100% |'
"""

from __future__ import annotations

from typing import Any

import torch

from inertia.ui.image_controls import BETA_SAMPLERS

__all__ = ["GUIDANCE_LABELS", "SAMPLER_LABELS", "figures_table", "image_figures", "recognised_fraction"]


def recognised_fraction(images01: torch.Tensor, digit: int) -> float:
    """The fraction of ``images01`` our digit classifier reads as ``digit``."""
    from inertia.metrics.digits import predict_digits

    return round(float((predict_digits(images01.clamp(0, 1)) == digit).float().mean()), 4)


def image_figures(images01: torch.Tensor, seconds: float) -> dict[str, float]:
    """Seconds (in all and per image), mean HSV saturation and clipped fraction of a run's images in [0, 1]."""
    from inertia.metrics.digits import colour_stats

    stats = colour_stats(images01.clamp(0, 1))
    return {
        "seconds": round(seconds, 3),
        "seconds_per_image": round(seconds / images01.shape[0], 3),
        "mean_saturation": round(stats["mean_saturation"], 4),
        "clipped_fraction": round(stats["clipped_fraction"], 4),
    }


SAMPLER_LABELS = {"default": "stock scheduler"}
"""How the compare table names the presets that leave the pipeline as it is."""
GUIDANCE_LABELS = {"none": "stock CFG", "cfg": "CFG (inertia)"}
"""The ``none`` guidance preset is the pipeline's own CFG, not "no guidance": the table says so."""


def _sampler_label(config: dict[str, Any], settings: dict[str, Any]) -> str:
    """How the table names a run's sampler: ``stock scheduler``, ```ghvb:3.8```, or ```ghvb` auto β 0.2``."""
    sampler = config["sampler"]
    if sampler in SAMPLER_LABELS:
        return SAMPLER_LABELS[sampler]
    beta = settings.get("momentum_beta")
    if sampler in BETA_SAMPLERS and beta is not None:  # a plain momentum preset: β chosen by the auto policy
        return f"`{sampler}` auto β {beta:g}"
    return f"`{sampler}`"


def figures_table(figures: dict[str, dict[str, Any]]) -> str:
    """The figures as a Markdown table, short cells only (the tab's CSS keeps each on one line); the attention column
    only when a run uses momentum attention."""
    with_attention = any(f["config"].get("attention", "off") != "off" for f in figures.values())
    head = ["run", "sampler", "guidance", *(["attention"] if with_attention else []), "s", "saturation", "clipped"]
    head.append("recognised")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, f in figures.items():
        config = f["config"]
        guidance = GUIDANCE_LABELS.get(config["guidance"], f"`{config['guidance']}`")
        recognised = f"{f['recognised']:.0%}" if "recognised" in f else "n/a"
        cells = [f"**{name}**", _sampler_label(config, f.get("settings", {})), guidance]
        cells += [f"`{config['attention']}`"] if with_attention else []
        cells += [f"{f['seconds']:.2f}", f"{f['mean_saturation']:.3f}", f"{f['clipped_fraction']:.3f}", recognised]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
