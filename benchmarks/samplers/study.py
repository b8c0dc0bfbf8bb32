"""The sampler study: which momentum / order / step-placement design wins on exact-denoiser problems.

Usage::

    python -m benchmarks.samplers.study --stage tune     # candidates x tuning problems (~10-15 min on one core)
    python -m benchmarks.samplers.study --stage report   # stock solvers, the winner and its ablations, reported problems
    python -m benchmarks.samplers.study --stage transfer # the placements on the trained 16x16 digits model (~25 min)
    python -m benchmarks.samplers.study --quick          # every stage on a tiny grid (seconds)

The tuning problems (data and noise seeds 101-102: two SD1.5 problems, one SDXL, one flow) and the reported problems
(seeds 0-2 on SD1.5, seed 1 on SDXL and on flow; seed 0 with SD1.5 is §1's problem) never share a seed. The host
schedules are SD1.5 trailing, SDXL's leading config and SD3's flow shift 3 (see :mod:`benchmarks.samplers.study_problems`). The
error of a run is the RMSE of its final latents to a 300-step DPM-Solver++(2M) solution (log-σ uniform) from the same
noise and starting σ; a ratio compares it with the best stock solver (DDIM, DPM-Solver++(2M), UniPC) of the same cell.
Outputs:
``benchmarks/out/sampler_study_<stage>.json`` and ``.md`` (``_quick`` for ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from benchmarks.samplers.study_problems import GuidedX0, Problem, start_noise, stock_sigmas
from benchmarks.samplers.study_solvers import Candidate, reference_solution, solve

__all__ = ["MILD", "REPORT_PROBLEMS", "STOCK", "TUNE_PROBLEMS", "WINNER", "candidates", "main", "run_cells"]

TUNE_PROBLEMS = [
    Problem(f"tune{s}-{k}", s, s, k, "tune") for s, k in ((101, "sd15"), (102, "sd15"), (101, "sdxl"), (101, "flow"))
]
REPORT_PROBLEMS = [
    Problem(f"report{s}-{k}", s, s, k, "report")
    for s, k in ((0, "sd15"), (1, "sd15"), (2, "sd15"), (1, "sdxl"), (1, "flow"))
]
GUIDANCES = (1.0, 3.0, 7.5, 15.0, 22.5)
NFES = (6, 8, 10, 15, 20)
BATCH = 64
REFERENCE_STEPS = 300

#: Stock solvers (their study implementations equal diffusers' DDIM-as-DPM-Solver++(1), DPM-Solver++(2M) and UniPC
#: to float32 rounding on the host grids; see tests/bench_harness/samplers/test_study.py).
STOCK: dict[str, Candidate] = {
    "DDIM": Candidate(order=1.0),
    "DPM++2M": Candidate(),
    "UniPC": Candidate(base="unipc"),
}


def candidates() -> list[Candidate]:
    """The design space: base solver x heavy-ball β x step placement x correction bound, plus two ablations."""
    out = []
    for beta in (1.0, 0.8, 0.6):
        for rho in (None, 3.0, 1.0):
            for bound in (None, 0.5):
                out.append(Candidate(beta=beta, rho=rho, max_weight=bound))
    for beta in (1.0, 0.8):
        for rho in (None, 1.0):
            if (beta, rho) != (1.0, None):  # UniPC on the host's sigmas is a stock row
                out.append(Candidate(base="unipc", beta=beta, rho=rho))
    out.append(Candidate(order=1.5, max_weight=0.5))  # a fractional order on the DPM-Solver++ basis
    out.append(Candidate(early_beta=0.6))  # damping on the early steps only (per-step β)
    return out


#: The exact-denoiser winner of the tuning stage (every g >= 15 cell) and the milder placement that also holds on a
#: trained network (the digits check in docs/benchmarks/samplers-vs-peers.md §14).
WINNER = Candidate(rho=1.0, max_weight=0.5)
MILD = Candidate(rho=3.0, max_weight=0.5)


def run_cells(
    problems: Sequence[Problem],
    guidances: Sequence[float],
    nfes: Sequence[int],
    solvers: dict[str, Callable[[float, int], Candidate]],
    batch: int,
    reference_steps: int,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """RMSE of every solver on every (problem, guidance, NFE); ``solvers`` maps a name to its candidate per cell."""
    rows = []
    for problem in problems:
        dataset = problem.dataset()
        model = GuidedX0(dataset)
        labels = torch.arange(batch) % dataset.num_classes
        noise = start_noise(problem, batch, dataset.shape)
        start = time.perf_counter()
        for guidance in guidances:
            references: dict[float, torch.Tensor] = {}
            for nfe in nfes:
                sigmas, scale = stock_sigmas(problem.schedule, nfe)
                x = noise * scale
                key = round(float(sigmas[0]), 6)
                if key not in references:
                    references[key] = reference_solution(model, x, float(sigmas[0]), labels, guidance, reference_steps)
                reference = references[key]
                for name, pick in solvers.items():
                    candidate = pick(guidance, nfe)
                    out = solve(candidate, model, x, sigmas, labels, guidance)
                    diff = (out - reference).pow(2).mean()
                    error = float(diff.sqrt()) if bool(torch.isfinite(diff)) else math.inf
                    rows.append(
                        {
                            "problem": problem.name,
                            "schedule": problem.schedule,
                            "guidance": guidance,
                            "nfe": nfe,
                            "solver": name,
                            "candidate": candidate.name,
                            "rmse": error,
                        }
                    )
        log(f"{problem.name}: {time.perf_counter() - start:.0f}s")
    return rows


def _table(rows: list[dict], solvers: Sequence[str], title: str) -> str:
    """Mean over problems of RMSE per (guidance, solver) x NFE, with the stock best marked."""
    nfes = sorted({r["nfe"] for r in rows})
    lines = [f"#### {title}", "", "| guidance | solver | " + " | ".join(f"NFE {n}" for n in nfes) + " |"]
    lines.append("|---|---|" + "---:|" * len(nfes))
    for guidance in sorted({r["guidance"] for r in rows}):
        for solver in solvers:
            cells = []
            for nfe in nfes:
                values = [
                    r["rmse"] for r in rows if r["guidance"] == guidance and r["nfe"] == nfe and r["solver"] == solver
                ]
                cells.append(f"{statistics.fmean(values):.3g}" if values else "")
            lines.append(f"| {guidance:g} | {solver} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ratio_to_best_stock(rows: list[dict], solver: str) -> dict[tuple[str, float, int], float]:
    """Per (problem, guidance, NFE): RMSE of ``solver`` / the best stock solver's RMSE."""
    out = {}
    for key in {(r["problem"], r["guidance"], r["nfe"]) for r in rows}:
        cell = {r["solver"]: r["rmse"] for r in rows if (r["problem"], r["guidance"], r["nfe"]) == key}
        best = min(cell[name] for name in STOCK if name in cell)
        out[key] = cell[solver] / best
    return out


