"""Per-step cost of the vLLM logits processor (``inertia.adapters.vllm``) against the length of the history.

Each request that asks for momentum decoding (``md_*`` keys) keeps an n-gram index of its tokens, and each request
that asks for the momentum penalty (``mp_*`` keys) a ``MomentumPenaltyRow``, fed the new token at each step, so a
step should cost the same at 1k, 8k and 32k tokens of history. For each method, this times one steady-state
``apply`` (every request one token longer than at the previous call) through both of vLLM's interfaces, as the
engine calls them:

- **V2** (model runner V2): the slots' tokens in one ``[slots, max_len]`` tensor, ``apply(logits, ctx)`` with the
  batch's rows in slot order;
- **V1** (vLLM 0.32's CPU runner): ``apply(logits)`` after the requests were added with their live output lists;

next to the **stateless** computation on the whole history (the core's ``momentum_scores``, or
``apply_momentum_penalty``, over ``[batch, T]``: what a processor without an index costs). Histories are random tokens from a 100-token alphabet (many
repeats), logits random over the vocabulary. Times are CPU time of this process (one torch thread), so other jobs on
a shared machine do not inflate them. With vLLM installed the class is vLLM's (on its base classes, built by
the entry point's ``processor_class``); without it, the same logic on no base.

Usage::

    python -m benchmarks.decoding.vllm_step_cost                 # 1k, 8k, 32k tokens; batch 1 and 8; V 49,152
    python -m benchmarks.decoding.vllm_step_cost --methods mp --batches 8
    python -m benchmarks.decoding.vllm_step_cost --memory          # also the host memory of one request's state
    python -m benchmarks.decoding.vllm_step_cost --quick --out benchmarks/out
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.common.cli_lists import comma_ints
from benchmarks.common.outputs import print_and_save
from inertia.adapters.vllm.logits_processor import build_processor_class, processor_class
from inertia.adapters.vllm.settings import penalty_settings_of, settings_of
from inertia.core.decoding.momentum import momentum_scores
from inertia.core.decoding.momentum_penalty import apply_momentum_penalty

__all__ = ["METHODS", "cell_ms", "main", "memory_table", "state_mib", "stateless_path", "table", "v1_path", "v2_path"]

EXTRA = {"md_alpha": 0.2, "md_top_k": 5}

METHODS = {"md": EXTRA, "mp": {"mp_alpha": 0.2}}
"""The requests' ``extra_args`` per method: momentum decoding (greedy), the momentum penalty (sampling)."""

TITLES = {"md": "momentum decoding (`md_alpha` 0.2, `md_top_k` 5)", "mp": "momentum penalty (`mp_alpha` 0.2)"}


def _class() -> tuple[type, str]:
    try:
        return processor_class(), "vLLM's base classes"
    except ImportError:
        return build_processor_class(), "no vLLM installed: the logic on no base class"


StepTimer = Callable[[], float]
"""One steady-state step of a path: every request one token longer than at its previous call; returns the CPU
seconds it took (``time.process_time``: on one torch thread, what the step costs, however busy the machine is)."""


def _params(extra: dict[str, object]) -> SimpleNamespace:
    return SimpleNamespace(temperature=0.0 if "md_alpha" in extra else 0.8, extra_args=extra)


def v2_path(cls: type, batch: int, history: int, vocab: int, seed: int = 0, extra: dict | None = None) -> StepTimer:
    """``apply(logits, ctx)`` on ``batch`` requests of ``history`` tokens, in slots 0..batch-1."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(batch, history + 1024, dtype=torch.int32)
    tokens[:, :history] = torch.randint(0, 100, (batch, history), generator=generator, dtype=torch.int32)
    total = torch.full((batch,), history, dtype=torch.int32)
    state = SimpleNamespace(all_token_ids=SimpleNamespace(gpu=tokens), total_len=SimpleNamespace(gpu=total))
    processor = cls(SimpleNamespace(), state)
    for slot in range(batch):
        processor.add_request(slot, _params(extra or EXTRA))
    slots = torch.arange(batch, dtype=torch.int32)

    def step() -> float:
        logits = torch.randn(batch, vocab, generator=generator)
        ctx = SimpleNamespace(
            idx_mapping_np=np.arange(batch, dtype=np.int32),
            expanded_idx_mapping=slots,
            expanded_local_pos=torch.zeros(batch, dtype=torch.int32),
            pos=(total - 1).long(),
            input_ids=tokens[slots.long(), (total - 1).long()],
        )
        started = time.process_time()
        processor.apply(logits, ctx)
        seconds = time.process_time() - started
        tokens[:, int(total[0])] = torch.randint(0, 100, (batch,), generator=generator, dtype=torch.int32)
        total.add_(1)
        return seconds

    return step


def v1_path(cls: type, batch: int, history: int, vocab: int, seed: int = 0, extra: dict | None = None) -> StepTimer:
    """V1 ``apply(logits)`` on ``batch`` rows whose live output lists grow by one token per step."""
    generator = torch.Generator().manual_seed(seed)
    processor = cls(SimpleNamespace(), torch.device("cpu"), False)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    params = _params(extra or EXTRA)
    prompts = torch.randint(0, 100, (batch, history), generator=generator).tolist()
    added = [(row, params, prompts[row], outputs[row]) for row in range(batch)]
    processor.update_state(SimpleNamespace(batch_size=batch, removed=[], added=added, moved=[]))

    def step() -> float:
        logits = torch.randn(batch, vocab, generator=generator)
        processor.update_state(None)
        started = time.process_time()
        processor.apply(logits)
        seconds = time.process_time() - started
        for output, token in zip(outputs, torch.randint(0, 100, (batch,), generator=generator).tolist(), strict=True):
            output.append(token)
        return seconds

    return step


def stateless_path(batch: int, history: int, vocab: int, seed: int = 0, extra: dict | None = None) -> StepTimer:
    """The core on the whole ``[batch, T]`` history (no index)."""
    generator = torch.Generator().manual_seed(seed)
    settings, penalty = settings_of(extra or EXTRA), penalty_settings_of(extra or EXTRA)
    ids = torch.randint(0, 100, (batch, history), generator=generator)

    def step() -> float:
        nonlocal ids
        logits = torch.randn(batch, vocab, generator=generator)
        started = time.process_time()
        if penalty is not None:
            apply_momentum_penalty(ids, logits, penalty.penalties)
        else:
            assert settings is not None
            momentum_scores(ids, logits, settings.penalties, settings.top_k)
        seconds = time.process_time() - started
        ids = torch.cat([ids, torch.randint(0, 100, (batch, 1), generator=generator)], dim=1)
        return seconds

    return step


def cell_ms(
    cls: type, batch: int, history: int, vocab: int, steps: int, method: str = "md"
) -> tuple[float, float, float]:
    """Median ms per step of V2, V1 and stateless, timed step by step in a rotating order (so a busy machine slows
    the three alike). The first call of each processor builds the request's index from the prompt and is not timed."""
    extra = METHODS[method]
    paths = [
        v2_path(cls, batch, history, vocab, extra=extra),
        v1_path(cls, batch, history, vocab, extra=extra),
        stateless_path(batch, history, vocab, extra=extra),
    ]
    for path in paths[:2]:
        path()
    times: list[list[float]] = [[], [], []]
    for step in range(steps):
        for i in [(step + j) % 3 for j in range(3)]:
            times[i].append(paths[i]())
    v2, v1, stateless = (statistics.median(t) * 1e3 for t in times)
    return v2, v1, stateless


