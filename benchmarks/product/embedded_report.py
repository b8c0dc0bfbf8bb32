"""``embedded_model report``: an embedded digits model on the evaluation seeds against the issue's targets.

The headline (stock DPM-Solver++(2M), w 3), high guidance (w 15: CFG vs the ``apg`` preset), every preset vs stock at
w 3 and at the UI defaults, the picture grid and the speed; :func:`report_markdown` renders the tables for
docs/benchmarks/embedded-models.md §9, each target marked met / not met.
"""

from __future__ import annotations

import datetime
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.markdown import fmt, met_text, table
from benchmarks.product.embedded_scoring import (
    DEFAULT_STEPS,
    EVAL_SEED_BASE,
    UI_DEFAULTS,
    Scorer,
    Setting,
    Steps,
    at_least,
    load,
    machine,
    seeds,
)
from inertia.core.presets.models import read_model_presets
from inertia.metrics import real_fd_baseline
from inertia.pipelines.display import display_factor, enlarge
from inertia.pipelines.presets import ATTENTION_PRESETS, GUIDANCE_PRESETS, SAMPLER_PRESETS, configure, make_scheduler

__all__ = [
    "DEFAULT_GRID",
    "evaluate_targets",
    "grid_rows",
    "measure_speed",
    "preset_table",
    "render_grid",
    "report_markdown",
    "run_report",
    "usable_samplers",
]

TARGET_ACCURACY, TARGET_FD_RATIO, TARGET_CLIPPED_RATIO, TARGET_POINTS = 0.98, 2.5, 3.0, 0.02
DEFAULT_GRID = Path("docs/figures/embedded_grid.png")
CELL, LABEL_WIDTH, HEADER_HEIGHT = 96, 240, 28
"""Picture grid: images enlarged to about ``CELL`` px (integer factor), a label column and a header row."""


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else (math.inf if num > 0 else 1.0)


def usable_samplers(pipe: Any) -> list[str]:
    """The sampler presets this pipeline accepts (a VP model takes them all; flow models refuse the VP-only ones)."""
    names = []
    for name in SAMPLER_PRESETS:
        try:
            make_scheduler(pipe, name, 3.0)
        except ValueError:
            continue
        names.append(name)
    return names


def preset_table(scorer: Scorer, scale: float, steps: int, per_digit: int, ui: bool = False) -> list[dict[str, Any]]:
    """Each sampler preset (guidance none), guidance and attention preset (both on dpm++2m) vs stock at ``scale``;
    ``ui`` adds the UI's default combination. ``met``: at most :data:`TARGET_POINTS` below stock's accuracy."""
    stock = scorer.score(Setting(scale=scale, steps=steps), per_digit)
    specs = [("sampler", s, Setting(sampler=s, scale=scale, steps=steps)) for s in usable_samplers(scorer.pipe)]
    specs += [("guidance", g, Setting(guidance=g, scale=scale, steps=steps)) for g in GUIDANCE_PRESETS]
    specs += [("attention", a, Setting(attention=a, scale=scale, steps=steps)) for a in ATTENTION_PRESETS]
    if ui:
        d = UI_DEFAULTS
        specs.append(("UI default", f"{d['sampler']} + {d['guidance']}", Setting(d["sampler"], d["guidance"],
                                                                                 d["attention"], scale, steps)))  # fmt: skip
    rows = []
    for kind, name, setting in specs:
        row = scorer.score(setting, per_digit)
        diff = row["class_accuracy"] - stock["class_accuracy"]
        rows.append({"kind": kind, "preset": name, **row, "diff": diff, "met": at_least(diff, -TARGET_POINTS)})
    return rows


def grid_rows(steps: Steps) -> list[tuple[str, Setting]]:
    """The picture grid's rows: stock CFG, APG, HB-DPM++ and GHVB at w 3 (``steps.low``) and w 15 (``steps.high``)."""
    methods = (("stock CFG", "dpm++2m", "none"), ("APG", "dpm++2m", "apg"), ("HB-DPM++", "hb-dpm++", "none"),
               ("GHVB", "ghvb", "none"))  # fmt: skip
    return [(f"{name} · w {w:g} · {n} steps", Setting(sampler, guidance, scale=w, steps=n))
            for w, n in ((3.0, steps.low), (15.0, steps.high)) for name, sampler, guidance in methods]  # fmt: skip


