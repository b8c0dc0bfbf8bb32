"""Sampling and scoring an embedded digits model (a `DigitsPipeline` folder) on fixed seeds, by preset setting.

A :class:`Setting` names the sampler, guidance and attention presets, their parameters, the guidance scale and the
steps; a :class:`Scorer` samples it on the seeds from its base (image ``i`` shows digit ``i % 10``, seed base + i)
and scores class accuracy, FD-digits, clipped fraction and saturation, caching by setting. Evaluation seeds start at
:data:`EVAL_SEED_BASE`, tuning seeds at :data:`TUNING_SEED_BASE`, so the two never meet. Used by the report and the
tuning of :mod:`benchmarks.product.embedded_model`, the APG search, the guidance peers (§11) and the GPU training run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.machine import cpu_model
from inertia.metrics import class_accuracy, colour_stats, fd_digits
from inertia.pipelines.image import load_image_pipeline
from inertia.pipelines.presets import configure

__all__ = [
    "CHUNK",
    "DEFAULT_STEPS",
    "EPS",
    "EVAL_SEED_BASE",
    "MAX_SAMPLES_PER_DIGIT",
    "QUICK_STEPS",
    "TUNING_SEED_BASE",
    "UI_DEFAULTS",
    "Scorer",
    "Setting",
    "Steps",
    "at_least",
    "limit_threads",
    "load",
    "machine",
    "param_pairs",
    "seeds",
]

EVAL_SEED_BASE = 0
"""Image ``i`` of a report uses seed ``EVAL_SEED_BASE + i``."""
TUNING_SEED_BASE = 100_000
"""Image ``i`` of a tuning run uses seed ``TUNING_SEED_BASE + i``."""
MAX_SAMPLES_PER_DIGIT = TUNING_SEED_BASE // 10
"""The most images per digit, so that evaluation seeds never reach the tuning seeds."""
CHUNK = 100
"""Images per pipeline call."""
EPS = 1e-9
"""Slack of every comparison: a value exactly at its bound meets it."""
UI_DEFAULTS = {"sampler": "hb-dpm++", "guidance": "apg", "attention": "off", "steps": 20, "scale": 7.5}
"""The Image tab's defaults (inertia/ui/image_tab.py); the CLI shares the steps and the scale."""


@dataclass(frozen=True)
class Steps:
    """Step counts and the speed measurement's size; :data:`QUICK_STEPS` shrinks them for smoke tests."""

    low: int = 20  # w 3 and the UI defaults (the UI's 20 steps)
    high: int = 10  # w 15
    speed: int = 20
    speed_repeats: int = 3
    speed_batch: int = 16


DEFAULT_STEPS = Steps()
"""The step counts of a report or a tuning run."""
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


def param_pairs(params: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """A parameter dict as :class:`Setting` holds it: sorted ``(name, value)`` pairs (hashable)."""
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

    def install(self, setting: Setting) -> None:
        """Configures the pipeline for ``setting`` (its presets, their parameters and the guidance scale)."""
        s = setting
        configure(
            self.pipe, s.sampler, s.guidance, s.attention, dict(s.guidance_params), dict(s.attention_params), s.scale
        )

    def images(self, setting: Setting, per_digit: int) -> torch.Tensor:
        """``(10·per_digit, 3, H, W)`` images in [0, 1]; image ``i`` shows digit ``i % 10``, seed base + i."""
        self.install(setting)
        n, chunks = 10 * per_digit, []
        for low in range(0, n, CHUNK):
            index = range(low, min(n, low + CHUNK))
            generators = [torch.Generator().manual_seed(seed) for seed in seeds(self.seed_base + low, len(index))]
            out = self.pipe([i % 10 for i in index], num_inference_steps=setting.steps, guidance_scale=setting.scale,
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


def machine() -> dict[str, Any]:
    """CPU model, cores, torch threads, load average and torch version: what the timings depend on."""
    cpu = cpu_model(platform.processor() or platform.machine())
    load_avg = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": load_avg,
            "torch": torch.__version__}  # fmt: skip
