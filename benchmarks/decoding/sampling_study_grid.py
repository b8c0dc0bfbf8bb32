"""What the sampling study (:mod:`benchmarks.decoding.sampling_study`) runs: its rows, the settings tuned on separate
articles, its seeds and sizes, all fixed here before any run.

Every sampling row runs on top of the same sampler chain, llama.cpp's defaults as ``llama-cli`` and
llama-cpp-python apply them (top-k 40, top-p 0.95, min-p 0.05, temperature 0.8), so a row differs from plain
sampling only by its anti-repetition part:

* the engine's own implementations, from llama.cpp's sampler chain: DRY (``llama_sampler_init_dry``: multiplier,
  base, allowed length, sequence breakers) and the repetition, presence and frequency penalties
  (``llama_sampler_init_penalties`` over the last 64 tokens, llama.cpp's default window);
* no-repeat-n-gram, which llama.cpp does not have: transformers' ``NoRepeatNGramLogitsProcessor`` on the logits;
* ours: the momentum penalty (our sampling form of momentum decoding, docs/methods/momentum-decoding.md) on the
  logits before the chain, and momentum decoding itself (the paper's greedy form, which does not sample: one run
  stands for every seed).

Seeds (stated before the run): the reported rows run with seeds 0, 1 and 2; the tuning runs with seed 100. Prompt i of
a run draws from llama.cpp's ``dist`` sampler seeded with ``1000 * seed + i``, the same for every row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DRY_BREAKERS",
    "DRY_TUNE_GRID",
    "PENALTY_TUNE_GRID",
    "REPORT_SEEDS",
    "ROWS",
    "SAMPLING",
    "TUNE_SEED",
    "Row",
    "StudyConfig",
    "quick_config",
    "tuned_rows",
]

SAMPLING: dict[str, float] = {"top_k": 40, "top_p": 0.95, "min_p": 0.05, "temperature": 0.8}
"""llama.cpp's default sampler settings, shared by every sampling row."""
DRY_BREAKERS: tuple[str, ...] = ("\n", ":", '"', "*")
"""DRY's default sequence breakers (llama.cpp's ``--dry-sequence-breaker`` defaults)."""
REPORT_SEEDS: tuple[int, ...] = (0, 1, 2)
TUNE_SEED = 100


@dataclass(frozen=True)
class Row:
    """One decoding setting of the study.

    Args:
        name: the row's label in the tables.
        greedy: pick the argmax after the processors (momentum decoding's own rule) instead of sampling.
        momentum_decoding: ``(alpha, top_k)`` of the paper's greedy momentum decoding, or ``None``.
        momentum_penalty: α of our momentum penalty (default resistance table), or ``None``.
        no_repeat_ngram: n of transformers' no-repeat-n-gram rule, or 0.
        penalties: llama.cpp's ``(repeat, frequency, presence)`` penalties over the last 64 tokens, or ``None``.
        dry: llama.cpp's DRY ``(multiplier, base, allowed_length)`` over the whole context, or ``None``.
    """

    name: str
    greedy: bool = False
    momentum_decoding: tuple[float, int] | None = None
    momentum_penalty: float | None = None
    no_repeat_ngram: int = 0
    penalties: tuple[float, float, float] | None = None
    dry: tuple[float, float, int] | None = None

    @property
    def seeded(self) -> bool:
        """Whether the row samples (so runs with different seeds differ)."""
        return not self.greedy


ROWS: tuple[Row, ...] = (
    Row("sampling"),
    Row("momentum decoding (greedy, 0.2, 5)", greedy=True, momentum_decoding=(0.2, 5)),
    Row("momentum penalty 0.2", momentum_penalty=0.2),
    Row("DRY (0.8, 1.75, 2)", dry=(0.8, 1.75, 2)),
    Row("repetition penalty 1.1", penalties=(1.1, 0.0, 0.0)),
    Row("presence penalty 0.5", penalties=(1.0, 0.0, 0.5)),
    Row("frequency penalty 0.5", penalties=(1.0, 0.5, 0.0)),
    Row("no-repeat-3-gram", no_repeat_ngram=3),
)
"""The fixed rows; :func:`tuned_rows` adds the tuned DRY and momentum penalty."""

DRY_TUNE_GRID: tuple[tuple[float, float, int], ...] = tuple(
    (multiplier, 1.75, allowed) for multiplier in (0.8, 1.5, 3.0) for allowed in (2, 3)
)
PENALTY_TUNE_GRID: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
TUNE_COHERENCE_FLOOR = 0.95
"""Tuning rule (fixed before the run): the most diverse setting whose coherence is at least this share of plain
sampling's on the tuning articles."""


def tuned_rows(tuned: dict[str, Any] | None) -> tuple[Row, ...]:
    """The tuned rows from a tuning result (``{"dry": [m, b, a], "momentum_penalty": α}``), if there is one; a tuned
    setting equal to a fixed row's is not run twice (the tables say so)."""
    if not tuned:
        return ()
    rows = []
    if tuned.get("dry") is not None:
        m, b, a = tuned["dry"]
        rows.append(Row(f"DRY tuned ({m}, {b}, {a})", dry=(float(m), float(b), int(a))))
    if tuned.get("momentum_penalty") is not None:
        alpha = float(tuned["momentum_penalty"])
        rows.append(Row(f"momentum penalty tuned {alpha}", momentum_penalty=alpha))
    fixed = {(row.dry, row.momentum_penalty) for row in ROWS}
    return tuple(row for row in rows if (row.dry, row.momentum_penalty) not in fixed)


@dataclass(frozen=True)
class StudyConfig:
    """The run's sizes: prompts per set, new tokens, the long subset, the n-gram window and the seeds."""

    news_prompts: int | None = None  # all 180 reported articles
    our_prompts: int | None = None  # all 104 prompts
    max_new_tokens: int = 128
    long_prompts: int = 10  # per set, for the 512-token subset
    long_tokens: int = 512
    prompt_tokens: int = 48
    min_prompt_tokens: int = 16
    seeds: tuple[int, ...] = REPORT_SEEDS
    tune_articles: int | None = None
    mauve_bootstrap: int = 50
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def quick_config() -> StudyConfig:
    """A smoke run: 2 prompts per set, 12 tokens, one seed, the long subset at 24 tokens on 1 prompt."""
    return replace(
        StudyConfig(),
        news_prompts=2,
        our_prompts=2,
        max_new_tokens=12,
        long_prompts=1,
        long_tokens=24,
        seeds=(0,),
        tune_articles=2,
        mauve_bootstrap=2,
    )
