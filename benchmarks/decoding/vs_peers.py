"""Momentum decoding against the decoding methods users run instead, on SmolLM2-135M, offline.

Rows: greedy; greedy + ``repetition_penalty`` 1.2; greedy + ``no_repeat_ngram_size`` 3; DRY over greedy (multiplier
0.8, base 1.75, allowed length 2, breakers newline ``:`` ``"`` ``*``; :class:`benchmarks.peers.decoding.
DRYLogitsProcessor`); contrastive search (α 0.6, k 5); momentum decoding at our defaults (α 0.2, k 5), at α 0.4 (the setting the
``--tune`` table pointed to) and, where :data:`TUNED_MOMENTUM` is set, at the setting ``--tune`` picked on separate articles; nucleus sampling (p 0.95, seeded)
as the stochastic reference.

Two prompt sets, each continued by exactly ``--max-new-tokens`` tokens (eos banned with ``min_new_tokens``):

* **(a) news**: gensim's ``lee_background.cor`` (300 Australian news articles, read from the gensim wheel; see
  :mod:`inertia.data.text_corpora`). Each article is cut after its last whole sentence within the first
  ``prompt_tokens`` (48) SmolLM2 tokens (at least 16; else after 48 tokens); the article's next ``max_new_tokens``
  tokens are the human continuation. Articles too short for both are skipped; every fifth usable article is kept
  for ``--tune`` and never reported.
* **(b) our prompts**: the 104 prefixes of ``benchmarks/common/prompts/decoding_prompts.jsonl`` (no human continuation).

Metrics (:mod:`inertia.metrics.text`): rep-2/3/4, diversity, coherence (all-MiniLM-L6-v2 cosine of prompt and
continuation), the share of texts with a repeated 8-word sequence, tokens per second (all batches of a method, in
an order rotated per batch), and on set (a) MAUVE (Pillutla et al. 2021, ``mauve-text``) between the human and the
generated continuations: features are the mean-pooled all-MiniLM-L6-v2 embeddings of the continuations alone
(passed as ``p_features``/``q_features``; never GPT-2 features), ``num_buckets`` = n/10 (MAUVE's own heuristic, fixed
here), scaling 5, k-means with 5 restarts; the figure is the median over ``--seeds`` k-means seeds (their min-max
shown), and a paired bootstrap over prompts (``--bootstrap`` resamples, the same resample for every method) gives a
5-95% interval and, for momentum decoding against each peer, the share of resamples where momentum is ahead.

Usage::

    python -m benchmarks.decoding.vs_peers [--quick] [--threads 1] [--out benchmarks/out]
    python -m benchmarks.decoding.vs_peers --tune      # momentum settings on the held-out tuning articles

Writes ``peers_decoding.json``, ``.md`` and ``_samples.jsonl`` (``peers_decoding_quick.*``, ``peers_decoding_tune.*``).
The rows and sizes are :mod:`benchmarks.decoding.vs_peers_grid`, the tables :mod:`benchmarks.decoding.vs_peers_report`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.prompt_sets import load_prompts
from benchmarks.common.text_generation import (
    describe_run,
    environment,
    generate_exactly,
    load_model,
    resolve_custom_generate,
)
from benchmarks.decoding.human_reference import lee_items, mauve_score, mauve_table, split_lee
from benchmarks.decoding.vs_peers_grid import (
    GREEDY,
    HUMAN,
    METHODS,
    NUCLEUS,
    TUNE_GRID,
    PeersConfig,
    methods,
    momentum_row_name,
    quick_config,
)
from benchmarks.decoding.vs_peers_report import (
    evaluate_targets,
    render_markdown,
    render_tuning,
    winners,
    write_outputs,
)

_DRY_BREAKERS: dict[int, list[int]] = {}


def generate_kwargs(spec: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """``generate`` keyword arguments of a row: the inertia functions and the DRY processor resolved."""
    from transformers import LogitsProcessorList

    from benchmarks.peers.decoding import DRYLogitsProcessor, sequence_breaker_ids

    kwargs = resolve_custom_generate(spec)
    dry = kwargs.pop("dry", None)
    if dry is not None:
        if id(tokenizer) not in _DRY_BREAKERS:
            _DRY_BREAKERS[id(tokenizer)] = sequence_breaker_ids(tokenizer)
        processor = DRYLogitsProcessor(
            **dry, sequence_breakers=_DRY_BREAKERS[id(tokenizer)], pad_token_id=tokenizer.pad_token_id
        )
        kwargs["logits_processor"] = LogitsProcessorList([processor])
    return kwargs


def generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], spec: dict[str, Any], max_new_tokens: int, seed: int
) -> tuple[list[str], float, int]:
    """Exactly ``max_new_tokens`` new tokens per prompt; returns (continuations, seconds, new tokens)."""
    return generate_exactly(model, tokenizer, prompts, generate_kwargs(spec, tokenizer), max_new_tokens, seed)


def run_set(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    rows: dict[str, dict[str, Any]],
    cfg: PeersConfig,
    seed: int,
    log: Callable[[str], None],
    label: str,
) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
    """Every row on every prompt, batch by batch, rows in an order rotated per batch; texts and (tokens, s)."""
    texts: dict[str, list[str]] = {name: [] for name in rows}
    cost: dict[str, list[float]] = {name: [0.0, 0.0] for name in rows}
    batches = [prompts[i : i + cfg.batch_size] for i in range(0, len(prompts), cfg.batch_size)]
    names = list(rows)
    for index, batch in enumerate(batches):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            out, seconds, tokens = generate(model, tokenizer, batch, rows[name], cfg.max_new_tokens, seed + index)
            texts[name].extend(out)
            cost[name][0] += tokens
            cost[name][1] += seconds
            log(f"  {label} batch {index + 1}/{len(batches)} {name:30s} {tokens / seconds:7.1f} tok/s")
    return texts, cost


def text_metrics(scorer: Any, prompts: list[str], texts: list[str]) -> dict[str, float]:
    from inertia.metrics.text import loop_rate, repetition_stats

    stats = repetition_stats(texts)
    stats["coherence"] = round(scorer.mean(prompts, texts), 4)
    stats["loops"] = round(loop_rate(texts, 8), 4)
    return stats


def run_benchmark(
    cfg: PeersConfig,
    model: Any,
    tokenizer: Any,
    articles: Sequence[str],
    scorer: Any = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Both prompt sets, every row; returns the summary (the texts under ``"samples"``)."""
    from inertia.metrics.text import CoherenceScorer

    rows = {name: spec for name, spec in methods().items() if name in cfg.methods}
    reported, _ = split_lee(
        lee_items(tokenizer, articles, cfg.prompt_tokens, cfg.min_prompt_tokens, cfg.max_new_tokens), cfg.lee_prompts
    )
    ours = [p["prompt"] for p in load_prompts(limit=cfg.prompts)]
    wall = time.perf_counter()
    for spec in rows.values():  # warm-up: first-call overheads (and the DRY breaker scan) untimed
        generate(model, tokenizer, [ours[0]], spec, 2, cfg.seed)
    log(f"news: {len(reported)} Lee prompts x {len(rows)} rows; ours: {len(ours)} prompts")
    news_prompts = [item["prompt"] for item in reported]
    news_texts, news_cost = run_set(model, tokenizer, news_prompts, rows, cfg, cfg.seed, log, "news")
    our_texts, our_cost = run_set(model, tokenizer, ours, rows, cfg, cfg.seed + 1000, log, "ours")
    generation_s = time.perf_counter() - wall
    scorer = scorer if scorer is not None else CoherenceScorer()
    human = [item["human"] for item in reported]
    news: dict[str, Any] = {"prompts": len(reported), "quality": {}, "tokens_per_s": {}}
    for name, texts in news_texts.items():
        news["quality"][name] = text_metrics(scorer, news_prompts, texts)
        news["tokens_per_s"][name] = round(news_cost[name][0] / news_cost[name][1], 2)
    news["quality"][HUMAN] = text_metrics(scorer, news_prompts, human)
    features = {name: scorer.embed(texts).numpy() for name, texts in news_texts.items()}
    start = time.perf_counter()
    compare = [name for name in rows if name.startswith("momentum")]
    news["mauve"] = mauve_table(
        scorer.embed(human).numpy(), features, cfg.seeds, cfg.bootstrap, compare, exclude=(NUCLEUS,), seed=cfg.seed
    )
    mauve_s = time.perf_counter() - start
    mine: dict[str, Any] = {"prompts": len(ours), "quality": {}, "tokens_per_s": {}}
    for name, texts in our_texts.items():
        mine["quality"][name] = text_metrics(scorer, ours, texts)
        mine["tokens_per_s"][name] = round(our_cost[name][0] / our_cost[name][1], 2)
    summary: dict[str, Any] = {
        "config": asdict(cfg),
        "sets": {"news": news, "ours": mine},
        "generation_s": round(generation_s, 1),
        "mauve_s": round(mauve_s, 1),
        "wall_time_s": round(time.perf_counter() - wall, 1),
    }
    summary["targets"] = evaluate_targets(summary)
    summary["winners"] = winners(summary)
    summary["samples"] = [
        {"set": "news", "article": item["index"], "prompt": item["prompt"], HUMAN: item["human"]}
        | {name: news_texts[name][i] for name in rows}
        for i, item in enumerate(reported)
    ] + [{"set": "ours", "prompt": p} | {name: our_texts[name][i] for name in rows} for i, p in enumerate(ours)]
    return summary


