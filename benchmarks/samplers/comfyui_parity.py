"""The HB-DPM++ 2M node at β = 0.8 against ComfyUI's own ``dpmpp_2m``, both run by real ComfyUI 0.3.75.

Both samplers are ``comfy.samplers.KSAMPLER`` objects run by ``KSAMPLER.sample`` (what ComfyUI's CFGGuider calls) on
ComfyUI's Karras sigmas for SD1.5, with §1's exact denoiser (:mod:`benchmarks.common.exact_denoiser`, CFG exact) in
ComfyUI's model-wrapper position. The error is the RMSE to §1's many-step ODE reference from the same noise; the
table gives each cell's two RMSEs and their ratio (< 1: the node wins). Needs ``make comfyui``.

Usage::

    python -m benchmarks.samplers.comfyui_parity [--quick] [--out benchmarks/out]

Writes ``comfyui_parity.md`` and ``.json`` (``_quick`` with ``--quick``) and prints the table.
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
from benchmarks.peers import comfyui
from benchmarks.samplers.accuracy import compute_reference
from benchmarks.samplers.accuracy_grid import base_config
from benchmarks.samplers.vs_peers import KDiffusionDenoiser
from inertia.adapters.comfyui import node_mappings
from inertia.k_diffusion import SAMPLERS

GUIDANCES = (3.0, 7.5, 15.0)
STEPS = (6, 10, 20)
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


def run(guidances: Sequence[float], steps: Sequence[int], batch: int, reference_steps: int) -> list[dict[str, Any]]:
    """One row per (guidance, steps): the two RMSEs and their ratio."""
    import comfy.samplers

    denoiser = ExactDenoiser(make_dataset())
    labels = torch.arange(batch) % denoiser.dataset.num_classes
    classes, _ = node_mappings(SAMPLERS)
    (node,) = classes["InertiaHBDPMPP2M"]().get_sampler(beta=0.8)  # the paper's β (the node defaults to 1 = dpmpp_2m)
    stock = comfy.samplers.ksampler("dpmpp_2m")
    noise = initial_noise(batch, denoiser.shape, 0)
    rows = []
    for guidance in guidances:
        reference = compute_reference(base_config("trailing"), denoiser, labels, guidance, 0, reference_steps).at(0.0)
        wrap = Wrap(KDiffusionDenoiser(denoiser, labels, guidance))
        for n in steps:
            sigmas = comfy.samplers.calculate_sigmas(wrap.inner_model.model_sampling, "karras", n)
            errors = {}
            for name, sampler in (("hb_dpmpp_2m", node), ("dpmpp_2m", stock)):
                x = sampler.sample(
                    wrap, sigmas, {"model_options": {}, "seed": 0}, None, noise, torch.zeros_like(noise)
                )
                errors[name] = rmse(x, reference)
            ratio = errors["hb_dpmpp_2m"] / errors["dpmpp_2m"]
            rows.append({"guidance": guidance, "steps": n, **errors, "ratio": ratio})
    return rows


def render(rows: list[dict[str, Any]], seconds: float) -> str:
    lines = [
        "| CFG | steps | RMSE HB-DPM++ 2M node (β 0.8) | RMSE ComfyUI dpmpp_2m | ratio | winner |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        winner = "node" if r["ratio"] < 1 else "dpmpp_2m"
        lines.append(
            f"| {r['guidance']:g} | {r['steps']} | {r['hb_dpmpp_2m']:.4f} | {r['dpmpp_2m']:.4f} | {r['ratio']:.2f} |"
            f" {winner} |"
        )
    return "\n".join(lines) + f"\n\nRun time: {seconds:.0f} s.\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="one cell (CFG 15, 10 steps), batch 8, 200-step reference"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    if comfyui.load() is None:
        print(f"ComfyUI {comfyui.VERSION} is not in the cache: run `{comfyui.FETCH}`", file=sys.stderr)
        return 2
    grid = QUICK if args.quick else FULL
    start = time.perf_counter()
    rows = run(grid["guidances"], grid["steps"], grid["batch"], grid["reference_steps"])
    seconds = time.perf_counter() - start
    table = render(rows, seconds)
    stem = "comfyui_parity_quick" if args.quick else "comfyui_parity"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(table)
    (args.out / f"{stem}.json").write_text(json.dumps({"grid": grid, "rows": rows, "seconds": seconds}, indent=1))
    print(table)
    return 0 if all(math.isfinite(r["ratio"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
