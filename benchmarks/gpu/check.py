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
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from benchmarks.common.paths import REPO_ROOT
from benchmarks.common.timing import seconds_of, synchronize

__all__ = [
    "decoding_figures",
    "environment",
    "main",
    "parse_junit",
    "run_tests",
    "scheduler_figures",
]

DEFAULT_OUT = Path("benchmarks/out/gpu")
TEST_TIMEOUT_S = 420

# ----------------------------------------------------------------------------------------------------- environment


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


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
        info[name] = _version(name)
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
            stream.write(f"\n[gpu_check] pytest timed out after {timeout:.0f} s\n")
            returncode = None
    seconds = time.perf_counter() - start
    print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), flush=True)
    result: dict[str, Any] = {"command": command, "returncode": returncode, "seconds": round(seconds, 1)}
    if xml.is_file():
        result.update(parse_junit(xml))
    else:
        result.update(total=0, passed=0, failed=0, errors=1, skipped=0, xfailed=0, failures=["pytest did not finish"])
    return result


# --------------------------------------------------------------------------------------------------------- figures


def _median_us(call: Callable[[], Any], device: torch.device, repeats: int) -> float:
    call()  # warm-up: lazy initialisation, allocator
    times = []
    for _ in range(repeats):
        times.append(seconds_of(call, device))
    return statistics.median(times) * 1e6


def _typed_stepper(dtype: torch.dtype) -> type:
    """``step_overhead.SteadyStepper`` with its sample and model output in ``dtype`` (it builds them in fp32)."""
    from benchmarks.samplers import step_overhead

    class TypedStepper(step_overhead.SteadyStepper):
        def __init__(self, scheduler: Any, shape: Sequence[int], device: torch.device, seed: int = 0) -> None:
            super().__init__(scheduler, shape, device, seed)
            self.initial = self.initial.to(dtype)
            self.model_output = self.model_output.to(dtype)
            self._reset()

    return TypedStepper


def scheduler_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Steady-state ``step`` time per scheduler (``step_overhead.measure``), fp16 and fp32, and CUDA-graph replays."""
    from benchmarks.samplers import step_overhead

    shapes = ((1, 4, 16, 16),) if quick else step_overhead.SHAPES
    repeats = 10 if quick else 200
    factories = step_overhead.scheduler_factories()
    rows = []
    for dtype in (torch.float16, torch.float32):
        for shape in shapes:
            with mock.patch.object(step_overhead, "SteadyStepper", _typed_stepper(dtype)):
                timings = step_overhead.measure(factories, shape, device, repeats)
            baseline = next(t for t in timings if t.name == step_overhead.BASELINE).median
            for timing in timings:
                low, high = timing.iqr
                rows.append(
                    {
                        "dtype": str(dtype).removeprefix("torch."),
                        "shape": "x".join(map(str, shape)),
                        "scheduler": timing.name,
                        "median_us": round(timing.median * 1e6, 1),
                        "iqr_us": [round(low * 1e6, 1), round(high * 1e6, 1)],
                        "ratio": round(timing.median / baseline, 3),
                    }
                )
    graphs = {}
    if device.type == "cuda":
        for name, factory in factories.items():
            graphs[name] = step_overhead.try_cuda_graph(factory, shapes[0])
    return {"repeats": repeats, "rows": rows, "cuda_graph": graphs}


def guidance_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Guidance hook time per denoiser call vs one UNet forward (``guidance.hook_overhead.measure_overhead``), fp32."""
    from benchmarks.guidance.hook_overhead import measure_overhead

    return {"rows": measure_overhead(quick, device, repeats=20 if quick else 200)}


