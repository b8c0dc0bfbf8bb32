"""Scores an embedded class-conditional digits model (a `DigitsPipeline` folder) and tunes its per-model presets.

Usage (PIPELINE: a folder such as ``inertia/models/digits32``, or an embedded model's name, ``digits-16``):

    python -m benchmarks.product.embedded_model report PIPELINE [--old OLD_PIPELINE] [--samples-per-digit 100]
        [--table-samples-per-digit N] [--out benchmarks/out/embedded] [--grid docs/figures/embedded_grid.png]
    python -m benchmarks.product.embedded_model tune PIPELINE [--samples-per-digit 20] [--write]
    python -m benchmarks.product.embedded_model report inertia/models/digits16 --quick --out /tmp/smoke   # a smoke test

``report`` samples on the evaluation seeds (image ``i`` shows digit ``i % 10`` with its own generator, seed ``i``):
the headline (stock DPM-Solver++(2M) = presets ``dpm++2m`` + ``none``, w 3, 20 steps: class accuracy, FD-digits and
its ratio to the FD between two real halves), high guidance (w 15, 10 steps: clipped fraction and accuracy of stock
CFG vs the ``apg`` preset), every preset vs stock at w 3 and at the UI defaults (w 7.5, 20 steps), a picture grid and
the speed (batch 16, 20 steps; with ``--old`` the old model's too, interleaved in the same run). It writes
``report.json`` and ``report.md`` (tables for BENCHMARKS.md, each target marked met / not met) under ``--out`` and
prints the Markdown. ``tune`` searches, on tuning seeds disjoint from those (:data:`TUNING_SEED_BASE` on), APG's r, β
and η, HiGS's w_h and the ``ema`` / ``extrapolate`` attention β (:class:`TuneGrid`, :data:`OBJECTIVE`), prints every
candidate and, with ``--write``, saves the choice to the folder's ``inertia_presets.json``, which
:func:`inertia.pipelines.configure` then uses. ``--quick`` shrinks both to a smoke test. Everything runs on the CPU
with ``--threads`` torch and BLAS threads (default 1: on a busy 2-core machine 2 threads ran 4-9x slower). Measured
there (AMD EPYC, 1 thread, a training job on the other core): ``report`` at the defaults about 32 min for the 16x16
model and 2.5 h for the 32x32 one (``--table-samples-per-digit 20`` cuts the tables, most of it, by 5x); ``tune`` 3 min
and about 15 min.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from inertia.guidance import APG
from inertia.metrics import class_accuracy, colour_stats, fd_digits, real_fd_baseline
from inertia.pipelines.display import display_factor, enlarge
from inertia.pipelines.image import load_image_pipeline
from inertia.pipelines.limits import check_image_model_name, pipeline_class_name
from inertia.pipelines.model_presets import read_model_presets, write_model_presets
from inertia.pipelines.presets import (
    ATTENTION_PRESETS,
    GUIDANCE_PRESETS,
    SAMPLER_PRESETS,
    apg_threshold,
    configure,
    make_scheduler,
)

EVAL_SEED_BASE = 0
"""Image ``i`` of a report uses seed ``EVAL_SEED_BASE + i``."""
TUNING_SEED_BASE = 100_000
"""Image ``i`` of a tuning run uses seed ``TUNING_SEED_BASE + i``."""
MAX_SAMPLES_PER_DIGIT = TUNING_SEED_BASE // 10
"""The most images per digit, so that evaluation seeds never reach the tuning seeds."""
CHUNK = 100
"""Images per pipeline call."""
TARGET_ACCURACY, TARGET_FD_RATIO, TARGET_CLIPPED_RATIO, TARGET_POINTS = 0.98, 2.5, 3.0, 0.02
TUNE_POINTS = 0.01
"""Tuning: APG may lose at most 1 point of accuracy to CFG at w 15 and to stock at w 3."""
FD_MARGIN = 0.05
"""Tuning: a less neutral HiGS / attention value must lower FD-digits by more than this fraction to be chosen."""
EPS = 1e-9
"""Slack of every comparison: a value exactly at its bound meets it."""
UI_DEFAULTS = {"sampler": "hb-dpm++", "guidance": "apg", "attention": "off", "steps": 20, "scale": 7.5}
"""The Image tab's defaults (inertia/ui/image_tab.py); the CLI shares the steps and the scale."""
DEFAULT_GRID = Path("docs/figures/embedded_grid.png")
CELL, LABEL_WIDTH, HEADER_HEIGHT = 96, 240, 28
"""Picture grid: images enlarged to about ``CELL`` px (integer factor), a label column and a header row."""


