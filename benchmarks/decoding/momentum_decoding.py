"""Decoding benchmark on the embedded SmolLM2-135M-Instruct: quality and speed of seven decoding methods, offline.

Methods: greedy, nucleus (p 0.95), top-k 50 sampling, repetition penalty 1.2 (greedy), no-repeat-3-gram (greedy),
contrastive search (α 0.6, k 5; :func:`inertia.decoders.contrastive_search`) and momentum decoding (α 0.2, k 5;
:func:`inertia.decoders.momentum_decode`).

* **Quality**: every prompt of ``benchmarks/common/prompts/decoding_prompts.jsonl`` (104 prefixes we wrote: news,
  encyclopedia, story, dialogue, how-to; interleaved by domain), continued by exactly ``--max-new-tokens`` (128)
  tokens (eos is banned with ``min_new_tokens`` so that every method writes the same length), in batches of 8 with
  left padding. Metrics on the continuations (:mod:`inertia.metrics.text`): rep-2/3/4 and diversity (SimCTG's
  definitions, whitespace words, summed over all prompts) and coherence (mean cosine similarity of the
  all-MiniLM-L6-v2 embeddings of prompt and continuation), and the share of continuations with a verbatim loop
  (some 8-word sequence twice). Sampling methods use seed 0 + batch index.
* **Speed**: tokens per second. Batch 8: each quality batch is timed and the methods run interleaved (batch i of
  every method, in an order rotated by i, before batch i+1), so the reported figure is the median over the 13 batches
  of 8 prompts; a separate 20-prompt batch-8 run would repeat the same measurement on fewer prompts. Batch 1: the
  first ``--speed-prompts`` (20) prompts, one at a time, ``--speed-methods`` interleaved per prompt in a rotating
  order; the median over prompts. Ratios are also given as the median of per-batch (per-prompt) paired ratios.

Usage::

    python -m benchmarks.decoding.momentum_decoding [--quick] [--out benchmarks/out] [--threads 1]
    python -m benchmarks.decoding.momentum_decoding --forward-costs    # latency of one forward for 1, 5, 8, 40 tokens

Writes ``decoding.json``, ``decoding.md`` and ``decoding_samples.jsonl`` (``decoding_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.outputs import write_summary
from benchmarks.common.prompt_sets import load_prompts
from benchmarks.common.text_generation import (
    describe_run,
    environment,
    environment_text,
    generate_exactly,
    load_model,
    resolve_custom_generate,
    short_text,
)

METHODS: dict[str, dict[str, Any]] = {
    "greedy": {"do_sample": False},
    "nucleus p=0.95": {"do_sample": True, "top_p": 0.95, "top_k": 0},
    "top-k 50": {"do_sample": True, "top_k": 50, "top_p": 1.0},
    "rep. penalty 1.2": {"do_sample": False, "repetition_penalty": 1.2},
    "no-repeat-3-gram": {"do_sample": False, "no_repeat_ngram_size": 3},
    "contrastive (0.6, 5)": {"custom_generate": "contrastive_search", "penalty_alpha": 0.6, "top_k": 5},
    "momentum (0.2, 5)": {"custom_generate": "momentum_decode", "md_alpha": 0.2, "md_top_k": 5},
}
"""Method name -> ``generate`` keyword arguments (``custom_generate`` names an :mod:`inertia.decoders` function)."""
GREEDY, CONTRASTIVE, MOMENTUM = "greedy", "contrastive (0.6, 5)", "momentum (0.2, 5)"
EXAMPLE_DOMAINS = ("news", "story", "how-to")


@dataclass
class BenchConfig:
    """What to run; the defaults are the full benchmark."""

    num_prompts: int | None = None  # None: all prompts of the file
    max_new_tokens: int = 128
    batch_size: int = 8
    speed_prompts: int = 20
    speed_methods: tuple[str, ...] = (GREEDY, MOMENTUM, CONTRASTIVE)
    methods: tuple[str, ...] = tuple(METHODS)
    seed: int = 0
    quick: bool = False


def quick_config() -> BenchConfig:
    """A smoke run (a few seconds of generation): 2 prompts, 8 tokens, every method."""
    return BenchConfig(num_prompts=2, max_new_tokens=8, batch_size=2, speed_prompts=1, quick=True)


def generate_kwargs(name: str) -> dict[str, Any]:
    """``generate`` keyword arguments of a method, with the inertia functions resolved."""
    return resolve_custom_generate(METHODS[name])


def generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], name: str, max_new_tokens: int, seed: int
) -> tuple[list[str], float, int]:
    """Generates exactly ``max_new_tokens`` tokens per prompt; returns (continuations, seconds, new tokens)."""
    return generate_exactly(model, tokenizer, prompts, generate_kwargs(name), max_new_tokens, seed)


def _rotated(methods: Sequence[str], shift: int) -> list[str]:
    shift %= len(methods)
    return list(methods[shift:]) + list(methods[:shift])


def _paired_ratio(rates: dict[str, list[float]], num: str, den: str) -> float | None:
    if num not in rates or den not in rates:
        return None
    return statistics.median(a / b for a, b in zip(rates[num], rates[den]))


def _ratio(medians: dict[str, float], num: str, den: str) -> float | None:
    return medians[num] / medians[den] if num in medians and den in medians else None


def run_quality(model: Any, tokenizer: Any, prompts: list[dict[str, str]], cfg: BenchConfig, log: Callable) -> dict:
    """Interleaved batched generation of every method on every prompt; texts and per-batch tokens/s."""
    texts: dict[str, list[str]] = {m: [] for m in cfg.methods}
    rates: dict[str, list[float]] = {m: [] for m in cfg.methods}
    batches = [prompts[i : i + cfg.batch_size] for i in range(0, len(prompts), cfg.batch_size)]
    for index, batch in enumerate(batches):
        for name in _rotated(cfg.methods, index):
            out, seconds, tokens = generate(
                model, tokenizer, [p["prompt"] for p in batch], name, cfg.max_new_tokens, cfg.seed + index
            )
            texts[name].extend(out)
            if len(batch) == cfg.batch_size:  # a smaller last batch would not be a batch-size measurement
                rates[name].append(tokens / seconds)
            log(f"  quality batch {index + 1}/{len(batches)} {name:22s} {tokens / seconds:7.1f} tok/s")
    return {"texts": texts, "rates": rates}


def run_speed(model: Any, tokenizer: Any, prompts: list[dict[str, str]], cfg: BenchConfig, log: Callable) -> dict:
    """Batch-1 tokens/s on the first ``speed_prompts`` prompts, the methods interleaved per prompt."""
    rates: dict[str, list[float]] = {m: [] for m in cfg.speed_methods}
    for index, row in enumerate(prompts[: cfg.speed_prompts]):
        for name in _rotated(cfg.speed_methods, index):
            _, seconds, tokens = generate(model, tokenizer, [row["prompt"]], name, cfg.max_new_tokens, cfg.seed)
            rates[name].append(tokens / seconds)
            log(f"  speed prompt {index + 1}/{cfg.speed_prompts} {name:22s} {tokens / seconds:7.1f} tok/s")
    return rates


def evaluate_targets(summary: dict) -> list[dict[str, Any]]:
    """The issue's targets for momentum decoding, each with its measured value, threshold and verdict."""
    quality, speed = summary["quality"], summary["speed"]
    targets = []

    def add(name: str, value: float | None, threshold: float, higher_is_better: bool) -> None:
        if value is None:
            return
        met = value >= threshold if higher_is_better else value <= threshold
        targets.append({"target": name, "value": round(value, 4), "threshold": round(threshold, 4), "met": met})

    if GREEDY in quality and MOMENTUM in quality:
        greedy, momentum = quality[GREEDY], quality[MOMENTUM]
        add("rep-4 <= 0.25x greedy's", momentum["rep-4"], 0.25 * greedy["rep-4"], higher_is_better=False)
        add("coherence >= 0.9x greedy's", momentum["coherence"], 0.9 * greedy["coherence"], higher_is_better=True)
    if CONTRASTIVE in quality and MOMENTUM in quality:
        add(
            "diversity >= contrastive search's",
            quality[MOMENTUM]["diversity"],
            quality[CONTRASTIVE]["diversity"],
            higher_is_better=True,
        )
    for batch, block in speed.items():
        ratios = block["ratio_of_medians"]
        add(f"throughput >= 0.9x greedy's ({batch})", ratios.get("momentum/greedy"), 0.9, higher_is_better=True)
        add(f"throughput >= 3x contrastive's ({batch})", ratios.get("momentum/contrastive"), 3.0, True)
    return targets


