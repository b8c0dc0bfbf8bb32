"""Dai et al.'s momentum attention on the embedded SmolLM2-135M: identity, a real effect, and the product switch."""

from __future__ import annotations

import pytest
import torch

from inertia.adapters.transformers.attention_interface import (
    disable_lm_momentum_attention,
    enable_lm_momentum_attention,
    lm_momentum_attention,
)
from inertia.core.lm_attention.config import parse_lm_attention
from inertia.pipelines.text_generation import generate_text
from tests.adapters.transformers.smollm2 import shared_smollm2

pytestmark = pytest.mark.xdist_group("smollm2")

PROMPT = "The old lighthouse keeper climbed the stairs and"


def test_eta_zero_is_bit_identical_and_eta_changes_the_logits() -> None:
    model, tokenizer = shared_smollm2()
    ids = tokenizer([PROMPT], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = model(ids).logits
        enable_lm_momentum_attention(model, eta=0.0)
        try:
            identity = model(ids).logits
            enable_lm_momentum_attention(model, eta=0.05, scale=0.1)
            changed = model(ids).logits
        finally:
            disable_lm_momentum_attention(model)
        after = model(ids).logits
    assert torch.equal(identity, plain) and torch.equal(after, plain)
    assert not torch.equal(changed, plain)
    assert float((changed - plain).abs().max()) < 5.0  # scaled down, it nudges the model rather than breaking it


def test_generate_text_switches_it_for_one_call_only() -> None:
    model, tokenizer = shared_smollm2()
    implementation = model.config._attn_implementation
    plain = generate_text(model, tokenizer, PROMPT, method="greedy", max_new_tokens=12)
    same = generate_text(model, tokenizer, PROMPT, method="greedy", max_new_tokens=12, attention="off")
    momentum = generate_text(model, tokenizer, PROMPT, method="greedy", max_new_tokens=12, attention="momentum:0.3")
    assert plain == same and isinstance(momentum, str) and momentum
    assert model.config._attn_implementation == implementation and not hasattr(model.config, "momentum_attention")
    with lm_momentum_attention(model, parse_lm_attention("momentum")):
        assert model.config.momentum_attention == {
            "eta": 0.05,
            "scale": 0.1,
            "normalized": False,
            "window": None,
            "layers": None,
        }
    assert generate_text(model, tokenizer, PROMPT, method="greedy", max_new_tokens=12) == plain


@pytest.mark.slow
def test_the_shipped_adapter_reproduces_its_held_out_perplexity() -> None:
    import math

    from inertia.adapters.transformers.attention_interface import load_momentum_adapter
    from inertia.data.text_corpora import lee_background
    from inertia.pipelines.text import load_text_model
    from inertia.training.lm_momentum import held_out_nll

    model, tokenizer = load_text_model(device="cpu")  # a fresh copy: the adapter changes weights
    load_momentum_adapter(model)
    nll = held_out_nll(model, tokenizer, lee_background()[-50:])
    assert math.exp(sum(nll) / len(nll)) == pytest.approx(31.0896, abs=0.01)
