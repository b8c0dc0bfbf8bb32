"""The decoding benchmarks' own prompt set: 104 open-ended prefixes we wrote (``prompts/decoding_prompts.jsonl``).

Read by :mod:`benchmarks.decoding.momentum_decoding` (quality and speed) and :mod:`benchmarks.decoding.vs_peers`
(set b); ``prompts/README.md`` says how it was made.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["PROMPTS_FILE", "load_prompts"]

PROMPTS_FILE = Path(__file__).resolve().parent / "prompts" / "decoding_prompts.jsonl"


def load_prompts(path: Path = PROMPTS_FILE, limit: int | None = None) -> list[dict[str, str]]:
    """The prompts, interleaved by domain (news, encyclopedia, story, dialogue, how-to, news, ...)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_domain: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_domain.setdefault(row["domain"], []).append(row)
    ordered = []
    for i in range(max(len(items) for items in by_domain.values())):
        ordered.extend(items[i] for items in by_domain.values() if i < len(items))
    return ordered if limit is None else ordered[:limit]
