"""Guidance against diffusers' guiders on the embedded 32x32 digits model.

Rows: the pipeline's CFG; diffusers' guiders at their defaults, their rules run through inertia's classic guidance
hook (:mod:`benchmarks.peers.guidance`; the digits pipeline is not modular): CFG with ``guidance_rescale`` 0.7,
CFG-Zero* (and CFG-Zero* without its zero-init step, which is meant for flow models), diffusers' APG guider,
tangential CFG, frequency-decoupled (high frequencies at w, low at w/2: the guider's default 10/5 ratio) and
magnitude-aware; ours with the model's tuned presets (``inertia_presets.json``): ``apg``, ``higs`` and ``apg+higs``. Every cell (row, guidance scale w, NFE) samples the same evaluation seeds with the
pipeline's DPM-Solver++(2M) (image ``i`` shows digit ``i % 10`` from seed ``i``, as ``benchmarks.product.embedded_model``)
and scores class accuracy, FD-digits, mean HSV saturation and the clipped fraction with the same metric functions.

Per regime (w, NFE) it finds the accuracy/saturation Pareto front (higher accuracy, lower saturation) and a winner:
the lowest FD-digits among rows within :data:`WINNER_POINTS` of the regime's best accuracy.

Usage::

    python -m benchmarks.guidance.vs_peers --threads 1      # full: 5 images per digit per cell, 88 cells
    python -m benchmarks.guidance.vs_peers --quick          # smoke test: 1 per digit, w 7.5 and 15, 4 steps

Outputs (``--out``, default ``benchmarks/out``): ``peers_guidance.json`` and ``peers_guidance.md`` (``*_quick.*``
with ``--quick``; the cells so far in ``*.partial.json`` while it runs); the Markdown is also printed. Cost: about
66k batched UNet image-evaluations at the defaults; on a 2-core CPU shared with a training job and other benchmarks
(load average 5-9), 1 thread ran 14-35 of them per second: 30-80 minutes. On a free machine raise
``--samples-per-digit`` (accuracy moves in steps of 2 points at 50 images per cell).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.peers.guidance import PEERS
from benchmarks.product.embedded_scoring import EVAL_SEED_BASE, Scorer, limit_threads, load, machine
from inertia.guidance import apply_guidance
from inertia.metrics import real_colour_stats, real_fd_baseline
from inertia.pipelines.limits import check_image_model_name
from inertia.pipelines.presets import configure

DEFAULT_PIPELINE = "inertia/models/digits32"
WINNER_POINTS = 0.02
"""A regime's winner: the lowest FD-digits among rows at most 2 accuracy points below the best row."""
OURS = ("apg", "higs", "apg+higs")


@dataclass(frozen=True)
class Row:
    """A method: one of our guidance presets (``guidance``), or a peer from :data:`PEERS` over plain CFG."""

    name: str
    guidance: str = "none"
    peer: str | None = None

    @property
    def ours(self) -> bool:
        return self.guidance in OURS


ROWS = (
    Row("CFG"),
    *(Row(name, peer=name) for name in PEERS),
    Row("ours: `apg` preset", guidance="apg"),
    Row("ours: `higs` preset", guidance="higs"),
    Row("ours: `apg+higs` preset", guidance="apg+higs"),
)
"""The table's rows, peers first."""


@dataclass(frozen=True)
class Grid:
    """Guidance scales, NFEs (DPM-Solver++(2M) steps) and images per digit per cell."""

    scales: tuple[float, ...] = (3.0, 7.5, 15.0, 25.0)
    nfes: tuple[int, ...] = (10, 20)
    per_digit: int = 5


QUICK = Grid(scales=(7.5, 15.0), nfes=(4,), per_digit=1)


@dataclass(frozen=True)
class Cell:
    """One (row, w, NFE): what :class:`PeerScorer` samples and caches."""

    row: Row
    scale: float
    steps: int

    def label(self) -> str:
        return f"{self.row.name} · w {self.scale:g} · {self.steps} steps"


class PeerScorer(Scorer):
    """``benchmarks.product.embedded_scoring.Scorer`` (its metrics, seeds and cache) with our presets or a peer installed."""

    def install(self, setting: Cell) -> None:  # type: ignore[override]
        row = setting.row
        configure(self.pipe, sampler="dpm++2m", guidance=row.guidance, guidance_scale=setting.scale)
        if row.peer is not None:
            apply_guidance(self.pipe, PEERS[row.peer])  # the peer's rule replaces the CFG line, through our hook


