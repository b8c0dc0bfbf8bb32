"""``embedded_model tune``: an embedded digits model's preset settings, searched on the tuning seeds.

APG's r, β and η, HiGS's w_h and the ``ema`` / ``extrapolate`` attention β (:class:`TuneGrid`, :data:`OBJECTIVE`),
every candidate scored by :class:`~benchmarks.product.embedded_scoring.Scorer` on seeds disjoint from the reports';
the choice is merged into the folder's ``inertia_presets.json`` (with ``--write``), which
:func:`inertia.pipelines.configure` then uses.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common.markdown import fmt, met_text, table
from benchmarks.product.embedded_scoring import (
    DEFAULT_STEPS,
    EVAL_SEED_BASE,
    TUNING_SEED_BASE,
    UI_DEFAULTS,
    Scorer,
    Setting,
    Steps,
    at_least,
    load,
    param_pairs,
)
from inertia.core.presets.models import read_model_presets, write_model_presets
from inertia.guidance import APG
from inertia.pipelines.presets import apg_threshold

__all__ = [
    "FD_MARGIN",
    "OBJECTIVE",
    "QUICK_GRID",
    "TUNE_POINTS",
    "TuneGrid",
    "merge_presets",
    "rank_apg",
    "run_tune",
    "select_apg",
    "select_neutral",
    "tune_markdown",
]

TUNE_POINTS = 0.01
"""Tuning: APG may lose at most 1 point of accuracy to CFG at w 15 and to stock at w 3."""
FD_MARGIN = 0.05
"""Tuning: a less neutral HiGS / attention value must lower FD-digits by more than this fraction to be chosen."""


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


def run_tune(pipeline: str | Path, samples_per_digit: int = 20, grid: TuneGrid = TuneGrid(), steps: Steps = DEFAULT_STEPS,
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
            setting = Setting(guidance="apg", scale=15.0, steps=s.high, guidance_params=param_pairs(params))
            apg_rows.append({"search": "apg", **params, **scorer.score(setting, n)})

    for factor in grid.threshold_factors:
        try_apg({**generic, "norm_threshold": float(f"{generic['norm_threshold'] * factor:.4g}")})
    for field, values in (("momentum", grid.momenta), ("eta", grid.etas)):
        top = (rank_apg(apg_rows, acc["cfg_w15"]) or sorted(apg_rows, key=lambda r: -r["class_accuracy"]))[0]
        for value in values:
            try_apg({k: top[k] for k in generic} | {field: value})

    def check(row: dict[str, Any]) -> dict[str, float]:
        params = param_pairs({k: row[k] for k in generic})
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
                setting = Setting(ui["sampler"], "higs", scale=w, steps=s.low, guidance_params=param_pairs({field: v}))
            else:
                setting = Setting(ui["sampler"], "none", name, w, s.low, attention_params=param_pairs({field: v}))
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
    rows = [(f"baseline {name}", r["setting"], fmt(r["class_accuracy"]), fmt(r["clipped_fraction"]), fmt(r["fd_digits"]),
             "") for name, r in result["baselines"].items()]  # fmt: skip
    rows += [(r["search"], r["setting"], fmt(r["class_accuracy"]), fmt(r["clipped_fraction"]), fmt(r["fd_digits"]),
              f"{fmt(r['accuracy_w3'])} / {fmt(r['accuracy_ui'])}: {met_text(r['passes'])}" if "passes" in r else "")
             for r in result["candidates"]]  # fmt: skip
    chosen = json.dumps({k: result["presets"][k] for k in ("guidance", "attention")}, sort_keys=True)
    return "\n".join([*table("search|setting|accuracy:|clipped:|FD-digits:|w 3 / UI accuracy check", rows),
                      f"Chosen: `{chosen}`; written to {result['written'] or '(nowhere: pass --write)'}; "
                      f"{result['wall_seconds']:.0f} s."]) + "\n"  # fmt: skip
