"""The momentum penalty (our sampling form of momentum decoding): a sanity check on SmolLM2-135M, and its step cost.

Part ``quality``: the first ``--prompts`` (20) of our 104 prompts (``benchmarks/common/prompts``), each continued by
exactly ``--max-new-tokens`` (64) tokens (eos banned), sampled at temperature 0.8 and top-p 0.95 with torch seeded by
``--seed`` (+ the batch index), batches of ``--batch-size`` (10) left-padded prompts. Rows: plain sampling; the
momentum penalty at each ``--alphas`` on every token (what ships); the same penalty on the top-5 tokens by logit only
(the alternative not shipped, :class:`TopKPenalty`) at the same α; momentum decoding (the paper's greedy form, α 0.2,
k 5) for reference. Metrics (:mod:`inertia.metrics.text`): rep-2/3/4, diversity, coherence (all-MiniLM-L6-v2;
also its difference from plain sampling's, prompt by prompt, with the standard error of that mean), the share of texts with a repeated 8-word sequence, the share of sampled tokens of repetition level ≥ 3 (they
continue a trigram already in the text, prompt included), and, without sampling noise, the probability that the
sampler would draw a level-≥3 token, teacher-forced on plain sampling's texts (:func:`repeat_mass`): the same
histories and logits for every variant, so it compares every-token with top-5-only directly.

Part ``cost``: median ms of one steady-state processor call (V 49,152, α 0.2, N 5, 1 thread) after 1k, 8k and 32k
tokens of history, batch 1 and 8, for the penalty on every token (stateless and incremental) and on the top-5 only,
and the ms to build the incremental rows once. Histories are the Lee news corpus (:mod:`inertia.data.text_corpora`)
tokenised by SmolLM2's tokenizer, each row from another offset.

Usage::

    python -m benchmarks.decoding.momentum_penalty                 # both parts
    python -m benchmarks.decoding.momentum_penalty --part cost --quick

Writes ``momentum_penalty.md`` and ``.json`` (``--out``, default ``benchmarks/out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from benchmarks.common.prompt_sets import load_prompts
from benchmarks.common.text_generation import describe_run, environment_text, load_model
from inertia.core.decoding.momentum import leading_pad_mask, repetition_levels, resistance_penalty
from inertia.core.decoding.momentum_penalty import momentum_penalty_table
from inertia.core.decoding.ngram_index import NgramIndex
from inertia.core.decoding.penalty_index import IncrementalPenalty
from inertia.decoders import MomentumPenaltyLogitsProcessor, momentum_decode

__all__ = ["TopKPenalty", "cost_table", "main", "quality_rows", "repeat_mass", "repeat_share"]

SAMPLING = {"do_sample": True, "temperature": 0.8, "top_p": 0.95}


class TopKPenalty(LogitsProcessor):
    """The alternative we did not ship: α·R(l(v)) on the ``k`` best tokens by logit only, every other one unchanged."""

    def __init__(self, alpha: float, k: int, pad_token_id: int | None) -> None:
        self.table, self.k, self.pad_token_id = momentum_penalty_table(alpha), k, pad_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        top = scores.topk(self.k, dim=-1).indices
        ignore = None if self.pad_token_id is None else leading_pad_mask(input_ids, self.pad_token_id)
        levels = repetition_levels(input_ids, top, len(self.table) - 1, ignore)
        return scores.scatter(1, top, scores.gather(1, top) - resistance_penalty(levels, self.table, scores.dtype))


def quality_rows(alphas: Sequence[float], pad_token_id: int | None) -> dict[str, dict[str, Any]]:
    """The ``generate`` keyword arguments of every row, by row name."""
    rows: dict[str, dict[str, Any]] = {"sampling (T 0.8, top-p 0.95)": dict(SAMPLING)}
    for alpha in alphas:
        every = MomentumPenaltyLogitsProcessor(alpha=alpha, pad_token_id=pad_token_id)
        rows[f"+ momentum penalty α {alpha}, every token"] = {**SAMPLING, "logits_processor": [every]}
    for alpha in alphas:
        top5 = TopKPenalty(alpha, 5, pad_token_id)
        rows[f"+ momentum penalty α {alpha}, top-5 only"] = {**SAMPLING, "logits_processor": [top5]}
    rows["momentum decoding (greedy, α 0.2, k 5)"] = {"do_sample": False, "custom_generate": momentum_decode}
    return rows


def repeat_share(prompt_ids: list[list[int]], continuations: list[list[int]], level: int = 3) -> float:
    """Share of generated tokens whose repetition level (eq. (1), N 5) was ≥ ``level`` when they were drawn."""
    hits = total = 0
    for prompt, new in zip(prompt_ids, continuations, strict=True):
        index = NgramIndex(5)
        index.extend(prompt)
        for token in new:
            hits += index.levels([token])[0] >= level
            total += 1
            index.append(token)
    return hits / max(total, 1)


@torch.no_grad()
def repeat_mass(
    model: Any,
    prompt_ids: list[list[int]],
    continuations: list[list[int]],
    processors: dict[str, Any],
    level: int = 3,
) -> dict[str, float]:
    """Teacher-forced on fixed texts (the plain-sampling row's): at every step, the probability that sampling at
    temperature 0.8 and top-p 0.95 draws a token of repetition level ≥ ``level``, after each processor (``None``:
    none), averaged over the steps. No sampling noise: the same histories and logits for every processor."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    from inertia.core.decoding.momentum_penalty import token_levels

    warpers = LogitsProcessorList([TemperatureLogitsWarper(0.8), TopPLogitsWarper(0.95)])
    sums = dict.fromkeys(processors, 0.0)
    steps = 0
    for prompt, new in zip(prompt_ids, continuations, strict=True):
        ids = torch.tensor([prompt + new])
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float()  # the logits that drew each new token
        for step in range(len(new)):
            history = ids[:, : len(prompt) + step]
            repeats = token_levels(history, logits.shape[-1], 5)[0] >= level
            for name, processor in processors.items():
                scores = logits[step : step + 1]
                if processor is not None:
                    scores = processor(history, scores)
                probs = torch.softmax(warpers(history, scores), dim=-1)[0]
                sums[name] += float(probs[repeats].sum())
            steps += 1
    return {name: total / max(steps, 1) for name, total in sums.items()}


@torch.no_grad()
def _generate(
    model: Any, tokenizer: Any, prompts: list[str], kwargs: dict[str, Any], new: int, seed: int
) -> tuple[list[str], list[list[int]], list[list[int]], float]:
    """Exactly ``new`` tokens per prompt (left-padded batch, torch seeded with ``seed``): the continuations as text
    and as the sampled ids, the prompts' ids (padding removed) and the seconds ``generate`` took."""
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(seed)
    start = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=new, min_new_tokens=new, **kwargs)
    seconds = time.perf_counter() - start
    width = inputs["input_ids"].shape[1]
    texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    prompt_ids = [row[mask.bool()].tolist() for row, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
    return texts, out[:, width:].tolist(), prompt_ids, seconds


def run_quality(model: Any, tokenizer: Any, args: argparse.Namespace, log: Any) -> dict[str, dict[str, float]]:
    from inertia.metrics.text import CoherenceScorer, loop_rate, repetition_stats

    prompts = [row["prompt"] for row in load_prompts(limit=args.prompts)]
    rows = quality_rows(args.alphas, tokenizer.pad_token_id)
    scorer = CoherenceScorer()
    results: dict[str, dict[str, float]] = {}
    reference: list[float] | None = None  # the first row's per-prompt coherence
    reference_ids: tuple[list[list[int]], list[list[int]]] | None = None  # the first row's prompts and continuations
    for name, spec in rows.items():
        kwargs = dict(spec)
        if "logits_processor" in kwargs:
            kwargs["logits_processor"] = LogitsProcessorList(kwargs["logits_processor"])
        texts: list[str] = []
        new_ids: list[list[int]] = []
        prompt_ids: list[list[int]] = []
        seconds = 0.0
        for index in range(0, len(prompts), args.batch_size):
            batch = prompts[index : index + args.batch_size]
            seed = args.seed + index // args.batch_size
            out, ids, given, took = _generate(model, tokenizer, batch, kwargs, args.max_new_tokens, seed)
            texts, new_ids, prompt_ids, seconds = texts + out, new_ids + ids, prompt_ids + given, seconds + took
        stats = repetition_stats(texts)
        per_prompt = scorer.score(prompts, texts)
        stats["coherence"] = round(statistics.fmean(per_prompt), 4)
        if reference is None:
            reference = per_prompt
        gaps = [mine - theirs for mine, theirs in zip(per_prompt, reference, strict=True)]
        stats["coherence_gap"] = round(statistics.fmean(gaps), 4)  # paired with the first row, prompt by prompt
        stats["coherence_gap_se"] = round(statistics.stdev(gaps) / len(gaps) ** 0.5, 4) if len(gaps) > 1 else 0.0
        stats["loops"] = round(loop_rate(texts, 8), 4)
        stats["repeat_l3"] = round(repeat_share(prompt_ids, new_ids), 4)
        stats["tokens_per_s"] = round(len(prompts) * args.max_new_tokens / seconds, 1)
        results[name] = stats
        log(f"{name:45s} {stats}")
        if reference_ids is None:
            reference_ids = (prompt_ids, new_ids)
    assert reference_ids is not None
    variants: dict[str, Any] = {"sampling (T 0.8, top-p 0.95)": None}
    for alpha in args.alphas:
        variants[f"+ momentum penalty α {alpha}, every token"] = MomentumPenaltyLogitsProcessor(
            alpha, incremental=False
        )
        variants[f"+ momentum penalty α {alpha}, top-5 only"] = TopKPenalty(alpha, 5, None)
    for name, mass in repeat_mass(model, *reference_ids, variants).items():
        results[name]["repeat_mass_l3"] = round(mass, 5)
        log(f"{name:45s} P(level >= 3) on the plain texts: {mass:.4%}")
    return results


def _histories(tokenizer: Any, batch: int, length: int) -> torch.Tensor:
    from inertia.data.text_corpora import lee_background

    ids = tokenizer("\n".join(lee_background()))["input_ids"]
    rows = []
    for row in range(batch):  # another offset per row, wrapping around the corpus
        start = (row * 9973) % len(ids)
        rows.append([ids[(start + i) % len(ids)] for i in range(length)])
    return torch.tensor(rows)


def _step_ms(processor: Any, ids: torch.Tensor, extra: torch.Tensor, vocab: int, steps: int) -> float:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(ids.shape[0], vocab, generator=generator)
    processor(ids, scores)  # the incremental path builds its rows here
    times = []
    for step in range(steps):
        ids = torch.cat([ids, extra[:, step : step + 1]], dim=1)
        start = time.perf_counter()
        processor(ids, scores)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def cost_table(tokenizer: Any, histories: Sequence[int], batches: Sequence[int], steps: int, vocab: int) -> str:
    """Markdown table of ms per steady-state step: every token (stateless, incremental), top-5 only; build ms."""
    lines = [
        "| batch | history tokens | every token, stateless ms/step | every token, incremental ms/step | "
        "top-5 only, stateless ms/step | incremental build ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for batch in batches:
        for history in histories:
            ids = _histories(tokenizer, batch, history + steps)
            ids, extra = ids[:, :history], ids[:, history:]
            stateless = MomentumPenaltyLogitsProcessor(alpha=0.2, incremental=False)
            incremental = MomentumPenaltyLogitsProcessor(alpha=0.2, incremental=True)
            top5 = TopKPenalty(0.2, 5, None)
            before = _step_ms(stateless, ids, extra, vocab, steps)
            after = _step_ms(incremental, ids, extra, vocab, steps)
            alternative = _step_ms(top5, ids, extra, vocab, steps)
            start = time.perf_counter()
            IncrementalPenalty(momentum_penalty_table(0.2))(ids, torch.zeros(batch, vocab))
            build = (time.perf_counter() - start) * 1e3
            lines.append(f"| {batch} | {history:,} | {before:.2f} | {after:.2f} | {alternative:.2f} | {build:.0f} |")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def quality_markdown(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| row | rep-2 % | rep-3 % | rep-4 % | diversity | coherence | vs sampling, paired (± s.e.) | "
        "texts with a repeated 8-gram | tokens of level ≥ 3 | P(level ≥ 3) on plain sampling's texts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in results.items():
        lines.append(
            f"| {name} | {s['rep-2']:.2f} | {s['rep-3']:.2f} | {s['rep-4']:.2f} | {s['diversity']:.3f} | "
            f"{s['coherence']:.3f} | {s['coherence_gap']:+.3f} ± {s['coherence_gap_se']:.3f} | {s['loops']:.0%} | "
            f"{s['repeat_l3']:.1%} | {_percent(s.get('repeat_mass_l3'))} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decoding.momentum_penalty", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--part", choices=("quality", "cost", "both"), default="both", help="what to run")
    parser.add_argument("--prompts", type=int, default=20, help="prompts of our set, >= 1 (at most 104)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="new tokens per prompt, >= 1")
    parser.add_argument("--batch-size", type=int, default=10, help="prompts per generate call, >= 1")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the first batch (later ones: +1 each)")
    parser.add_argument(
        "--alphas", type=lambda text: tuple(float(x) for x in text.split(",")), default=(0.2, 1.0), help="α values"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per cost cell (median), >= 1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, >= 1")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    args = parser.parse_args(argv)
    for name in ("prompts", "max_new_tokens", "batch_size", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if any(alpha < 0 for alpha in args.alphas):
        parser.error(f"--alphas must be >= 0, got {args.alphas}")
    histories, batches = (1024, 8192, 32768), (1, 8)
    if args.quick:
        args.prompts, args.max_new_tokens, args.steps, histories, batches = 4, 8, 3, (256, 1024), (1, 2)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model, tokenizer = load_model(None, None)
    summary: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "out"}}
    describe_run(summary, args.threads, None)
    text = f"# The momentum penalty on SmolLM2-135M\n\n{environment_text(summary['environment'])}\n\n"
    if args.part in ("quality", "both"):
        summary["quality"] = run_quality(model, tokenizer, args, print)
        text += f"## Quality ({args.prompts} prompts x {args.max_new_tokens} tokens, seed {args.seed})\n\n"
        text += quality_markdown(summary["quality"]) + "\n\n"
    if args.part in ("cost", "both"):
        table = cost_table(tokenizer, histories, batches, args.steps, len(tokenizer))
        summary["cost"] = table
        text += f"## Cost per step (V {len(tokenizer):,}, {args.threads} thread(s))\n\n{table}\n\n"
    summary["seconds"] = round(time.perf_counter() - started, 1)
    text += f"({summary['seconds']:.0f} s)\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "momentum_penalty.md").write_text(text, encoding="utf-8")
    (args.out / "momentum_penalty.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
