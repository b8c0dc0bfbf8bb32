"""The GPU check's Markdown report: environment, test counts and failures, and the figure tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["render_report"]


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
