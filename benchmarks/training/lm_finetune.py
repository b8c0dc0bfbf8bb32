"""Momentum attention fine-tuned into SmolLM2-135M against a plain-attention control at equal steps.

Both arms start from the embedded SmolLM2-135M-Instruct, train the same shared parameters (normalisation weights) on
the same blocks of the first 200 Lee news articles in the same order (:mod:`inertia.training.lm_momentum`); the
momentum arm also learns per-head λ_h (from 0) and η_h. Reported: held-out perplexity of both arms on the last
``--eval-articles`` articles with a paired 95% interval of their ratio, the evaluation curves (figure), and the
bias-calibrated few-shot accuracy of both fine-tuned models on the two tasks of :mod:`benchmarks.attention.lm_attention`.

Usage::

    python -m benchmarks.training.lm_finetune [--steps 150] [--batch-size 4] [--seq-len 256] [--quick]

Writes ``lm_finetune.md``, ``lm_finetune.json`` to ``--out`` and ``docs/figures/lm_finetune.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.attention.lm_attention import (
    calibrated_correct,
    fewshot_tasks,
    label_logprobs,
    paired,
    paired_accuracy,
)
from benchmarks.common.outputs import save_figure
from benchmarks.common.paths import FIGURE_DIR

FIGURE = FIGURE_DIR / "lm_finetune.png"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Trains both arms one after the other and scores each fine-tuned model."""
    import torch

    from inertia.data.text_corpora import lee_background
    from inertia.pipelines.text import load_text_model
    from inertia.training.lm_momentum import LMFinetuneConfig, finetune

    torch.set_num_threads(args.threads)
    articles = lee_background()
    train, held_out = articles[:200], articles[-args.eval_articles :]
    tasks = fewshot_tasks(4, args.fewshot_examples)
    results: dict[str, Any] = {"arms": {}}
    for arm in ("control", "momentum"):
        model, tokenizer = load_text_model(device="cpu")
        config = LMFinetuneConfig(
            arm=arm,
            steps=args.steps,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            eval_every=args.eval_every,
            seed=args.seed,
        )
        out = finetune(model, tokenizer, train, held_out, config, args.out / "lm_finetune" / arm)
        model.eval()
        fewshot = {
            name: calibrated_correct(label_logprobs(model, tokenizer, t["prompts"], t["labels"]), t["answers"])
            for name, t in tasks.items()
        }
        results["arms"][arm] = {**{k: v for k, v in out.items() if k != "config"}, "fewshot": fewshot}
    control, momentum = results["arms"]["control"], results["arms"]["momentum"]
    results["perplexity"] = paired(control["eval_nll"], momentum["eval_nll"])
    results["fewshot"] = {
        name: {"control": statistics.mean(control["fewshot"][name]), **paired_accuracy(control["fewshot"][name], momentum["fewshot"][name])}
        for name in tasks
    }  # fmt: skip
    results["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return results


def figure(results: dict[str, Any], path: Path = FIGURE) -> Path:
    """Held-out NLL against training steps, both arms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.0, 3.6), dpi=120)
    for arm, colour in (("control", "tab:blue"), ("momentum", "tab:orange")):
        points = [(r["step"], r["eval_nll"]) for r in results["arms"][arm]["log"] if "eval_nll" in r]
        axis.plot(*zip(*points, strict=True), marker="o", color=colour, label=arm)
    axis.set(xlabel="fine-tuning step", ylabel="held-out NLL (nats/token)")
    axis.set_title("SmolLM2-135M: momentum attention vs plain-attention control")
    axis.legend()
    return save_figure(fig, path)


def report(results: dict[str, Any]) -> str:
    """The Markdown tables of ``lm_finetune.md``."""
    s, p = results["settings"], results["perplexity"]
    control, momentum = results["arms"]["control"], results["arms"]["momentum"]
    gates = momentum["gates"] or {}
    lines = [
        f"{s['steps']} steps, batch {s['batch_size']} x {s['seq_len']} tokens, seed {s['seed']}; held-out: the last "
        f"{s['eval_articles']} Lee articles (first 256 tokens each).",
        "",
        "| arm | held-out perplexity | steps done |",
        "|---|---:|---:|",
        f"| control (plain attention) | {control['eval_ppl']:.3f} | {control['steps_done']} |",
        f"| momentum attention | {momentum['eval_ppl']:.3f} | {momentum['steps_done']} |",
        "",
        f"Ratio momentum / control: {p['ratio']:.4f} (95% interval {p['ratio_low']:.4f}-{p['ratio_high']:.4f}, paired "
        f"over articles; momentum worse on {p['worse_articles']}/{s['eval_articles']}). Learned gates: mean |λ_h| "
        f"{gates.get('scale_mean_abs', float('nan')):.4f} (max {gates.get('scale_max_abs', float('nan')):.4f}), η_h "
        f"{gates.get('eta_min', float('nan')):.3f}-{gates.get('eta_max', float('nan')):.3f}.",
        "",
        "| task (4-shot, calibrated) | control | momentum | difference | 95% interval | won / lost |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, r in results["fewshot"].items():
        lines.append(
            f"| {name} | {r['control']:.3f} | {r['accuracy']:.3f} | {r['diff']:+.3f} | {r['diff_low']:+.3f} to "
            f"{r['diff_high']:+.3f} | {r['won']} / {r['lost']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-articles", type=int, default=50)
    parser.add_argument("--fewshot-examples", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 steps of 2 x 64 tokens, 5 articles, 8 prompts")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.seq_len < 8 or not 2 <= args.eval_articles <= 100:
        parser.error("--steps, --batch-size >= 1, --seq-len >= 8, --eval-articles in [2, 100]")
    if args.quick:
        args.steps, args.batch_size, args.seq_len, args.eval_every = 4, 2, 64, 2
        args.eval_articles, args.fewshot_examples = 5, 8
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lm_finetune.json").write_text(json.dumps(results, indent=2, default=str))
    text = report(results)
    (args.out / "lm_finetune.md").write_text(text)
    print(text)
    print(f"figure: {figure(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