def table(
    cls: type, histories: tuple[int, ...], batches: tuple[int, ...], vocab: int, steps: int, method: str = "md"
) -> str:
    """A Markdown table of ms per step through V2, V1 and the stateless computation, for one method."""
    lines = [
        f"{TITLES[method]}:",
        "",
        "| batch | history tokens | V2 `apply` ms/step | V1 `apply` ms/step | stateless ms/step | stateless / V2 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for batch in batches:
        for history in histories:
            v2, v1, stateless = cell_ms(cls, batch, history, vocab, steps, method)
            lines.append(f"| {batch} | {history:,} | {v2:.2f} | {v1:.2f} | {stateless:.1f} | {stateless / v2:.0f}x |")
    return "\n".join(lines)


def state_mib(cls: type, method: str, history: int, vocab: int, seed: int = 0) -> float:
    """MiB of Python objects that one request's state holds after ``history`` tokens (random from a 100-token
    alphabet), built through V1 ``update_state`` and one ``apply``, measured with ``tracemalloc`` (which does not
    see torch tensors: the penalty also keeps one ``[V]`` float32 row, 4·V bytes)."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 100, (history,), generator=generator).tolist()
    processor = cls(SimpleNamespace(), torch.device("cpu"), False)
    logits = torch.randn(1, vocab, generator=generator)
    tracemalloc.start()
    try:
        added = [(0, _params(METHODS[method]), tokens, [])]
        processor.update_state(SimpleNamespace(batch_size=1, removed=[], added=added, moved=[]))
        processor.apply(logits)
        current = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return current / 2**20


def memory_table(cls: type, histories: tuple[int, ...], methods: list[str], vocab: int) -> str:
    """A Markdown table of :func:`state_mib` per history length and method."""
    lines = [
        "host memory of one request's state (Python objects, tracemalloc):",
        "",
        "| history tokens | " + " | ".join(f"{name} MiB" for name in methods) + " |",
        "| ---: |" + " ---: |" * len(methods),
    ]
    for history in histories:
        cells = " | ".join(f"{state_mib(cls, name, history, vocab):.1f}" for name in methods)
        lines.append(f"| {history:,} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.decoding.vllm_step_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--histories", type=comma_ints, default=(1024, 8192, 32768), help="history lengths, comma-separated"
    )
    parser.add_argument("--batches", type=comma_ints, default=(1, 8), help="batch sizes, comma-separated")
    parser.add_argument(
        "--methods", default="md,mp", help="comma-separated: md (momentum decoding), mp (the momentum penalty)"
    )
    parser.add_argument("--vocab", type=int, default=49_152, help="vocabulary size (SmolLM2's: 49,152)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per cell (median), >= 1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, >= 1")
    parser.add_argument("--memory", action="store_true", help="also the host memory of one request's state")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="also write OUT/vllm_step_cost.md")
    args = parser.parse_args(argv)
    for name in ("vocab", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if min(args.histories) < 1 or min(args.batches) < 1:
        parser.error("--histories and --batches must be >= 1")
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if not methods or any(name not in METHODS for name in methods):
        parser.error(f"--methods must list some of {', '.join(METHODS)}, got {args.methods!r}")
    if args.quick:
        args.histories, args.batches, args.vocab, args.steps = (256, 1024), (1, 2), 1000, 3
    torch.set_num_threads(args.threads)
    cls, where = _class()
    started = time.perf_counter()
    text = "\n\n".join(table(cls, args.histories, args.batches, args.vocab, args.steps, name) for name in methods)
    if args.memory:
        text += "\n\n" + memory_table(cls, args.histories, methods, args.vocab)
    load = f"load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    text += f"\n\n(processor class on {where}; V {args.vocab:,}, k 5 (md), N 5, {args.threads} thread(s), median of "
    text += f"{args.steps} steps; {time.perf_counter() - started:.0f} s; {load})\n"
    print_and_save(text, args.out, "vllm_step_cost.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
