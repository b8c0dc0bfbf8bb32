"""Per-step overhead of the inertia momentum schedulers vs ``DPMSolverMultistepScheduler.step``.

Measures the median wall time of one steady-state ``scheduler.step`` call (multistep history full: the first
``WARMUP_STEPS`` steps of every 50-step schedule and its final step are not timed; the schedule is re-set when it
runs out) for

* ``DPMSolverMultistepScheduler`` (DPM-Solver++ 2M, the baseline),
* ``MomentumDPMSolverMultistepScheduler(momentum_beta=0.8)`` (HB-DPM-Solver++ 2M),
* ``MomentumPLMSScheduler(momentum_method="ghvb", solver_order=4, momentum_beta=0.8)`` (GHVB 3.8),

on fp32 latents of shape 2x4x64x64 and 2x4x128x128. The schedulers are timed interleaved (one step each, in a
rotating order) so that machine load affects all of them alike. With ``--device cuda`` it also tries to capture one
steady-state momentum ``step`` in a CUDA graph and reports whether capture and replay work.

Usage::

    python -m benchmarks.samplers.step_overhead [--device cpu|cuda] [--repeats 300] [--threads N] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DPMSolverMultistepScheduler

from benchmarks.samplers.accuracy_grid import base_config

__all__ = ["SHAPES", "SteadyStepper", "main", "measure", "scheduler_factories", "try_cuda_graph"]

SHAPES: tuple[tuple[int, ...], ...] = ((2, 4, 64, 64), (2, 4, 128, 128))
SCHEDULE_STEPS = 50
WARMUP_STEPS = 4
BASELINE = "DPM++2M (diffusers)"


def scheduler_factories() -> dict[str, Callable[[], Any]]:
    """Name -> zero-argument factory of a fresh scheduler (SD1.5 config). The inertia ones need :mod:`inertia`."""
    from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

    config = base_config("trailing")
    return {
        BASELINE: lambda: DPMSolverMultistepScheduler.from_config(config, solver_order=2),
        "HB-DPM++2M β=0.8": lambda: MomentumDPMSolverMultistepScheduler.from_config(
            config, solver_order=2, momentum_beta=0.8
        ),
        "GHVB-PLMS4 β=0.8": lambda: MomentumPLMSScheduler.from_config(
            config, momentum_method="ghvb", solver_order=4, momentum_beta=0.8
        ),
    }


class SteadyStepper:
    """Drives one scheduler through a ``SCHEDULE_STEPS``-step schedule over and over, one ``step`` at a time.

    ``advance()`` performs the next step and returns its wall time in seconds if it was a steady-state step (history
    full and not the final step), else ``None``. The model output is a fixed random tensor; the sample is fed back.
    """

    def __init__(self, scheduler: Any, shape: Sequence[int], device: torch.device, seed: int = 0) -> None:
        self.scheduler = scheduler
        self.device = device
        generator = torch.Generator(device="cpu").manual_seed(seed)
        self.initial = torch.randn(tuple(shape), generator=generator).to(device)
        self.model_output = torch.randn(tuple(shape), generator=generator).to(device)
        self.index = 0
        self._reset()

    def _reset(self) -> None:
        self.scheduler.set_timesteps(SCHEDULE_STEPS, device=self.device)
        self.sample = self.initial.clone()
        self.index = 0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def advance(self) -> float | None:
        timesteps = self.scheduler.timesteps
        if self.index >= len(timesteps):
            self._reset()
            timesteps = self.scheduler.timesteps
        t = timesteps[self.index]
        timed = WARMUP_STEPS <= self.index < len(timesteps) - 1
        self._sync()
        start = time.perf_counter()
        self.sample = self.scheduler.step(self.model_output, t, self.sample).prev_sample
        self._sync()
        elapsed = time.perf_counter() - start
        self.index += 1
        return elapsed if timed else None


@dataclass
class Timing:
    """Steady-state step times of one scheduler on one shape."""

    name: str
    shape: tuple[int, ...]
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> tuple[float, float]:
        q = statistics.quantiles(self.samples, n=4)
        return q[0], q[2]


def measure(
    factories: Mapping[str, Callable[[], Any]], shape: Sequence[int], device: torch.device, repeats: int
) -> list[Timing]:
    """Interleaved steady-state timing: until every scheduler has ``repeats`` timed steps, step each once per round
    (the order rotates every round)."""
    steppers = {name: SteadyStepper(factory(), shape, device) for name, factory in factories.items()}
    samples: dict[str, list[float]] = {name: [] for name in steppers}
    names = list(steppers)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        round_index = 0
        while min(len(v) for v in samples.values()) < repeats:
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = steppers[name].advance()
                if elapsed is not None and len(samples[name]) < repeats:
                    samples[name].append(elapsed)
            round_index += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return [Timing(name, tuple(shape), samples[name]) for name in names]


def try_cuda_graph(factory: Callable[[], Any], shape: Sequence[int]) -> str:
    """Try to capture one steady-state ``step`` of a scheduler in a ``torch.cuda.CUDAGraph`` and replay it.

    Returns a one-line verdict. The replayed output is compared with an eager ``step`` from a copy of the same
    scheduler state. (A captured step replays fixed kernels on fixed buffers; the scheduler's Python-side state,
    e.g. its step index and history list, is not advanced by a replay.)
    """
    if not torch.cuda.is_available():
        return "skipped: CUDA is not available"
    device = torch.device("cuda")
    try:
        scheduler = factory()
        scheduler.set_timesteps(SCHEDULE_STEPS, device=device)
        generator = torch.Generator(device="cpu").manual_seed(0)
        static_sample = torch.randn(tuple(shape), generator=generator).to(device)
        static_output = torch.randn(tuple(shape), generator=generator).to(device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for index in range(WARMUP_STEPS):
                t = scheduler.timesteps[index]
                static_sample.copy_(scheduler.step(static_output, t, static_sample).prev_sample)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        t = scheduler.timesteps[WARMUP_STEPS]
        eager_scheduler = copy.deepcopy(scheduler)
        eager = eager_scheduler.step(static_output, t, static_sample.clone()).prev_sample
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = scheduler.step(static_output, t, static_sample).prev_sample
        graph.replay()
        torch.cuda.synchronize()
        difference = float((captured - eager).abs().max())
        start = time.perf_counter()
        for _ in range(100):
            graph.replay()
        torch.cuda.synchronize()
        replay_us = (time.perf_counter() - start) / 100 * 1e6
    except Exception as error:  # the point is to report any failure
        return f"FAILED: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    status = "works" if difference <= 1e-5 else "captures, but the replay differs from eager"
    return f"{status} (max |replay - eager| = {difference:.1e}, replay {replay_us:.1f} µs)"


def markdown_table(timings: Sequence[Timing], device: torch.device, repeats: int) -> str:
    """Markdown table: median step time per shape and ratio to the DPM-Solver++ baseline."""
    shapes = list(dict.fromkeys(t.shape for t in timings))
    names = list(dict.fromkeys(t.name for t in timings))
    by_key = {(t.name, t.shape): t for t in timings}
    header = "| scheduler | " + " | ".join(f"{'x'.join(map(str, s))} median µs (IQR) | ratio" for s in shapes) + " |"
    lines = [
        f"Steady-state `step` time on {device.type} ({torch.get_num_threads()} threads), fp32, median of {repeats} "
        "interleaved steps; ratio = median / DPM++2M median.",
        "",
        header,
        "|---|" + "---:|---:|" * len(shapes),
    ]
    for name in names:
        cells = []
        for shape in shapes:
            timing = by_key[(name, shape)]
            low, high = timing.iqr
            ratio = timing.median / by_key[(BASELINE, shape)].median
            cells += [f"{timing.median * 1e6:.0f} ({low * 1e6:.0f}-{high * 1e6:.0f})", f"{ratio:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=300, help="timed steps per scheduler and shape")
    parser.add_argument("--quick", action="store_true", help="30 repeats, written to overhead_quick.md")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; use 1 on a loaded machine, where a busy core stalls "
        "multi-threaded element-wise kernels)",
    )
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but not available.")
        return 1
    device = torch.device(args.device)
    try:
        factories = scheduler_factories()
    except ImportError as error:
        print(f"inertia samplers not importable ({error}); nothing to compare.")
        return 1
    repeats = 30 if args.quick else args.repeats
    timings: list[Timing] = []
    for shape in SHAPES:
        timings += measure(factories, shape, device, repeats)
    report = ["# Scheduler step overhead", "", markdown_table(timings, device, repeats)]
    if args.device == "cuda":
        report += ["", "CUDA graph capture of one steady-state step (2x4x64x64):", ""]
        for name, factory in factories.items():
            if name != BASELINE:
                report.append(f"- {name}: {try_cuda_graph(factory, SHAPES[0])}")
    text = "\n".join(report) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = ("" if args.device == "cpu" else f"_{args.device}") + ("_quick" if args.quick else "")
    path = args.out / f"overhead{suffix}.md"
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