def pareto_front(cells: Sequence[dict[str, Any]], real_saturation: float | None = None) -> list[str]:
    """Names of the rows no other row beats on both accuracy (higher) and mean saturation (lower; with
    ``real_saturation``, nearer that value).

    Example:
        >>> pareto_front([{"method": "a", "class_accuracy": 0.9, "mean_saturation": 0.5},
        ...               {"method": "b", "class_accuracy": 0.8, "mean_saturation": 0.6},
        ...               {"method": "c", "class_accuracy": 0.7, "mean_saturation": 0.4}])
        ['a', 'c']
    """

    def off(c: dict[str, Any]) -> float:
        sat = c["mean_saturation"]
        return sat if real_saturation is None else abs(sat - real_saturation)

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        acc, sat = a["class_accuracy"] - b["class_accuracy"], off(b) - off(a)
        return acc >= 0 and sat >= 0 and (acc > 0 or sat > 0)

    return [c["method"] for c in cells if not any(dominates(other, c) for other in cells)]


def winner(cells: Sequence[dict[str, Any]], points: float = WINNER_POINTS) -> str:
    """The lowest FD-digits among rows within ``points`` of the best accuracy (ties: the higher accuracy).

    Example:
        >>> winner([{"method": "a", "class_accuracy": 0.99, "fd_digits": 5.0},
        ...         {"method": "b", "class_accuracy": 0.975, "fd_digits": 4.0},
        ...         {"method": "c", "class_accuracy": 0.9, "fd_digits": 1.0}])
        'b'
    """
    best = max(c["class_accuracy"] for c in cells)
    close = [c for c in cells if c["class_accuracy"] >= best - points - 1e-9]
    return min(close, key=lambda c: (c["fd_digits"], -c["class_accuracy"]))["method"]


def analyse(
    cells: Sequence[dict[str, Any]], grid: Grid | dict[str, Any], real_saturation: float
) -> list[dict[str, Any]]:
    """Per regime: the Pareto fronts (lower saturation; saturation nearer real data's), whether each of ours is on
    them, the winner, the best accuracy / saturation / FD-digits."""
    grid = Grid(**grid) if isinstance(grid, dict) else grid
    ours = [r.name for r in ROWS if r.ours]
    regimes = []
    for scale in grid.scales:
        for nfe in grid.nfes:
            here = [c for c in cells if c["guidance_scale"] == scale and c["nfe"] == nfe]
            front, near = pareto_front(here), pareto_front(here, real_saturation)
            regimes.append({
                "guidance_scale": scale, "nfe": nfe, "front": front, "winner": winner(here),
                "ours_on_front": {name: name in front for name in ours},
                "apg_on_front": any(n in front for n in ours if "apg" in n), "front_near_real": near,
                "apg_on_front_near_real": any(n in near for n in ours if "apg" in n),
                "best_accuracy": max(here, key=lambda c: c["class_accuracy"])["method"],
                "lowest_saturation": min(here, key=lambda c: c["mean_saturation"])["method"],
                "lowest_fd": min(here, key=lambda c: c["fd_digits"])["method"],
            })  # fmt: skip
    return regimes


