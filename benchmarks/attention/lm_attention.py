"""Dai et al.'s momentum attention on the embedded SmolLM2-135M, training-free: perplexity and decode cost.

- **Perplexity** on held-out news text (the last ``--articles`` of the 300 articles of gensim's Lee corpus,
  :mod:`inertia.data.text_corpora`, each cut to ``--tokens`` tokens) for every (η, λ) of the grid against plain SDPA, with
  paired per-article differences of the mean negative log-likelihood: the ratio of perplexities and a 95% confidence
  interval of it (normal approximation over articles).
- **In-context accuracy** (the paper's other claim), bias-calibrated: ``--shots``-shot prompts on two tasks built
  from the same offline text, sentiment of gensim's 200 labelled movie-review sentences (Pang and Lee) and the
  source of a sentence (a news article of the Lee corpus or a movie review). Each label's log-probability is scored
  after the prompt; the mean log-probability of each label over all test prompts is subtracted before the argmax
  (contextual calibration in the spirit of Zhao et al. 2021, arXiv 2102.09690), so a shift of the model's label bias
  is not counted as accuracy. Accuracy differences against SDPA are paired per example, with a 95% interval.
- **Cost**: time per decoded token at batch 1 after a ``--context``-token prompt (median over ``--decode-tokens``
  steps), and the prefill time of that prompt, SDPA vs momentum attention, interleaved in one run.

Usage::

    python -m benchmarks.attention.lm_attention [--articles 100] [--tokens 256] [--context 1024] [--quick]

Writes ``lm_attention.md`` and ``lm_attention.json`` to ``--out`` (default ``benchmarks/out``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

GRID: tuple[tuple[float, float], ...] = (
    (0.05, 1.0),
    (0.2, 1.0),
    (0.05, 0.1),
    (0.2, 0.1),
    (0.5, 0.1),
    (0.5, 0.01),
)
"""(η, λ) settings compared with plain attention: the paper's form (λ = 1) and scaled-down terms."""


def article_nll(model: Any, tokenizer: Any, texts: Sequence[str], tokens: int) -> list[float]:
    """Mean next-token negative log-likelihood of each text (its first ``tokens`` tokens), one forward each."""
    out = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :tokens].to(model.device)
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].float()
        out.append(float(torch.nn.functional.cross_entropy(logits, ids[0, 1:])))
    return out


def paired(base: list[float], other: list[float]) -> dict[str, float]:
    """Perplexity ratio exp(mean Δ) with a 95% interval from the paired per-article differences Δ of the NLL."""
    diffs = [o - b for b, o in zip(base, other, strict=True)]
    mean = statistics.mean(diffs)
    half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return {
        "ppl": math.exp(statistics.mean(other)),
        "ratio": math.exp(mean),
        "ratio_low": math.exp(mean - half),
        "ratio_high": math.exp(mean + half),
        "worse_articles": sum(d > 0 for d in diffs),
    }


FEWSHOT_SETTINGS: tuple[tuple[float, float], ...] = ((0.05, 1.0), (0.05, 0.1), (0.2, 0.1))
"""(η, λ) settings of the in-context accuracy comparison (plain attention is the reference)."""


def _review_style(sentence: str) -> str:
    """A news sentence written like the review sentences (lower case, spaced punctuation): style is no clue."""
    import re

    spaced = re.sub(r"([,.;:!?()])", r" \1 ", sentence.strip().rstrip(".").lower())
    return " ".join(spaced.split()) + " . "


