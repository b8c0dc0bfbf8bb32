"""Momentum decoding inside transformers ``generate()``: the processor contract and the ``custom_generate`` callable."""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from inertia.adapters.transformers.logits_processor import MomentumDecodingLogitsProcessor
from inertia.adapters.transformers.momentum_generate import momentum_decode
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE
from tests.adapters.transformers.reference import reference_momentum_generate
from tests.adapters.transformers.tiny_lm import EOS, PAD, PROMPTS, left_pad, strip, tiny_llama


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


class RecordingStreamer(BaseStreamer):
    def __init__(self) -> None:
        self.puts: list[list[int]] = []
        self.ended = 0

    def put(self, value: torch.Tensor) -> None:
        self.puts.append(value.reshape(-1).tolist())

    def end(self) -> None:
        self.ended += 1


def test_processor_follows_the_transformers_5_contract() -> None:
    processor = MomentumDecodingLogitsProcessor()
    assert isinstance(processor, LogitsProcessor)
    assert list(inspect.signature(processor.__call__).parameters) == ["input_ids", "scores"]
    assert processor.supports_continuous_batching is False
    out = LogitsProcessorList([processor])(torch.tensor([[1, 2, 3]]), torch.randn(1, 16))
    assert out.shape == (1, 16)


def test_custom_generate_matches_the_authors_loop(model) -> None:
    for prompt in PROMPTS:
        out = model.generate(torch.tensor([prompt]), custom_generate=momentum_decode, max_new_tokens=30)[0].tolist()
        reference = reference_momentum_generate(model, prompt, 30, 0.2, 5, DEFAULT_RESISTANCE)
        assert out == reference[: len(out)]
        assert len(out) == len(reference) or out[-1] == EOS


def test_momentum_decoding_breaks_the_tiny_models_greedy_loop(model) -> None:
    # The control that makes the exactness test above meaningful: greedy loops on this prompt, MD does not.
    prompt = torch.tensor([PROMPTS[0]])
    greedy = model.generate(prompt, do_sample=False, max_new_tokens=30)[0, 6:].tolist()
    momentum = model.generate(prompt, custom_generate=momentum_decode, max_new_tokens=30)[0, 6:].tolist()

    def distinct_4grams(tokens: list[int]) -> int:
        return len({tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)})

    assert distinct_4grams(greedy) < 0.7 * (len(greedy) - 3)
    assert distinct_4grams(momentum) == len(momentum) - 3


def test_custom_generate_equals_the_processor_with_greedy_generate(model) -> None:
    inputs = left_pad(PROMPTS)
    via_callable = model.generate(
        **inputs, custom_generate=momentum_decode, md_alpha=0.3, md_top_k=4, md_resistance="linear", max_new_tokens=20
    )
    processor = MomentumDecodingLogitsProcessor(alpha=0.3, top_k=4, resistance="linear", pad_token_id=PAD)
    via_processor = model.generate(
        **inputs, do_sample=False, logits_processor=LogitsProcessorList([processor]), max_new_tokens=20
    )
    assert torch.equal(via_callable, via_processor)


def test_alpha_zero_is_exactly_greedy_generate(model) -> None:
    inputs = left_pad(PROMPTS)
    greedy = model.generate(**inputs, do_sample=False, max_new_tokens=25)
    momentum = model.generate(**inputs, custom_generate=momentum_decode, md_alpha=0.0, max_new_tokens=25)
    assert torch.equal(greedy, momentum)


def test_left_padded_batch_equals_one_by_one(model) -> None:
    inputs = left_pad(PROMPTS)
    width = inputs["input_ids"].shape[1]
    batch = model.generate(**inputs, custom_generate=momentum_decode, max_new_tokens=25)
    for row, prompt in zip(batch, PROMPTS):
        alone = model.generate(torch.tensor([prompt]), custom_generate=momentum_decode, max_new_tokens=25)[0]
        full = strip(row, width, prompt)
        assert full[: len(alone)] == alone.tolist()
        assert all(token == PAD for token in full[len(alone) :])  # rows that stopped at eos are padded


def test_stateless_under_assisted_decoding_replays(model) -> None:
    # Prompt-lookup (assisted) decoding calls the processor again on positions it already saw; a processor that kept
    # state between calls would diverge here.
    class Recording(MomentumDecodingLogitsProcessor):
        def __call__(self, input_ids, scores):
            self.lengths.append(input_ids.shape[1])
            return super().__call__(input_ids, scores)

    recording = Recording(pad_token_id=PAD)
    recording.lengths = []
    prompt = torch.tensor([PROMPTS[0]])
    assisted = model.generate(
        prompt,
        do_sample=False,
        logits_processor=LogitsProcessorList([recording]),
        prompt_lookup_num_tokens=3,
        max_new_tokens=30,
    )
    plain = model.generate(prompt, custom_generate=momentum_decode, max_new_tokens=30)
    assert torch.equal(assisted, plain)
    assert len(recording.lengths) > len(set(recording.lengths))  # some positions were replayed


