"""The Image tab's example buttons on the embedded digits model: chosen on tuning seeds, checked on fresh ones.

Each example button of the demo (:data:`inertia.ui.image_controls.EXAMPLES`) runs one setting in compare mode, next
to the baseline (the stock scheduler + the pipeline's own CFG, same seeds). A button must show a setting that wins on
the embedded model: class accuracy ("recognised" in the UI) at least the baseline's and clipped fraction at most the
baseline's. ``search`` scores the candidates of each button (:data:`CANDIDATES`) on the tuning seeds
(:data:`~benchmarks.product.embedded_scoring.TUNING_SEED_BASE` on) and picks, among those that win there, the one
that clips least relative to its baseline; ``check`` scores the shipped examples on the evaluation seeds (0 on, never
used by ``search``) and marks each as a win or not::

    python -m benchmarks.product.ui_examples search [--samples-per-digit 5] [--slots APG,...] [--threads 1]
    python -m benchmarks.product.ui_examples check [--samples-per-digit 20] [--seed-base 0] [--buttons 0,2] [--threads 1]
    python -m benchmarks.product.ui_examples check --quick   # smoke test: 1 image per digit, 2 steps

Image ``i`` shows digit ``i % 10`` from seed ``base + i``, as in :mod:`benchmarks.product.embedded_scoring`; the
settings go through :func:`inertia.pipelines.configure` exactly as the tab builds them
(:meth:`~inertia.ui.image_controls.Example.presets`), with the model's tuned preset settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common.markdown import table
from benchmarks.product.embedded_scoring import (
    EPS,
    EVAL_SEED_BASE,
    TUNING_SEED_BASE,
    Scorer,
    Setting,
    limit_threads,
    load,
    machine,
)
from inertia.ui.image_controls import EXAMPLES, Example

__all__ = ["CANDIDATES", "baseline_of", "check", "choose", "main", "search", "setting_of", "wins"]


def _grid(
    slot: str, samplers: Sequence[dict[str, Any]], regimes: Sequence[tuple[float, int]], guidance: str
) -> list[Example]:
    return [
        Example(slot, guidance=guidance, scale=scale, steps=steps, **sampler)
        for sampler in samplers
        for scale, steps in regimes
    ]


HIGH = ((15.0, 6), (15.0, 8), (15.0, 10), (22.5, 6), (22.5, 8), (22.5, 10))
"""(guidance scale, steps): the high-guidance, few-step regimes the momentum buttons are searched over."""

CANDIDATES: dict[str, list[Example]] = {
    "APG": _grid("APG", [{"sampler": "dpm++2m"}], ((7.5, 10), (15.0, 10), (15.0, 8), (22.5, 10)), "apg"),
    "HB-DPM++": _grid(
        "HB-DPM++",
        [{"sampler": "hb-dpm++", "beta": b} for b in (0.4, 0.6, 0.8)] + [{"sampler": "hb-dpm++", "auto_beta": True}],
        HIGH,
        "none",
    ),
    "GHVB": _grid(
        "GHVB",
        [{"sampler": "ghvb", "beta": b} for b in (0.2, 0.5, 0.8)] + [{"sampler": "ghvb", "auto_beta": True}],
        HIGH,
        "none",
    ),
    "momentum at fewer steps": _grid(
        "momentum at fewer steps",
        [{"sampler": "hb-dpm++", "beta": 0.9}, {"sampler": "ghvb", "beta": 0.5, "order": 2}],
        ((7.5, 4), (15.0, 4), (15.0, 5), (30.0, 8)),
        "none",
    ),
    "momentum + APG": _grid(
        "momentum + APG",
        [
            {"sampler": "hb-dpm++", "beta": 0.8},
            {"sampler": "hb-dpm++", "auto_beta": True},
            {"sampler": "ghvb", "auto_beta": True},
        ],
        ((15.0, 8), (15.0, 10), (22.5, 10)),
        "apg",
    ),
    "everyday": _grid(
        "everyday",
        [{"sampler": "hb-dpm++", "auto_beta": True}, {"sampler": "dpm++2m"}],
        ((3.0, 20), (7.5, 20)),
        "apg",
    ),
}
"""The candidates of each button, searched on the tuning seeds: APG at high guidance; HB-DPM++ and GHVB (fixed β
and auto β) without APG at high guidance and few steps, then at fewer steps with milder damping (β 0.9; GHVB at order
2) and with APG; everyday settings (w 3 and the tab's default w 7.5, 20 steps)."""


def setting_of(example: Example) -> Setting:
    """The scorer's setting of an example: its presets as the tab builds them, its scale and steps."""
    presets = example.presets()
    return Setting(presets["sampler"], presets["guidance"], presets["attention"], example.scale, example.steps)


def baseline_of(example: Example) -> Setting:
    """The compare mode's baseline of an example: the stock scheduler and CFG at the same scale and steps."""
    return Setting("default", "none", "off", example.scale, example.steps)


def wins(score: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """Recognised at least the baseline's and clipped at most the baseline's (up to :data:`EPS`)."""
    return (
        score["class_accuracy"] >= baseline["class_accuracy"] - EPS
        and score["clipped_fraction"] <= baseline["clipped_fraction"] + EPS
    )


def _row(example: Example, score: dict[str, Any], baseline: dict[str, Any], beta: float | None) -> dict[str, Any]:
    return {
        "label": example.label,
        "controls": example.controls(),
        "setting": score["setting"],
        "beta": beta,
        "images": score["images"],
        "recognised": score["class_accuracy"],
        "baseline_recognised": baseline["class_accuracy"],
        "clipped": score["clipped_fraction"],
        "baseline_clipped": baseline["clipped_fraction"],
        "wins": wins(score, baseline),
    }


def _score(scorer: Scorer, example: Example, per_digit: int) -> dict[str, Any]:
    setting = setting_of(example)
    score = scorer.score(setting, per_digit)
    scorer.install(setting)  # the β in effect: auto β is resolved when the schedule is set
    scorer.pipe.scheduler.set_timesteps(setting.steps)
    beta = getattr(scorer.pipe.scheduler, "momentum_beta", None)
    return _row(example, score, scorer.score(baseline_of(example), per_digit), beta)


def choose(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Among the rows that win, the one with the largest clipping reduction (baseline clipped − clipped), then the
    higher recognised; None when none wins."""
    winners = [r for r in rows if r["wins"]]
    if not winners:
        return None
    return max(winners, key=lambda r: (round(r["baseline_clipped"] - r["clipped"], 6), r["recognised"]))


def search(
    pipe: Any, per_digit: int, slots: Sequence[str] | None = None, candidates: dict[str, list[Example]] | None = None
) -> dict[str, Any]:
    """Every candidate of each button (:data:`CANDIDATES` unless given) on the tuning seeds, and each choice."""
    candidates = CANDIDATES if candidates is None else candidates
    scorer = Scorer(pipe, TUNING_SEED_BASE)
    result: dict[str, Any] = {}
    for slot in slots or candidates:
        if slot not in candidates:
            raise ValueError(f"--slots: {slot!r} is not a button; choose from {list(candidates)}")
        rows = [_score(scorer, example, per_digit) for example in candidates[slot]]
        result[slot] = {"rows": rows, "chosen": choose(rows)}
    return result


def check(
    pipe: Any,
    per_digit: int,
    examples: Sequence[Example] = tuple(EXAMPLES),
    steps: int | None = None,
    seed_base: int = EVAL_SEED_BASE,
) -> list[dict[str, Any]]:
    """The shipped examples on the evaluation seeds from ``seed_base`` (``steps`` overrides their steps: smoke tests
    only)."""
    if not EVAL_SEED_BASE <= seed_base <= TUNING_SEED_BASE - 10 * per_digit:
        raise ValueError(f"--seed-base must keep the evaluation seeds below the tuning seeds, got {seed_base}")
    scorer = Scorer(pipe, seed_base)
    chosen = [dataclasses.replace(e, steps=steps) if steps else e for e in examples]
    return [_score(scorer, example, per_digit) for example in chosen]


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _beta(row: dict[str, Any]) -> str:
    return "-" if row["beta"] is None else f"{row['beta']:g}"


def rows_markdown(rows: Sequence[dict[str, Any]], with_label: bool = True) -> list[str]:
    """A Markdown table of scored rows (one per example or candidate)."""
    head = ("button|" if with_label else "") + (
        "setting|β in effect|images|recognised:|baseline recognised:|clipped:|baseline clipped:|wins"
    )
    return table(
        head,
        [
            ([r["label"]] if with_label else [])
            + [
                r["setting"],
                _beta(r),
                r["images"],
                _pct(r["recognised"]),
                _pct(r["baseline_recognised"]),
                f"{r['clipped']:.3f}",
                f"{r['baseline_clipped']:.3f}",
                "yes" if r["wins"] else "**no**",
            ]
            for r in rows
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser("python -m benchmarks.product.ui_examples", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("search", "check"))
    parser.add_argument("--pipeline", default="digits", help="a DigitsPipeline folder or name (default: digits)")
    parser.add_argument("--samples-per-digit", type=int, default=None, help="default: search 5, check 20")
    parser.add_argument(
        "--slots", default=None, help=f"search only these buttons, comma-separated: {list(CANDIDATES)}"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 image per digit, 2 steps")
    parser.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE, help="check: the first evaluation seed")
    parser.add_argument(
        "--buttons", default=None, help="check: only these buttons, by index (0-based), comma-separated"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/ui_examples"))
    args = parser.parse_args(argv)
    per_digit = args.samples_per_digit or (1 if args.quick else 5 if args.command == "search" else 20)
    if per_digit < 1:
        parser.error(f"--samples-per-digit must be >= 1, got {per_digit}")
    command = "python -m benchmarks.product.ui_examples " + shlex.join(argv)
    with limit_threads(args.threads):
        pipe = load(args.pipeline)
        lines = [f"`{command}` ({per_digit} images per digit; {machine()})", ""]
        if args.command == "search":
            slots = args.slots.split(",") if args.slots else None
            candidates = CANDIDATES
            if args.quick:  # two candidates of the first button, 2 steps
                first = next(iter(CANDIDATES))
                candidates = {first: [dataclasses.replace(e, steps=2) for e in CANDIDATES[first][:2]]}
                slots = [first]
            result: Any = search(pipe, per_digit, slots, candidates)
            for slot, found in result.items():
                lines += [f"### {slot}", "", *rows_markdown(found["rows"], with_label=False)]
                chosen = found["chosen"]
                lines += [f"Chosen: {chosen['setting'] if chosen else 'none wins'}", ""]
        else:
            chosen = [EXAMPLES[int(i)] for i in args.buttons.split(",")] if args.buttons else EXAMPLES
            result = check(pipe, per_digit, chosen, steps=2 if args.quick else None, seed_base=args.seed_base)
            lines += rows_markdown(result)
            lines.append(f"{sum(r['wins'] for r in result)} of {len(result)} buttons win on the evaluation seeds.")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.command}.json").write_text(json.dumps({"command": command, "result": result}, indent=1))
    (args.out / f"{args.command}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