def render_grid(rows: Sequence[tuple[str, torch.Tensor]], path: Path, cell: int = CELL) -> Path:
    """Saves a PNG: one labelled row per ``(label, (10, 3, h, w) images in [0, 1])``, columns = digits 0-9, each
    image enlarged nearest neighbour by ``display_factor(h, cell)`` (:mod:`inertia.pipelines.display`)."""
    from PIL import Image, ImageDraw, ImageFont

    side = int(rows[0][1].shape[-1])
    factor = display_factor(side, cell)
    canvas = Image.new("RGB", (LABEL_WIDTH + 10 * side * factor, HEADER_HEIGHT + len(rows) * side * factor), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=15)
    for digit in range(10):
        draw.text((LABEL_WIDTH + (digit + 0.5) * side * factor - 4, 6), str(digit), fill="black", font=font)
    for r, (label, images) in enumerate(rows):
        y = HEADER_HEIGHT + r * side * factor
        draw.text((8, y + side * factor // 2 - 8), label, fill="black", font=font)
        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for digit in range(10):
            canvas.paste(enlarge(Image.fromarray(pixels[digit]), factor), (LABEL_WIDTH + digit * side * factor, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def measure_speed(pipes: dict[str, Any], batch: int = 16, steps: int = 20, repeats: int = 3) -> dict[str, float]:
    """Images/s of each pipeline (stock DPM-Solver++(2M), w 3): the median of ``repeats`` calls after a warm-up,
    the pipelines interleaved so that background load hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in pipes}
    for pipe in pipes.values():
        configure(pipe, sampler="dpm++2m", guidance="none", guidance_scale=3.0)
    for _ in range(repeats + 1):
        for name, pipe in pipes.items():
            generators = [torch.Generator().manual_seed(seed) for seed in seeds(EVAL_SEED_BASE, batch)]
            start = time.perf_counter()
            pipe(
                [i % 10 for i in range(batch)],
                num_inference_steps=steps,
                guidance_scale=3.0,
                generator=generators,
                output_type="pt",
            )
            times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(t[1:]) for name, t in times.items()}


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's targets from its ``headline``, ``high_guidance`` and ``presets``: value, goal and met."""
    head, high = result["headline"], result["high_guidance"]
    checks = [  # (name, value, bound, value must be at least the bound)
        ("class accuracy at w 3", head["class_accuracy"], TARGET_ACCURACY, True),
        ("FD-digits / real-halves FD at w 3", head["fd_ratio"], TARGET_FD_RATIO, False),
        ("clipped fraction CFG / APG at w 15", high["clipped_ratio"], TARGET_CLIPPED_RATIO, True),
        ("APG accuracy − CFG accuracy at w 15", high["accuracy_gap"], -TARGET_POINTS, True),
    ]
    for key, where in (("guidance_3", "stock at w 3"), ("ui_defaults", "stock CFG at the UI defaults")):
        worst = min(result["presets"][key], key=lambda r: r["diff"])
        checks.append((f"every preset − {where} (worst: {worst['kind']} {worst['preset']})", worst["diff"],
                       -TARGET_POINTS, True))  # fmt: skip
    return [{"target": name, "value": value, "goal": f"{'>=' if low else '<='} {bound:g}",
             "met": at_least(value, bound) if low else at_least(-value, -bound)}
            for name, value, bound, low in checks]  # fmt: skip


def run_report(pipeline: str | Path, old: str | Path | None = None, samples_per_digit: int = 100,
               table_samples_per_digit: int | None = None, steps: Steps = DEFAULT_STEPS, grid: Path | None = DEFAULT_GRID,
               command: str = "", log: bool = True) -> dict[str, Any]:  # fmt: skip
    """Everything ``report`` measures (see the module docstring), as a dict."""
    pipe = load(pipeline)
    scorer, n = Scorer(pipe, EVAL_SEED_BASE, log), samples_per_digit
    m = table_samples_per_digit or n
    headline = scorer.score(Setting(steps=steps.low), n)
    headline["real_fd_halves"] = real_fd_baseline()
    headline["fd_ratio"] = headline["fd_digits"] / headline["real_fd_halves"]
    cfg = scorer.score(Setting(scale=15.0, steps=steps.high), n)
    apg = scorer.score(Setting(guidance="apg", scale=15.0, steps=steps.high), n)
    high = {"cfg": cfg, "apg": apg, "clipped_ratio": _ratio(cfg["clipped_fraction"], apg["clipped_fraction"]),
            "accuracy_gap": apg["class_accuracy"] - cfg["class_accuracy"]}  # fmt: skip
    presets = {"guidance_3": preset_table(scorer, 3.0, steps.low, m),
               "ui_defaults": preset_table(scorer, UI_DEFAULTS["scale"], steps.low, m, ui=True)}  # fmt: skip
    if grid is not None:
        render_grid([(label, scorer.images(setting, 1)) for label, setting in grid_rows(steps)], grid)
    pipes = {"pipeline": pipe} | ({} if old is None else {"old": load(old)})
    speed: dict[str, float] = measure_speed(pipes, steps.speed_batch, steps.speed, steps.speed_repeats)
    if old is not None:
        speed["ratio"] = speed["pipeline"] / speed["old"]
    result = {
        "pipeline": str(pipeline), "old": None if old is None else str(old), "command": command,
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
        "samples_per_digit": n, "table_samples_per_digit": m, "seeds": f"{EVAL_SEED_BASE}..{EVAL_SEED_BASE + 10 * n - 1}",
        "steps": asdict(steps), "model_presets": read_model_presets(pipeline), "headline": headline,
        "high_guidance": high, "presets": presets, "grid": None if grid is None else str(grid), "speed": speed,
        "wall_seconds": time.perf_counter() - scorer.start,
    }  # fmt: skip
    result["targets"] = evaluate_targets(result)
    return result


def report_markdown(result: dict[str, Any]) -> str:
    """The report as Markdown tables ready for BENCHMARKS.md."""
    mach, st, head, high, speed = (result[k] for k in ("machine", "steps", "headline", "high_guidance", "speed"))
    lines = [f"### Embedded model `{result['pipeline']}`", "",
             f"`{result['command']}` ({result['date']}; {mach['cpu']}, {mach['cores']} cores, {mach['torch_threads']} "
             f"torch thread(s), load average {mach['load_average']}). Evaluation seeds {result['seeds']}, one generator "
             "per image, image i shows digit i mod 10; stock = DPM-Solver++(2M) (`dpm++2m`) with the pipeline's CFG "
             "(`none`); named presets use the model's inertia_presets.json.", ""]  # fmt: skip
    lines += table("target|value:|goal|", [(t["target"], fmt(t["value"]), t["goal"], met_text(t["met"]))
                                            for t in result["targets"]])  # fmt: skip
    lines += [f"Headline: stock, w 3, {st['low']} steps, {head['images']} images.", ""]
    lines += table("accuracy:|FD-digits:|real-halves FD:|ratio:|clipped:|saturation:", [
        [fmt(head[k]) for k in ("class_accuracy", "fd_digits", "real_fd_halves", "fd_ratio", "clipped_fraction",
                               "mean_saturation")]])  # fmt: skip
    lines += [f"High guidance: w 15, {st['high']} steps, DPM-Solver++(2M), the same seeds; clipped fraction CFG / APG "
              f"{fmt(high['clipped_ratio'], 2)}, accuracy APG − CFG {100 * high['accuracy_gap']:+.1f} points.", ""]  # fmt: skip
    lines += table("guidance|accuracy:|clipped:|saturation:|FD-digits:", [
        [label] + [fmt(high[key][k]) for k in ("class_accuracy", "clipped_fraction", "mean_saturation", "fd_digits")]
        for key, label in (("cfg", "stock CFG"), ("apg", "`apg` preset"))])  # fmt: skip
    titles = {
        "guidance_3": f"Every preset at w 3, {st['low']} steps, vs stock",
        "ui_defaults": f"At the UI defaults (w {UI_DEFAULTS['scale']:g}, {st['low']} steps) vs stock CFG",
    }
    for key, rows in result["presets"].items():
        lines += [f"{titles[key]} ({rows[0]['images']} images each; met: at most 2 points below).", ""]
        lines += table("kind|preset|accuracy:|Δ points:|clipped:|FD-digits:|within 2 points", [
            (r["kind"], f"`{r['preset']}`", fmt(r["class_accuracy"]), f"{100 * r['diff']:+.1f}",
             fmt(r["clipped_fraction"]), fmt(r["fd_digits"]), met_text(r["met"])) for r in rows])  # fmt: skip
    lines += [f"Speed: batch {st['speed_batch']}, {st['speed']} steps, w 3, median of {st['speed_repeats']} calls "
              "after a warm-up.", ""]  # fmt: skip
    rows = [(f"`{result['pipeline']}`", f"{speed['pipeline']:.2f}")]
    if result["old"] is not None:
        rows += [(f"`{result['old']}` (old)", f"{speed['old']:.2f}"), ("new / old", f"{speed['ratio']:.2f}x")]
    lines += table("pipeline|images/s:", rows)
    if result["grid"]:
        lines.append(f"Picture grid: `{result['grid']}` (columns: digits 0-9, digit d from seed d).")
    return "\n".join(lines).rstrip() + "\n"