def fewshot_tasks(shots: int, test_size: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Two labelled tasks: demonstrations (``shots`` per task, balanced) and test examples, from offline text."""
    import random

    from inertia.data.text_corpora import lee_background, pang_lee_polarity

    rng = random.Random(seed)
    reviews = pang_lee_polarity()
    news = [_review_style(s) for a in lee_background()[:200] for s in a.split(". ") if 8 <= len(s.split()) <= 30]
    sentiment = [(text, label) for text, label in reviews]
    source = [(text, "review") for text, _ in reviews] + [(text, "news") for text in rng.sample(news, len(reviews))]
    tasks = {}
    for name, examples, template, labels in (
        ("sentiment", sentiment, "Review: {x}\nSentiment:", ("positive", "negative")),
        ("source", source, "Sentence: {x}\nSource:", ("news", "review")),
    ):
        examples = examples[:]
        rng.shuffle(examples)
        demos, rest = [], []
        for example in examples:
            wanted = labels[len(demos) % 2]
            if len(demos) < shots and example[1] == wanted:
                demos.append(example)
            else:
                rest.append(example)
        prefix = "".join(template.format(x=x) + f" {y}\n\n" for x, y in demos)
        tests = rest[:test_size]
        tasks[name] = {"labels": labels, "prompts": [prefix + template.format(x=x) for x, _ in tests],
                       "answers": [labels.index(y) for _, y in tests]}  # fmt: skip
    return tasks


def label_logprobs(model: Any, tokenizer: Any, prompts: Sequence[str], labels: Sequence[str]) -> torch.Tensor:
    """``[N, L]`` log-probability of each label's first token after each prompt."""
    label_ids = [tokenizer(" " + label, add_special_tokens=False)["input_ids"][0] for label in labels]
    rows = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
        with torch.no_grad():
            logits = model(ids, logits_to_keep=1).logits[0, -1].float()
        rows.append(torch.log_softmax(logits, dim=-1)[label_ids])
    return torch.stack(rows)


def calibrated_correct(logprobs: torch.Tensor, answers: Sequence[int]) -> list[int]:
    """1/0 per example after removing each label's mean log-probability (the model's label bias)."""
    calibrated = logprobs - logprobs.mean(dim=0, keepdim=True)
    return [int(p == a) for p, a in zip(calibrated.argmax(dim=-1).tolist(), answers, strict=True)]


def paired_accuracy(base: list[int], other: list[int]) -> dict[str, float]:
    """Accuracy of ``other``, its difference from ``base`` and a 95% interval of that difference (paired)."""
    diffs = [o - b for b, o in zip(base, other, strict=True)]
    mean = statistics.mean(diffs)
    half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return {"accuracy": statistics.mean(other), "diff": mean, "diff_low": mean - half, "diff_high": mean + half,
            "won": sum(d > 0 for d in diffs), "lost": sum(d < 0 for d in diffs)}  # fmt: skip


def decode_cost(model: Any, tokenizer: Any, text: str, context: int, steps: int) -> dict[str, float]:
    """Prefill seconds for ``context`` tokens and the median seconds of one cached decode step at batch 1."""
    from transformers import DynamicCache

    from inertia.adapters.transformers.generate_checks import cache_argument

    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    ids = ids.repeat(1, context // ids.shape[1] + 1)[:, :context].to(model.device)
    name = cache_argument(model)
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        start = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, **{name: cache})
        prefill = time.perf_counter() - start
        token = out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            out = model(input_ids=token, use_cache=True, logits_to_keep=1, **{name: cache})
            times.append(time.perf_counter() - start)
            token = out.logits[:, -1:].argmax(-1)
    return {"prefill_s": prefill, "decode_step_s": statistics.median(times)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of the benchmark (see the module docstring)."""
    from inertia.adapters.transformers.attention_interface import (
        disable_lm_momentum_attention,
        enable_lm_momentum_attention,
    )
    from inertia.data.text_corpora import lee_background
    from inertia.pipelines.text import load_text_model

    torch.set_num_threads(args.threads)
    model, tokenizer = load_text_model(device="cpu")
    held_out = lee_background()[-args.articles :]
    results: dict[str, Any] = {
        "articles": len(held_out),
        "tokens": args.tokens,
        "threads": args.threads,
        "shots": args.shots,
    }
    results["grid"] = []
    base = article_nll(model, tokenizer, held_out, args.tokens) if "perplexity" in args.parts else [0.0]
    results["sdpa_ppl"] = math.exp(statistics.mean(base))
    for eta, scale in GRID[: 2 if args.quick else None] if "perplexity" in args.parts else ():
        enable_lm_momentum_attention(model, eta=eta, scale=scale)
        results["grid"].append(
            {"eta": eta, "scale": scale, **paired(base, article_nll(model, tokenizer, held_out, args.tokens))}
        )
        disable_lm_momentum_attention(model)
    results["fewshot"] = {}
    tasks = fewshot_tasks(args.shots, args.fewshot_examples) if "fewshot" in args.parts else {}
    for task, spec in tasks.items():
        base = calibrated_correct(label_logprobs(model, tokenizer, spec["prompts"], spec["labels"]), spec["answers"])
        rows = []
        for eta, scale in FEWSHOT_SETTINGS[: 1 if args.quick else None]:
            enable_lm_momentum_attention(model, eta=eta, scale=scale)
            logprobs = label_logprobs(model, tokenizer, spec["prompts"], spec["labels"])
            disable_lm_momentum_attention(model)
            rows.append(
                {"eta": eta, "scale": scale, **paired_accuracy(base, calibrated_correct(logprobs, spec["answers"]))}
            )
        results["fewshot"][task] = {"examples": len(base), "sdpa_accuracy": statistics.mean(base), "settings": rows}
    results["cost"] = None
    if "cost" in args.parts:
        costs: dict[str, list[dict[str, float]]] = {"sdpa": [], "momentum": []}
        for _ in range(args.cost_repeats):  # interleaved, so machine noise hits both alike
            for name in costs:
                if name == "momentum":
                    enable_lm_momentum_attention(model, eta=0.05, scale=0.1)
                costs[name].append(decode_cost(model, tokenizer, held_out[0], args.context, args.decode_tokens))
                disable_lm_momentum_attention(model)
        results["cost"] = {
            name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in costs.items()
        }
    results["context"] = args.context
    return results


def report(results: dict[str, Any]) -> str:
    """The Markdown tables of ``lm_attention.md``."""
    lines = (
        []
        if not results["grid"]
        else [
            f"Held-out Lee news articles: {results['articles']}, first {results['tokens']} tokens each; plain SDPA "
            f"perplexity {results['sdpa_ppl']:.2f}. Ratio = perplexity / SDPA's, 95% interval from paired per-article "
            "differences.",
            "",
            "| η | λ | perplexity | ratio | 95% interval | articles worse |",
            "|---:|---:|---:|---:|---|---:|",
        ]
    )
    for r in results["grid"]:
        lines.append(
            f"| {r['eta']} | {r['scale']} | {r['ppl']:.2f} | {r['ratio']:.4f} | "
            f"{r['ratio_low']:.4f}-{r['ratio_high']:.4f} | {r['worse_articles']}/{results['articles']} |"
        )
    for task, r in results.get("fewshot", {}).items():
        lines += [
            "",
            f"{task}: {r['examples']} test prompts, {results['shots']}-shot, bias-calibrated accuracy; SDPA "
            f"{r['sdpa_accuracy']:.3f}. Difference = accuracy − SDPA's, paired per prompt.",
            "",
            "| η | λ | accuracy | difference | 95% interval | won / lost |",
            "|---:|---:|---:|---:|---|---|",
        ]
        for row in r["settings"]:
            lines.append(
                f"| {row['eta']} | {row['scale']} | {row['accuracy']:.3f} | {row['diff']:+.3f} | "
                f"{row['diff_low']:+.3f} to {row['diff_high']:+.3f} | {row['won']} / {row['lost']} |"
            )
    cost = results["cost"]
    if cost is None:
        return "\n".join(lines) + "\n"
    decode = cost["momentum"]["decode_step_s"] / cost["sdpa"]["decode_step_s"]
    prefill = cost["momentum"]["prefill_s"] / cost["sdpa"]["prefill_s"]
    lines += [
        "",
        f"| batch 1, {results['context']}-token context, {results['threads']} thread(s) | SDPA | momentum (η 0.05) | "
        "ratio |",
        "|---|---:|---:|---:|",
        f"| decode step, ms (median) | {1000 * cost['sdpa']['decode_step_s']:.1f} | "
        f"{1000 * cost['momentum']['decode_step_s']:.1f} | {decode:.3f} |",
        f"| prefill, s | {cost['sdpa']['prefill_s']:.2f} | {cost['momentum']['prefill_s']:.2f} | {prefill:.3f} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100, help="held-out articles (the last N of 300)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per article")
    parser.add_argument("--context", type=int, default=1024, help="prompt length for the cost figures")
    parser.add_argument("--decode-tokens", type=int, default=32, help="timed decode steps per cost run")
    parser.add_argument("--cost-repeats", type=int, default=3, help="interleaved cost runs per implementation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shots", type=int, default=4, help="demonstrations per few-shot prompt")
    parser.add_argument("--fewshot-examples", type=int, default=180, help="test prompts per task")
    parser.add_argument("--quick", action="store_true", help="5 articles of 64 tokens, 2 settings, 256 context")
    parser.add_argument(
        "--parts", default="perplexity,fewshot,cost", help="comma-separated subset of perplexity,fewshot,cost"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    args.parts = set(args.parts.split(","))
    if not args.parts or not args.parts <= {"perplexity", "fewshot", "cost"}:
        parser.error(f"--parts takes names from perplexity, fewshot, cost; got {sorted(args.parts)}")
    if not 2 <= args.articles <= 300 or args.tokens < 8 or args.context < 8 or args.decode_tokens < 1:
        parser.error("--articles must be in [2, 300], --tokens and --context >= 8, --decode-tokens >= 1")
    if args.cost_repeats < 1 or args.threads < 1 or args.shots < 0 or args.fewshot_examples < 2:
        parser.error("--cost-repeats and --threads must be >= 1, --shots >= 0, --fewshot-examples >= 2")
    if args.quick:
        args.articles, args.tokens, args.context, args.decode_tokens, args.cost_repeats = 5, 64, 256, 4, 1
        args.fewshot_examples = 8
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lm_attention.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    (args.out / "lm_attention.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
