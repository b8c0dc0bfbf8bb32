"""Per-step cost of momentum decoding's logits processor against the length of the history, stateless vs incremental.

The stateless path recomputes every candidate's repetition level from the whole history at each step (O(T) per
step); the incremental path keeps each row's n-gram index between calls and extends it by one token (O(k·N) look-ups
plus one comparison of ``input_ids`` with the previous call's). Both give the same scores; this measures the cost of a
steady-state step: a call whose ``input_ids`` is the previous call's plus one token. The "vocabulary floor" is the
same step with the repetition levels given for free: the top-k, the softmax and the new score row over the whole
vocabulary (eqs. (2)-(3)), which every step pays at any history length. Histories are random tokens from
a 100-token alphabet (many repeats), scores random logits over the vocabulary.

Usage::

    python -m benchmarks.decoding.step_cost                  # 1k, 8k, 32k tokens; batch 1 and 8; V 49,152; 1 thread
    python -m benchmarks.decoding.step_cost --quick --out benchmarks/out
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common.cli_lists import comma_ints
from benchmarks.common.outputs import print_and_save
from benchmarks.common.timing import seconds_of
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE, momentum_scores, penalty_table
from inertia.core.decoding.ngram_index import IncrementalLevels
from inertia.decoders import MomentumDecodingLogitsProcessor

__all__ = ["build_seconds", "floor_seconds", "main", "step_seconds", "table"]


def build_seconds(batch: int, history: int, seed: int = 0) -> float:
    """Seconds to build the n-gram index of ``batch`` rows of ``history`` tokens (what the first incremental call
    adds to a stateless step)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 100, (batch, history), generator=generator)
    return seconds_of(lambda: IncrementalLevels(5)(ids, ids[:, :5]), torch.device("cpu"))


def floor_seconds(batch: int, vocab: int, steps: int, seed: int = 0) -> float:
    """Median seconds of one momentum-decoding step whose levels cost nothing (all 0): the vocabulary-wide work."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, vocab, generator=generator)
    ids = torch.randint(0, 100, (batch, 8), generator=generator)
    table = penalty_table(0.2, DEFAULT_RESISTANCE)

    def levels(input_ids, candidates, pad_token_id, prompt_mask):
        return torch.zeros_like(candidates)

    step = lambda: momentum_scores(ids, scores, table, 5, levels_of=levels)  # noqa: E731
    step()
    return statistics.median(seconds_of(step, torch.device("cpu")) for _ in range(steps))


def step_seconds(incremental: bool, batch: int, history: int, vocab: int, steps: int, seed: int = 0) -> float:
    """Median seconds of one steady-state processor call (k 5, N 5, α 0.2) after ``history`` tokens."""
    generator = torch.Generator().manual_seed(seed)
    processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, incremental=incremental)  # True: built at once
    ids = torch.randint(0, 100, (batch, history), generator=generator)
    scores = torch.randn(batch, vocab, generator=generator)
    device = torch.device("cpu")
    processor(ids, scores)  # the incremental path builds its index here (once per generation)
    times = []
    for _ in range(steps):
        ids = torch.cat([ids, torch.randint(0, 100, (batch, 1), generator=generator)], dim=1)
        times.append(seconds_of(lambda current=ids: processor(current, scores), device))
    return statistics.median(times)


def table(histories: tuple[int, ...], batches: tuple[int, ...], vocab: int, steps: int) -> str:
    """A Markdown table of ms per step, both paths, and their ratio."""
    lines = [
        "| batch | history tokens | stateless ms/step | incremental ms/step | stateless / incremental | index build ms "
        "| vocabulary floor ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for batch in batches:
        for history in histories:
            before = step_seconds(False, batch, history, vocab, steps) * 1e3
            after = step_seconds(True, batch, history, vocab, steps) * 1e3
            build = build_seconds(batch, history) * 1e3
            floor = floor_seconds(batch, vocab, steps) * 1e3
            lines.append(
                f"| {batch} | {history:,} | {before:.2f} | {after:.3f} | {before / after:.0f}x | {build:.0f} "
                f"| {floor:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decoding.step_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--histories", type=comma_ints, default=(1024, 8192, 32768), help="history lengths, comma-separated"
    )
    parser.add_argument("--batches", type=comma_ints, default=(1, 8), help="batch sizes, comma-separated")
    parser.add_argument("--vocab", type=int, default=49_152, help="vocabulary size (SmolLM2's: 49,152)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per cell (median), >= 1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, >= 1")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="also write OUT/step_cost.md")
    args = parser.parse_args(argv)
    for name in ("vocab", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if min(args.histories) < 1 or min(args.batches) < 1:
        parser.error("--histories and --batches must be >= 1")
    if args.quick:
        args.histories, args.batches, args.vocab, args.steps = (256, 1024), (1, 2), 1000, 3
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    text = table(args.histories, args.batches, args.vocab, args.steps)
    text += f"\n\n(V {args.vocab:,}, k 5, N 5, {args.threads} thread(s), median of {args.steps} steps; "
    text += f"{time.perf_counter() - started:.0f} s)\n"
    print_and_save(text, args.out, "step_cost.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
