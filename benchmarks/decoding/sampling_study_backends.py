"""Do the sampling study's llama.cpp figures carry over to transformers? The same rows on the same prompts, on both.

The study (:mod:`benchmarks.decoding.sampling_study`) runs on llama.cpp (the shipped Q4_1 GGUF, llama.cpp's sampler
chain). This reruns a few of its rows on our transformers backend (the same GGUF de-quantised to float32, transformers'
sampling with the same settings, our ``MomentumPenaltyLogitsProcessor`` / transformers' no-repeat-n-gram) on the
first prompts of each set, and prints both backends' metrics side by side. Token-for-token equality is not expected:
the two backends draw from different random generators, apply temperature before (transformers) or after (llama.cpp)
the truncation samplers, and Q4_1 arithmetic differs from float32. What should agree is the size and direction of
each row's effect against plain sampling.

    python -m benchmarks.decoding.sampling_study_backends --out benchmarks/out --prompts 8

It reads the llama.cpp continuations from ``OUT/sampling_study_samples.jsonl`` (seed 0 of the report stage), so run
the study's report stage for seed 0 first.

Example:
    >>> transformers_kwargs(ROWS_CHECKED[0])["top_k"]
    40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.decoding.sampling_study_grid import ROWS, SAMPLING, Row

__all__ = ["ROWS_CHECKED", "main", "transformers_kwargs"]

ROWS_CHECKED: tuple[Row, ...] = tuple(
    row for row in ROWS if row.name in ("sampling", "momentum penalty 0.2", "no-repeat-3-gram")
)
"""The rows both backends can run with the same implementation of the row's own part."""


def transformers_kwargs(row: Row) -> dict[str, Any]:
    """``generate`` keyword arguments of a checked row on transformers (the study's sampler settings)."""
    kwargs: dict[str, Any] = {"do_sample": True, **SAMPLING}
    kwargs["top_k"] = int(kwargs["top_k"])
    if row.momentum_penalty is not None:
        from transformers import LogitsProcessorList

        from inertia.adapters.transformers.momentum_penalty import MomentumPenaltyLogitsProcessor

        kwargs["logits_processor"] = LogitsProcessorList([MomentumPenaltyLogitsProcessor(row.momentum_penalty)])
    if row.no_repeat_ngram:
        kwargs["no_repeat_ngram_size"] = row.no_repeat_ngram
    return kwargs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        "python -m benchmarks.decoding.sampling_study_backends", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"), help="the study's folder")
    parser.add_argument("--prompts", type=int, default=8, help="first N prompts of each set (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.prompts < 1 or args.threads < 1:
        parser.error(f"--prompts and --threads must be integers >= 1, got {args.prompts} and {args.threads}")
    samples = args.out / "sampling_study_samples.jsonl"
    if not samples.is_file():
        parser.error(f"{samples} does not exist: run the study's report stage for seed 0 first")
    import torch

    from benchmarks.decoding.sampling_study import SampleStore
    from benchmarks.decoding.sampling_study_report import text_metrics
    from inertia.pipelines.text import load_text_model

    torch.set_num_threads(args.threads)
    store = SampleStore(samples)
    model, tokenizer = load_text_model(device="cpu")
    results: list[dict[str, Any]] = []
    for set_name in ("news", "ours"):
        for row in ROWS_CHECKED:
            llama = store.select("report", row.name, 0, set_name)[: args.prompts]
            if len(llama) < args.prompts:
                parser.error(f"the store has {len(llama)} of {args.prompts} llama.cpp texts for {row.name!r}")
            texts, start, new_tokens = [], time.perf_counter(), 0
            for index, item in enumerate(llama):
                inputs = tokenizer(item["prompt"], return_tensors="pt")
                torch.manual_seed(index)  # prompt i draws with seed i, as the study's seed 0
                with torch.no_grad():
                    out = model.generate(
                        **inputs, max_new_tokens=item["new_tokens"], min_new_tokens=item["new_tokens"],
                        pad_token_id=tokenizer.pad_token_id, **transformers_kwargs(row),
                    )  # fmt: skip
                new = out[0, inputs["input_ids"].shape[1] :]
                new_tokens += int(new.shape[0])
                texts.append({"prompt": item["prompt"], "text": tokenizer.decode(new, skip_special_tokens=True)})
            seconds = time.perf_counter() - start
            for backend, items in (("llama.cpp", llama), ("transformers", texts)):
                metrics = text_metrics(items)
                results.append({"set": set_name, "row": row.name, "backend": backend, **metrics})
            results[-1]["tokens_per_second"] = new_tokens / seconds
            print(f"{set_name} · {row.name}: {seconds:.0f} s", flush=True)
    lines = [
        f"Both backends, first {args.prompts} prompts of each set, seed 0, 128 new tokens:",
        "",
        "| set | row | backend | rep-2 | rep-4 | diversity | coherence | loops % |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['set']} | {r['row']} | {r['backend']} | {r['rep-2']:.2f} | {r['rep-4']:.2f} | "
            f"{r['diversity']:.3f} | {r['coherence']:.3f} | {r['loops']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    (args.out / "sampling_study_backends.md").write_text(text)
    (args.out / "sampling_study_backends.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
