"""Anti-repetition under sampling: the momentum penalty against DRY and the penalties, on llama.cpp, offline.

The rows, seeds and tuning rule are fixed in :mod:`benchmarks.decoding.sampling_study_grid` before any run; the
generator is :mod:`benchmarks.decoding.sampling_study_engine` (llama.cpp's own DRY and penalties, llama.cpp's
default sampler chain under every row); the tables are :mod:`benchmarks.decoding.sampling_study_report`.

Prompt sets, as in the decoding-vs-peers benchmark (docs/benchmarks/decoding.md, §10): (a) the reported Lee news
articles with their human continuations (every fifth usable article is kept apart for tuning and never reported; at
this study's lengths, 48 prompt tokens and 128 new ones, SmolLM2's tokenizer leaves 225 usable articles: 45 for
tuning, 180 reported), (b) our 104 prompts. Each row continues every prompt by exactly ``--max-new-tokens`` tokens (128), once per seed
(0, 1, 2); a long subset (the first 10 prompts of each set) runs at 512 tokens with seed 0.

Stages (each resumable: every continuation is appended to ``sampling_study_samples.jsonl`` as it is produced, and a
rerun skips the ones already there):

    python -m benchmarks.decoding.sampling_study --stage tune     # DRY and momentum-penalty grids, tuning articles
    python -m benchmarks.decoding.sampling_study --stage report   # every row x seed x set at 128 tokens
    python -m benchmarks.decoding.sampling_study --stage long     # the 512-token subset
    python -m benchmarks.decoding.sampling_study --stage tables   # metrics, MAUVE, the front -> sampling_study.md
    python -m benchmarks.decoding.sampling_study --quick          # all four on a few prompts and tokens

Budget on one thread of a 2-core CPU: about 1 minute per row, seed and 32 prompts at 128 tokens (1.5-3 minutes for
no-repeat-n-gram and the momentum penalty, which rewrite the logits in Python), so the whole report stage (284
prompts, 10 rows, 3 seeds, the greedy row once) takes about 5-6 hours on one process; the tables take 3-4 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks.decoding.sampling_study_grid import (
    DRY_TUNE_GRID,
    PENALTY_TUNE_GRID,
    ROWS,
    TUNE_SEED,
    Row,
    StudyConfig,
    quick_config,
    tuned_rows,
)

__all__ = ["SampleStore", "main", "prompt_sets", "run_rows"]


class SampleStore:
    """The continuations so far, keyed by (stage, row, seed, set, prompt index); appended to a JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: dict[tuple[str, str, int, str, int], dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    item = json.loads(line)
                    self.samples[self.key(item)] = item

    @staticmethod
    def key(item: dict[str, Any]) -> tuple[str, str, int, str, int]:
        return (item["stage"], item["row"], item["seed"], item["set"], item["index"])

    def has(self, stage: str, row: str, seed: int, set_name: str, index: int) -> bool:
        return (stage, row, seed, set_name, index) in self.samples

    def add(self, item: dict[str, Any]) -> None:
        self.samples[self.key(item)] = item
        with self.path.open("a") as handle:
            handle.write(json.dumps(item) + "\n")

    def select(self, stage: str, row: str, seed: int, set_name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The stored continuations of one (stage, row, seed, set), by prompt index; with ``limit``, only those of the
        first ``limit`` prompts (a store may hold more prompts than a smaller run asks for)."""
        items = [
            v
            for k, v in self.samples.items()
            if k[:4] == (stage, row, seed, set_name) and (limit is None or k[4] < limit)
        ]
        return sorted(items, key=lambda item: item["index"])


def prompt_sets(tokenizer: Any, cfg: StudyConfig) -> dict[str, list[dict[str, Any]]]:
    """``{"news": [...], "ours": [...], "tuning": [...]}``: items with ``prompt`` (and ``human`` for news)."""
    from benchmarks.common.prompt_sets import load_prompts
    from benchmarks.decoding.human_reference import lee_items, split_lee
    from inertia.data.text_corpora import lee_background

    items = lee_items(tokenizer, lee_background(), cfg.prompt_tokens, cfg.min_prompt_tokens, cfg.max_new_tokens)
    news, tuning = split_lee(items, cfg.news_prompts)
    ours = [{"prompt": p["prompt"]} for p in load_prompts(limit=cfg.our_prompts)]
    tuning = tuning if cfg.tune_articles is None else tuning[: cfg.tune_articles]
    return {"news": news, "ours": ours, "tuning": tuning}


def run_rows(
    engine: Any,
    store: SampleStore,
    stage: str,
    rows: Iterable[Row],
    seeds: Iterable[int],
    sets: dict[str, list[dict[str, Any]]],
    max_new_tokens: int,
) -> None:
    """Generates every missing (row, seed, set, prompt) continuation, appending each to the store as it comes."""
    seeds, rows = tuple(seeds), tuple(rows)
    # seed-major, so that a run stopped part-way leaves every row complete for the seeds it finished
    for seed in seeds:
        for row in rows:
            if not row.seeded and seed != seeds[0]:
                continue
            for set_name, items in sets.items():
                started, done = time.perf_counter(), 0
                for index, item in enumerate(items):
                    if store.has(stage, row.name, seed, set_name, index):
                        continue
                    out = engine.generate(item["prompt"], row, 1000 * seed + index, max_new_tokens)
                    store.add(
                        {
                            "stage": stage,
                            "row": row.name,
                            "seed": seed,
                            "set": set_name,
                            "index": index,
                            "prompt": item["prompt"],
                            "text": out["text"],
                            "new_tokens": len(out["tokens"]),
                            "seconds": round(out["seconds"], 4),
                        }
                    )
                    done += 1
                if done:
                    took = time.perf_counter() - started
                    print(f"[{stage}] {row.name} · seed {seed} · {set_name}: {done} texts, {took:.0f} s", flush=True)


def _tune(engine: Any, store: SampleStore, sets: dict[str, list[dict[str, Any]]], cfg: StudyConfig, out: Path) -> dict:
    from benchmarks.decoding.sampling_study_report import choose_tuned

    tuning = {"tuning": sets["tuning"]}
    grid = [ROWS[0]]
    grid += [Row(f"DRY ({m}, {b}, {a})", dry=(m, b, a)) for m, b, a in DRY_TUNE_GRID]
    grid += [Row(f"momentum penalty {alpha}", momentum_penalty=alpha) for alpha in PENALTY_TUNE_GRID]
    run_rows(engine, store, "tune", grid, (TUNE_SEED,), tuning, cfg.max_new_tokens)
    tuned = choose_tuned(store, grid, TUNE_SEED)
    (out / "sampling_study_tuned.json").write_text(json.dumps(tuned, indent=2) + "\n")
    print(json.dumps(tuned, indent=2))
    return tuned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        "python -m benchmarks.decoding.sampling_study", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stage", choices=("tune", "report", "long", "tables", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 prompts per set, 12 tokens, one seed")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="folder for samples and tables")
    parser.add_argument("--news-prompts", type=int, help="report only the first N news articles (default: all 180)")
    parser.add_argument("--our-prompts", type=int, help="report only the first N of our prompts (default: all 104)")
    parser.add_argument("--long-prompts", type=int, help="prompts per set of the 512-token subset (default 10)")
    parser.add_argument("--seeds", help="reported seeds, comma-separated (default 0,1,2)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be an integer >= 1, got {args.threads}")
    sizes: dict[str, Any] = {}
    for name in ("news_prompts", "our_prompts", "long_prompts"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name.replace('_', '-')} must be an integer >= 1, got {value}")
            sizes[name] = value
    if args.seeds is not None:
        try:
            sizes["seeds"] = tuple(int(seed) for seed in args.seeds.split(","))
        except ValueError:
            parser.error(f"--seeds must be integers >= 0 separated by commas, got {args.seeds!r}")
        if any(seed < 0 for seed in sizes["seeds"]):
            parser.error(f"--seeds must be integers >= 0 separated by commas, got {args.seeds!r}")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print('sampling_study needs llama.cpp: pip install "inertia[llama]"', file=sys.stderr)
        return 2
    from benchmarks.decoding.sampling_study_engine import LlamaStudyEngine
    from inertia.pipelines.text import smollm2_gguf_path

    cfg = replace(quick_config() if args.quick else StudyConfig(), **sizes)
    stem = "sampling_study_quick" if args.quick else "sampling_study"
    args.out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(args.out / f"{stem}_samples.jsonl")
    engine = LlamaStudyEngine(str(smollm2_gguf_path()), threads=args.threads)
    sets = prompt_sets(engine.tokenizer, cfg)
    stages = ("tune", "report", "long", "tables") if args.stage == "all" else (args.stage,)
    tuned_path = args.out / ("sampling_study_quick_tuned.json" if args.quick else "sampling_study_tuned.json")
    tuned = json.loads(tuned_path.read_text()) if tuned_path.is_file() else None
    if "tune" in stages:
        tuned = _tune(engine, store, sets, cfg, args.out)
        if args.quick:
            tuned_path.write_text(json.dumps(tuned, indent=2) + "\n")
    rows = ROWS + tuned_rows(tuned)
    reported = {"news": sets["news"], "ours": sets["ours"]}
    if "report" in stages:
        run_rows(engine, store, "report", rows, cfg.seeds, reported, cfg.max_new_tokens)
    if "long" in stages:
        subset = {name: items[: cfg.long_prompts] for name, items in reported.items()}
        run_rows(engine, store, "long", rows, cfg.seeds[:1], subset, cfg.long_tokens)
    if "tables" in stages:
        from benchmarks.decoding.sampling_study_report import render, summarise

        whole = prompt_sets(engine.tokenizer, replace(cfg, news_prompts=None, our_prompts=None))
        summary = summarise(store, rows, cfg, sets, {"news": len(whole["news"]), "ours": len(whole["ours"])})
        summary["config"] = {k: v for k, v in asdict(cfg).items() if k != "extra"}
        summary["tuned"] = tuned
        (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
        text = render(summary)
        (args.out / f"{stem}.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
