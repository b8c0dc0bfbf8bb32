"""What importing inertia's light entry points costs beyond torch, and which host libraries each one loads.

Each statement runs in a fresh interpreter (``python -X importtime`` is not used: it adds its own overhead), ``--runs``
times, alternating with a bare ``import torch``; the figure is the median wall time of the statement minus the median
of ``import torch``, with the host libraries (diffusers, transformers, gradio, accelerate) the statement left loaded.
``--repo`` measures another checkout (an older commit, for a before/after) with the same interpreter.

Usage::

    python -m benchmarks.product.import_cost                 # this checkout, 7 runs each, a Markdown table
    python -m benchmarks.product.import_cost --repo /tmp/old --runs 7   # another checkout (git worktree add ...)
    python -m benchmarks.product.import_cost --quick --out benchmarks/out   # 2 runs; also writes import_cost.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common.outputs import print_and_save

STATEMENTS = {
    "torch (the baseline)": "import torch",
    "`import inertia.k_diffusion`": "import inertia.k_diffusion",
    "the decoding logits processor": "from inertia.decoders import MomentumDecodingLogitsProcessor",
    "every module under `inertia.core`": "CORE",
    "the guidance configs (`APG`, `HiGS`)": "from inertia.guidance import APG, HiGS",
    "`import inertia.cli` (answers `--help`)": "import inertia.cli",
}
HOSTS = ("diffusers", "transformers", "gradio", "accelerate", "torch")

_PROBE = """
import json, sys, time
t = time.perf_counter()
{statement}
elapsed = time.perf_counter() - t
print(json.dumps([elapsed, sorted(m for m in {hosts!r} if m in sys.modules)]))
"""


def core_statement(repo: Path) -> str:
    core = repo / "inertia" / "core"
    if not core.is_dir():
        return ""
    modules = sorted(
        ".".join(p.relative_to(repo).with_suffix("").parts).removesuffix(".__init__") for p in core.rglob("*.py")
    )
    return "\n".join(f"import {m}" for m in modules)


def measure(statement: str, repo: Path) -> tuple[float, list[str]]:
    """Seconds one fresh interpreter spends on ``statement`` (imports only, interpreter start excluded), and the
    host libraries loaded after it."""
    code = _PROBE.format(statement=statement, hosts=HOSTS)
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    elapsed, hosts = json.loads(out.stdout.strip().splitlines()[-1])
    return float(elapsed), list(hosts)


def run(repo: Path, runs: int) -> list[dict[str, object]]:
    """One row per statement: median seconds, median seconds beyond torch, hosts loaded."""
    timings: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    hosts: dict[str, list[str]] = {}
    for _ in range(runs):
        for name, statement in STATEMENTS.items():
            code = core_statement(repo) if statement == "CORE" else statement
            if not code:
                continue
            elapsed, loaded = measure(code, repo)
            timings[name].append(elapsed)
            hosts[name] = loaded
    torch_median = statistics.median(timings["torch (the baseline)"])
    rows = []
    for name, values in timings.items():
        if values:
            median = statistics.median(values)
            rows.append({"what": name, "seconds": median, "beyond_torch": median - torch_median, "hosts": hosts[name]})
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| import | median s | beyond torch, s | host libraries loaded |", "| --- | ---: | ---: | --- |"]
    for row in rows:
        hosts = row["hosts"]
        loaded = ", ".join(h for h in hosts if h != "torch") if isinstance(hosts, list) else ""
        lines.append(f"| {row['what']} | {row['seconds']:.2f} | {row['beyond_torch']:+.2f} | {loaded or 'none'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.product.import_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2], help="checkout to measure")
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per statement (median), >= 1")
    parser.add_argument("--quick", action="store_true", help="2 runs per statement (a smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to OUT/import_cost.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 2
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    if not (args.repo / "inertia" / "__init__.py").is_file():
        parser.error(f"--repo {args.repo} holds no inertia package")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    started = time.perf_counter()
    text = (
        table(run(args.repo.resolve(), args.runs))
        + f"\n\n({args.runs} runs each, {time.perf_counter() - started:.0f} s)\n"
    )
    print_and_save(text, args.out, "import_cost.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
