"""`generate_text` with the momentum penalty (``method="momentum_penalty"``: nucleus sampling after our penalty) on a
tiny saved model: its defaults and ranges, α = 0 is the ``nucleus`` method bit for bit (same seed), a left-padded
batch is penalised as its prompts one by one, and bad values are named before the prompt is tokenised."""

from __future__ import annotations

import pytest

from inertia.pipelines.text_generation import (
    PARAM_RANGES,
    SAMPLING_METHODS,
    TEXT_METHODS,
    check_method,
    generate_text,
    generation_kwargs,
)
from tests.pipelines.test_text_model import tiny_folder  # noqa: F401  (a fixture)

PROMPT = "w5 w6 w7 w8 w9 w5 w6 w7"


@pytest.fixture
def tiny(tiny_folder):  # noqa: F811
    from inertia.pipelines.text import load_text_model

    return load_text_model(tiny_folder, device="cpu")


def test_defaults_ranges_and_the_generate_arguments() -> None:
    from inertia.decoders import MomentumPenaltyLogitsProcessor

    assert TEXT_METHODS["momentum_penalty"] == {"alpha": 0.2, "top_p": 0.95}
    assert "momentum_penalty" in SAMPLING_METHODS  # seeded by `seed`
    assert PARAM_RANGES["momentum_penalty"]["alpha"] == PARAM_RANGES["momentum"]["alpha"] == (0.0, 1.0)  # one slider
    assert check_method("momentum_penalty", alpha=1.0) == {"alpha": 1.0, "top_p": 0.95}
    kwargs = generation_kwargs("momentum_penalty", alpha=0.3, top_p=0.9)
    (processor,) = kwargs.pop("logits_processor")
    assert kwargs == {"do_sample": True, "top_p": 0.9, "top_k": 0} == {**generation_kwargs("nucleus", top_p=0.9)}
    assert isinstance(processor, MomentumPenaltyLogitsProcessor) and processor.alpha == 0.3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"alpha": 1.5}, r"`alpha` must be in \[0.0, 1.0\], got 1.5"),
        ({"alpha": -0.1}, r"`alpha` must be in \[0.0, 1.0\], got -0.1"),
        ({"alpha": "x"}, r"`alpha` must be a finite number in \[0.0, 1.0\], got 'x'"),
        ({"top_p": 0}, r"`top_p` must be a number in \(0, 1\]"),
        ({"top_k": 5}, r"`method`='momentum_penalty' takes the parameters \['alpha', 'top_p'\], got \['top_k'\]"),
    ],
)
def test_bad_values_are_named_before_the_prompt_is_tokenised(params: dict, message: str) -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> None:
            raise AssertionError("the model or tokenizer was used before the arguments were checked")

    with pytest.raises(ValueError, match=message):
        generate_text(Untouchable(), Untouchable(), PROMPT, method="momentum_penalty", **params)


def test_alpha_zero_is_nucleus_sampling_bit_for_bit(tiny) -> None:
    model, tokenizer = tiny
    for seed in (0, 1):
        nucleus = generate_text(model, tokenizer, PROMPT, "nucleus", 24, seed=seed, top_p=0.9)
        assert generate_text(model, tokenizer, PROMPT, "momentum_penalty", 24, seed=seed, alpha=0.0, top_p=0.9) == (
            nucleus
        )
    penalised = generate_text(model, tokenizer, PROMPT, "momentum_penalty", 24, seed=0, alpha=1.0, top_p=0.9)
    assert penalised == generate_text(model, tokenizer, PROMPT, "momentum_penalty", 24, seed=0, alpha=1.0, top_p=0.9)
    assert penalised != generate_text(model, tokenizer, PROMPT, "nucleus", 24, seed=0, top_p=0.9)


def test_a_left_padded_batch_is_penalised_as_its_prompts_one_by_one(tiny) -> None:
    # top_p that keeps one token: the draw is the argmax of the penalised logits, the same in a batch and alone, so
    # any difference would come from the padding being counted as history. The pad is a word the model picks when
    # alone (after "w3"): counted as history it would be charged, and the batch would differ.
    model, tokenizer = tiny
    tokenizer.pad_token = "w21"
    prompts = [PROMPT, "w3", "w9 w9 w9 w9"]
    settings = {"method": "momentum_penalty", "max_new_tokens": 20, "alpha": 1.0, "top_p": 1e-9}
    batch = generate_text(model, tokenizer, prompts, **settings)
    alone = [generate_text(model, tokenizer, prompt, **settings) for prompt in prompts]
    assert batch == alone
    assert alone != [generate_text(model, tokenizer, prompt, **{**settings, "alpha": 0.0}) for prompt in prompts]
