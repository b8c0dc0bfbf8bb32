"""What moved under us in transformers, and the padding and dtype cases a bare ``input_ids`` cannot settle.

- transformers 5.24 hands the KV cache to ``custom_generate`` callables as ``cache``; earlier 5.x releases (and
  models whose ``forward`` predates the rename) use ``past_key_values``. Both must work.
- Left padding is exact where the attention mask is known, even when the pad id is also a real prompt token
  (pad = EOS = BOS, as in GPT-2).
- The processor takes any float dtype of scores, float64 included.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import transformers
from packaging.version import Version
from transformers import (
    DynamicCache,
    GenerationConfig,
    LlamaForCausalLM,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteriaList,
)
from transformers.generation.stopping_criteria import MaxLengthCriteria

from inertia.adapters.transformers.contrastive_search import contrastive_search
from inertia.adapters.transformers.generate_checks import cache_argument
from inertia.adapters.transformers.logits_processor import MomentumDecodingLogitsProcessor
from inertia.adapters.transformers.momentum_generate import momentum_decode
from tests.adapters.transformers.tiny_lm import BOS, PROMPTS, tiny_llama

CANDIDATE = 40
"""A token that never occurs in the prompts below."""

NATIVE = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"
"""The cache argument of the installed transformers' models (``cache`` from 5.24 on)."""


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


class PastKeyValuesLlama(LlamaForCausalLM):
    """A model whose ``forward`` knows only ``past_key_values`` (transformers < 5.24, or a custom model)."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, **kwargs):
        assert "cache" not in kwargs
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **{NATIVE: past_key_values},
            **kwargs,
        )


def _contrastive_directly(model, prompt: list[int], new: int, **cache_kwargs) -> list[int]:
    ids = torch.tensor([prompt])
    config = GenerationConfig(do_sample=False, num_beams=1, pad_token_id=0)
    criteria = StoppingCriteriaList([MaxLengthCriteria(max_length=len(prompt) + new)])
    out = contrastive_search(
        model, ids, LogitsProcessorList(), criteria, config, penalty_alpha=0.6, top_k=5, use_cache=True, **cache_kwargs
    )
    return out[0].tolist()


def test_cache_argument_follows_the_forward_signature(model) -> None:
    renamed = Version(transformers.__version__) >= Version("5.24")
    assert cache_argument(model) == ("cache" if renamed else "past_key_values")
    old = PastKeyValuesLlama(model.config).eval()
    assert cache_argument(old) == "past_key_values"


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_contrastive_search_takes_the_cache_under_either_name(model, name: str) -> None:
    prompt = PROMPTS[0]
    via_generate = model.generate(torch.tensor([prompt]), custom_generate=contrastive_search, max_new_tokens=10)
    direct = _contrastive_directly(model, prompt, 10, **{name: DynamicCache(config=model.config)})
    assert direct == via_generate[0].tolist()


def test_contrastive_search_runs_a_past_key_values_model(model) -> None:
    old = PastKeyValuesLlama(model.config).eval()
    old.load_state_dict(model.state_dict())
    prompt = PROMPTS[2]
    expected = model.generate(torch.tensor([prompt]), custom_generate=contrastive_search, max_new_tokens=10)
    assert _contrastive_directly(old, prompt, 10, past_key_values=DynamicCache(config=model.config)) == (
        expected[0].tolist()
    )


def test_a_filled_cache_is_refused_under_either_name(model) -> None:
    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([[5, 6]]), use_cache=True, **{NATIVE: cache})
    for name in ("cache", "past_key_values"):
        with pytest.raises(ValueError, match="needs an empty DynamicCache"):
            _contrastive_directly(model, PROMPTS[0], 3, **{name: cache})


class FixedScores(LogitsProcessor):
    """Replaces the model's scores: the pad id (a real prompt token here) narrowly beats a new token.

    Momentum decoding must then charge the pad id as a known node (level 1: α·R(1) = 0.2) and pick ``CANDIDATE``; if
    the pad id were taken for padding it would be a new node (level 0) and win.
    """

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        fixed = torch.full_like(scores, -10.0)
        fixed[:, BOS] = 3.0
        fixed[:, CANDIDATE] = 2.9
        return fixed


def test_momentum_decode_reads_padding_from_the_attention_mask(model) -> None:
    # pad id = BOS, and both prompts really start with BOS; the first row is also left-padded with it.
    ids = torch.tensor([[BOS, BOS, 5, 6], [BOS, 5, 6, 7]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        custom_generate=momentum_decode,
        logits_processor=LogitsProcessorList([FixedScores()]),
        pad_token_id=BOS,
        max_new_tokens=1,
    )
    assert out[:, -1].tolist() == [CANDIDATE, CANDIDATE]
    # GPT-2 style, pad = EOS = BOS and no mask given: generate infers no padding, so every prompt token is real.
    alone = model.generate(
        input_ids=ids[1:],
        custom_generate=momentum_decode,
        logits_processor=LogitsProcessorList([FixedScores()]),
        pad_token_id=BOS,
        eos_token_id=BOS,
        max_new_tokens=1,
    )
    assert alone[0, -1].item() == CANDIDATE


def test_bare_processor_limitation_and_its_remedy() -> None:
    # Documented: from input_ids alone a leading pad id is padding. With the prompt's mask it is a real token.
    history = torch.tensor([[BOS, 5, 6, 7]])
    scores = FixedScores()(history, torch.zeros(1, 64))
    bare = MomentumDecodingLogitsProcessor(pad_token_id=BOS)(history, scores)
    exact = MomentumDecodingLogitsProcessor(pad_token_id=BOS, prompt_attention_mask=torch.ones(1, 4))(history, scores)
    assert bare.argmax().item() == BOS
    assert exact.argmax().item() == CANDIDATE


def test_prompt_attention_mask_is_checked() -> None:
    with pytest.raises(ValueError, match="`prompt_attention_mask` must be None or a \\[B, T0\\] tensor"):
        MomentumDecodingLogitsProcessor(prompt_attention_mask=[[1, 1]])
    processor = MomentumDecodingLogitsProcessor(prompt_attention_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="does not match input_ids"):
        processor(torch.tensor([[5, 6, 7]]), torch.zeros(1, 16))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_processor_takes_every_float_dtype(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    history = torch.tensor([[4, 5, 6, 4, 5], [1, 2, 3, 1, 2]])
    logits = torch.randn(2, 32)
    processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5)
    reference = processor(history, logits)
    out = processor(history, logits.to(dtype))
    assert out.dtype == dtype
    assert torch.equal(out.argmax(-1), reference.argmax(-1))
    assert int(torch.isfinite(out).sum()) == 2 * 5


def test_float64_stuck_rows_get_the_lowest_finite_score() -> None:
    # Every candidate forbidden by an infinite resistance: the top-1 candidate must still win, in float64 too.
    history = torch.tensor([[3, 4, 3, 4, 3]])
    logits = torch.full((1, 8), -5.0, dtype=torch.float64)
    logits[0, 4] = 5.0
    processor = MomentumDecodingLogitsProcessor(alpha=1.0, top_k=1, resistance=(0.0, float("inf")))
    out = processor(history, logits)
    assert out.dtype == torch.float64 and out.argmax().item() == 4
    assert out[0, 4].item() == torch.finfo(torch.float64).min
