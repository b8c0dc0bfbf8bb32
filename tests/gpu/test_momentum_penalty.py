"""The momentum penalty on CUDA: the stateless processor has no host sync and matches the CPU in fp32, fp16 and bf16;
an engine's per-request row works on device logits; greedy generation on the penalised logits picks the CPU tokens."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LogitsProcessorList

from inertia.core.decoding.momentum_penalty import apply_momentum_penalty, momentum_penalty_table
from inertia.core.decoding.penalty_index import MomentumPenaltyRow
from inertia.decoders import MomentumPenaltyLogitsProcessor, momentum_sample
from tests.adapters.transformers.tiny_lm import PAD, PROMPTS, left_pad, tiny_llama

pytestmark = pytest.mark.gpu

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VOCAB = 49152


def _inputs(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A loopy history of 4 rows (one left-padded) and scores over SmolLM2's vocabulary size."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randint(3, 200, (4, 12), generator=generator)
    history = torch.cat([base, base, base[:, :5]], dim=1)  # repeated n-grams: every resistance level occurs
    history[1, :7] = PAD
    scores = torch.randn(4, VOCAB, generator=generator) * 3
    return history.to(device), scores.to(device, dtype)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_stateless_processor_on_cuda_has_no_host_sync_and_matches_the_cpu(cuda, forbid_syncs, dtype) -> None:
    history, scores = _inputs(cuda, dtype)
    mask = (history[:, :20] != PAD).long()
    processors = {
        "pad id": MomentumPenaltyLogitsProcessor(alpha=0.5, pad_token_id=PAD),  # "auto": stateless off the CPU
        "mask": MomentumPenaltyLogitsProcessor(alpha=1.0, resistance="linear", prompt_attention_mask=mask),
    }
    for name, processor in processors.items():
        processor(history, scores)  # first call outside the guard: lazy initialisation of the kernels used
        with forbid_syncs():
            out = processor(history, scores)
        assert out.dtype == dtype and out.device.type == "cuda", name
        cpu_processor = copy.copy(processor)
        if processor.prompt_attention_mask is not None:
            cpu_processor.prompt_attention_mask = mask.cpu()
        assert torch.equal(out.cpu(), cpu_processor(history.cpu(), scores.cpu())), name
        assert not torch.equal(out, scores), name


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_a_request_row_on_device_logits_matches_the_stateless_penalty(device, dtype) -> None:
    history, scores = _inputs(device, dtype)
    table = momentum_penalty_table(0.5)
    for row in (0, 2):
        state = MomentumPenaltyRow(table)
        state.extend(history[row, :10].tolist())
        for position in range(10, history.shape[1]):
            expected = apply_momentum_penalty(history[row : row + 1, :position], scores[row : row + 1], table)[0]
            assert torch.equal(state.apply(scores[row]), expected), (row, position)
            state.append(int(history[row, position]))


def test_greedy_on_the_penalised_logits_picks_the_cpu_tokens(device) -> None:
    cpu_model = tiny_llama()
    model = copy.deepcopy(cpu_model).to(device)
    for kwargs in (
        {"custom_generate": momentum_sample, "mp_alpha": 1.0},
        {"logits_processor": LogitsProcessorList([MomentumPenaltyLogitsProcessor(alpha=1.0, pad_token_id=PAD)])},
    ):
        expected = cpu_model.generate(**left_pad(PROMPTS), do_sample=False, max_new_tokens=20, **kwargs)
        inputs = {key: value.to(device) for key, value in left_pad(PROMPTS).items()}
        result = model.generate(**inputs, do_sample=False, max_new_tokens=20, **kwargs)
        assert torch.equal(result.cpu(), expected)
