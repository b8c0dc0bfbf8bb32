"""Run every benchmark in sequence: the exact-denoiser sampler benchmark, then the step-overhead benchmark.

Usage::

    python -m benchmarks.run_all [--device cpu|cuda] [--quick] [--out benchmarks/out]

The sampler benchmark always runs on the CPU (its cost is the tiny exact denoiser, not the device); ``--device``
selects where the overhead benchmark times the scheduler steps. Exits non-zero if any benchmark fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import bench_overhead, bench_samplers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes for both benchmarks")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    args = parser.parse_args(argv)

    sampler_args = ["--out", str(args.out)] + (["--quick"] if args.quick else [])
    overhead_args = ["--device", args.device, "--out", str(args.out)] + (["--quick"] if args.quick else [])
    status = 0
    for name, entry, arguments in (
        ("bench_samplers", bench_samplers.main, sampler_args),
        ("bench_overhead", bench_overhead.main, overhead_args),
    ):
        print(f"=== {name} {' '.join(arguments)}", flush=True)
        start = time.perf_counter()
        code = entry(arguments)
        print(f"=== {name} finished in {time.perf_counter() - start:.1f}s (exit {code})", flush=True)
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
