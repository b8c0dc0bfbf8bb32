"""The HB-DPM++ 2M node against ComfyUI's own ``dpmpp_2m``, both run by real ComfyUI 0.3.75.

Every sampler is the ``comfy.samplers.KSAMPLER`` our node (or ComfyUI's ``ksampler("dpmpp_2m")``) returns, run by
``KSAMPLER.sample`` (what ComfyUI's CFGGuider calls) on ComfyUI's sigmas for SD1.5 (``calculate_sigmas``), with §1's
exact denoiser (:mod:`benchmarks.common.exact_denoiser`, CFG exact) in ComfyUI's model-wrapper position. The error is
the RMSE to §1's 1000-step ODE reference from the same noise; a ratio is the node's RMSE over ``dpmpp_2m``'s (< 1:
the node wins). Three parts:

1. the grid (CFG 3 / 7.5 / 15, 6 / 10 / 20 Karras steps): the node at its default, and at constant β 0.9, 0.8, 0.6;
2. per-step β at CFG 15 and 10 Karras steps: β at the second and third step (the first takes no momentum; later steps
   change the result by at most 0.1%), every other step 1: the best schedule any rule could pick there;
3. candidate ``auto`` rules, picked on the grid of part 1 (the cells where a β < 1 wins), checked on held-out cells:
   the other schedules ComfyUI offers, and CFG / step counts outside the grid.

Needs ``make comfyui``.

Usage::

    python -m benchmarks.samplers.comfyui_parity [--quick] [--out benchmarks/out] [--threads 1]

Writes ``comfyui_parity.md`` and ``.json`` (``_quick`` with ``--quick``: part 1's CFG 15 / 10-step cell only) and
prints the report.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from benchmarks.common.exact_denoiser import ExactDenoiser, initial_noise, make_dataset, rmse
from benchmarks.common.markdown import table
from benchmarks.peers import comfyui
from benchmarks.samplers.accuracy import compute_reference
from benchmarks.samplers.accuracy_grid import base_config
from benchmarks.samplers.vs_peers import KDiffusionDenoiser
from inertia.adapters.comfyui import node_mappings
from inertia.k_diffusion import SAMPLERS

GUIDANCES = (3.0, 7.5, 15.0)
STEPS = (6, 10, 20)
BETAS = (0.9, 0.8, 0.6)
SCHEDULE_BETAS = (1.0, 0.95, 0.9, 0.8, 0.6)
"""The β tried at the second and at the third step in part 2."""
HELD_OUT_SCHEDULES = ("karras", "exponential", "normal", "sgm_uniform", "simple", "beta")
HELD_OUT_GUIDANCES = (5.0, 10.0, 20.0, 25.0)
HELD_OUT_STEPS = (4, 5, 6, 7, 8)
RULES: dict[str, tuple[float, int, float]] = {
    # name: (β, at most this many steps, from this CFG on); elsewhere β = 1 (ComfyUI's dpmpp_2m itself)
    "β 0.9 at ≤ 6 steps, CFG ≥ 7.5": (0.9, 6, 7.5),
    "β 0.6 at ≤ 7 steps, CFG ≥ 5": (0.6, 7, 5.0),
}
"""Candidate rules read off part 1: there a β < 1 wins only at 6 steps with CFG ≥ 7.5 (β 0.9 is the largest β that
wins both such cells; 0.6 wins them by as much), and momentum's wins on few-step problems suggest widening it."""
QUICK = {"guidances": (15.0,), "steps": (10,), "batch": 8, "reference_steps": 200}
FULL = {"guidances": GUIDANCES, "steps": STEPS, "batch": 32, "reference_steps": 1000}


class Wrap:
    """Stands where ComfyUI's CFGGuider stands: ``wrap(x, sigma, model_options=..., seed=...)`` returns the guided
    x0, with ComfyUI's SD1.5 ε model sampling for the noise scaling."""

    def __init__(self, denoiser: KDiffusionDenoiser) -> None:
        import comfy.model_sampling as ms

        self.inner_model = SimpleNamespace(model_sampling=type("S", (ms.ModelSamplingDiscrete, ms.EPS), {})())
        self.denoiser = denoiser

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.denoiser(x, sigma)


