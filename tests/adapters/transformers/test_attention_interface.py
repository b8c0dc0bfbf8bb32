"""Dai et al.'s momentum attention as a transformers attention implementation, on tiny random models of six
families: identity at η = 0, exactness against an explicit computation, cache == full forward, padding, batches,
static caches, GQA, dtypes, save/load, generate with our decoders, and bad input."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM

from inertia.adapters.transformers.attention_interface import (
    LM_MOMENTUM_ATTENTION,
    LMMomentumAttention,
    disable_lm_momentum_attention,
    enable_lm_momentum_attention,
)
from inertia.decoders import contrastive_search, momentum_decode

COMMON = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
FAMILIES = {
    "llama": ("LlamaConfig", {"num_attention_heads": 4, "num_key_value_heads": 2}),
    "qwen2": ("Qwen2Config", {"num_attention_heads": 4, "num_key_value_heads": 2}),
    "qwen3": ("Qwen3Config", {"num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8}),
    "mistral": ("MistralConfig", {"num_attention_heads": 4, "num_key_value_heads": 2, "sliding_window": None}),
    "gemma": ("GemmaConfig", {"num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8}),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}),
}
PAD = 0


def tiny(family: str, seed: int = 0) -> torch.nn.Module:
    name, extra = FAMILIES[family]
    settings = {**COMMON, **extra} if family != "gpt2" else {"vocab_size": 64, **extra}
    config = getattr(transformers, name)(**settings, pad_token_id=PAD, eos_token_id=None, bos_token_id=None)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()


IDS = torch.tensor([[5, 9, 13, 7, 22, 31, 8, 17, 40, 3]])


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def model(request):
    return tiny(request.param)


def test_eta_zero_and_scale_zero_are_bit_identical_to_sdpa(model) -> None:
    plain = model(IDS).logits
    for eta, scale in ((0.0, 1.0), (0.3, 0.0)):
        enable_lm_momentum_attention(model, eta=eta, scale=scale)
        try:
            assert torch.equal(model(IDS).logits, plain)
        finally:
            disable_lm_momentum_attention(model)
    assert torch.equal(model(IDS).logits, plain)
    assert not hasattr(model.config, "momentum_attention")


def test_changes_the_output_and_only_the_chosen_layers(model) -> None:
    plain = model(IDS).logits
    enable_lm_momentum_attention(model, eta=0.3)
    try:
        everywhere = model(IDS).logits
        model.config.momentum_attention = {**model.config.momentum_attention, "layers": [1]}
        last_only = model(IDS).logits
        model.config.momentum_attention = {**model.config.momentum_attention, "layers": [7]}  # no such layer
        nowhere = model(IDS).logits
    finally:
        disable_lm_momentum_attention(model)
    assert not torch.equal(everywhere, plain) and not torch.equal(last_only, plain)
    assert not torch.equal(everywhere, last_only) and torch.equal(nowhere, plain)
    assert not torch.equal(everywhere[:, 1:], plain[:, 1:]) and torch.allclose(everywhere[:, 0], plain[:, 0])


@pytest.mark.parametrize("normalized", [False, True])
def test_cached_generation_equals_the_full_forward(model, normalized) -> None:
    enable_lm_momentum_attention(model, eta=0.4, scale=0.5, normalized=normalized)
    try:
        out = model.generate(IDS, do_sample=False, max_new_tokens=8, output_logits=True, return_dict_in_generate=True)
        full = model(out.sequences).logits[0, IDS.shape[1] - 1 : -1]
        cached = torch.cat(out.logits)
    finally:
        disable_lm_momentum_attention(model)
    torch.testing.assert_close(cached, full, atol=5e-5, rtol=1e-4)


def test_left_padded_batch_equals_one_by_one(model) -> None:
    prompts = [[5, 9, 13, 7, 22, 31], [8, 17, 40]]
    width = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    enable_lm_momentum_attention(model, eta=0.4)
    try:
        batch = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=6)
        alone = [model.generate(torch.tensor([p]), do_sample=False, max_new_tokens=6)[0] for p in prompts]
    finally:
        disable_lm_momentum_attention(model)
    for row, single in zip(batch, alone, strict=True):
        assert row[width:].tolist() == single[-6:].tolist()


def test_static_cache_equals_dynamic(model) -> None:
    enable_lm_momentum_attention(model, eta=0.4)
    try:
        dynamic = model.generate(IDS, do_sample=False, max_new_tokens=6)
        static = model.generate(IDS, do_sample=False, max_new_tokens=6, cache_implementation="static")
    finally:
        disable_lm_momentum_attention(model)
    assert torch.equal(dynamic, static)


def test_matches_an_explicit_computation_on_one_layer() -> None:
    # One Llama attention layer: o_proj(SDPA + Σ_{i<t} η^(t-i) v_i) with the values computed by hand.
    model = tiny("llama")
    layer = model.model.layers[0].self_attn
    captured = {}
    hook = layer.v_proj.register_forward_hook(lambda _m, _i, out: captured.setdefault("v", out))
    grab = layer.o_proj.register_forward_pre_hook(lambda _m, args: captured.setdefault("o_in", args[0]))
    enable_lm_momentum_attention(model, eta=0.5, scale=0.8, layers=[0])
    model(IDS)
    hook.remove()
    grab.remove()
    disable_lm_momentum_attention(model)
    captured_plain = {}
    grab = layer.o_proj.register_forward_pre_hook(lambda _m, args: captured_plain.setdefault("o_in", args[0]))
    model(IDS)
    grab.remove()
    heads, kv_heads, dim = 4, 2, 8
    v = captured["v"].view(1, -1, kv_heads, dim).repeat_interleave(heads // kv_heads, dim=2)  # [B, T, H, D]
    t = IDS.shape[1]
    weights = torch.tensor([[0.5 ** (q - i) if i < q else 0.0 for i in range(t)] for q in range(t)])
    term = torch.einsum("qi,bihd->bqhd", weights, v).reshape(1, t, heads * dim)
    torch.testing.assert_close(captured["o_in"], captured_plain["o_in"] + 0.8 * term, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_half_precision_runs_and_stays_close(dtype) -> None:
    model = tiny("qwen2")
    enable_lm_momentum_attention(model, eta=0.3)
    reference = model(IDS).logits
    model = model.to(dtype)
    out = model(IDS).logits
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)


def test_parameters_survive_save_and_load(tmp_path) -> None:
    model = tiny("llama")
    enable_lm_momentum_attention(model, eta=0.2, scale=0.5, window=16)
    expected = model(IDS).logits
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation=LM_MOMENTUM_ATTENTION).eval()
    assert loaded.config.momentum_attention == {
        "eta": 0.2,
        "scale": 0.5,
        "normalized": False,
        "window": 16,
        "layers": None,
    }
    torch.testing.assert_close(loaded(IDS).logits, expected)
    # Setting the dict and the implementation by hand is all a user needs.
    again = tiny("llama")
    again.config.momentum_attention = {"eta": 0.2, "scale": 0.5, "window": 16}
    again.set_attn_implementation(LM_MOMENTUM_ATTENTION)
    torch.testing.assert_close(again(IDS).logits, expected)


def test_works_with_our_custom_generate_callables() -> None:
    model = tiny("llama")
    enable_lm_momentum_attention(model, eta=0.3)
    for decoder in (momentum_decode, contrastive_search):
        out = model.generate(IDS, custom_generate=decoder, max_new_tokens=5)
        assert out.shape == (1, IDS.shape[1] + 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eta": 1.0}, r"`eta` must be a number in \[0, 1\)"),
        ({"eta": -0.1}, r"`eta` must be a number in \[0, 1\)"),
        ({"eta": 0.1, "scale": -1}, "`scale` must be a finite number >= 0"),
        ({"eta": 0.1, "window": 0}, "`window` must be None or an integer >= 1"),
        ({"eta": 0.1, "layers": [-1]}, "`layers` must be None or integers >= 0"),
    ],
)
def test_bad_parameters_raise_before_anything_changes(kwargs, message) -> None:
    model = tiny("llama")
    with pytest.raises(ValueError, match=message):
        enable_lm_momentum_attention(model, **kwargs)
    assert model.config._attn_implementation == "sdpa" and not hasattr(model.config, "momentum_attention")


def test_a_missing_or_bad_config_is_a_clear_error() -> None:
    model = tiny("llama")
    model.set_attn_implementation(LM_MOMENTUM_ATTENTION)
    with pytest.raises(ValueError, match=r"needs `model\.config\.momentum_attention`"):
        model(IDS)
    model.config.momentum_attention = {"eta": 0.1, "beta": 2}
    with pytest.raises(ValueError, match=r"unknown keys \['beta'\]"):
        model(IDS)
    assert LMMomentumAttention.from_dict({"eta": 0.1}).to_dict()["scale"] == 1.0


def test_the_shipped_smollm2_adapter_fits_smollm2() -> None:
    # Without loading SmolLM2: 30 layers x 9 heads of gates, and normalisation weights only.
    from safetensors.torch import load_file

    from inertia.adapters.transformers.attention_interface import SMOLLM2_ADAPTER

    gates = load_file(str(SMOLLM2_ADAPTER / "smollm2-135m-lee-gates.safetensors"))
    norms = load_file(str(SMOLLM2_ADAPTER / "smollm2-135m-lee-norms.safetensors"))
    assert len(gates) == 2 * 30 and all(t.shape == (9,) for t in gates.values())
    assert norms and all("norm" in key for key in norms)
    eta = torch.sigmoid(torch.stack([t for k, t in gates.items() if k.endswith("eta_logit")]))
    assert 0.0 < float(eta.min()) and float(eta.max()) < 0.5


def test_an_adapter_that_does_not_fit_is_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    from inertia.adapters.transformers.attention_interface import load_momentum_adapter

    save_file({"model.no_such.weight": torch.ones(3)}, str(tmp_path / "x-norms.safetensors"))
    model = tiny("llama")
    with pytest.raises(ValueError, match="do not fit LlamaForCausalLM"):
        load_momentum_adapter(model, tmp_path, prefix="x")
    assert model.config._attn_implementation == "sdpa"


def test_an_in_place_edit_of_the_config_takes_effect() -> None:
    model = tiny("llama")
    plain = model(IDS).logits
    enable_lm_momentum_attention(model, eta=0.3)
    changed = model(IDS).logits
    model.config.momentum_attention["eta"] = 0.0  # edited in place, not replaced
    assert torch.equal(model(IDS).logits, plain)
    model.config.momentum_attention["eta"] = 0.3
    assert torch.equal(model(IDS).logits, changed)