@dataclass(frozen=True)
class Steps:
    """Step counts and the speed measurement's size; :data:`QUICK_STEPS` shrinks them for smoke tests."""

    low: int = 20  # w 3 and the UI defaults (the UI's 20 steps)
    high: int = 10  # w 15
    speed: int = 20
    speed_repeats: int = 3
    speed_batch: int = 16


QUICK_STEPS = Steps(low=3, high=2, speed=2, speed_repeats=1, speed_batch=4)


@dataclass(frozen=True)
class Setting:
    """One way to sample: preset names, their parameters (sorted pairs, hashable), guidance scale and steps."""

    sampler: str = "dpm++2m"
    guidance: str = "none"
    attention: str = "off"
    scale: float = 3.0
    steps: int = 20
    guidance_params: tuple[tuple[str, float], ...] = ()
    attention_params: tuple[tuple[str, float], ...] = ()

    def label(self) -> str:
        """E.g. ``"dpm++2m + apg (momentum -0.5) · w 15 · 10 steps"``."""
        names = [self.sampler, self.guidance] + ([self.attention] if self.attention != "off" else [])
        params = ", ".join(f"{k} {v:g}" for k, v in self.guidance_params + self.attention_params)
        return " + ".join(names) + (f" ({params})" if params else "") + f" · w {self.scale:g} · {self.steps} steps"


def _pairs(params: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(params.items()))


def seeds(base: int, count: int) -> range:
    """The seeds of ``count`` images from ``base`` (:data:`EVAL_SEED_BASE` or :data:`TUNING_SEED_BASE`)."""
    return range(base, base + count)


