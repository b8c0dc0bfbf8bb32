"""Can heavy ball beat DPM++2M on Karras sigmas at high guidance? A probe of β near 1 and per-step β.

On §1's exact-denoiser problem the strongest peer at guidance >= 15 and 8-20 NFE is k-diffusion's DPM++2M on Karras
et al.'s ρ = 7 sigmas (docs/benchmarks/samplers-vs-peers.md §12), and a constant β in 0.5-0.9 did not beat it in 5 of 8 cells. This probe
tries what §12 left out, on the same problem, noise and reference: constant β between 0.9 and 1, and per-step β
schedules through :func:`inertia.k_diffusion.sample_hb_dpmpp_2m`'s one-β-per-step argument (damping only the first
or only the last part of the steps). Every figure is the RMSE to §1's 1000-step reference divided by DPM++2M Karras's
in the same cell (< 1: heavy ball wins). The velocity starts at the first multistep combination, so damping
begins at the third step: "the first 25%" of 8 steps (steps 0 and 1) changes nothing. The settings are probed on the reported problem itself, so a win here
would be an upper bound, not a tuned result.

Usage::

    python -m benchmarks.samplers.karras_probe [--quick] [--out benchmarks/out]

Writes ``karras_momentum_probe.md`` and ``.json`` (``_quick`` with ``--quick``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from benchmarks.common.exact_denoiser import ExactDenoiser, make_dataset, rmse, sd15_alphas_cumprod
from benchmarks.peers import k_diffusion as K
from benchmarks.samplers.accuracy import compute_reference
from benchmarks.samplers.accuracy_grid import base_config
from benchmarks.samplers.vs_peers import PeerContext, run_function
from benchmarks.samplers.vs_peers_grid import FULL, KDIFF, QUICK, FunctionPeer, PeerGrid
from inertia.k_diffusion import sample_hb_dpmpp_2m

Schedule = Callable[[int], list[float]]
"""Steps -> one β per step."""


def constant(beta: float) -> Schedule:
    return lambda steps: [beta] * steps


def early(beta: float, fraction: float) -> Schedule:
    """β on the first ``fraction`` of the steps (the stiff, high-noise ones), 1 after."""
    return lambda steps: [beta if i < fraction * steps else 1.0 for i in range(steps)]


def late(beta: float, fraction: float) -> Schedule:
    """β on the last ``fraction`` of the steps, 1 before."""
    return lambda steps: [beta if i >= (1 - fraction) * steps else 1.0 for i in range(steps)]


SETTINGS: dict[str, Schedule] = {
    "β 1 (= DPM++2M)": constant(1.0),
    **{f"β {b}": constant(b) for b in (0.99, 0.98, 0.95, 0.9)},
    **{f"β {b} on the first {p}%": early(b, p / 100) for b in (0.8, 0.6) for p in (25, 50)},
    **{f"β {b} on the last {p}%": late(b, p / 100) for b in (0.8, 0.6) for p in (25, 50)},
}
"""Row name -> per-step β schedule."""
GUIDANCES = (15.0, 22.5)
NFES = (8, 10, 15, 20)


def run(grid: PeerGrid, guidances: Sequence[float], nfes: Sequence[int]) -> dict[str, dict[str, float]]:
    """``{cell: {setting: RMSE ratio to DPM++2M Karras}}`` plus each cell's baseline RMSE under ``"baseline"``."""
    denoiser = ExactDenoiser(make_dataset())
    labels = torch.arange(grid.batch) % denoiser.dataset.num_classes
    ctx = PeerContext(denoiser=denoiser, labels=labels, grid=grid, alphas_cumprod=sd15_alphas_cumprod())
    peer = FunctionPeer("hb_dpmpp_2m", "inertia", "karras", sample_hb_dpmpp_2m)
    results: dict[str, dict[str, float]] = {}
    for guidance in guidances:
        ctx.ode = compute_reference(
            base_config("trailing"), denoiser, labels, guidance, grid.seed, grid.reference_steps
        )
        reference = ctx.ode.at(0.0)
        for nfe in nfes:
            baseline = rmse(
                run_function(FunctionPeer("dpmpp_2m", KDIFF, "karras", K.sample_dpmpp_2m), ctx, guidance, nfe),
                reference,
            )
            cell = {"baseline": baseline}
            for name, schedule in SETTINGS.items():
                x = run_function(peer, ctx, guidance, nfe, {"beta": schedule(nfe)})  # NFE = steps on this grid
                cell[name] = rmse(x, reference) / baseline
            results[f"g {guidance:g}, NFE {nfe}"] = cell
    return results


def render(results: dict[str, dict[str, float]], seconds: float, grid: PeerGrid) -> str:
    cells = list(results)
    lines = [
        f"`python -m benchmarks.samplers.karras_probe` ({grid.batch} samples, {grid.reference_steps}-step reference, "
        f"{seconds:.0f} s). RMSE / DPM++2M Karras's in the same cell; **bold** = below 0.995 (a 0.5% win).",
        "",
        "| setting | " + " | ".join(cells) + " |",
        "|---|" + "---:|" * len(cells),
        "| DPM++2M Karras RMSE | " + " | ".join(f"{results[c]['baseline']:.4g}" for c in cells) + " |",
    ]
    for name in SETTINGS:
        ratios = [results[c][name] for c in cells]
        lines.append(f"| {name} | " + " | ".join(f"**{r:.3f}**" if r < 0.995 else f"{r:.3f}" for r in ratios) + " |")
    best = [min((results[c][n], n) for n in SETTINGS) for c in cells]
    lines += ["", "| cell | best setting | ratio |", "|---|---|---:|"]
    lines += [f"| {c} | {n} | {r:.3f} |" for c, (r, n) in zip(cells, best, strict=True)]
    wins = sum(r < 0.995 for r, _ in best)
    lines += ["", f"Cells where some setting is more than 0.5% ahead of DPM++2M Karras: {wins} of {len(cells)}."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 samples, 200-step reference, 2 cells")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    grid, guidances, nfes = (QUICK, GUIDANCES[:1], NFES[:2]) if args.quick else (FULL, GUIDANCES, NFES)
    start = time.perf_counter()
    results = run(grid, guidances, nfes)
    text = render(results, time.perf_counter() - start, grid)
    suffix = "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"karras_momentum_probe{suffix}.md").write_text(text)
    (args.out / f"karras_momentum_probe{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
