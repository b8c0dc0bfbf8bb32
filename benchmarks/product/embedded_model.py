"""Scores an embedded class-conditional digits model (a `DigitsPipeline` folder) and tunes its per-model presets.

Usage (PIPELINE: a folder such as ``inertia/models/digits32``, or an embedded model's name, ``digits``):

    python -m benchmarks.product.embedded_model report PIPELINE [--old OLD_PIPELINE] [--samples-per-digit 100]
        [--table-samples-per-digit N] [--out benchmarks/out/embedded] [--grid docs/figures/embedded_grid.png]
    python -m benchmarks.product.embedded_model tune PIPELINE [--samples-per-digit 20] [--write]
    python -m benchmarks.product.embedded_model report tests/fixtures/digits16 --quick --out /tmp/smoke   # a smoke test

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
import json
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.product.embedded_report import DEFAULT_GRID, report_markdown, run_report
from benchmarks.product.embedded_scoring import DEFAULT_STEPS, MAX_SAMPLES_PER_DIGIT, QUICK_STEPS, limit_threads
from benchmarks.product.embedded_tune import QUICK_GRID, TuneGrid, run_tune, tune_markdown
from inertia.pipelines.limits import check_image_model_name, pipeline_class_name

__all__ = ["main"]


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
    steps = QUICK_STEPS if args.quick else DEFAULT_STEPS
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
