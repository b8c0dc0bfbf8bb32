"""What the decoding-vs-peers benchmark (§10) runs: its rows (the methods and their ``generate`` arguments), the
momentum settings ``--tune`` tries, and the run's sizes (:class:`PeersConfig`). The run is
:mod:`benchmarks.decoding.vs_peers`, the report :mod:`benchmarks.decoding.vs_peers_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DRY",
    "GREEDY",
    "HUMAN",
    "METHODS",
    "MOMENTUM",
    "MOMENTUM_STRONG",
    "NUCLEUS",
    "TUNED_MOMENTUM",
    "TUNE_GRID",
    "PeersConfig",
    "methods",
    "momentum_row_name",
    "quick_config",
]

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
