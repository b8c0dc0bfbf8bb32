"""GPU check: the GPU test suite and a quick set of GPU figures in one command, with a Markdown and a JSON report.

Two steps (docs/gpu.md). Here, with internet, fetch the wheels the GPU machine lacks (diffusers, this checkout's
transformers, and what their requirements need beyond what that machine has)::

    python -m benchmarks.gpu.check --wheels .whl

There, offline, from the repository root::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:. python3 -m benchmarks.gpu.check --out benchmarks/out/gpu

The check runs ``pytest -m gpu tests/gpu`` (JUnit XML and the text log go to ``--out``), then times on the GPU: one
scheduler ``step`` (ours vs diffusers' DPM-Solver++ 2M, SD/SDXL-sized latents, fp16 and fp32) and a CUDA-graph replay
of it, the guidance hook per denoiser call against an SD1.5 UNet forward, momentum attention's computed and skipped
UNet calls, and momentum decoding per token (the processor alone, and ``generate`` on a random SmolLM2-sized Llama).
The timing code is that of ``samplers.step_overhead``, ``guidance.hook_overhead`` and ``attention.unet_attention_speed``. About 3 minutes on an H200.
It writes ``gpu_report.md`` and ``gpu_report.json``. Without CUDA it still runs: the tests skip, the report says so,
and the exit status is 0. ``--device cpu`` times the figures on the CPU instead (to try the harness; ``--quick``
shrinks every size). The exit status is 1 when a test fails or a figure raises.

Usage::

    python -m benchmarks.gpu.check [--out DIR] [--quick] [--device auto|cpu|cuda] [--skip-tests] [--skip-figures]
    python -m benchmarks.gpu.check --wheels DIR
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.paths import REPO_ROOT
from benchmarks.gpu.figures import run_figures
from benchmarks.gpu.report import render_report
from benchmarks.gpu.wheels import installed_version, wheels_main

__all__ = ["environment", "main", "parse_junit", "run_tests"]

DEFAULT_OUT = Path("benchmarks/out/gpu")
TEST_TIMEOUT_S = 420

# ----------------------------------------------------------------------------------------------------- environment


def _origin(module: str) -> str:
    try:
        return str(Path(importlib.import_module(module).__file__).parent)
    except Exception as error:  # an import failure is what the report must show
        return f"import failed: {type(error).__name__}: {error}"


def environment() -> dict[str, Any]:
    """Python, torch, CUDA, the GPU and the versions (and import locations) of the host libraries."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    for name in ("diffusers", "transformers", "accelerate", "huggingface_hub", "tokenizers", "safetensors", "numpy"):
        info[name] = installed_version(name)
    info["diffusers_from"] = _origin("diffusers")
    info["transformers_from"] = _origin("transformers")
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["gpu_capability"] = f"{properties.major}.{properties.minor}"
        info["gpu_memory_gib"] = round(properties.total_memory / 2**30, 1)
    return info


# ----------------------------------------------------------------------------------------------------------- tests


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts (passed, failed, errors, skipped, xfailed, xpassed) and failing test ids of a pytest JUnit XML file."""
    counts = {"total": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0}
    failures: list[str] = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        counts["total"] += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        children = {child.tag: child for child in case}
        if "error" in children:
            counts["errors"] += 1
            failures.append(name)
        elif "failure" in children:
            counts["failed"] += 1
            failures.append(name)
        elif "skipped" in children:
            kind = "xfailed" if children["skipped"].get("type") == "pytest.xfail" else "skipped"
            counts[kind] += 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failures}


def run_tests(out: Path, extra_args: Sequence[str] = (), timeout: float = TEST_TIMEOUT_S) -> dict[str, Any]:
    """Runs ``pytest -m gpu tests/gpu`` in a subprocess; writes ``gpu_tests.xml`` and ``gpu_tests.log`` to ``out``."""
    out = out.resolve()
    xml, log = out / "gpu_tests.xml", out / "gpu_tests.log"
    xml.unlink(missing_ok=True)  # never report a previous run
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-rfEsx", "-p", "no:cacheprovider"]
    command += [f"--junitxml={xml}", *extra_args]
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    with log.open("w") as stream:  # streamed, so a run killed from outside still leaves its log
        try:
            returncode: int | None = subprocess.run(
                command, cwd=REPO_ROOT, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            stream.write(f"\n[gpu check] pytest timed out after {timeout:.0f} s\n")
            returncode = None
    seconds = time.perf_counter() - start
    print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), flush=True)
    result: dict[str, Any] = {"command": command, "returncode": returncode, "seconds": round(seconds, 1)}
    if xml.is_file():
        result.update(parse_junit(xml))
    else:
        result.update(total=0, passed=0, failed=0, errors=1, skipped=0, xfailed=0, failures=["pytest did not finish"])
    return result


def _figures_device(choice: str) -> torch.device | None:
    if choice == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu check: --device cuda asked for, but CUDA is not available")
    return torch.device(choice)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (default benchmarks/out/gpu)")
    parser.add_argument("--wheels", type=Path, default=None, help="download the GPU machine's missing wheels here")
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes for every figure")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="figures: auto = CUDA if present, else none"
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not run the GPU tests")
    parser.add_argument("--skip-figures", action="store_true", help="do not time anything")
    parser.add_argument("--pytest-arg", action="append", default=[], help="extra pytest argument (repeatable)")
    parser.add_argument("--test-timeout", type=float, default=TEST_TIMEOUT_S, help="seconds for the test run")
    args = parser.parse_args(argv)
    if args.wheels is not None:
        return wheels_main(args.wheels)

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result: dict[str, Any] = {"environment": environment(), "quick": args.quick}
    print(json.dumps(result["environment"], indent=1), flush=True)

    def save(final: bool = False) -> str:
        result["seconds"] = round(time.perf_counter() - start, 1)
        (args.out / "gpu_report.json").write_text(json.dumps(result, indent=2, default=str))
        text = render_report(result) + ("" if final else "\n(The check was still running when this was written.)\n")
        (args.out / "gpu_report.md").write_text(text)
        return text

    if not args.skip_tests:
        result["tests"] = run_tests(args.out, args.pytest_arg, args.test_timeout)
    device = None if args.skip_figures else _figures_device(args.device)
    if device is None:
        result["figures_note"] = (
            "Not run (`--skip-figures`)."
            if args.skip_figures
            else "CUDA is not available: no GPU figures (`--device cpu` times them on the CPU)."
        )
    else:
        result.update(figures_device=device.type, figures={}, figure_errors={}, figure_seconds={})
        save()  # the test results are on disk before the first figure runs
        with contextlib.redirect_stdout(sys.stderr):  # the suites' progress lines
            run_figures(device, args.quick, progress=lambda done: (result.update(done), save()))
    text = save(final=True)
    print(text)
    print(f"wrote {args.out / 'gpu_report.md'} and {args.out / 'gpu_report.json'}")
    tests = result.get("tests")
    failed = tests is not None and (tests["failed"] or tests["errors"] or tests["returncode"] != 0)
    return 1 if failed or result.get("figure_errors") else 0


if __name__ == "__main__":
    sys.exit(main())