def _speed_block(rates: dict[str, list[float]]) -> dict[str, Any]:
    rates = {name: values for name, values in rates.items() if values}
    medians = {name: statistics.median(values) for name, values in rates.items()}
    pairs = {"momentum/greedy": (MOMENTUM, GREEDY), "momentum/contrastive": (MOMENTUM, CONTRASTIVE)}
    return {
        "median_tokens_per_s": {k: round(v, 2) for k, v in medians.items()},
        "runs": {k: len(v) for k, v in rates.items()},
        "ratio_of_medians": {k: r for k, (a, b) in pairs.items() if (r := _ratio(medians, a, b)) is not None},
        "median_paired_ratio": {k: r for k, (a, b) in pairs.items() if (r := _paired_ratio(rates, a, b)) is not None},
    }


def run_benchmark(
    cfg: BenchConfig, model: Any, tokenizer: Any, scorer: Any = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Runs quality and speed; returns the summary (also the per-prompt texts under ``"samples"``)."""
    from inertia.metrics.text import CoherenceScorer, loop_rate, repetition_stats

    prompts = load_prompts(limit=cfg.num_prompts)
    wall, cpu = time.perf_counter(), time.process_time()
    for name in dict.fromkeys((*cfg.methods, *cfg.speed_methods)):  # warm-up: first-call overheads untimed
        generate(model, tokenizer, [prompts[0]["prompt"]], name, 2, cfg.seed)
    log(f"quality: {len(prompts)} prompts x {len(cfg.methods)} methods, batch {cfg.batch_size}")
    quality_run = run_quality(model, tokenizer, prompts, cfg, log)
    log(f"speed (batch 1): {cfg.speed_prompts} prompts x {len(cfg.speed_methods)} methods")
    speed_rates = run_speed(model, tokenizer, prompts, cfg, log)
    scorer = scorer if scorer is not None else CoherenceScorer()
    quality = {}
    for name, texts in quality_run["texts"].items():
        stats = repetition_stats(texts)
        stats["coherence"] = round(scorer.mean([p["prompt"] for p in prompts], texts), 4)
        stats["loops"] = round(loop_rate(texts, 8), 4)
        quality[name] = stats
    summary: dict[str, Any] = {
        "config": asdict(cfg),
        "quality": quality,
        "speed": {"batch 1": _speed_block(speed_rates), f"batch {cfg.batch_size}": _speed_block(quality_run["rates"])},
        "wall_time_s": round(time.perf_counter() - wall, 1),
        "process_cpu_time_s": round(time.process_time() - cpu, 1),
    }
    summary["targets"] = evaluate_targets(summary)
    summary["samples"] = [
        {"domain": p["domain"], "prompt": p["prompt"], **{m: quality_run["texts"][m][i] for m in cfg.methods}}
        for i, p in enumerate(prompts)
    ]
    return summary


@torch.no_grad()
def forward_costs(
    model: Any, tokenizer: Any, context: int = 150, queries: Sequence[int] = (1, 5, 8, 40), repeats: int = 15
) -> dict[str, float]:
    """Median latency (ms) of one cached forward pass for ``q`` new tokens after a ``context``-token prefix.

    Explains the speed figures: greedy and momentum decoding run 1 token per row and step, contrastive search k. The
    ``q`` tokens are run as ``q`` rows of one token each (how contrastive search runs its candidates), each row with
    its own copy of the prefix cache.
    """
    from transformers import DynamicCache

    from inertia.adapters.transformers.generate_checks import cache_argument

    prompt = load_prompts()[0]["prompt"]
    ids = tokenizer([prompt], return_tensors="pt")["input_ids"]
    ids = ids.repeat(1, context // ids.shape[1] + 1)[:, :context].to(model.device)
    results = {}
    for q in queries:
        cache = DynamicCache(config=model.config)
        model(input_ids=ids, use_cache=True, **{cache_argument(model): cache})
        cache.batch_repeat_interleave(q)
        step = torch.full((q, 1), int(ids[0, -1]), device=model.device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(input_ids=step, use_cache=True, logits_to_keep=1, **{cache_argument(model): cache})
            times.append(time.perf_counter() - start)
            cache.crop(-1)  # drop the step again: every repeat sees the same prefix
        results[f"{q} token(s)"] = round(1000 * statistics.median(times), 2)
    return results


def render_markdown(summary: dict[str, Any]) -> str:
    """The markdown report: quality table, speed tables, targets and three side-by-side examples."""
    cfg, env = summary["config"], summary.get("environment", {})
    lines = [
        f"# Decoding benchmark{' (quick)' if cfg['quick'] else ''}",
        "",
        environment_text(env)
        + f"Wall time {summary['wall_time_s']} s (process CPU time {summary['process_cpu_time_s']} s).",
        "",
        f"## Quality ({len(summary['samples'])} prompts, {cfg['max_new_tokens']} new tokens, batch "
        f"{cfg['batch_size']})",
        "",
        "| method | rep-2 | rep-3 | rep-4 | diversity | coherence | texts with a repeated 8-gram |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, q in summary["quality"].items():
        lines.append(
            f"| {name} | {q['rep-2']:.2f} | {q['rep-3']:.2f} | {q['rep-4']:.2f} | {q['diversity']:.4f} | "
            f"{q['coherence']:.4f} | {100 * q['loops']:.0f}% |"
        )
    for batch, block in summary["speed"].items():
        lines += ["", f"## Speed, {batch} (tokens/s, median of {max(block['runs'].values(), default=0)} runs)", ""]
        lines += ["| method | tokens/s |", "|---|---|"]
        lines += [f"| {name} | {value:.2f} |" for name, value in block["median_tokens_per_s"].items()]
        for key, value in block["ratio_of_medians"].items():
            paired = block["median_paired_ratio"].get(key)
            lines.append(f"\n{key}: {value:.3f} (ratio of medians), {paired:.3f} (median of paired ratios)")
    lines += ["", "## Targets (momentum decoding)", "", "| target | value | threshold | met |", "|---|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['value']} | {t['threshold']} | {'yes' if t['met'] else '**no**'} |"
        for t in summary["targets"]
    ]
    shown = [GREEDY, CONTRASTIVE, MOMENTUM]
    if all(name in summary["quality"] for name in shown):
        lines += ["", "## Examples (first prompt of three domains, first 60 words)", ""]
        lines += ["| prompt | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
        for domain in EXAMPLE_DOMAINS:
            sample = next((s for s in summary["samples"] if s["domain"] == domain), None)
            if sample is not None:
                cells = [short_text(sample["prompt"])] + [short_text(sample[name]) for name in shown]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(summary: dict[str, Any], out: Path) -> list[Path]:
    """Writes ``decoding[_quick].json/.md`` and ``decoding[_quick]_samples.jsonl``; returns their paths."""
    stem = "decoding_quick" if summary["config"]["quick"] else "decoding"
    return write_summary(summary, out, stem, render_markdown(summary))


def main(argv: Sequence[str] | None = None, loader: Callable[[], tuple[Any, Any]] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 prompts, 8 tokens: a smoke run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see docs)")
    parser.add_argument("--prompts", type=int, default=None, help="use only the first N prompts")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--speed-prompts", type=int, default=None)
    parser.add_argument("--model", default=None, help="model folder, .gguf file or Hub id (default: SmolLM2)")
    parser.add_argument(
        "--forward-costs", action="store_true", help="only time one cached forward pass for 1, 5, 8 and 40 tokens"
    )
    args = parser.parse_args(argv)
    cfg = quick_config() if args.quick else BenchConfig()
    for attr, value in (("num_prompts", args.prompts), ("max_new_tokens", args.max_new_tokens)):
        if value is not None:
            setattr(cfg, attr, value)
    if args.speed_prompts is not None:
        cfg.speed_prompts = args.speed_prompts
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        print(message, flush=True)

    start = time.perf_counter()
    model, tokenizer = load_model(loader, args.model)
    log(f"model loaded in {time.perf_counter() - start:.1f} s")
    if args.forward_costs:
        costs = {"environment": environment(args.threads), "forward_ms": forward_costs(model, tokenizer)}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "decoding_forward_costs.json").write_text(json.dumps(costs, indent=2) + "\n")
        print(json.dumps(costs, indent=2))
        return 0
    summary = run_benchmark(cfg, model, tokenizer, log=log)
    describe_run(summary, args.threads, args.model)
    for path in write_outputs(summary, args.out):
        log(f"wrote {path}")
    print(render_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
