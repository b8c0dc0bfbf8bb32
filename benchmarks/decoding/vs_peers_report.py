"""The decoding-vs-peers report (§10): the targets, the per-regime winners, the Markdown tables and the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common.outputs import write_summary
from benchmarks.common.text_generation import environment_text, short_text
from benchmarks.decoding.vs_peers_grid import DRY, GREEDY, HUMAN, MOMENTUM, NUCLEUS

__all__ = ["evaluate_targets", "render_markdown", "render_tuning", "winners", "write_outputs"]


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


def render_markdown(summary: dict[str, Any]) -> str:
    """The report: one table per prompt set (rows = methods), MAUVE spreads, targets, winners, two examples."""
    cfg, env = summary["config"], summary.get("environment", {})
    lines = [
        f"# Decoding against the peers{' (quick)' if cfg['quick'] else ''}",
        "",
        environment_text(env)
        + f"{cfg['max_new_tokens']} new tokens, batch {cfg['batch_size']}. Generation {summary['generation_s']} s, "
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
    stem = "peers_decoding_quick" if summary["config"]["quick"] else "peers_decoding"
    return write_summary(summary, out, stem, render_markdown(summary))
