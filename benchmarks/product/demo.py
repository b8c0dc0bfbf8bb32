"""A terminal sampler demo (`python -m benchmarks.product.demo`; `make demo` starts the Gradio UI): side by side at high guidance.

Runs diffusers' stock solvers and inertia's momentum schedulers on the exact-denoiser problem of
:mod:`benchmarks.common.exact_denoiser` (a class-conditional latent data set whose posterior mean is known in closed form, so
every error is the sampler's) at guidance 15 and 8 / 10 / 15 steps, and prints RMSE to a 1000-step reference, the
divergence magnitude score and the wall time. Takes about half a minute on a 2-core CPU, no download.

Usage::

    python -m benchmarks.product.demo [--guidance 15] [--steps 8,10,15] [--batch 32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import torch
from diffusers import DPMSolverMultistepScheduler, PNDMScheduler, UniPCMultistepScheduler

from benchmarks.common.exact_denoiser import SD15_SCHEDULE, ExactDenoiser, magnitude_score, make_dataset, rmse, sample
from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

BASE = {**SD15_SCHEDULE, "timestep_spacing": "trailing", "steps_offset": 1}


def solvers(guidance: float) -> dict[str, Callable[[], object]]:
    """Name -> fresh scheduler factory: stock diffusers solvers first, then inertia's."""
    base = DPMSolverMultistepScheduler(**BASE).config
    return {
        "PLMS (diffusers PNDM)": lambda: PNDMScheduler.from_config(base, skip_prk_steps=True),
        "DPM++2M (diffusers)": lambda: DPMSolverMultistepScheduler.from_config(base),
        "UniPC (diffusers)": lambda: UniPCMultistepScheduler.from_config(base),
        "HB-DPM++2M beta 0.8": lambda: MomentumDPMSolverMultistepScheduler.from_config(base, momentum_beta=0.8),
        "HB-DPM++2M auto": lambda: MomentumDPMSolverMultistepScheduler.from_config(
            base, momentum_beta="auto", momentum_guidance_scale=guidance
        ),
        "GHVB-4 auto": lambda: MomentumPLMSScheduler.from_config(
            base, momentum_method="ghvb", solver_order=4, momentum_beta="auto", momentum_guidance_scale=guidance
        ),
        "GHVB 1.8": lambda: MomentumPLMSScheduler.from_momentum_number(base, 1.8, method="ghvb"),
        "GHVB 3.8": lambda: MomentumPLMSScheduler.from_momentum_number(base, 3.8, method="ghvb"),
        "PLMS4 + HB 0.8": lambda: MomentumPLMSScheduler.from_momentum_number(base, 3.8, method="hb"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guidance", type=float, default=15.0)
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=[8, 10, 15])
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    dataset = make_dataset()
    denoiser = ExactDenoiser(dataset)
    labels = torch.arange(args.batch) % dataset.num_classes
    print(f"Exact-denoiser demo: {args.batch} samples, guidance {args.guidance}, RMSE@n = n steps; lower is better.")
    reference = sample(DPMSolverMultistepScheduler(**BASE), denoiser, labels, args.guidance, 1000, seed=0)

    header = f"{'sampler':<24}" + "".join(f" | {'RMSE@' + str(n):>8} {'magn.':>7}" for n in args.steps) + " | time"
    print(header)
    print("-" * len(header))
    for name, make in solvers(args.guidance).items():
        cells, start = [], time.perf_counter()
        for steps in args.steps:
            scheduler = make()
            # PNDM spends one extra model call on its warm-up: give it one step less for the same NFE.
            n = steps - 1 if isinstance(scheduler, PNDMScheduler) else steps
            out = sample(scheduler, denoiser, labels, args.guidance, n, seed=0)
            err, mag = rmse(out, reference), magnitude_score(out, dataset)
            cells.append(f" | {err:>8.4g} {mag:>7.3g}")
        print(f"{name:<24}" + "".join(cells) + f" | {time.perf_counter() - start:.1f}s")
    print(
        "\nRMSE: distance to a 1000-step solution from the same noise. magn.: the paper's divergence magnitude score "
        "(0.003 is the data's own level; large values are blown-up latents). Full grid: `make bench`, BENCHMARKS.md."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