class Problem:
    """§1's exact denoiser with a batch of labels, its references (one per CFG, computed once) and the noise."""

    def __init__(self, batch: int, reference_steps: int) -> None:
        self.denoiser = ExactDenoiser(make_dataset())
        self.labels = torch.arange(batch) % self.denoiser.dataset.num_classes
        self.noise = initial_noise(batch, self.denoiser.shape, 0)
        self.reference_steps = reference_steps
        self.references: dict[float, torch.Tensor] = {}
        self.classes, _ = node_mappings(SAMPLERS)

    def reference(self, guidance: float) -> torch.Tensor:
        if guidance not in self.references:
            config = base_config("trailing")
            run = compute_reference(config, self.denoiser, self.labels, guidance, 0, self.reference_steps)
            self.references[guidance] = run.at(0.0)
        return self.references[guidance]

    def sigmas(self, scheduler: str, steps: int) -> torch.Tensor:
        import comfy.samplers

        sampling = Wrap(KDiffusionDenoiser(self.denoiser, self.labels, 1.0)).inner_model.model_sampling
        return comfy.samplers.calculate_sigmas(sampling, scheduler, steps)

    def node(self, beta: float = 1.0, schedule: str = "") -> Any:
        """The KSAMPLER our HB-DPM++ 2M node returns for these inputs."""
        (sampler,) = self.classes["InertiaHBDPMPP2M"]().get_sampler(beta=beta, beta_schedule=schedule)
        return sampler

    def sample(self, sampler: Any, guidance: float, scheduler: str, steps: int) -> torch.Tensor:
        wrap = Wrap(KDiffusionDenoiser(self.denoiser, self.labels, guidance))
        extra = {"model_options": {}, "seed": 0}
        noise = self.noise
        return sampler.sample(
            wrap, self.sigmas(scheduler, steps), extra, None, noise, torch.zeros_like(noise), None, True
        )

    def error(self, sampler: Any, guidance: float, scheduler: str, steps: int) -> float:
        return rmse(self.sample(sampler, guidance, scheduler, steps), self.reference(guidance))


def grid(problem: Problem, guidances: Sequence[float], steps: Sequence[int]) -> list[dict[str, Any]]:
    """Part 1: one row per (CFG, steps): dpmpp_2m's RMSE, whether the default node's sample is ComfyUI's bit for bit,
    and each constant β's ratio."""
    import comfy.samplers

    stock = comfy.samplers.ksampler("dpmpp_2m")
    rows = []
    for guidance in guidances:
        for n in steps:
            theirs = problem.sample(stock, guidance, "karras", n)
            default = problem.sample(problem.node(), guidance, "karras", n)
            base = rmse(theirs, problem.reference(guidance))
            ratios = {f"{b:g}": problem.error(problem.node(b), guidance, "karras", n) / base for b in BETAS}
            rows.append({"guidance": guidance, "steps": n, "dpmpp_2m": base, "default_identical":
                         bool(torch.equal(default, theirs)), "ratios": ratios})  # fmt: skip
    return rows


def schedule_search(problem: Problem, guidance: float = 15.0, steps: int = 10) -> dict[str, Any]:
    """Part 2: the ratio for each (β at step 2, β at step 3), every other step at β = 1; and β 0.6 from step 4 on."""
    import comfy.samplers

    base = problem.error(comfy.samplers.ksampler("dpmpp_2m"), guidance, "karras", steps)
    table_: dict[str, dict[str, float]] = {}
    for b2 in SCHEDULE_BETAS:
        row = {}
        for b3 in SCHEDULE_BETAS:
            betas = [1.0, 1.0, b2, b3] + [1.0] * (steps - 4)
            row[f"{b3:g}"] = problem.error(problem.node(schedule=" ".join(map(str, betas))), guidance, "karras", steps)
        table_[f"{b2:g}"] = {k: v / base for k, v in row.items()}
    late = " ".join(map(str, [1.0] * 4 + [0.6] * (steps - 4)))
    return {"guidance": guidance, "steps": steps, "dpmpp_2m": base, "ratios": table_,
            "late_0.6": problem.error(problem.node(schedule=late), guidance, "karras", steps) / base}  # fmt: skip


def rule_beta(rule: tuple[float, int, float], guidance: float, steps: int) -> float:
    beta, most_steps, least_cfg = rule
    return beta if steps <= most_steps and guidance >= least_cfg else 1.0


