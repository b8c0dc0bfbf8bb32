"""The sampling study's tables: per row and set the mean over seeds (and the seed range) of rep-2/3/4, diversity,
loops and coherence, MAUVE against the human continuations on news with a paired bootstrap interval, and the Pareto
front of diversity against coherence. Also the tuning rule (:func:`choose_tuned`).

Example:
    >>> pareto_front({"a": (0.9, 0.40), "b": (0.8, 0.45), "c": (0.7, 0.40)})
    ['a', 'b']
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.decoding.sampling_study_grid import TUNE_COHERENCE_FLOOR, Row, StudyConfig

__all__ = ["choose_tuned", "pareto_front", "render", "summarise", "text_metrics"]

_SCORER: list[Any] = []


def _scorer() -> Any:
    if not _SCORER:
        from inertia.metrics.text import CoherenceScorer

        _SCORER.append(CoherenceScorer())
    return _SCORER[0]


def text_metrics(items: Sequence[dict[str, Any]]) -> dict[str, float]:
    """rep-2/3/4 (%), diversity, loops (% of texts) and mean coherence of ``{"prompt", "text"}`` items."""
    from inertia.metrics.text import diversity, loop_rate, rep_n

    texts = [item["text"] for item in items]
    coherence = _scorer().score([item["prompt"] for item in items], texts)
    return {
        "rep-2": rep_n(texts, 2),
        "rep-3": rep_n(texts, 3),
        "rep-4": rep_n(texts, 4),
        "diversity": diversity(texts),
        "loops": 100 * loop_rate(texts),
        "coherence": float(statistics.fmean(coherence)),
    }


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Rows not dominated in (diversity, coherence): no other row is at least as good in both and better in one."""
    front = []
    for name, (d, c) in points.items():
        dominated = any(
            (d2 >= d and c2 >= c) and (d2 > d or c2 > c) for other, (d2, c2) in points.items() if other != name
        )
        if not dominated:
            front.append(name)
    return front


def choose_tuned(store: Any, grid: Sequence[Row], seed: int) -> dict[str, Any]:
    """The tuning rule: per family (DRY, momentum penalty), the most diverse setting whose coherence on the tuning
    articles is at least ``TUNE_COHERENCE_FLOOR`` x plain sampling's; ``None`` for a family where none qualifies."""
    scores = {row.name: text_metrics(store.select("tune", row.name, seed, "tuning")) for row in grid}
    floor = TUNE_COHERENCE_FLOOR * scores[grid[0].name]["coherence"]
    tuned: dict[str, Any] = {"scores": scores, "coherence_floor": floor}
    for family, attr in (("dry", "dry"), ("momentum_penalty", "momentum_penalty")):
        candidates = [row for row in grid if getattr(row, attr) is not None and scores[row.name]["coherence"] >= floor]
        best = max(candidates, key=lambda row: scores[row.name]["diversity"], default=None)
        value = getattr(best, attr) if best is not None else None
        tuned[family] = list(value) if isinstance(value, tuple) else value
    return tuned


def _mean_range(values: Sequence[float]) -> dict[str, float]:
    return {"mean": float(statistics.fmean(values)), "min": float(min(values)), "max": float(max(values))}