def run(
    pipeline: str | Path, grid: Grid, command: str = "", log: bool = True, partial: Path | None = None
) -> dict[str, Any]:
    """Samples and scores every cell; returns the cells, the regimes and the run's context. With ``partial``, the
    cells so far are written there (JSON) after each cell, so a run cut short keeps what it measured."""
    scorer = PeerScorer(load(pipeline), EVAL_SEED_BASE, log)
    cells = []
    for scale in grid.scales:
        for nfe in grid.nfes:
            for row in ROWS:
                score = scorer.score(Cell(row, scale, nfe), grid.per_digit)
                cells.append({"method": row.name, "ours": row.ours, "guidance_scale": scale, "nfe": nfe, **score})
                if partial is not None:
                    partial.write_text(json.dumps({"command": command, "grid": asdict(grid), "cells": cells}) + "\n")
    real = real_colour_stats()
    return {
        "pipeline": str(pipeline), "command": command, "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(), "grid": asdict(grid), "images_per_cell": 10 * grid.per_digit,
        "seeds": f"{EVAL_SEED_BASE}..{EVAL_SEED_BASE + 10 * grid.per_digit - 1}",
        "real": {"mean_saturation": real["mean_saturation"], "clipped_fraction": real["clipped_fraction"],
                 "fd_two_halves": real_fd_baseline()},
        "cells": cells, "regimes": analyse(cells, grid, real["mean_saturation"]), "wall_seconds": time.perf_counter() - scorer.start,
    }  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    """One table per w (rows = methods, NFE side by side), then the per-regime fronts and winners."""
    grid, mach, real = result["grid"], result["machine"], result["real"]
    nfes = grid["nfes"]
    lines = [
        f"`{result['command']}` ({result['date']}; {mach['cpu']}, {mach['cores']} cores, {mach['torch_threads']} torch "
        f"thread(s), load average {mach['load_average']}; wall time {result['wall_seconds'] / 60:.1f} min). Model "
        f"`{result['pipeline']}`, DPM-Solver++(2M), {result['images_per_cell']} images per cell (seeds "
        f"{result['seeds']}, image i shows digit i mod 10). Real data: saturation {real['mean_saturation']:.3f}, "
        f"clipped {real['clipped_fraction']:.3f}, FD between two real halves {real['fd_two_halves']:.2f}. "
        "★ = on the accuracy/saturation Pareto front of its (w, NFE) (higher accuracy, lower saturation), † = on the "
        "front with saturation nearer real data's instead; **bold** = the regime's winner (lowest FD-digits within "
        f"{100 * WINNER_POINTS:g} points of the best accuracy).",
        "",
    ]
    regimes = {(r["guidance_scale"], r["nfe"]): r for r in result["regimes"]}
    for scale in grid["scales"]:
        lines += [f"#### w = {scale:g}", ""]
        head = ["method"] + [f"{m} NFE {n}" for m in ("accuracy", "FD-digits", "saturation", "clipped") for n in nfes]
        lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for row in ROWS:
            by_nfe = {c["nfe"]: c for c in result["cells"] if c["method"] == row.name and c["guidance_scale"] == scale}
            values = []
            for key, digits in (
                ("class_accuracy", 3),
                ("fd_digits", 2),
                ("mean_saturation", 3),
                ("clipped_fraction", 3),
            ):
                for n in nfes:
                    regime = regimes[(scale, n)]
                    text = f"{by_nfe[n][key]:.{digits}f}"
                    if key == "class_accuracy":
                        text += " ★" * (row.name in regime["front"]) + " †" * (row.name in regime["front_near_real"])
                    if key == "fd_digits" and row.name == regime["winner"]:
                        text = f"**{text}**"
                    values.append(text)
            lines.append("| " + " | ".join([row.name, *values]) + " |")
        lines.append("")
    lines += ["| w | NFE | winner | front ★ (lower saturation) | front † (saturation nearer real) |",
              "|---:|---:|---|---|---|"]  # fmt: skip
    for r in result["regimes"]:
        fronts = ["; ".join(r[key]) for key in ("front", "front_near_real")]
        lines.append(f"| {r['guidance_scale']:g} | {r['nfe']} | {r['winner']} | {fronts[0]} | {fronts[1]} |")
    high = [r for r in result["regimes"] if r["guidance_scale"] >= 7.5]
    for key, name in (("apg_on_front", "★"), ("apg_on_front_near_real", "†")):
        hits = sum(r[key] for r in high)
        lines += ["", f"Target (APG or APG+HiGS on the front {name} at every w >= 7.5): "
                  f"**{'met' if hits == len(high) else 'not met'}** ({hits} of {len(high)} regimes)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _pipeline(text: str) -> Path:
    try:
        path = check_image_model_name(text)  # a folder, or an embedded model's name ("digits")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not isinstance(path, Path):
        raise argparse.ArgumentTypeError(f"{text!r} is not a local DigitsPipeline folder or embedded model name")
    return path


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser("python -m benchmarks.guidance.vs_peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=_pipeline, default=Path(DEFAULT_PIPELINE), help="a DigitsPipeline folder")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 image per digit, w 7.5 and 15, 4 steps")
    parser.add_argument("--samples-per-digit", type=_positive, help=f"default {Grid().per_digit} (1 with --quick)")
    parser.add_argument("--threads", type=_positive, default=1, help="torch and BLAS threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="folder for the JSON and Markdown")
    parser.add_argument("--render", type=Path, help="re-analyse a saved peers_guidance.json and print its Markdown")
    args = parser.parse_args(argv)
    if args.render is not None:  # the current Pareto/winner rules on saved cells: no sampling
        result = json.loads(args.render.read_text())
        result["regimes"] = analyse(result["cells"], result["grid"], result["real"]["mean_saturation"])
        print(markdown(result))
        return 0
    grid = QUICK if args.quick else Grid()
    if args.samples_per_digit:
        grid = Grid(grid.scales, grid.nfes, args.samples_per_digit)
    stem = "peers_guidance_quick" if args.quick else "peers_guidance"
    args.out.mkdir(parents=True, exist_ok=True)
    with limit_threads(args.threads):
        command = "python -m benchmarks.guidance.vs_peers " + shlex.join(argv)
        result = run(args.pipeline, grid, command, partial=args.out / f"{stem}.partial.json")
    text = markdown(result)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