def load(path: str | Path) -> Any:
    """The pipeline folder on the CPU in float32, progress bar off."""
    pipe = load_image_pipeline(path, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


class Scorer:
    """Samples and scores settings on the seeds from ``seed_base``, caching scores by (setting, images per digit)."""

    def __init__(self, pipe: Any, seed_base: int, log: bool = True) -> None:
        self.pipe, self.seed_base, self.log = pipe, seed_base, log
        self.cache: dict[tuple[Setting, int], dict[str, Any]] = {}
        self.start = time.perf_counter()

    def images(self, setting: Setting, per_digit: int) -> torch.Tensor:
        """``(10·per_digit, 3, H, W)`` images in [0, 1]; image ``i`` shows digit ``i % 10``, seed base + i."""
        s = setting
        configure(
            self.pipe, s.sampler, s.guidance, s.attention, dict(s.guidance_params), dict(s.attention_params), s.scale
        )
        n, chunks = 10 * per_digit, []
        for low in range(0, n, CHUNK):
            index = range(low, min(n, low + CHUNK))
            generators = [torch.Generator().manual_seed(seed) for seed in seeds(self.seed_base + low, len(index))]
            out = self.pipe([i % 10 for i in index], num_inference_steps=s.steps, guidance_scale=s.scale,
                            generator=generators, output_type="pt")  # fmt: skip
            chunks.append(out.images.float().cpu())
        return torch.cat(chunks)

    def score(self, setting: Setting, per_digit: int) -> dict[str, Any]:
        """Class accuracy, FD-digits, clipped fraction and saturation of a setting (a copy of the cached dict)."""
        key = (setting, per_digit)
        if key not in self.cache:
            start = time.perf_counter()
            images = self.images(setting, per_digit)
            colour = colour_stats(images)
            accuracy = class_accuracy(images, torch.arange(len(images)) % 10)
            r = self.cache[key] = {
                "setting": setting.label(), "images": len(images), "class_accuracy": accuracy,
                "fd_digits": fd_digits(images), "clipped_fraction": colour["clipped_fraction"],
                "mean_saturation": colour["mean_saturation"], "seconds": time.perf_counter() - start,
            }  # fmt: skip
            if self.log:
                print(f"[{time.perf_counter() - self.start:7.1f} s] {r['setting']}: accuracy {accuracy:.3f}, clipped "
                      f"{r['clipped_fraction']:.3f} ({r['seconds']:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
        return dict(self.cache[key])


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[None]:
    """Runs the block with ``threads`` torch threads and BLAS threads (numpy's ``eigh`` in FD-digits, through
    threadpoolctl when installed: it comes with scikit-learn), restoring both afterwards."""
    before, blas = torch.get_num_threads(), contextlib.nullcontext()
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        blas = threadpool_limits(threads)
    torch.set_num_threads(threads)
    try:
        with blas:
            yield
    finally:
        torch.set_num_threads(before)


def at_least(value: float, bound: float) -> bool:
    """``value >= bound`` up to :data:`EPS`: the one comparison every target and every choice uses."""
    return value >= bound - EPS


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else (math.inf if num > 0 else 1.0)


def machine() -> dict[str, Any]:
    """CPU model, cores, torch threads, load average and torch version: what the timings depend on."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [
            x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in x
        ]
        cpu = names[0] if names else cpu
    load_avg = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": load_avg,
            "torch": torch.__version__}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- report
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
               table_samples_per_digit: int | None = None, steps: Steps = Steps(), grid: Path | None = DEFAULT_GRID,
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


def _f(value: float, digits: int = 3) -> str:
    return str(value) if not math.isfinite(value) else f"{value:.{digits}f}"


def _met(met: bool) -> str:
    return "met" if met else "**not met**"


def _table(head: str, rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table; ``head`` like ``"name|value:"`` (a trailing ``:`` right-aligns the column)."""
    names = head.split("|")
    rule = "|".join("---:" if h.endswith(":") else "---" for h in names)
    return ["| " + " | ".join(h.rstrip(":") for h in names) + " |", f"|{rule}|",
            *("| " + " | ".join(map(str, r)) + " |" for r in rows), ""]  # fmt: skip


def report_markdown(result: dict[str, Any]) -> str:
    """The report as Markdown tables ready for BENCHMARKS.md."""
    mach, st, head, high, speed = (result[k] for k in ("machine", "steps", "headline", "high_guidance", "speed"))
    lines = [f"### Embedded model `{result['pipeline']}`", "",
             f"`{result['command']}` ({result['date']}; {mach['cpu']}, {mach['cores']} cores, {mach['torch_threads']} "
             f"torch thread(s), load average {mach['load_average']}). Evaluation seeds {result['seeds']}, one generator "
             "per image, image i shows digit i mod 10; stock = DPM-Solver++(2M) (`dpm++2m`) with the pipeline's CFG "
             "(`none`); named presets use the model's inertia_presets.json.", ""]  # fmt: skip
    lines += _table("target|value:|goal|", [(t["target"], _f(t["value"]), t["goal"], _met(t["met"]))
                                            for t in result["targets"]])  # fmt: skip
    lines += [f"Headline: stock, w 3, {st['low']} steps, {head['images']} images.", ""]
    lines += _table("accuracy:|FD-digits:|real-halves FD:|ratio:|clipped:|saturation:", [
        [_f(head[k]) for k in ("class_accuracy", "fd_digits", "real_fd_halves", "fd_ratio", "clipped_fraction",
                               "mean_saturation")]])  # fmt: skip
    lines += [f"High guidance: w 15, {st['high']} steps, DPM-Solver++(2M), the same seeds; clipped fraction CFG / APG "
              f"{_f(high['clipped_ratio'], 2)}, accuracy APG − CFG {100 * high['accuracy_gap']:+.1f} points.", ""]  # fmt: skip
    lines += _table("guidance|accuracy:|clipped:|saturation:|FD-digits:", [
        [label] + [_f(high[key][k]) for k in ("class_accuracy", "clipped_fraction", "mean_saturation", "fd_digits")]
        for key, label in (("cfg", "stock CFG"), ("apg", "`apg` preset"))])  # fmt: skip
    titles = {
        "guidance_3": f"Every preset at w 3, {st['low']} steps, vs stock",
        "ui_defaults": f"At the UI defaults (w {UI_DEFAULTS['scale']:g}, {st['low']} steps) vs stock CFG",
    }
    for key, rows in result["presets"].items():
        lines += [f"{titles[key]} ({rows[0]['images']} images each; met: at most 2 points below).", ""]
        lines += _table("kind|preset|accuracy:|Δ points:|clipped:|FD-digits:|within 2 points", [
            (r["kind"], f"`{r['preset']}`", _f(r["class_accuracy"]), f"{100 * r['diff']:+.1f}",
             _f(r["clipped_fraction"]), _f(r["fd_digits"]), _met(r["met"])) for r in rows])  # fmt: skip
    lines += [f"Speed: batch {st['speed_batch']}, {st['speed']} steps, w 3, median of {st['speed_repeats']} calls "
              "after a warm-up.", ""]  # fmt: skip
    rows = [(f"`{result['pipeline']}`", f"{speed['pipeline']:.2f}")]
    if result["old"] is not None:
        rows += [(f"`{result['old']}` (old)", f"{speed['old']:.2f}"), ("new / old", f"{speed['ratio']:.2f}x")]
    lines += _table("pipeline|images/s:", rows)
    if result["grid"]:
        lines.append(f"Picture grid: `{result['grid']}` (columns: digits 0-9, digit d from seed d).")
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------------------- tune
@dataclass(frozen=True)
class TuneGrid:
    """The candidates. APG's r is a factor times the generic :func:`~inertia.pipelines.presets.apg_threshold`; r
    is searched at β −0.5, η 0 (APG's defaults), then β and then η around the best so far."""

    threshold_factors: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    momenta: tuple[float, ...] = (-0.75, -0.5, -0.25, 0.0)
    etas: tuple[float, ...] = (0.0, 0.25)
    higs_weights: tuple[float, ...] = (0.5, 1.0, 1.75)
    ema_betas: tuple[float, ...] = (0.1, 0.3)
    extrapolate_betas: tuple[float, ...] = (-0.4, 0.0)
    finalists: int = 2  # APG candidates checked at w 3 and at the UI defaults, best first


QUICK_GRID = TuneGrid((0.5, 1.0), (-0.5, 0.0), (0.0,), (1.0,), (0.2,), (-0.4,), 2)
OBJECTIVE = (
    "APG: the lowest clipped fraction at w 15 among candidates whose accuracy there is at most 1 point below CFG's, "
    "checked best first until one is at most 1 point below stock at w 3 and >= stock CFG at the UI defaults (none: "
    "the generic setting). HiGS w_h, ema and extrapolate β, each alone on the pipeline's CFG with the UI's sampler, "
    "scale and steps, among values keeping accuracy >= stock CFG's there: the one nearest 0 (neutral) unless another "
    "lowers FD-digits by more than 5% (then the lowest FD); when none keeps it, the one nearest 0."
)


def rank_apg(rows: Sequence[dict[str, Any]], cfg_accuracy: float) -> list[dict[str, Any]]:
    """APG candidates at most :data:`TUNE_POINTS` below CFG's accuracy at w 15, lowest clipped fraction first."""
    ok = [r for r in rows if at_least(r["class_accuracy"], cfg_accuracy - TUNE_POINTS)]
    return sorted(ok, key=lambda r: (r["clipped_fraction"], -r["class_accuracy"]))


def select_apg(rows: Sequence[dict[str, Any]], cfg_accuracy: float, stock_accuracy: float, ui_accuracy: float,
               check: Callable[[dict[str, Any]], dict[str, float]], finalists: int = 2) -> dict[str, Any] | None:  # fmt: skip
    """The first of the ``finalists`` best-ranked rows whose ``check`` (it adds ``accuracy_w3`` and ``accuracy_ui``)
    is at most a point below stock at w 3 and >= stock CFG at the UI defaults; None when none is."""
    for row in rank_apg(rows, cfg_accuracy)[:finalists]:
        row.update(check(row))
        w3_ok = at_least(row["accuracy_w3"], stock_accuracy - TUNE_POINTS)
        row["passes"] = w3_ok and at_least(row["accuracy_ui"], ui_accuracy)
        if row["passes"]:
            return row
    return None


def select_neutral(rows: Sequence[dict[str, Any]], stock_accuracy: float, key: str) -> tuple[dict[str, Any], str]:
    """Among ``rows`` keeping accuracy >= ``stock_accuracy``, the one whose ``key`` is nearest 0 (neutral), unless
    another has an FD-digits more than :data:`FD_MARGIN` lower (then the lowest); with none, the nearest 0 of all.
    Returns the row and the reason."""
    ok = [r for r in rows if at_least(r["class_accuracy"], stock_accuracy)]
    if not ok:
        return min(rows, key=lambda r: abs(r[key])), "no value kept accuracy >= stock CFG: the most neutral"
    neutral, best = min(ok, key=lambda r: abs(r[key])), min(ok, key=lambda r: (r["fd_digits"], abs(r[key])))
    if best["fd_digits"] < (1 - FD_MARGIN) * neutral["fd_digits"]:
        return best, f"the lowest FD-digits (> {FD_MARGIN:.0%} below the most neutral) with accuracy >= stock CFG"
    return neutral, f"the most neutral with accuracy >= stock CFG (no FD-digits {FD_MARGIN:.0%} lower)"


def merge_presets(existing: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """``existing`` presets with the ``tuned`` sections' entries updated key by key (other entries kept)."""
    merged = {section: {name: dict(value) if isinstance(value, dict) else value for name, value in entries.items()}
              for section, entries in existing.items() if section != "tuning"}  # fmt: skip
    for section, entries in tuned.items():
        for name, params in entries.items():
            merged.setdefault(section, {}).setdefault(name, {}).update(params)
    return merged


def run_tune(pipeline: str | Path, samples_per_digit: int = 20, grid: TuneGrid = TuneGrid(), steps: Steps = Steps(),
             write: bool = False, command: str = "", log: bool = True) -> dict[str, Any]:  # fmt: skip
    """Runs the searches on the tuning seeds; returns the baselines, every candidate, the presets (with a ``tuning``
    record) and where they were written (``write``: ``PIPELINE/inertia_presets.json``)."""
    pipe, n, ui, w, s = load(pipeline), samples_per_digit, UI_DEFAULTS, UI_DEFAULTS["scale"], steps
    scorer = Scorer(pipe, TUNING_SEED_BASE, log)
    base = {"cfg_w15": scorer.score(Setting(scale=15.0, steps=s.high), n),
            "stock_w3": scorer.score(Setting(steps=s.low), n),
            "stock_cfg_ui": scorer.score(Setting(scale=w, steps=s.low), n)}  # fmt: skip
    acc = {k: v["class_accuracy"] for k, v in base.items()}
    generic = {"norm_threshold": float(apg_threshold(pipe)), "momentum": APG().momentum, "eta": APG().eta}
    apg_rows: list[dict[str, Any]] = []

    def try_apg(params: dict[str, float]) -> None:
        if all(any(r[k] != v for k, v in params.items()) for r in apg_rows):
            setting = Setting(guidance="apg", scale=15.0, steps=s.high, guidance_params=_pairs(params))
            apg_rows.append({"search": "apg", **params, **scorer.score(setting, n)})

    for factor in grid.threshold_factors:
        try_apg({**generic, "norm_threshold": float(f"{generic['norm_threshold'] * factor:.4g}")})
    for field, values in (("momentum", grid.momenta), ("eta", grid.etas)):
        top = (rank_apg(apg_rows, acc["cfg_w15"]) or sorted(apg_rows, key=lambda r: -r["class_accuracy"]))[0]
        for value in values:
            try_apg({k: top[k] for k in generic} | {field: value})

    def check(row: dict[str, Any]) -> dict[str, float]:
        params = _pairs({k: row[k] for k in generic})
        w3 = scorer.score(Setting(guidance="apg", steps=s.low, guidance_params=params), n)
        at_ui = scorer.score(Setting(ui["sampler"], "apg", scale=w, steps=s.low, guidance_params=params), n)
        return {"accuracy_w3": w3["class_accuracy"], "accuracy_ui": at_ui["class_accuracy"]}

    chosen = select_apg(apg_rows, acc["cfg_w15"], acc["stock_w3"], acc["stock_cfg_ui"], check, grid.finalists)
    apg = {k: chosen[k] for k in generic} if chosen else dict(generic)
    reasons = {"apg": "the lowest clipped fraction passing every check" if chosen else "none passed: the generic one"}
    candidates, picks = list(apg_rows), {}
    searches = (("higs", "weight", grid.higs_weights), ("ema", "beta", grid.ema_betas),
                ("extrapolate", "beta", grid.extrapolate_betas))  # fmt: skip
    for name, field, values in searches:
        rows = []
        for v in values:
            if name == "higs":
                setting = Setting(ui["sampler"], "higs", scale=w, steps=s.low, guidance_params=_pairs({field: v}))
            else:
                setting = Setting(ui["sampler"], "none", name, w, s.low, attention_params=_pairs({field: v}))
            rows.append({"search": name, field: v, **scorer.score(setting, n)})
        row, reasons[name] = select_neutral(rows, acc["stock_cfg_ui"], field)
        picks[name], candidates = row[field], candidates + rows
    apg_higs = {f"apg_{k}": v for k, v in apg.items()} | {"higs_weight": picks["higs"]}
    tuned = {"guidance": {"apg": apg, "higs": {"weight": picks["higs"]}, "apg+higs": apg_higs},
             "attention": {"ema": {"beta": picks["ema"]}, "extrapolate": {"beta": picks["extrapolate"]}}}  # fmt: skip
    presets = merge_presets(read_model_presets(pipeline), tuned)
    presets["tuning"] = {
        "command": command, "date": datetime.date.today().isoformat(), "objective": OBJECTIVE, "reasons": reasons,
        "seeds": f"{TUNING_SEED_BASE}..{TUNING_SEED_BASE + 10 * n - 1} (reports evaluate from {EVAL_SEED_BASE})",
        "samples_per_digit": n, "steps": {"w15": s.high, "w3_and_ui": s.low}, "ui_defaults": ui,
        "baselines": {k: round(v, 4) for k, v in acc.items()}, "apg+higs": "the chosen APG and HiGS, not searched",
        "candidates": [{"setting": r["setting"], "accuracy": round(r["class_accuracy"], 4),
                        "clipped": round(r["clipped_fraction"], 4), "fd_digits": round(r["fd_digits"], 3),
                        **({"w3_ui_check": r["passes"]} if "passes" in r else {})} for r in candidates],
    }  # fmt: skip
    path = write_model_presets(pipeline, presets) if write else None
    return {"pipeline": str(pipeline), "baselines": base, "candidates": candidates, "presets": presets,
            "written": path and str(path), "wall_seconds": time.perf_counter() - scorer.start}  # fmt: skip


def tune_markdown(result: dict[str, Any]) -> str:
    """Every candidate tried (and the baselines), then the chosen settings."""
    rows = [(f"baseline {name}", r["setting"], _f(r["class_accuracy"]), _f(r["clipped_fraction"]), _f(r["fd_digits"]),
             "") for name, r in result["baselines"].items()]  # fmt: skip
    rows += [(r["search"], r["setting"], _f(r["class_accuracy"]), _f(r["clipped_fraction"]), _f(r["fd_digits"]),
              f"{_f(r['accuracy_w3'])} / {_f(r['accuracy_ui'])}: {_met(r['passes'])}" if "passes" in r else "")
             for r in result["candidates"]]  # fmt: skip
    chosen = json.dumps({k: result["presets"][k] for k in ("guidance", "attention")}, sort_keys=True)
    return "\n".join([*_table("search|setting|accuracy:|clipped:|FD-digits:|w 3 / UI accuracy check", rows),
                      f"Chosen: `{chosen}`; written to {result['written'] or '(nowhere: pass --write)'}; "
                      f"{result['wall_seconds']:.0f} s."]) + "\n"  # fmt: skip


# -------------------------------------------------------------------------------------------------------------- CLI
def _digits_pipeline(text: str) -> Path:
    try:
        path = check_image_model_name(text)  # a folder, or an embedded model's name
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not isinstance(path, Path) or pipeline_class_name(path) != "DigitsPipeline":
        raise argparse.ArgumentTypeError(f"{text!r} is not a DigitsPipeline folder (see its model_index.json)")
    return path


def _bounded(high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not 1 <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [1, {high}], got {text!r}")
        return int(text)

    return parse


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return [_json_safe(v) for v in value] if isinstance(value, list | tuple) else value


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    doc = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(
        "python -m benchmarks.product.embedded_model", description=doc[0], epilog="\n\n".join(doc[1:3]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="score a model on the evaluation seeds; write report.json and report.md")
    tun = sub.add_parser("tune", help="tune the model's preset settings on the tuning seeds")
    for p, default in ((rep, 100), (tun, 20)):
        p.add_argument("pipeline", type=_digits_pipeline, help="a DigitsPipeline folder or an embedded model's name")
        p.add_argument(
            "--samples-per-digit", type=_bounded(MAX_SAMPLES_PER_DIGIT), help=f"default {default}, 1 with --quick"
        )
        p.add_argument("--quick", action="store_true", help="smoke test: 1 sample per digit, 2-3 steps")
        p.add_argument("--threads", type=_bounded(256), default=1, help="CPU threads, torch and BLAS (default 1)")
        p.add_argument("--out", type=Path, default=Path("benchmarks/out/embedded"), help="folder for the JSON/MD")
    rep.add_argument("--old", type=_digits_pipeline, help="an older model whose speed to compare with")
    rep.add_argument("--table-samples-per-digit", type=_bounded(MAX_SAMPLES_PER_DIGIT), help="for the preset tables")
    rep.add_argument("--grid", type=Path, help=f"picture grid PNG (default {DEFAULT_GRID}; --quick: in --out)")
    tun.add_argument("--write", action="store_true", help="save the choice to PIPELINE/inertia_presets.json")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.product.embedded_model " + shlex.join(argv)
    steps = QUICK_STEPS if args.quick else Steps()
    n = args.samples_per_digit or (1 if args.quick else 100 if args.command == "report" else 20)
    with limit_threads(args.threads):
        if args.command == "report":
            grid = args.grid or (args.out / "embedded_grid.png" if args.quick else DEFAULT_GRID)
            result = run_report(args.pipeline, args.old, n, args.table_samples_per_digit, steps, grid, command)
            text = report_markdown(result)
        else:
            result = run_tune(args.pipeline, n, QUICK_GRID if args.quick else TuneGrid(), steps, args.write, command)
            text = tune_markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.command}.json").write_text(json.dumps(_json_safe(result), indent=2, default=str) + "\n")
    if args.command == "report":
        (args.out / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
