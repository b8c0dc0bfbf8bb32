"""Dai et al.'s momentum attention on CUDA (tiny random Llama and Qwen2): η = 0 is SDPA on the device, a cached
generation equals the full forward, left padding equals one by one, and fp16/bf16 stay close to fp32 on the CPU."""

from __future__ import annotations

import pytest
import torch

from inertia.adapters.transformers.attention_interface import (
    disable_lm_momentum_attention,
    enable_lm_momentum_attention,
)
from tests.adapters.transformers.test_attention_interface import IDS, PAD, tiny

pytestmark = pytest.mark.gpu


@pytest.fixture(params=["llama", "qwen2"])
def family(request) -> str:
    return request.param


def test_eta_zero_is_sdpa_and_cache_equals_full_forward(device, family) -> None:
    model = tiny(family).to(device)
    ids = IDS.to(device)
    plain = model(ids).logits
    enable_lm_momentum_attention(model, eta=0.0)
    assert torch.equal(model(ids).logits, plain)
    enable_lm_momentum_attention(model, eta=0.4, scale=0.5)
    out = model.generate(ids, do_sample=False, max_new_tokens=8, output_logits=True, return_dict_in_generate=True)
    full = model(out.sequences).logits[0, ids.shape[1] - 1 : -1]
    torch.testing.assert_close(torch.cat(out.logits), full, atol=1e-4, rtol=1e-4)
    disable_lm_momentum_attention(model)


def test_left_padding_on_the_device(device, family) -> None:
    model = tiny(family).to(device)
    enable_lm_momentum_attention(model, eta=0.4)
    prompts = [[5, 9, 13, 7, 22, 31], [8, 17, 40]]
    ids = torch.tensor([[PAD] * (6 - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (6 - len(p)) + [1] * len(p) for p in prompts], device=device)
    batch = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=6)
    for row, prompt in zip(batch, prompts, strict=True):
        alone = model.generate(torch.tensor([prompt], device=device), do_sample=False, max_new_tokens=6)[0]
        assert row[6:].tolist() == alone[-6:].tolist()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_close_to_cpu_fp32(device, family, dtype) -> None:
    reference_model = tiny(family)
    enable_lm_momentum_attention(reference_model, eta=0.3)
    reference = reference_model(IDS).logits
    model = tiny(family).to(device, dtype)
    enable_lm_momentum_attention(model, eta=0.3)
    out = model(IDS.to(device)).logits
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.float().cpu(), reference, atol=0.05, rtol=0.05)