def held_out(problem: Problem) -> list[dict[str, Any]]:
    """Part 3: every held-out cell's dpmpp_2m RMSE and each rule's ratio (cells where no rule applies are skipped:
    there every rule is dpmpp_2m itself)."""
    import comfy.samplers

    stock = comfy.samplers.ksampler("dpmpp_2m")
    rows = []
    for scheduler in HELD_OUT_SCHEDULES:
        for guidance in (*GUIDANCES, *HELD_OUT_GUIDANCES):
            for n in HELD_OUT_STEPS:
                if scheduler == "karras" and guidance in GUIDANCES and n in STEPS:
                    continue  # part 1's cells picked the rules
                betas = {name: rule_beta(rule, guidance, n) for name, rule in RULES.items()}
                if all(b == 1.0 for b in betas.values()):
                    continue
                base = problem.error(stock, guidance, scheduler, n)
                ratios = {name: problem.error(problem.node(b), guidance, scheduler, n) / base if b < 1 else 1.0
                          for name, b in betas.items()}  # fmt: skip
                rows.append({"scheduler": scheduler, "guidance": guidance, "steps": n, "dpmpp_2m": base,
                             "ratios": ratios})  # fmt: skip
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rule: cells where it applies, wins and losses beyond 2%, the worst and the best ratio."""
    out = []
    for name in RULES:
        ratios = [(r["ratios"][name], r) for r in rows if rule_applies(name, r)]
        worst = max(ratios, key=lambda x: x[0])
        best = min(ratios, key=lambda x: x[0])
        out.append({"rule": name, "cells": len(ratios), "wins": sum(x < 0.98 for x, _ in ratios),
                    "losses": sum(x > 1.02 for x, _ in ratios), "worst": worst[0], "worst_cell": cell(worst[1]),
                    "best": best[0], "best_cell": cell(best[1])})  # fmt: skip
    return out


def rule_applies(name: str, row: dict[str, Any]) -> bool:
    return rule_beta(RULES[name], row["guidance"], row["steps"]) < 1.0


def cell(row: dict[str, Any]) -> str:
    return f"{row['scheduler']} CFG {row['guidance']:g} {row['steps']} steps"


def render(report: dict[str, Any], seconds: float) -> str:
    lines = ["Part 1: Karras sigmas. RMSE of ComfyUI's dpmpp_2m; the node's ratio to it.", ""]
    head = "CFG|steps|RMSE dpmpp_2m:|node default (β 1)|" + "|".join(f"β {b:g}:" for b in BETAS) + "|best"
    rows = []
    for r in report["grid"]:
        best = min(r["ratios"], key=r["ratios"].get)
        verdict = f"β {best}" if r["ratios"][best] < 1 else "dpmpp_2m"
        rows.append([f"{r['guidance']:g}", r["steps"], f"{r['dpmpp_2m']:.4f}",
                     "identical" if r["default_identical"] else "**differs**",
                     *(f"{v:.3f}" for v in r["ratios"].values()), verdict])  # fmt: skip
    lines += table(head, rows)
    if "search" in report:
        s = report["search"]
        lines += [f"Part 2: CFG {s['guidance']:g}, {s['steps']} Karras steps (dpmpp_2m RMSE {s['dpmpp_2m']:.4f}): "
                  "the ratio for β at step 2 (rows) and step 3 (columns), every other step at β 1.", ""]  # fmt: skip
        cols = list(next(iter(s["ratios"].values())))
        lines += table("β step 2|" + "|".join(f"β step 3 = {c}:" for c in cols),
                       [[b2, *(f"{v:.3f}" for v in row.values())] for b2, row in s["ratios"].items()])  # fmt: skip
        best = min(v for row in s["ratios"].values() for v in row.values())
        lines += [f"Best schedule: {best:.3f}. β 0.6 on every step from the fourth on: {s['late_0.6']:.3f}.", ""]
    if "held_out" in report:
        lines += ["Part 3: candidate rules on held-out cells (β 1, i.e. dpmpp_2m itself, where a rule does not "
                  "apply; only cells where at least one applies are run).", ""]  # fmt: skip
        lines += table("rule|cells:|wins > 2%:|losses > 2%:|worst ratio:|worst cell|best ratio:|best cell",
                       [[s["rule"], s["cells"], s["wins"], s["losses"], f"{s['worst']:.2f}", s["worst_cell"],
                         f"{s['best']:.2f}", s["best_cell"]] for s in report["summary"]])  # fmt: skip
    lines.append(f"Run time: {seconds:.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="part 1 at CFG 15, 10 steps; batch 8, 200-step reference")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if comfyui.load() is None:
        print(f"ComfyUI {comfyui.VERSION} is not in the cache: run `{comfyui.FETCH}`", file=sys.stderr)
        return 2
    config = QUICK if args.quick else FULL
    start = time.perf_counter()
    problem = Problem(config["batch"], config["reference_steps"])
    report: dict[str, Any] = {"config": config, "grid": grid(problem, config["guidances"], config["steps"])}
    if not args.quick:
        report["search"] = schedule_search(problem)
        report["held_out"] = held_out(problem)
        report["summary"] = summarise(report["held_out"])
    seconds = time.perf_counter() - start
    text = render(report, seconds)
    stem = "comfyui_parity_quick" if args.quick else "comfyui_parity"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps({**report, "seconds": seconds}, indent=1))
    print(text)
    finite = all(math.isfinite(v) for r in report["grid"] for v in r["ratios"].values())
    return 0 if finite and all(r["default_identical"] for r in report["grid"]) else 1


if __name__ == "__main__":
    sys.exit(main())
