"""Stand-ins for vLLM's two model runners, driving our processor as the engine does, without vLLM.

- :class:`FakeRunnerV2`: model runner V2. Requests get slots from a free list (a finished request's slot goes to the
  next one), the committed tokens of every slot live in one ``[slots, max_len]`` tensor with ``total_len``, and each
  step's rows come in a new order (``expanded_idx_mapping``), one per request, or one per token fed under
  speculative decoding. The request-state and context objects are built by the ``state``/``context`` callables, so
  a test passes the real dataclasses read from vLLM's wheel.
- :class:`FakeRunnerV1`: the V1 persistent batch. Requests occupy rows; vLLM reports added requests (with a live
  reference to their output list), removed rows, and moves (a finished row's place taken by the last one, swaps).

Both record, at each step, each request's history and logits row, so a test compares the processed rows with the
stateless core on the full history.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from inertia.adapters.vllm.settings import penalty_settings_of, settings_of
from inertia.core.decoding.momentum import momentum_scores
from inertia.core.decoding.momentum_penalty import apply_momentum_penalty


def params(temperature: float = 0.0, **extra: Any) -> SimpleNamespace:
    """A stand-in for ``SamplingParams``: what the processor reads (a request with ``mp_*`` keys samples, at 0.8)."""
    if temperature == 0.0 and any(key.startswith("mp_") for key in extra):
        temperature = 0.8
    return SimpleNamespace(temperature=temperature, extra_args=extra or None)


def expected_row(history: list[int], logits: torch.Tensor, extra: dict[str, Any] | None) -> torch.Tensor:
    """What a row must become: the stateless core's scores on the whole history (momentum decoding's selection
    scores for ``md_*`` keys, the momentum penalty's logits for ``mp_*`` keys), or the row unchanged."""
    ids = torch.tensor([history], dtype=torch.long)
    penalty = penalty_settings_of(extra)
    if penalty is not None:
        return apply_momentum_penalty(ids, logits[None], penalty.penalties)[0]
    settings = settings_of(extra)
    if settings is None:
        return logits
    top_k = min(settings.top_k, logits.shape[-1])
    return momentum_scores(ids, logits[None], settings.penalties, top_k)[0]


class Buffer:
    """vLLM's ``StagedWriteTensor``/``UvaBackedTensor``: the device tensor is ``.gpu``."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.gpu = tensor
        self.cpu = tensor
        self.np = tensor.numpy()


@dataclass
class Step:
    """One request's row at one step: its history, its logits before and after the processor."""

    request: str
    history: list[int]
    before: torch.Tensor
    after: torch.Tensor
    extra: dict[str, Any] | None


@dataclass
class _Live:
    slot: int
    extra: dict[str, Any] | None
    drafts: list[int] = field(default_factory=list)


class FakeRunnerV2:
    """Model runner V2 around ``processor_cls``; see the module docstring."""

    def __init__(
        self,
        processor_cls: type,
        slots: int = 4,
        max_len: int = 4096,
        vocab: int = 40,
        seed: int = 0,
        state: Callable[..., Any] = SimpleNamespace,
        context: Callable[..., Any] = SimpleNamespace,
    ) -> None:
        self.tokens = torch.zeros(slots, max_len, dtype=torch.int32)
        self.total = torch.zeros(slots, dtype=torch.int32)
        self.prompt_len = torch.zeros(slots, dtype=torch.int32)
        req_states = state(
            device=torch.device("cpu"),
            max_num_reqs=slots,
            vocab_size=vocab,
            all_token_ids=Buffer(self.tokens),
            prompt_len=Buffer(self.prompt_len),
            prefill_len=Buffer(self.prompt_len),
            total_len=Buffer(self.total),
        )
        self.processor = processor_cls(SimpleNamespace(name=f"engine {seed}"), req_states)
        self.context = context
        self.vocab = vocab
        self.free = list(range(slots))
        self.live: dict[str, _Live] = {}
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.used_slots: list[int] = []

    def add(self, request: str, prompt: list[int], **extra: Any) -> int:
        slot = self.free.pop()
        self.used_slots.append(slot)
        self.tokens[slot, : len(prompt)] = torch.tensor(prompt, dtype=torch.int32)
        self.total[slot] = len(prompt)
        self.prompt_len[slot] = len(prompt)
        self.live[request] = _Live(slot, extra or None)
        self.processor.add_request(slot, params(**extra))
        return slot

    def finish(self, request: str) -> None:
        self.free.append(self.live.pop(request).slot)  # nothing tells the processor: the slot is simply reused

    def history(self, request: str) -> list[int]:
        live = self.live[request]
        return self.tokens[live.slot, : int(self.total[live.slot])].tolist()

    def step(
        self, next_token: Callable[[str, torch.Tensor], int], drafts: dict[str, list[int]] | None = None
    ) -> list[Step]:
        """One engine step over the live requests in a random order; ``next_token(request, processed_row)`` is the
        token committed. ``drafts`` (speculative decoding) adds one row per draft token after a request's first."""
        order = list(self.live)
        self.rng.shuffle(order)
        row_slots, local_pos, positions, input_ids, records = [], [], [], [], []
        for request in order:
            live, history = self.live[request], self.history(request)
            fed = [history[-1], *(drafts or {}).get(request, [])]
            for local, token in enumerate(fed):
                row_slots.append(live.slot)
                local_pos.append(local)
                positions.append(len(history) - 1 + local)
                input_ids.append(token)
                records.append((request, history + fed[1 : local + 1], live.extra))
        logits = torch.randn(len(row_slots), self.vocab, generator=self.generator) * 2
        ctx = self.context(
            expanded_idx_mapping=torch.tensor(row_slots, dtype=torch.int32),
            idx_mapping=torch.tensor(sorted(set(row_slots), key=row_slots.index), dtype=torch.int32),
            idx_mapping_np=np.array(sorted(set(row_slots), key=row_slots.index), dtype=np.int32),
            expanded_local_pos=torch.tensor(local_pos, dtype=torch.int32),
            input_ids=torch.tensor(input_ids, dtype=torch.int32),
            pos=torch.tensor(positions, dtype=torch.int64),
            seq_lens_upper_bound_np=np.array(positions, dtype=np.int32) + 1,
        )
        before = logits.clone()
        after = self.processor.apply(logits, ctx)
        steps = [Step(r, h, before[i], after[i], e) for i, (r, h, e) in enumerate(records)]
        for i, step in enumerate(steps):
            if local_pos[i] == 0:
                slot = self.live[step.request].slot
                self.tokens[slot, int(self.total[slot])] = next_token(step.request, step.after)
                self.total[slot] += 1
        return steps


