"""Momentum decoding on the real embedded model (SmolLM2-135M-Instruct): loops removed, reference matched."""

from __future__ import annotations

import math

import pytest
import torch

from inertia.adapters.transformers.contrastive_search import contrastive_search
from inertia.adapters.transformers.momentum_generate import momentum_decode
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE
from tests.adapters.transformers.reference import reference_choice
from tests.adapters.transformers.smollm2 import shared_smollm2

pytestmark = pytest.mark.xdist_group("smollm2")

# Prompts on which greedy decoding of SmolLM2 falls into a verbatim loop within 64 tokens.
LOOPY_PROMPTS = (
    "My favourite food is pizza because",
    "Once upon a time there was a little girl who",
    "The following is a list of the most important inventions:",
    "Paris is the capital of France. It is",
)
NEW_TOKENS = 64


def longest_repeat(tokens: list[int]) -> int:
    """Length of the longest token n-gram that occurs at least twice."""
    best = 0
    for n in range(1, len(tokens)):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if len(set(grams)) == len(grams):
            break
        best = n
    return best


@pytest.fixture(scope="module")
def runs():
    model, tokenizer = shared_smollm2()
    inputs = tokenizer(list(LOOPY_PROMPTS), return_tensors="pt", padding=True)
    common = {"max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS}  # eos banned: same length for both
    greedy = model.generate(**inputs, do_sample=False, **common)
    momentum = model.generate(
        **inputs, custom_generate=momentum_decode, return_dict_in_generate=True, output_logits=True, **common
    )
    return {"inputs": inputs, "greedy": greedy, "momentum": momentum, "model": model, "tokenizer": tokenizer}


def test_momentum_decoding_removes_greedys_verbatim_loops(runs) -> None:
    width = runs["inputs"]["input_ids"].shape[1]
    for row in range(len(LOOPY_PROMPTS)):
        greedy = runs["greedy"][row, width:].tolist()
        momentum = runs["momentum"].sequences[row, width:].tolist()
        assert longest_repeat(greedy) >= 12, runs["tokenizer"].decode(greedy)  # a verbatim loop
        assert longest_repeat(momentum) <= 5, runs["tokenizer"].decode(momentum)


def test_every_real_step_matches_the_authors_algorithm(runs) -> None:
    # Replays the authors' loop on the raw logits SmolLM2 produced (with the min_new_tokens eos ban that generate
    # applied before our processor) and checks every chosen token, per row, on the unpadded history.
    tokenizer = runs["tokenizer"]
    ids, mask = runs["inputs"]["input_ids"], runs["inputs"]["attention_mask"]
    sequences, logits = runs["momentum"].sequences, runs["momentum"].logits
    width = ids.shape[1]
    checked = 0
    for row in range(len(LOOPY_PROMPTS)):
        history = ids[row][mask[row].bool()].tolist()
        for step, step_logits in enumerate(logits):
            scores = step_logits[row].clone()
            scores[tokenizer.eos_token_id] = -math.inf
            chosen, _, _ = reference_choice(history, scores, 0.2, 5, DEFAULT_RESISTANCE)
            assert chosen == int(sequences[row, width + step]), (row, step)
            history.append(chosen)
            checked += 1
    assert checked == len(LOOPY_PROMPTS) * NEW_TOKENS


def test_left_padded_batch_equals_one_by_one(runs) -> None:
    model, tokenizer = runs["model"], runs["tokenizer"]
    width = runs["inputs"]["input_ids"].shape[1]
    for row in (0, 2):  # the shortest and the longest prompt
        single = tokenizer([LOOPY_PROMPTS[row]], return_tensors="pt")
        alone = model.generate(
            **single,
            custom_generate=momentum_decode,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
        )
        assert alone[0, single["input_ids"].shape[1] :].tolist() == runs["momentum"].sequences[row, width:].tolist()


@pytest.mark.slow
def test_alpha_zero_is_greedy_on_smollm2(runs) -> None:
    model = runs["model"]
    out = model.generate(
        **runs["inputs"],
        custom_generate=momentum_decode,
        md_alpha=0.0,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
    )
    assert torch.equal(out, runs["greedy"])


@pytest.mark.slow
def test_contrastive_search_also_breaks_the_loops(runs) -> None:
    model = runs["model"]
    width = runs["inputs"]["input_ids"].shape[1]
    out = model.generate(
        **runs["inputs"], custom_generate=contrastive_search, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS
    )
    for row in range(len(LOOPY_PROMPTS)):
        assert longest_repeat(out[row, width:].tolist()) < 12