def attention_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Per-call UNet time: full, and with momentum attention computed / skipped (``attention.unet_attention_speed.speed``), fp32."""
    from benchmarks.attention.unet_attention_speed import speed
    from benchmarks.common.sd15_unet import QUICK_UNET, SD15_UNET

    result = speed(QUICK_UNET if quick else SD15_UNET, 2 if quick else 5, device)
    return {
        "unet": "tiny" if quick else "SD1.5 (random weights) at 64x64, batch 2",
        "full_ms": round(result.full * 1e3, 3),
        "computed_ms": {k: round(v * 1e3, 3) for k, v in result.computed.items()},
        "skipped_ms": {k: round(v * 1e3, 3) for k, v in result.skipped.items()},
        "rule_ms": {k: round(v, 4) for k, v in result.rule_ms.items()},
    }


def _random_llama(device: torch.device, dtype: torch.dtype, quick: bool) -> Any:
    """A random-weight Llama: SmolLM2-135M's shape (the embedded model, which cannot travel), or a tiny one."""
    from transformers import LlamaConfig, LlamaForCausalLM

    size = (
        {"vocab_size": 1024, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
        | {"num_attention_heads": 4, "num_key_value_heads": 2}
        if quick
        else {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30}
        | {"num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}
    )
    config = LlamaConfig(**size, pad_token_id=0, bos_token_id=1, eos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForCausalLM(config)
    return model.to(dtype).eval()


def decoding_figures(device: torch.device, quick: bool) -> dict[str, Any]:
    """Momentum decoding per token: the processor on [B, V] scores, and ``generate`` with greedy / MD / contrastive."""
    from transformers import LogitsProcessorList

    from inertia.decoders import MomentumDecodingLogitsProcessor, contrastive_search, momentum_decode

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # the text models' default dtype
    vocab, history, repeats = (1024, 32, 10) if quick else (49152, 256, 100)
    generator = torch.Generator().manual_seed(0)
    processor_rows = []
    for batch in (1, 8):
        ids = torch.randint(3, vocab, (batch, history), generator=generator).to(device)
        scores = torch.randn(batch, vocab, generator=generator).to(device, dtype)
        processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5)
        processor_rows.append(
            {
                "batch": batch,
                "history": history,
                "vocab": vocab,
                "dtype": str(dtype).removeprefix("torch."),
                "processor_us": round(_median_us(lambda p=processor, i=ids, s=scores: p(i, s), device, repeats), 1),
                "argmax_us": round(_median_us(lambda s=scores: s.argmax(-1), device, repeats), 1),
            }
        )

    model = _random_llama(device, dtype, quick)
    batch, prompt_len, new_tokens = (2, 8, 8) if quick else (8, 32, 64)
    prompt = torch.randint(3, model.config.vocab_size, (batch, prompt_len), generator=generator).to(device)
    methods: dict[str, dict[str, Any]] = {
        "greedy": {"do_sample": False},
        "momentum (processor)": {
            "do_sample": False,
            "logits_processor": LogitsProcessorList([MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5)]),
        },
        "momentum_decode": {"custom_generate": momentum_decode, "md_alpha": 0.2, "md_top_k": 5},
        "contrastive_search": {"custom_generate": contrastive_search, "penalty_alpha": 0.6, "top_k": 5},
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    mask = torch.ones_like(prompt)
    with torch.no_grad():
        for kwargs in methods.values():  # warm-up: kernels, allocator, generation-config caches
            model.generate(prompt, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, **kwargs)
        names = list(methods)
        for round_index in range(1 if quick else 3):  # interleaved rounds, rotating order
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                synchronize(device)
                start = time.perf_counter()
                model.generate(
                    prompt, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **methods[name]
                )
                synchronize(device)
                times[name].append(time.perf_counter() - start)
    generate_rows = [
        {
            "method": name,
            "ms_per_token": round(statistics.median(values) / new_tokens * 1e3, 3),
            "tokens_per_s": round(batch * new_tokens / statistics.median(values), 1),
        }
        for name, values in times.items()
    ]
    shape = (
        f"{model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}, vocab {model.config.vocab_size}"
    )
    return {
        "processor": processor_rows,
        "generate": {"model": f"random Llama ({shape})", "batch": batch, "new_tokens": new_tokens},
        "generate_rows": generate_rows,
    }


FIGURES: dict[str, Callable[[torch.device, bool], dict[str, Any]]] = {
    "schedulers": scheduler_figures,
    "guidance": guidance_figures,
    "attention": attention_figures,
    "decoding": decoding_figures,
}
"""Figure sets, in the order they run: name -> ``(device, quick) -> results``."""


def run_figures(
    device: torch.device, quick: bool, progress: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Runs every figure set; a set that raises is reported under ``figure_errors`` and the others still run.

    Returns ``{"figures": ..., "figure_errors": ..., "figure_seconds": ...}``; ``progress`` gets it after each set.
    """
    done: dict[str, Any] = {"figures": {}, "figure_errors": {}, "figure_seconds": {}}
    for name, figure in FIGURES.items():
        print(f"=== figures: {name} on {device}", flush=True)
        start = time.perf_counter()
        try:
            done["figures"][name] = figure(device, quick)
        except Exception as error:  # one broken figure must not lose the others or the report
            done["figure_errors"][name] = f"{type(error).__name__}: {error}"
            print(f"  failed: {done['figure_errors'][name]}", flush=True)
        done["figure_seconds"][name] = round(time.perf_counter() - start, 1)
        if progress is not None:
            progress(done)
    return done


# ---------------------------------------------------------------------------------------------------------- report


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _figure_lines(figures: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if "schedulers" in figures:
        block = figures["schedulers"]
        lines += ["", f"### Scheduler `step` (steady state, median of {block['repeats']} interleaved steps)", ""]
        lines += _table(
            ("dtype", "latents", "scheduler", "median µs", "IQR µs", "ratio to DPM++2M"),
            [
                (
                    r["dtype"],
                    r["shape"],
                    r["scheduler"],
                    r["median_us"],
                    f"{r['iqr_us'][0]}-{r['iqr_us'][1]}",
                    r["ratio"],
                )
                for r in block["rows"]
            ],
        )
        if block["cuda_graph"]:
            lines += ["", "CUDA graph of one steady-state `step` (fp32, captured at one step index):", ""]
            lines += [f"- {name}: {verdict}" for name, verdict in block["cuda_graph"].items()]
    if "guidance" in figures:
        lines += ["", "### Guidance hook per denoiser call (fp32; extra = time over the bare stub denoiser)", ""]
        lines += _table(
            ("latents", "method", "call µs", "extra µs", "UNet forward ms", "extra / forward"),
            [
                (
                    r["shape"],
                    r["method"],
                    f"{r['call_us']:.1f}",
                    f"{r['extra_us']:.1f}",
                    f"{r['unet_ms']:.2f}",
                    f"{r['ratio']:.4f}",
                )
                for r in figures["guidance"]["rows"]
            ],
        )
    if "attention" in figures:
        block = figures["attention"]
        lines += ["", f"### Momentum attention, one UNet call ({block['unet']}, fp32, median ms)", ""]
        rows = [("full computation", block["full_ms"], "")]
        rows += [(f"{rule}: computed step", block["computed_ms"][rule], "") for rule in block["computed_ms"]]
        rows += [
            (f"{rule}: skipped step", block["skipped_ms"][rule], f"{block['skipped_ms'][rule] / block['full_ms']:.2f}")
            for rule in block["skipped_ms"]
        ]
        lines += _table(("call", "ms", "skipped / full"), rows)
        rules = ", ".join(f"{k} {v} ms" for k, v in block["rule_ms"].items())
        lines += ["", f"Rule arithmetic per call: {rules}."]
    if "decoding" in figures:
        block = figures["decoding"]
        lines += ["", "### Momentum decoding processor per call (= per generated token), median µs", ""]
        lines += _table(
            ("batch", "history", "vocab", "dtype", "processor µs", "argmax µs"),
            [
                (r["batch"], r["history"], r["vocab"], r["dtype"], r["processor_us"], r["argmax_us"])
                for r in block["processor"]
            ],
        )
        info = block["generate"]
        lines += ["", f"`generate` on a {info['model']}, batch {info['batch']}, {info['new_tokens']} new tokens:", ""]
        lines += _table(
            ("method", "ms per step", "tokens/s"),
            [(r["method"], r["ms_per_token"], r["tokens_per_s"]) for r in block["generate_rows"]],
        )
    return lines


def render_report(result: dict[str, Any]) -> str:
    """The Markdown report of one check."""
    env = result["environment"]
    gpu = env.get("gpu")
    lines = ["# inertia GPU check", ""]
    if not env["cuda_available"]:
        lines += ["**CUDA is not available on this machine**: the GPU tests were skipped.", ""]
    lines += ["## Environment", ""]
    lines += _table(("item", "value"), [(key, value) for key, value in env.items()])
    tests = result.get("tests")
    lines += ["", "## Tests (`pytest -m gpu tests/gpu`)", ""]
    if tests is None:
        lines += ["Not run (`--skip-tests`)."]
    else:
        keys = ("total", "passed", "failed", "errors", "skipped", "xfailed")
        lines += _table((*keys, "seconds"), [(*(tests[key] for key in keys), tests["seconds"])])
        if tests["failures"]:
            lines += ["", "Failing:", ""] + [f"- `{name}`" for name in tests["failures"][:40]]
        lines += ["", "Full log: `gpu_tests.log`; JUnit XML: `gpu_tests.xml`."]
    lines += ["", "## Figures", ""]
    device = result.get("figures_device")
    if device is None:
        lines += [result.get("figures_note", "Not run.")]
    else:
        what = f"{gpu}" if device == "cuda" else "the CPU (not GPU figures)"
        lines += [f"Measured on {what}{' at --quick sizes' if result['quick'] else ''}; seconds per set: "]
        lines[-1] += ", ".join(f"{k} {v}" for k, v in result["figure_seconds"].items()) + "."
        lines += _figure_lines(result["figures"])
        for name, error in result["figure_errors"].items():
            lines += ["", f"**{name} failed**: `{error}`"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------------ main


def _figures_device(choice: str) -> torch.device | None:
    if choice == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda asked for, but CUDA is not available")
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
        from benchmarks.gpu.wheels import wheels_main

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
