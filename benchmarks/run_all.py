"""Run every benchmark in sequence: samplers, step overhead, guidance, momentum attention, decoding, UI and CLI.

Usage::

    python -m benchmarks.run_all [--device cpu|cuda] [--quick] [--only samplers,guidance] [--out benchmarks/out]

``--device`` is passed to the suites that time a device (overhead, guidance, attention, ui); the sampler benchmark's cost
is its tiny exact denoiser and the decoding benchmark measures the CPU protocol of docs/benchmarks/decoding.md §6, so both run on
the CPU. The full run takes hours on a 2-core CPU (decoding alone about 2 h, guidance about 1 h); ``--quick`` runs
every suite at smoke-test sizes in a few minutes. Exits non-zero if any suite fails, after running the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# suite name -> (module, takes --device)
SUITES: dict[str, tuple[str, bool]] = {
    "samplers": ("benchmarks.samplers.accuracy", False),
    "peers-samplers": ("benchmarks.samplers.vs_peers", False),
    "karras-probe": ("benchmarks.samplers.karras_probe", False),
    "overhead": ("benchmarks.samplers.step_overhead", True),
    "guidance": ("benchmarks.guidance.apg_higs", True),
    "peers-guidance": ("benchmarks.guidance.vs_peers", False),
    "attention": ("benchmarks.attention.unet_attention", True),
    "peers-caches": ("benchmarks.attention.vs_peers", False),
    "decoding": ("benchmarks.decoding.momentum_decoding", False),
    "peers-decoding": ("benchmarks.decoding.vs_peers", False),
    "lm-attention": ("benchmarks.attention.lm_attention", False),
    "ui": ("benchmarks.product.response_times", True),
    "imports": ("benchmarks.product.import_cost", False),
}
"""Every suite ``run_all`` runs, in order."""


def suite_arguments(name: str, device: str, quick: bool, out: Path) -> list[str]:
    """The command line ``run_all`` gives suite ``name`` (its own output folder layout is kept)."""
    takes_device = SUITES[name][1]
    arguments = ["--device", device] if takes_device else []
    if quick:
        arguments.append("--quick")
    # guidance writes into its own sub-folder by default; keep that layout under --out
    arguments += ["--out", str(out / "guidance" if name == "guidance" else out)]
    return arguments


def _suites(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SUITES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"--only takes names from {', '.join(SUITES)}; got {text!r}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes for every suite")
    parser.add_argument("--only", type=_suites, default=list(SUITES), help=f"comma-separated: {', '.join(SUITES)}")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    args = parser.parse_args(argv)

    status = 0
    for name in args.only:
        arguments = suite_arguments(name, args.device, args.quick, args.out)
        print(f"=== {name}: python -m {SUITES[name][0]} {' '.join(arguments)}", flush=True)
        start = time.perf_counter()
        code = importlib.import_module(SUITES[name][0]).main(arguments)
        print(f"=== {name} finished in {time.perf_counter() - start:.1f}s (exit {code})", flush=True)
        status = status or (code or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
