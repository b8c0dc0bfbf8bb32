"""Momentum decoding and contrastive search on CUDA with a tiny random Llama, in fp32, fp16 and bf16.

fp32 on the device must pick the same tokens as fp32 on the CPU; half precision must run and give well-formed
sequences; the processor must run on CUDA tensors without a host sync and agree with its CPU result.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from transformers import LogitsProcessorList

from inertia.decoders import MomentumDecodingLogitsProcessor, contrastive_search, momentum_decode
from tests.adapters.transformers.tiny_lm import PAD, PROMPTS, left_pad, tiny_llama

pytestmark = pytest.mark.gpu

NEW_TOKENS = 20
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
METHODS: dict[str, dict[str, Any]] = {
    "greedy": {"do_sample": False},
    "processor": {
        "do_sample": False,
        "logits_processor": LogitsProcessorList(
            [MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, pad_token_id=PAD)]
        ),
    },
    "momentum_decode": {"custom_generate": momentum_decode, "md_alpha": 0.2, "md_top_k": 5},
    "contrastive_search": {"custom_generate": contrastive_search, "penalty_alpha": 0.6, "top_k": 5},
}


@pytest.fixture(scope="module")
def cpu_model() -> torch.nn.Module:
    return tiny_llama()


@pytest.fixture(scope="module")
def models(cpu_model, device) -> dict[torch.dtype, torch.nn.Module]:
    """The same weights on the device in each dtype."""
    return {dtype: copy.deepcopy(cpu_model).to(device=device, dtype=dtype) for dtype in DTYPES.values()}


def generate(model: torch.nn.Module, method: str, device: torch.device) -> torch.Tensor:
    inputs = {key: value.to(device) for key, value in left_pad(PROMPTS).items()}
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=NEW_TOKENS, **METHODS[method])


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    rows, columns = torch.nonzero(a != b, as_tuple=True)
    return f"row {int(rows[0])}, position {int(columns[0])}" if len(rows) else "none"


def test_fp32_logits_on_the_device_match_the_cpu(cpu_model, models, device) -> None:
    inputs = left_pad(PROMPTS)
    with torch.no_grad():
        expected = cpu_model(**inputs).logits
        logits = models[torch.float32](**{k: v.to(device) for k, v in inputs.items()}).logits
    torch.testing.assert_close(logits.cpu(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
def test_fp32_on_the_device_picks_the_cpu_tokens(cpu_model, models, device, method) -> None:
    expected = generate(cpu_model, method, torch.device("cpu"))
    result = generate(models[torch.float32], method, device)
    assert result.device.type == device.type
    assert torch.equal(result.cpu(), expected), (
        f"{method}: first difference at {_first_difference(result.cpu(), expected)}"
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("method", list(METHODS))
def test_half_precision_generates_well_formed_sequences(cpu_model, models, device, method, dtype) -> None:
    prompt = left_pad(PROMPTS)["input_ids"]
    result = generate(models[dtype], method, device).cpu()
    assert result.shape[0] == len(PROMPTS) and prompt.shape[1] < result.shape[1] <= prompt.shape[1] + NEW_TOKENS
    assert torch.equal(result[:, : prompt.shape[1]], prompt)
    assert int(result.min()) >= 0 and int(result.max()) < cpu_model.config.vocab_size


def _processor_inputs(device: torch.device, dtype: torch.dtype, vocab: int = 49152) -> tuple[torch.Tensor, ...]:
    """A loopy history of 4 rows (one left-padded) and scores over SmolLM2's vocabulary size.

    The 16 best scores of each row are distinct and exact in every dtype (so the top-k sets cannot differ by a tie);
    the loop's continuation gets the highest one, so momentum decoding and greedy search disagree.
    """
    generator = torch.Generator().manual_seed(0)
    base = torch.randint(3, 200, (4, 12), generator=generator)
    history = torch.cat([base, base, base[:, :5]], dim=1)  # repeated n-grams: every resistance level occurs
    history[1, :7] = PAD
    scores = torch.rand(4, vocab, generator=generator) * 4.0  # below every candidate
    for row in range(4):
        loop = base[row, 5:].tolist()  # base[row, 5] continues the repeated 5-gram: the greedy choice
        fresh = list(range(300, 300 + len(loop)))
        ids = list(dict.fromkeys(token for pair in zip(loop, fresh) for token in pair))[:16]
        scores[row, ids] = 9.0 - 0.25 * torch.arange(len(ids), dtype=torch.float32)
    return history.to(device), scores.to(device, dtype)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_processor_on_cuda_scores_has_no_host_sync_and_matches_the_cpu(cuda, forbid_syncs, dtype) -> None:
    history, scores = _processor_inputs(cuda, dtype)
    mask = (history[:, :20] != PAD).long()
    processors = {
        "pad id": MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, pad_token_id=PAD),
        "mask": MomentumDecodingLogitsProcessor(alpha=0.2, top_k=8, resistance="linear", prompt_attention_mask=mask),
    }
    for name, processor in processors.items():
        processor(history, scores)  # first call outside the guard: lazy initialisation of the kernels used
        with forbid_syncs():
            out = processor(history, scores)
        assert out.dtype == dtype and out.device.type == "cuda", name
        cpu_processor = copy.copy(processor)
        if processor.prompt_attention_mask is not None:
            cpu_processor.prompt_attention_mask = mask.cpu()
        expected = cpu_processor(history.cpu(), scores.cpu())
        assert torch.equal(torch.isfinite(out).cpu(), torch.isfinite(expected)), name  # the same candidates
        finite = torch.isfinite(expected)
        tolerance = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}[dtype]
        torch.testing.assert_close(out.cpu()[finite], expected[finite], rtol=tolerance, atol=tolerance)
        assert not torch.equal(expected.argmax(-1), scores.cpu().float().argmax(-1)), name  # MD is not greedy here
        if dtype == torch.float32:  # half-precision selection scores may round two candidates to a tie
            assert torch.equal(out.argmax(-1).cpu(), expected.argmax(-1)), name