def tune(args: argparse.Namespace) -> dict:
    problems = TUNE_PROBLEMS[:1] if args.quick else TUNE_PROBLEMS
    space = candidates()[::12] if args.quick else candidates()
    solvers = {name: (lambda g, n, c=c: c) for name, c in STOCK.items()}
    solvers.update({c.name: (lambda g, n, c=c: c) for c in space})
    rows = run_cells(problems, args.guidances, args.nfes, solvers, args.batch, args.reference_steps)
    # Score: geometric mean over tuning problems of RMSE / best stock RMSE, per (guidance, NFE).
    best: dict[str, dict] = {}
    lines = [
        "| guidance | NFE | best candidate | geo-mean ratio to best stock | runner-up |",
        "|---|---:|---|---:|---|",
    ]
    for guidance in args.guidances:
        for nfe in args.nfes:
            scores = {}
            for name in solvers:
                ratios = ratio_to_best_stock([r for r in rows if r["guidance"] == guidance and r["nfe"] == nfe], name)
                logs = [math.log(v) if math.isfinite(v) and v > 0 else 10.0 for v in ratios.values()]
                scores[name] = math.exp(statistics.fmean(logs))
            ranked = sorted(scores, key=scores.get)
            best[f"{guidance:g}/{nfe}"] = {"best": ranked[0], "score": scores[ranked[0]], "scores": scores}
            lines.append(
                f"| {guidance:g} | {nfe} | {ranked[0]} | {scores[ranked[0]]:.3f} | {ranked[1]} ({scores[ranked[1]]:.3f}) |"
            )
    return {"rows": rows, "best": best, "markdown": "\n".join(lines) + "\n"}