def test_eos_stops_generation(model) -> None:
    # PROMPTS[1] reaches eos within 30 tokens under momentum decoding (see the reference test).
    out = model.generate(torch.tensor([PROMPTS[1]]), custom_generate=momentum_decode, max_new_tokens=30)[0].tolist()
    assert out[-1] == EOS and EOS not in out[:-1] and len(out) < 3 + 30


def test_streamer_receives_prompt_tokens_and_end(model) -> None:
    streamer = RecordingStreamer()
    prompt = PROMPTS[0]
    out = model.generate(
        torch.tensor([prompt]), custom_generate=momentum_decode, md_streamer=streamer, max_new_tokens=8
    )
    assert streamer.puts[0] == prompt
    assert [token for chunk in streamer.puts[1:] for token in chunk] == out[0, len(prompt) :].tolist()
    assert streamer.ended == 1


def test_output_logits_are_the_raw_model_logits(model) -> None:
    prompt = torch.tensor([PROMPTS[0]])
    out = model.generate(
        prompt,
        custom_generate=momentum_decode,
        max_new_tokens=5,
        return_dict_in_generate=True,
        output_logits=True,
        output_scores=True,
    )
    with torch.no_grad():
        first_logits = model(prompt).logits[0, -1]
    torch.testing.assert_close(out.logits[0][0], first_logits, rtol=1e-5, atol=1e-5)
    assert int(torch.isfinite(out.scores[0]).sum()) == 5  # selection scores on the 5 candidates


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"do_sample": True}, "do_sample=True"),
        ({"num_beams": 2}, "num_beams=2"),
        ({"penalty_alpha": 0.6, "top_k": 4}, "contrastive_search"),
        ({"dola_layers": "low"}, "dola_layers"),
        ({"prompt_lookup_num_tokens": 3}, "prompt_lookup_num_tokens"),
        ({"md_alpha": -0.1}, "md_alpha|`alpha`"),
        ({"md_top_k": 0}, "top_k"),
        ({"md_resistance": "quadratic"}, "resistance"),
        ({"md_max_ngram": 2}, "max_ngram"),
    ],
)
def test_unsupported_modes_and_bad_parameters_raise_before_any_forward(model, kwargs, message) -> None:
    calls = []
    handle = model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message):
            model.generate(torch.tensor([PROMPTS[0]]), custom_generate=momentum_decode, max_new_tokens=4, **kwargs)
    finally:
        handle.remove()
    assert calls == []


def test_processor_and_custom_generate_together_is_an_error(model) -> None:
    processors = LogitsProcessorList([MomentumDecodingLogitsProcessor()])
    with pytest.raises(ValueError, match="already holds one"):
        model.generate(
            torch.tensor([PROMPTS[0]]), custom_generate=momentum_decode, logits_processor=processors, max_new_tokens=4
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -0.5}, r"`alpha` must be a finite number >= 0 .*got -0.5"),
        ({"alpha": float("nan")}, "`alpha`"),
        ({"alpha": float("inf")}, "`alpha`"),
        ({"alpha": "0.2"}, "`alpha`"),
        ({"alpha": True}, "`alpha`"),
        ({"top_k": 0}, r"`top_k` must be an integer >= 1 .*got 0"),
        ({"top_k": 2.5}, "`top_k`"),
        ({"top_k": True}, "`top_k`"),
        ({"resistance": "quadratic"}, r"`resistance` must be one of \['constant', 'default'"),
        ({"resistance": [0]}, "at least 2 entries"),
        ({"resistance": []}, "at least 2 entries"),
        ({"resistance": [0, -1]}, r"R\(1\) = -1"),
        ({"resistance": [0, float("nan")]}, r"R\(1\) = nan"),
        ({"resistance": [float("inf"), 1]}, r"R\(0\)"),
        ({"resistance": [0, "1"]}, r"R\(1\) = '1'"),
        ({"resistance": 5}, "preset name or a sequence"),
        ({"max_ngram": 0}, r"`max_ngram` must be an integer in \[1, 32\], got 0"),
        ({"max_ngram": 33}, "`max_ngram`"),
        ({"max_ngram": 3}, "smaller than the resistance table"),
        ({"pad_token_id": -1}, r"`pad_token_id` must be None or an integer >= 0, got -1"),
        ({"pad_token_id": 1.0}, "`pad_token_id`"),
    ],
)
def test_bad_processor_parameters(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MomentumDecodingLogitsProcessor(**kwargs)


def test_bad_call_shapes() -> None:
    processor = MomentumDecodingLogitsProcessor(top_k=5)
    with pytest.raises(ValueError, match="exceeds the vocabulary size"):
        processor(torch.tensor([[1, 2]]), torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"scores \[B, V\]"):
        processor(torch.tensor([[1, 2]]), torch.randn(1, 2, 8))
