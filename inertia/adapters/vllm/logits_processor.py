"""Momentum decoding and the momentum penalty as a vLLM logits processor: one class for both of vLLM's batch-level
processor interfaces.

- **Model runner V2** (vLLM 0.32 and later; the only interface of 0.34): ``__init__(vllm_config, req_states)``, the
  class method ``validate_params(sampling_params)``, ``add_request(slot, sampling_params)`` (slots are recycled, so
  it resets the slot) and ``apply(logits, ctx)``, where row ``r`` belongs to the request in slot
  ``ctx.expanded_idx_mapping[r]`` and the committed tokens are ``req_states.all_token_ids[slot]``.
- **V1** (``vllm.v1.sample.logits_processor``, vLLM 0.32's default runner on the CPU):
  ``__init__(vllm_config, device, is_pin_memory)``, ``update_state(batch_update)`` with the requests added,
  removed and moved between persistent-batch rows, ``apply(logits)`` and ``is_argmax_invariant()`` (False).

The class subclasses whichever of vLLM's base classes the installed vLLM has (:func:`processor_class`), so the one
entry point (``vllm.logits_processors``) serves every runner. A request asks for momentum decoding (greedy) with
``md_*`` keys in ``SamplingParams.extra_args``, or for the momentum penalty (any sampling) with ``mp_*`` keys
(:mod:`inertia.adapters.vllm.settings`); the others are never touched.

Each such request keeps an index of the tokens it has seen, fed with each new token, so a step costs the same at any
context length and its result is exactly that of the stateless core: an
:class:`~inertia.core.decoding.ngram_index.NgramIndex` for momentum decoding (eqs. (1)-(3) of
:mod:`inertia.core.decoding.momentum`), a :class:`~inertia.core.decoding.penalty_index.MomentumPenaltyRow` for the
penalty (eq. (4) of :mod:`inertia.core.decoding.momentum_penalty`). Under speculative decoding (V2), a draft row's
history is the committed tokens plus the drafts before it; those rows are scored by the stateless core on that
history.

This module imports no vLLM: :class:`MomentumDecodingProcessor` holds the logic and reads vLLM's objects by their
attributes, and :func:`build_processor_class` mixes it with vLLM's base classes.

Example:
    >>> from types import SimpleNamespace
    >>> import torch
    >>> cls = build_processor_class()            # no vLLM base: the bare logic, as the unit tests drive it
    >>> tokens = torch.tensor([[4, 5, 6, 4, 5, 0, 0, 0]])   # slot 0: the walk 4 5 6 4 5 is about to loop
    >>> req_states = SimpleNamespace(all_token_ids=tokens, total_len=torch.tensor([5]))
    >>> processor = cls(SimpleNamespace(), req_states)
    >>> processor.add_request(0, SimpleNamespace(extra_args={"md_top_k": 3}, temperature=0.0))
    True
    >>> ctx = SimpleNamespace(idx_mapping_np=[0], expanded_idx_mapping=torch.tensor([0]),
    ...                       expanded_local_pos=torch.tensor([0]), pos=torch.tensor([4]), input_ids=torch.tensor([5]))
    >>> logits = torch.tensor([[0.0] * 6 + [3.0, 2.9]])
    >>> int(processor.apply(logits, ctx).argmax())   # greedy re-enters the loop (6); momentum decoding picks 7
    7
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from inertia.adapters.vllm.penalty_rows import PenaltyRows
from inertia.adapters.vllm.scoring import RowLevels, score_rows, stateless_levels
from inertia.adapters.vllm.settings import MomentumSettings, PenaltySettings, RequestSettings, check_request
from inertia.core.decoding.ngram_index import NgramIndex
from inertia.core.decoding.penalty_index import MomentumPenaltyRow

__all__ = ["MomentumDecodingProcessor", "build_processor_class", "processor_class"]

logger = logging.getLogger(__name__)

PLACEHOLDER = -1
"""The token id vLLM's V1 runner keeps for a sampled token it has not copied back yet (asynchronous scheduling)."""