def report(args: argparse.Namespace) -> dict:
    problems = REPORT_PROBLEMS[:2] if args.quick else REPORT_PROBLEMS

    solvers: dict[str, Callable[[float, int], Candidate]] = {n: (lambda g, k, c=c: c) for n, c in STOCK.items()}
    solvers["ρ1 + bound (winner)"] = lambda g, n: WINNER
    solvers["DPM++2M on ρ1"] = lambda g, n: Candidate(rho=1.0)
    solvers["UniPC on ρ1"] = lambda g, n: Candidate(base="unipc", rho=1.0)
    solvers["ρ3 + bound"] = lambda g, n: MILD
    solvers["HB-DPM++2M β=0.8"] = lambda g, n: Candidate(beta=0.8)
    rows = run_cells(problems, args.guidances, args.nfes, solvers, args.batch, args.reference_steps)
    markdown = _table(rows, list(solvers), "Mean RMSE over the reported problems")
    ratios = ratio_to_best_stock(rows, "ρ1 + bound (winner)")
    checks = []
    high = [v for (p, g, n), v in ratios.items() if g >= 15]
    low = [v for (p, g, n), v in ratios.items() if g <= 3]
    checks.append(
        f"g>=15: winner / best stock <= 0.7 in {sum(v <= 0.7 for v in high)}/{len(high)} (problem, g, NFE) cells; "
        f"max {max(high):.3f}, median {statistics.median(high):.3f}"
    )
    checks.append(
        f"g<=3: winner / best stock <= 1.05 in {sum(v <= 1.05 for v in low)}/{len(low)} cells; "
        f"max {max(low):.3f}, median {statistics.median(low):.3f}"
    )
    markdown += "\n```\n" + "\n".join(checks) + "\n```\n"
    return {"rows": rows, "checks": checks, "markdown": markdown}


def transfer(args: argparse.Namespace) -> dict:
    """The placements on a trained network: the 16x16 digits model, RMSE to a 300-step reference, 32 samples."""
    from benchmarks.samplers.study_problems import DigitsX0

    model = DigitsX0()
    batch = 8 if args.quick else 32
    labels = torch.arange(batch) % 10
    noise = torch.randn((batch, *model.shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    solvers = {"DPM++2M": Candidate(), "bound 0.5": Candidate(max_weight=0.5)}
    solvers.update({f"ρ{rho:g} + bound": Candidate(rho=rho, max_weight=0.5) for rho in (1.0, 2.0, 3.0, 7.0)})
    rows, lines = [], ["| guidance | NFE | " + " | ".join(solvers) + " |", "|---|---:|" + "---:|" * len(solvers)]
    for guidance in (3.0,) if args.quick else (3.0, 15.0):
        sigmas0, scale = stock_sigmas("sd15", 10)
        x = noise * scale
        steps = 20 if args.quick else 300
        lams = torch.linspace(-math.log(float(sigmas0[0])), -math.log(0.03), steps, dtype=torch.float64)
        reference = solve(Candidate(), model, x, torch.cat([torch.exp(-lams), lams.new_zeros(1)]), labels, guidance)
        for nfe in (6,) if args.quick else (6, 8, 15):
            sigmas, _ = stock_sigmas("sd15", nfe)
            cells = {}
            for name, candidate in solvers.items():
                out = solve(candidate, model, x, sigmas, labels, guidance)
                cells[name] = float((out - reference).pow(2).mean().sqrt())
                rows.append({"guidance": guidance, "nfe": nfe, "solver": name, "rmse": cells[name]})
            lines.append(f"| {guidance:g} | {nfe} | " + " | ".join(f"{v:.4f}" for v in cells.values()) + " |")
    return {"rows": rows, "markdown": "\n".join(lines) + "\n"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=("tune", "report", "transfer", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="tiny grid, seconds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    args.guidances = (3.0, 15.0) if args.quick else GUIDANCES
    args.nfes = (6, 10) if args.quick else NFES
    args.batch = 16 if args.quick else BATCH
    args.reference_steps = 100 if args.quick else REFERENCE_STEPS
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    for stage, run in (("tune", tune), ("report", report), ("transfer", transfer)):
        if args.stage not in (stage, "all"):
            continue
        start = time.perf_counter()
        result = run(args)
        result["seconds"] = round(time.perf_counter() - start, 1)
        (args.out / f"sampler_study_{stage}{suffix}.json").write_text(json.dumps(result, indent=1))
        (args.out / f"sampler_study_{stage}{suffix}.md").write_text(result["markdown"])
        print(result["markdown"])
        print(f"{stage}: {result['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
