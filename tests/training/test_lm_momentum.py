"""The momentum-attention fine-tuning recipe on a tiny random Llama: step 0 is the model, the gates learn, both arms
see the same data, the gates round-trip, and bad settings are refused."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from inertia.adapters.transformers.attention_interface import add_momentum_gates, disable_lm_momentum_attention
from inertia.training.lm_momentum import LMFinetuneConfig, finetune, held_out_nll, text_blocks
from tests.adapters.transformers.tiny_lm import tiny_llama


class CharTokenizer:
    eos_token_id = 2

    def __call__(self, text, return_tensors=None, add_special_tokens=True):
        ids = [3 + ord(c) % 61 for c in text]
        return {"input_ids": torch.tensor([ids]) if return_tensors == "pt" else ids}


TRAIN = ["the cat sat on the mat and the dog sat on the log " * 3] * 6
EVAL = ["the cat sat on the log", "a dog on the mat sat"]


def test_gates_start_as_the_pretrained_model() -> None:
    model, tokenizer = tiny_llama(), CharTokenizer()
    before = held_out_nll(model, tokenizer, EVAL)
    add_momentum_gates(model, eta=0.2)
    assert held_out_nll(model, tokenizer, EVAL) == before  # λ_h = 0: exactly SDPA
    disable_lm_momentum_attention(model)


def test_both_arms_train_and_the_momentum_gates_move(tmp_path) -> None:
    results = {}
    for arm in ("momentum", "control"):
        model, tokenizer = tiny_llama(), CharTokenizer()
        config = LMFinetuneConfig(arm=arm, steps=6, batch_size=2, seq_len=16, lr=5e-2, eval_every=3)
        results[arm] = finetune(model, tokenizer, TRAIN, EVAL, config, tmp_path / arm)
    momentum, control = results["momentum"], results["control"]
    assert momentum["log"][0]["eval_nll"] == control["log"][0]["eval_nll"]  # same starting point
    assert [r["step"] for r in momentum["log"] if "eval_nll" in r] == [0, 3, 6]
    assert momentum["gates"]["scale_max_abs"] > 0 and control["gates"] is None
    assert momentum["eval_nll"] != control["eval_nll"]
    saved = load_file(str(tmp_path / "momentum" / "gates.safetensors"))
    assert sorted(saved) == ["layer.0.eta_logit", "layer.0.scale", "layer.1.eta_logit", "layer.1.scale"]
    assert (tmp_path / "control" / "result.json").is_file() and not (
        tmp_path / "control" / "gates.safetensors"
    ).exists()


def test_text_blocks() -> None:
    blocks = text_blocks(CharTokenizer(), ["abcd", "ef"], seq_len=3)
    assert blocks.tolist() == [
        [3 + ord("a") % 61, 3 + ord("b") % 61, 3 + ord("c") % 61],
        [3 + ord("d") % 61, 2, 3 + ord("e") % 61],
    ]
    with pytest.raises(ValueError, match="fewer than one block"):
        text_blocks(CharTokenizer(), ["ab"], seq_len=8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arm": "both"}, "`arm` must be one of"),
        ({"steps": 0}, "`steps` must be an integer >= 1"),
        ({"lr": 0}, "`lr` must be a finite number > 0"),
        ({"eta": 1.0}, r"`eta` must be in \(0, 1\)"),
        ({"shared": "all"}, "`shared` must be one of"),
    ],
)
def test_bad_settings_raise(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        LMFinetuneConfig(**kwargs)


def test_control_with_nothing_to_train_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to train"):
        finetune(tiny_llama(), CharTokenizer(), TRAIN, EVAL, LMFinetuneConfig(arm="control", shared="none", steps=1))