@dataclass
class _Request:
    """One request's state: its settings and the index of the tokens it has seen (an ``NgramIndex`` for momentum
    decoding, a ``MomentumPenaltyRow`` for the penalty)."""

    settings: RequestSettings
    index: NgramIndex | MomentumPenaltyRow
    prompt: list[int] | None = None  # V1: the prompt token ids
    output: list[int] | None = None  # V1: vLLM's live list of the request's output token ids

    def restart(self) -> None:
        """Drops every token fed (a fresh index)."""
        self.index = _fresh_index(self.settings)


def _fresh_index(settings: RequestSettings) -> NgramIndex | MomentumPenaltyRow:
    if isinstance(settings, PenaltySettings):
        return MomentumPenaltyRow(settings.penalties)
    return NgramIndex(settings.max_ngram)


def _tracked(settings: RequestSettings | None) -> bool:
    """Whether a request's rows change: not without settings, nor with a penalty of zero (α = 0: left bit for bit)."""
    return settings is not None and not (isinstance(settings, PenaltySettings) and settings.neutral)


class _Batch:
    """The rows of one step that this processor changes, by kind: momentum decoding's, the penalty's."""

    def __init__(self) -> None:
        self.rows: list[int] = []  # momentum decoding
        self.settings: list[MomentumSettings] = []
        self.levels: list[RowLevels] = []
        self.penalty = PenaltyRows()

    def add(self, row: int, request: _Request) -> None:
        """A row scored from its request's index (fed up to the row's position before :meth:`apply`)."""
        if isinstance(request.index, MomentumPenaltyRow):
            self.penalty.add(row, request.index)
        else:
            assert isinstance(request.settings, MomentumSettings)
            self.rows.append(row)
            self.settings.append(request.settings)
            self.levels.append(request.index.levels)

    def add_draft(self, row: int, request: _Request, history: torch.Tensor) -> None:
        """A speculative row, scored by the stateless core on its 1-D ``history``."""
        if isinstance(request.settings, PenaltySettings):
            self.penalty.add_draft(row, history, request.settings.penalties)
        else:
            self.rows.append(row)
            self.settings.append(request.settings)
            self.levels.append(stateless_levels(history, request.settings.max_ngram))

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if self.rows:
            score_rows(logits, self.rows, self.settings, self.levels)
        if self.penalty:
            self.penalty.apply(logits)
        return logits


def _tensor(buffer: Any) -> torch.Tensor:
    """The device tensor of one of vLLM's request-state buffers (``StagedWriteTensor`` and ``UvaBackedTensor`` keep
    it in ``.gpu``; the CPU runners and tests pass plain tensors)."""
    return buffer.gpu if hasattr(buffer, "gpu") else buffer