def summarise(
    store: Any,
    rows: Sequence[Row],
    cfg: StudyConfig,
    sets: dict[str, Any],
    available: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Metrics per stage, set and row (over the seeds that have every prompt), MAUVE on news, the fronts.

    ``available``: each set's whole size (``{"news": 180, "ours": 104}``), for the titles; ``sets`` holds the prompts
    this run reports, which may be the first part of each set."""
    from benchmarks.decoding.human_reference import mauve_score

    out: dict[str, Any] = {"stages": {}}
    scorer = _scorer()
    human = scorer.embed([item["human"] for item in sets["news"]]).numpy() if sets["news"] else None
    for stage, sizes in (("report", None), ("long", cfg.long_prompts)):
        per_set: dict[str, Any] = {}
        for set_name in ("news", "ours"):
            wanted = len(sets[set_name]) if sizes is None else min(sizes, len(sets[set_name]))
            table: dict[str, Any] = {}
            for row in rows:
                seeds = cfg.seeds if (row.seeded and stage == "report") else cfg.seeds[:1]
                runs = [store.select(stage, row.name, seed, set_name, wanted) for seed in seeds]
                runs = [items for items in runs if len(items) == wanted and wanted]
                if not runs:
                    continue
                metrics = [text_metrics(items) for items in runs]
                entry = {key: _mean_range([m[key] for m in metrics]) for key in metrics[0]}
                entry["seeds"] = len(runs)
                entry["tokens_per_s"] = sum(i["new_tokens"] for r in runs for i in r) / sum(
                    i["seconds"] for r in runs for i in r
                )
                if set_name == "news" and stage == "report" and human is not None:
                    feats = [scorer.embed([i["text"] for i in items]).numpy() for items in runs]
                    entry["mauve"] = _mean_range([mauve_score(human, f, 1) for f in feats])
                    rng = np.random.default_rng(0)
                    boot = [
                        mauve_score(human[idx], feats[0][idx], 25)
                        for idx in (rng.integers(0, len(human), len(human)) for _ in range(cfg.mauve_bootstrap))
                    ]
                    entry["mauve_bootstrap"] = [float(np.percentile(boot, 5)), float(np.percentile(boot, 95))]
                table[row.name] = entry
            points = {name: (e["diversity"]["mean"], e["coherence"]["mean"]) for name, e in table.items()}
            per_set[set_name] = {"rows": table, "front": pareto_front(points), "prompts": wanted}
            if available is not None:
                per_set[set_name]["available"] = available[set_name]
        out["stages"][stage] = per_set
    return out


def _cell(entry: dict[str, Any], key: str, digits: int) -> str:
    value = entry[key]
    if entry.get("seeds", 1) > 1:
        return f"{value['mean']:.{digits}f} ({value['min']:.{digits}f}-{value['max']:.{digits}f})"
    return f"{value['mean']:.{digits}f}"


def render(summary: dict[str, Any]) -> str:
    """The tables as Markdown: one per stage and set, front rows marked ★."""
    lines = []
    for stage, per_set in summary["stages"].items():
        for set_name, block in per_set.items():
            if not block["rows"]:
                continue
            size = f"{block['available']} " if "available" in block else ""
            title = {"news": f"of the {size}Lee news articles", "ours": f"of our {size}prompts"}[set_name]
            count = f"the first {block['prompts']} " if "prompts" in block else "all "
            tokens = "128" if stage == "report" else "512"
            lines += [f"#### {count}{title}, {tokens} new tokens", ""]
            mauve = set_name == "news" and stage == "report"
            head = "| row | seeds | rep-2 | rep-4 | diversity | coherence | loops % | tokens/s |"
            head += " MAUVE (5-95% bootstrap) |" if mauve else ""
            lines += [head, "|---" * (head.count("|") - 1) + "|"]
            for name, entry in block["rows"].items():
                star = " ★" if name in block["front"] else ""
                cells = [
                    f"{name}{star}",
                    str(entry["seeds"]),
                    _cell(entry, "rep-2", 2),
                    _cell(entry, "rep-4", 2),
                    _cell(entry, "diversity", 4),
                    _cell(entry, "coherence", 4),
                    _cell(entry, "loops", 1),
                    f"{entry['tokens_per_s']:.1f}",
                ]
                if mauve and "mauve" in entry:
                    low, high = entry["mauve_bootstrap"]
                    cells.append(f"{_cell(entry, 'mauve', 3)} [{low:.3f}-{high:.3f}]")
                lines.append("| " + " | ".join(cells) + " |")
            lines += ["", f"Front (diversity vs coherence): {', '.join(block['front'])}.", ""]
    return "\n".join(lines) + "\n"
