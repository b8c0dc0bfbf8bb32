"""The human reference of the decoding-vs-peers benchmark: news prompts with their true continuations, and MAUVE.

* :func:`lee_items` cuts the articles of gensim's ``lee_background.cor`` (read offline from the gensim wheel, see
  :mod:`inertia.data.text_corpora`) into a prompt and the article's own next tokens;
  :func:`split_lee` keeps every fifth usable article apart for tuning.
* :func:`mauve_table` scores generated continuations against the human ones with MAUVE (Pillutla et al., *MAUVE:
  Measuring the Gap Between Neural Text and Human Text using Divergence Frontiers*, NeurIPS 2021; the ``mauve-text``
  package) on features we pass in (``p_features``/``q_features``: all-MiniLM-L6-v2 embeddings in the benchmark, never
  the package's GPT-2 featuriser, which would download from the hub), with a spread over k-means seeds and a paired
  bootstrap over prompts, so that a difference between two rows can be judged.

Example:
    >>> mauve_settings(96)["num_buckets"]   # MAUVE's own n/10 heuristic, fixed so every row uses the same
    10
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["lee_items", "mauve_score", "mauve_settings", "mauve_table", "split_lee"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def lee_items(
    tokenizer: Any, articles: Sequence[str], prompt_tokens: int, min_prompt_tokens: int, continuation_tokens: int
) -> list[dict[str, Any]]:
    """Every usable article as ``{"index", "prompt", "human"}``.

    The prompt ends after the article's last whole sentence within the first ``prompt_tokens`` tokens (if that leaves
    at least ``min_prompt_tokens``; else it is the first ``prompt_tokens`` tokens); ``human`` is the article's next
    ``continuation_tokens`` tokens, decoded. Articles too short for both are skipped.
    """
    items = []
    for index, article in enumerate(articles):
        text = " ".join(article.split())
        cut = None
        for match in _SENTENCE_END.finditer(text):
            size = len(tokenizer(text[: match.start()], add_special_tokens=False)["input_ids"])
            if size > prompt_tokens:
                break
            if size >= min_prompt_tokens:
                cut = match.start()
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if cut is None:  # no sentence end in range: cut after prompt_tokens tokens
            prompt = tokenizer.decode(ids[:prompt_tokens])
            rest = ids[prompt_tokens:]
        else:
            prompt = text[:cut]
            rest = tokenizer(text[cut:], add_special_tokens=False)["input_ids"]
        if len(rest) >= continuation_tokens and prompt.strip():
            items.append({"index": index, "prompt": prompt, "human": tokenizer.decode(rest[:continuation_tokens])})
    return items


def split_lee(items: list[dict[str, Any]], limit: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(reported, tuning): every fifth usable article is a tuning article; the reported ones are capped at limit."""
    tuning = items[4::5]
    reported = [item for i, item in enumerate(items) if i % 5 != 4]
    return (reported if limit is None else reported[:limit]), tuning


def mauve_settings(n: int) -> dict[str, Any]:
    """The ``compute_mauve`` settings used for ``n`` pairs (``num_buckets`` = n/10, MAUVE's heuristic, fixed)."""
    return {
        "num_buckets": max(2, round(n / 10)),
        "mauve_scaling_factor": 5,
        "kmeans_num_redo": 5,
        "kmeans_max_iter": 500,
        "kmeans_explained_var": 0.9,
    }


def mauve_score(human: np.ndarray, generated: np.ndarray, seed: int) -> float:
    """MAUVE of generated vs human features (same rows = same prompts)."""
    import mauve

    settings = mauve_settings(len(human))
    return float(mauve.compute_mauve(p_features=human, q_features=generated, seed=seed, **settings).mauve)


def mauve_table(
    human: np.ndarray,
    features: dict[str, np.ndarray],
    seeds: int,
    bootstrap: int,
    compare: Sequence[str],
    exclude: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """MAUVE of every row against the human continuations, with its spread.

    Args:
        human: ``[n, d]`` features of the human continuations.
        features: row name -> ``[n, d]`` features of its continuations (row i continues the same prompt).
        seeds: k-means seeds 1..seeds; the row's figure is their median (min and max kept).
        bootstrap: paired resamples of the n prompts (the same for every row), scored at MAUVE's default seed 25.
        compare: rows whose bootstrap wins against every other row (except ``exclude``) are counted.
        exclude: rows left out of the comparisons (the stochastic reference).
        seed: seed of the resampling.

    Returns:
        ``{"settings", "rows": {name: {"mauve", "seed_min", "seed_max", "bootstrap_5", "bootstrap_95"}}, "wins":
        {name: {other: share of resamples where name's MAUVE is higher}}}``.
    """
    out: dict[str, Any] = {"settings": {**mauve_settings(len(human)), "seeds": seeds, "bootstrap": bootstrap}}
    rows = {}
    rng = np.random.default_rng(seed)
    resamples = [rng.integers(0, len(human), len(human)) for _ in range(bootstrap)]
    boot: dict[str, list[float]] = {}
    for name, feats in features.items():
        by_seed = [mauve_score(human, feats, seed) for seed in range(1, seeds + 1)]
        boot[name] = [mauve_score(human[idx], feats[idx], 25) for idx in resamples]
        rows[name] = {
            "mauve": round(statistics.median(by_seed), 4),
            "seed_min": round(min(by_seed), 4),
            "seed_max": round(max(by_seed), 4),
            "bootstrap_5": round(float(np.percentile(boot[name], 5)), 4) if boot[name] else None,
            "bootstrap_95": round(float(np.percentile(boot[name], 95)), 4) if boot[name] else None,
        }
    out["rows"] = rows
    out["wins"] = {
        name: {
            other: round(float(np.mean([a > b for a, b in zip(boot[name], boot[other])])), 3)
            for other in features
            if other != name and other not in exclude
        }
        for name in compare
        if name in features and boot[name]
    }
    return out