class MomentumDecodingProcessor:
    """Momentum decoding (Lan et al. 2022) and the momentum penalty for vLLM requests that ask for them; see the
    module docstring.

    vLLM builds it; users only pass ``md_*`` keys in ``extra_args``,
    ``SamplingParams(temperature=0, extra_args={"md_alpha": 0.2, "md_top_k": 5})``, or ``mp_*`` keys,
    ``SamplingParams(temperature=0.8, top_p=0.95, extra_args={"mp_alpha": 0.2})``. The class vLLM loads is
    :func:`processor_class` (this logic on vLLM's base classes), exported as
    ``inertia.adapters.vllm.MomentumDecodingLogitsProcessor``.

    If the engine builds it twice (the entry point, and the same class passed with ``logits_processors=``), the
    second instance stands aside, so no request is scored twice.

    Args:
        vllm_config: the engine's ``VllmConfig``.
        req_states: V2: the ``LogitsProcRequestState`` (token history of every slot). V1: the device.
        is_pin_memory: V1 only.

    Example:
        >>> from types import SimpleNamespace
        >>> settings = MomentumDecodingProcessor.validate_params(SimpleNamespace(extra_args={"md_alpha": 0.4}))
        >>> settings.alpha, settings.top_k
        (0.4, 5)
        >>> MomentumDecodingProcessor.validate_params(SimpleNamespace(temperature=0.8, extra_args={"mp_alpha": 0.5}))
        PenaltySettings(alpha=0.5, resistance=(0.0, 1.0, 3.0, 4.0, 5.0, 5.0))
    """

    _engines: ClassVar[dict[int, weakref.ref[MomentumDecodingProcessor]]] = {}  # id(vllm_config) -> first instance

    def __init__(self, vllm_config: Any, req_states: Any = None, is_pin_memory: bool | None = None) -> None:
        self._req_states = req_states if hasattr(req_states, "all_token_ids") else None  # V2 only
        self._requests: dict[int, _Request] = {}  # V2: by slot; V1: by persistent-batch row
        self._warned = False
        self._vllm_config = vllm_config  # kept alive with the instance, so its id is not reused for another engine
        owner = self._engines.get(id(vllm_config))
        first = owner() if owner is not None else None
        self._stand_aside = first is not None and first is not self
        if not self._stand_aside:
            self._engines[id(vllm_config)] = weakref.ref(self)

    @classmethod
    def validate_params(cls, sampling_params: Any) -> RequestSettings | None:
        """Checks a request at admission: its ``md_*`` or ``mp_*`` keys (not both), and greedy sampling if it asks for
        momentum decoding.

        Returns:
            The request's settings, or ``None`` when it asks for neither.

        Raises:
            ValueError: naming the key, its value and the valid range (vLLM answers HTTP 400 with the message).
        """
        return check_request(sampling_params)

    # ------------------------------------------------------------------------------------ model runner V2

    def add_request(self, req_idx: int, sampling_params: Any) -> bool:
        """V2: a request enters slot ``req_idx``; whatever the slot held before is dropped. Returns whether this
        processor changes the request's logits."""
        self._requests.pop(req_idx, None)
        settings = check_request(sampling_params)
        if settings is None or not _tracked(settings) or self._stand_aside:
            return False
        self._requests[req_idx] = _Request(settings, _fresh_index(settings))
        return True

    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        """V2 (``ctx`` given) or V1: the selection scores on the rows of requests that asked for momentum decoding,
        the penalised logits on the rows of those that asked for the penalty, in place; every other row is
        unchanged. Returns ``logits``."""
        if not self._requests:
            return logits
        if ctx is None:
            return self._apply_v1(logits)
        if self._req_states is None or not any(int(slot) in self._requests for slot in ctx.idx_mapping_np):
            return logits  # none of this batch's requests asked (a host array: no device sync)
        count = logits.shape[0]
        layout = [ctx.expanded_idx_mapping, ctx.expanded_local_pos, ctx.pos]  # one device sync for the three
        row_slots, local_pos, positions = torch.stack([t[:count].long() for t in layout]).tolist()
        tokens = _tensor(self._req_states.all_token_ids)
        batch = _Batch()
        indexed: list[tuple[_Request, int, int]] = []  # (request, slot, committed length) of the rows scored by index
        for row, (slot, local, position) in enumerate(zip(row_slots, local_pos, positions, strict=True)):
            request = self._requests.get(slot)
            if request is None:
                continue
            committed = position + 1 - local  # the tokens at positions < committed are in all_token_ids
            if local == 0:
                indexed.append((request, slot, committed))
                batch.add(row, request)
            else:  # a draft row: the committed tokens, then the drafts fed at this request's rows 1..local
                drafts = ctx.input_ids[row - local + 1 : row + 1].to(tokens)
                batch.add_draft(row, request, torch.cat([tokens[slot, :committed], drafts]))
        self._catch_up_v2(tokens, indexed)
        return batch.apply(logits)

    def _catch_up_v2(self, tokens: torch.Tensor, indexed: list[tuple[_Request, int, int]]) -> None:
        """Feeds each index the committed tokens it has not seen, read from the device in one gather."""
        slots: list[int] = []
        positions: list[int] = []
        for request, slot, committed in indexed:
            if committed < request.index.length:  # never in a plain run; rebuilt, so exact all the same
                request.restart()
            slots += [slot] * (committed - request.index.length)
            positions += range(request.index.length, committed)
        if not positions:
            return
        device = tokens.device
        new = tokens[torch.tensor(slots, device=device), torch.tensor(positions, device=device)].tolist()
        start = 0
        for request, _, committed in indexed:
            count = committed - request.index.length
            request.index.extend(new[start : start + count])
            start += count

    # ------------------------------------------------------------------------------------ V1 (BatchUpdate)

    def is_argmax_invariant(self) -> bool:
        """V1: False, momentum decoding and the penalty change the greedy choice."""
        return False

    def update_state(self, batch_update: Any) -> None:
        """V1: follows the persistent batch: removed rows, then added requests (a row's new occupant replaces its
        old state), then moves (one-way ``a -> b`` or swaps ``a <-> b``)."""
        if batch_update is None:
            return
        for row in batch_update.removed:
            self._requests.pop(row, None)
        for row, sampling_params, prompt, output in batch_update.added:
            self._requests.pop(row, None)
            settings = check_request(sampling_params)
            if settings is not None and _tracked(settings) and not self._stand_aside:
                self._requests[row] = _Request(settings, _fresh_index(settings), list(prompt or ()), output)
        for a, b, direction in batch_update.moved:
            moving, there = self._requests.pop(a, None), self._requests.pop(b, None)
            if moving is not None:
                self._requests[b] = moving
            if there is not None and getattr(direction, "name", "") == "SWAP":
                self._requests[a] = there

    def _apply_v1(self, logits: torch.Tensor) -> torch.Tensor:
        batch = _Batch()
        for row in sorted(row for row in self._requests if row < logits.shape[0]):
            self._catch_up_v1(self._requests[row])
            batch.add(row, self._requests[row])
        return batch.apply(logits)

    def _catch_up_v1(self, request: _Request) -> None:
        prompt, output = request.prompt or [], request.output or []
        if len(prompt) + len(output) < request.index.length:  # never in a plain run; rebuilt, so exact all the same
            request.restart()
        index = request.index
        seen = index.length
        new = prompt[seen:] + output[max(0, seen - len(prompt)) :]
        if PLACEHOLDER in new:  # asynchronous scheduling: vLLM fills these in later; feed them then
            new = new[: new.index(PLACEHOLDER)]
            if not self._warned:
                self._warned = True
                logger.warning(
                    "momentum decoding / momentum penalty: vLLM has not filled in the last sampled token yet "
                    "(asynchronous scheduling of the V1 runner), so this step misses it; turn asynchronous scheduling "
                    "off for exact results."
                )
        index.extend(new)