def run_tuning(
    cfg: PeersConfig,
    model: Any,
    tokenizer: Any,
    articles: Sequence[str],
    scorer: Any = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Greedy and every :data:`TUNE_GRID` setting on the tuning articles (never reported); the pick is the most
    diverse setting with coherence >= 0.95x greedy's (MAUVE is reported too, but at this size it does not separate
    the rows: see docs/benchmarks/decoding.md §10)."""
    from inertia.metrics.text import CoherenceScorer

    _, tuning = split_lee(
        lee_items(tokenizer, articles, cfg.prompt_tokens, cfg.min_prompt_tokens, cfg.max_new_tokens), None
    )
    tuning = tuning if cfg.lee_prompts is None else tuning[: cfg.lee_prompts]
    rows = {GREEDY: METHODS[GREEDY]} | {
        momentum_row_name(s): {"custom_generate": "momentum_decode", **s} for s in TUNE_GRID
    }
    prompts = [item["prompt"] for item in tuning]
    texts, _ = run_set(model, tokenizer, prompts, rows, cfg, cfg.seed, log, "tune")
    scorer = scorer if scorer is not None else CoherenceScorer()
    quality = {name: text_metrics(scorer, prompts, out) for name, out in texts.items()}
    human = scorer.embed([item["human"] for item in tuning]).numpy()
    for name, out in texts.items():
        feats = scorer.embed(out).numpy()
        quality[name]["mauve"] = round(
            statistics.median(mauve_score(human, feats, s) for s in range(1, cfg.seeds + 1)), 4
        )
    floor = 0.95 * quality[GREEDY]["coherence"]
    eligible = [s for s in TUNE_GRID if quality[momentum_row_name(s)]["coherence"] >= floor]
    pick = max(eligible, key=lambda s: quality[momentum_row_name(s)]["diversity"], default=None)
    return {"config": asdict(cfg), "prompts": len(tuning), "quality": quality, "pick": pick}


def main(
    argv: Sequence[str] | None = None,
    loader: Callable[[], tuple[Any, Any]] | None = None,
    articles: Sequence[str] | None = None,
    scorer: Any = None,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 + 6 prompts, 12 tokens: a smoke run")
    parser.add_argument("--tune", action="store_true", help="only try the momentum settings on the tuning articles")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--lee-prompts", type=int, default=None, help="reported news prompts")
    parser.add_argument("--prompts", type=int, default=None, help="use only the first N of our prompts")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None, help="MAUVE k-means seeds")
    parser.add_argument("--bootstrap", type=int, default=None, help="MAUVE bootstrap resamples")
    parser.add_argument("--model", default=None, help="model folder, .gguf file or Hub id (default: SmolLM2)")
    args = parser.parse_args(argv)
    cfg = quick_config() if args.quick else PeersConfig()
    overrides = {
        "lee_prompts": args.lee_prompts,
        "prompts": args.prompts,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "bootstrap": args.bootstrap,
    }
    for attr, value in overrides.items():
        if value is not None:
            if value < (0 if attr == "bootstrap" else 1):
                parser.error(f"--{attr.replace('_', '-')} must be >= {0 if attr == 'bootstrap' else 1}, got {value}")
            setattr(cfg, attr, value)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        pass

    def log(message: str) -> None:
        print(message, flush=True)

    start = time.perf_counter()
    model, tokenizer = load_model(loader, args.model)
    if articles is None:
        from inertia.data.text_corpora import lee_background

        articles = lee_background()
    log(f"model and corpus loaded in {time.perf_counter() - start:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tune:
        result = run_tuning(cfg, model, tokenizer, articles, scorer, log)
        result["environment"] = environment(args.threads)
        (args.out / "peers_decoding_tune.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "peers_decoding_tune.md").write_text(render_tuning(result))
        print(render_tuning(result))
        return 0
    summary = run_benchmark(cfg, model, tokenizer, articles, scorer, log)
    describe_run(summary, args.threads, args.model)
    for path in write_outputs(summary, args.out):
        log(f"wrote {path}")
    print(render_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
