"""The offline contrastive search against a no-cache reference of Su et al.'s algorithm, and its contract."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from inertia.adapters.transformers.contrastive_search import (
    contrastive_search,
    contrastive_select,
    degeneration_penalty,
)
from tests.adapters.transformers.reference import reference_contrastive_generate
from tests.adapters.transformers.tiny_lm import EOS, PAD, PROMPTS, left_pad, strip, tiny_llama


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


def test_matches_the_no_cache_reference(model) -> None:
    for prompt in PROMPTS:
        out = model.generate(
            torch.tensor([prompt]), custom_generate=contrastive_search, penalty_alpha=0.6, top_k=5, max_new_tokens=15
        )[0].tolist()
        reference = reference_contrastive_generate(model, prompt, 15, 0.6, 5)
        assert out == reference[: len(out)]


def test_penalty_alpha_zero_is_greedy(model) -> None:
    inputs = left_pad(PROMPTS)
    greedy = model.generate(**inputs, do_sample=False, max_new_tokens=20)
    contrastive = model.generate(**inputs, custom_generate=contrastive_search, penalty_alpha=0.0, max_new_tokens=20)
    assert torch.equal(greedy, contrastive)


def test_contrastive_differs_from_greedy(model) -> None:
    # The control for the identity test above.
    prompt = torch.tensor([PROMPTS[0]])
    greedy = model.generate(prompt, do_sample=False, max_new_tokens=20)
    contrastive = model.generate(prompt, custom_generate=contrastive_search, max_new_tokens=20)
    assert not torch.equal(greedy, contrastive)


def test_left_padded_batch_equals_one_by_one(model) -> None:
    inputs = left_pad(PROMPTS)
    width = inputs["input_ids"].shape[1]
    batch = model.generate(**inputs, custom_generate=contrastive_search, max_new_tokens=20)
    for row, prompt in zip(batch, PROMPTS):
        alone = model.generate(torch.tensor([prompt]), custom_generate=contrastive_search, max_new_tokens=20)[0]
        full = strip(row, width, prompt)
        assert full[: len(alone)] == alone.tolist()
        assert all(token == PAD for token in full[len(alone) :])


def test_parameters_from_a_generation_config(model) -> None:
    prompt = torch.tensor([PROMPTS[2]])
    config = GenerationConfig(penalty_alpha=0.4, top_k=3, max_new_tokens=12, do_sample=False)
    from_config = model.generate(prompt, generation_config=config, custom_generate=contrastive_search)
    from_kwargs = model.generate(
        prompt, custom_generate=contrastive_search, penalty_alpha=0.4, top_k=3, max_new_tokens=12
    )
    assert torch.equal(from_config, from_kwargs)
    assert not torch.equal(
        from_kwargs, model.generate(prompt, custom_generate=contrastive_search, max_new_tokens=12)
    )  # the defaults (0.6, 5) give another text here, so the config values were used


def test_eos_stops_and_logits_processors_apply_before_the_top_k(model) -> None:
    # On PROMPTS[2] contrastive search picks eos as its 40th token and stops there ...
    prompt = torch.tensor([PROMPTS[2]])
    free = model.generate(prompt, custom_generate=contrastive_search, max_new_tokens=60)[0].tolist()
    assert free[-1] == EOS and len(free) == 8 + 40
    # ... with min_new_tokens the config's processor bans eos before the top-k, so it is never picked.
    held = model.generate(prompt, custom_generate=contrastive_search, min_new_tokens=45, max_new_tokens=45)
    assert EOS not in held[0].tolist() and held.shape[1] == 8 + 45


def test_streamer_and_return_dict(model) -> None:
    class Recorder(BaseStreamer):
        def __init__(self) -> None:
            self.puts, self.ended = [], 0

        def put(self, value):
            self.puts.append(value.reshape(-1).tolist())

        def end(self):
            self.ended += 1

    streamer = Recorder()
    prompt = PROMPTS[0]
    out = model.generate(
        torch.tensor([prompt]),
        custom_generate=contrastive_search,
        cs_streamer=streamer,
        max_new_tokens=6,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    assert streamer.puts[0] == prompt and streamer.ended == 1
    assert [t for chunk in streamer.puts[1:] for t in chunk] == out.sequences[0, len(prompt) :].tolist()
    assert len(out.scores) == len(out.logits) == 6
    with torch.no_grad():
        torch.testing.assert_close(out.logits[0][0], model(torch.tensor([prompt])).logits[0, -1])


def test_degeneration_penalty_ignores_padding() -> None:
    context = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    candidate = torch.tensor([[[1.0, 0.0]]])
    assert degeneration_penalty(context, torch.tensor([[1, 1]]), candidate).item() == pytest.approx(1.0)
    assert degeneration_penalty(context, torch.tensor([[0, 1]]), candidate).item() == pytest.approx(0.0)


def test_select_never_picks_a_banned_candidate() -> None:
    probs = torch.tensor([[0.0, 0.3]])
    logits = torch.tensor([[-math.inf, 0.0]])
    penalty = torch.tensor([[-1.0, 1.0]])  # the banned one would win on the penalty alone
    assert contrastive_select(probs, logits, penalty, 0.6).item() == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"do_sample": True}, "do_sample=True"),
        ({"num_beams": 3}, "num_beams=3"),
        ({"dola_layers": "low"}, "dola_layers"),
        ({"penalty_alpha": 1.5}, r"`penalty_alpha` must be a number in \[0, 1\].*got 1.5"),
        ({"penalty_alpha": -0.1}, "`penalty_alpha`"),
        ({"top_k": 0}, r"`top_k` must be an integer >= 1.*got 0"),
        ({"top_k": 100}, "exceeds the vocabulary size"),
        ({"return_dict_in_generate": True, "output_hidden_states": True}, "hidden states"),
        ({"cache_implementation": "static"}, "DynamicCache"),
    ],
)
def test_unsupported_modes_and_bad_parameters_raise_before_any_forward(model, kwargs, message) -> None:
    calls = []
    handle = model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message):
            model.generate(torch.tensor([PROMPTS[0]]), custom_generate=contrastive_search, max_new_tokens=4, **kwargs)
    finally:
        handle.remove()
    assert calls == []


def test_encoder_decoder_models_are_refused() -> None:
    fake = SimpleNamespace(config=SimpleNamespace(is_encoder_decoder=True))
    with pytest.raises(ValueError, match="decoder-only"):
        contrastive_search(
            fake, torch.tensor([[1]]), LogitsProcessorList(), StoppingCriteriaList(), GenerationConfig()
        )