def build_processor_class(*bases: type) -> type:
    """:class:`MomentumDecodingProcessor` on top of ``bases`` (vLLM's ``LogitsProcessor`` base classes), named
    ``MomentumDecodingLogitsProcessor``. With no base, the bare logic."""
    doc = "Momentum decoding and the momentum penalty for vLLM: :class:`inertia.adapters.vllm.logits_processor.MomentumDecodingProcessor` on "
    doc += f"{', '.join(base.__module__ + '.' + base.__qualname__ for base in bases) or 'no base class'}."
    namespace = {"__module__": "inertia.adapters.vllm", "__doc__": doc}
    return type("MomentumDecodingLogitsProcessor", (MomentumDecodingProcessor, *bases), namespace)


def _interface_missing(error: ModuleNotFoundError) -> None:
    """Lets a missing vLLM, or a vLLM without that interface, pass; re-raises a missing dependency of vLLM's."""
    if not (error.name or "").startswith("vllm"):
        raise error


def processor_class() -> type:
    """The processor class for the installed vLLM: :class:`MomentumDecodingProcessor` on every ``LogitsProcessor``
    base class it has (model runner V2's, and V1's where it still exists).

    Raises:
        ImportError: when vLLM is not installed, or has neither interface.
    """
    bases: list[type] = []
    try:  # model runner V2 (vLLM 0.32 and later)
        from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as RunnerV2Processor

        bases.append(RunnerV2Processor)
    except ModuleNotFoundError as error:
        _interface_missing(error)
    try:  # V1, gone from vLLM 0.34
        from vllm.v1.sample.logits_processor import LogitsProcessor as RunnerV1Processor

        bases.append(RunnerV1Processor)
    except ModuleNotFoundError as error:
        _interface_missing(error)
    if not bases:
        raise ImportError(
            "inertia's vLLM logits processor needs vLLM (0.32 or later, with the model-runner V2 or V1 logits "
            "processor interface); see docs/hosts/vllm.md."
        )
    return build_processor_class(*bases)