class Direction(Enum):
    """vLLM's ``MoveDirectionality``."""

    UNIDIRECTIONAL = 1
    SWAP = 2


class FakeRunnerV1:
    """The V1 persistent batch around ``processor_cls``; see the module docstring."""

    def __init__(
        self, processor_cls: type, vocab: int = 40, seed: int = 0, batch_update: Callable[..., Any] = SimpleNamespace
    ) -> None:
        self.processor = processor_cls(SimpleNamespace(name=f"engine {seed}"), torch.device("cpu"), False)
        self.batch_update = batch_update
        self.vocab = vocab
        self.rows: list[str | None] = []
        self.prompts: dict[str, list[int]] = {}
        self.outputs: dict[str, list[int]] = {}
        self.extras: dict[str, dict[str, Any] | None] = {}
        self.pending: dict[str, list[Any]] = {"removed": [], "added": [], "moved": []}
        self.swaps: list[tuple[int, int]] = []
        self.moves_seen: list[list[Any]] = []
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)

    def add(self, request: str, prompt: list[int], **extra: Any) -> int:
        """Into the lowest row freed this step (vLLM then leaves it out of ``removed``), else at the end."""
        holes = sorted(self.pending["removed"])
        row = holes[0] if holes else len(self.rows)
        if holes:
            self.pending["removed"].remove(row)
        else:
            self.rows.append(None)
        self.rows[row] = request
        self.prompts[request], self.outputs[request], self.extras[request] = list(prompt), [], extra or None
        self.pending["added"].append((row, params(**extra), self.prompts[request], self.outputs[request]))
        return row

    def finish(self, request: str) -> None:
        row = self.rows.index(request)
        self.rows[row] = None
        self.pending["removed"].append(row)

    def swap(self, a: int, b: int) -> None:
        """Two live rows trade places (after this step's condensing)."""
        self.swaps.append((a, b))

    def _condense(self) -> None:
        """As vLLM after adding: the last live rows move into the holes left, one way."""
        while None in self.rows:
            hole = self.rows.index(None)
            while self.rows and self.rows[-1] is None:
                self.rows.pop()
            if hole >= len(self.rows):
                break
            last = len(self.rows) - 1
            self.rows[hole] = self.rows.pop()
            self.pending["moved"].append((last, hole, Direction.UNIDIRECTIONAL))
        for a, b in self.swaps:
            if max(a, b) >= len(self.rows):
                continue  # the batch shrank since
            self.rows[a], self.rows[b] = self.rows[b], self.rows[a]
            self.pending["moved"].append((a, b, Direction.SWAP))
        self.swaps = []

    def history(self, request: str) -> list[int]:
        return self.prompts[request] + self.outputs[request]

    def step(self, next_token: Callable[[str, torch.Tensor], int]) -> list[Step]:
        self._condense()
        self.moves_seen.append(list(self.pending["moved"]))
        changed = any(self.pending.values())
        update = (
            self.batch_update(batch_size=len(self.rows), **{k: list(v) for k, v in self.pending.items()})
            if changed
            else None
        )
        self.pending = {"removed": [], "added": [], "moved": []}
        self.processor.update_state(update)
        logits = torch.randn(len(self.rows), self.vocab, generator=self.generator) * 2
        before = logits.clone()
        after = self.processor.apply(logits)
        steps = []
        for row, request in enumerate(self.rows):
            if request is None:
                continue
            steps.append(Step(request, self.history(request), before[row], after[row], self.extras[request]))
            self.outputs[request].append(next_token(request, after[row]))
        return steps
