"""DRY (benchmarks.peers.decoding): exact against a plain loop written from the public description, the worked
examples, breakers, batch independence, left padding, dtypes, bad input, and in ``generate`` on the tiny LM."""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import LogitsProcessorList

from benchmarks.peers.decoding import (
    DEFAULT_SEQUENCE_BREAKERS,
    DRYLogitsProcessor,
    dry_match_lengths,
    sequence_breaker_ids,
)
from tests.adapters.transformers.tiny_lm import PAD, left_pad, tiny_llama


def naive_dry(
    context: list[int],
    vocab: int,
    multiplier: float,
    base: float,
    allowed: int,
    breakers: set[int],
    range_limit: int = 0,
    cap: int = 50,
) -> list[float]:
    """DRY on one row as the description states it: one occurrence of the last token at a time."""
    if range_limit > 0:
        context = context[-range_limit:]
    penalty = [0.0] * vocab
    if len(context) < 2 or context[-1] in breakers:
        return penalty
    best: dict[int, int] = {}
    for i in range(len(context) - 1):
        if context[i] != context[-1] or context[i + 1] in breakers:
            continue
        length = 1
        while length < cap:
            j = i - length
            if j < 0 or context[j] != context[-1 - length] or context[-1 - length] in breakers:
                break
            length += 1
        nxt = context[i + 1]
        best[nxt] = max(best.get(nxt, 0), length)
    for token, length in best.items():
        if length >= allowed:
            penalty[token] = multiplier * base ** (length - allowed)
    return penalty


def test_worked_example_from_the_description() -> None:
    # llama.cpp's worked example: "a b c c b c y a b c" has repeat counts 0 0 3 1 0 2 0 0 0 0 at the positions of c.
    a, b, c, y = 0, 1, 2, 3
    context = torch.tensor([[a, b, c, c, b, c, y, a, b, c]])
    assert dry_match_lengths(context).tolist() == [[0, 0, 3, 1, 0, 2, 0, 0, 0]]
    out = DRYLogitsProcessor(multiplier=0.8, base=1.75, allowed_length=2)(context, torch.zeros(1, 4))
    # c extends "a b c" (L = 3) -> 0.8 * 1.75; y extends "b c" (L = 2) -> 0.8; b only "c" (L = 1, allowed) -> 0.
    assert out[0].tolist() == pytest.approx([0.0, 0.0, -1.4, -0.8])


def test_self_overlapping_run_and_the_allowed_length() -> None:
    dry = DRYLogitsProcessor(multiplier=1.0, base=2.0, allowed_length=2)
    run = torch.tensor([[7] * 6])  # "7 7 7 7 7 7": a 7 extends a repeat of 5 tokens
    assert float(dry(run, torch.zeros(1, 8))[0, 7]) == -(2.0**3)
    short = torch.tensor([[1, 2, 3, 1, 2]])  # "1 2" then 3 before: L = 2
    assert float(dry(short, torch.zeros(1, 4))[0, 3]) == -1.0
    assert float(DRYLogitsProcessor(allowed_length=3)(short, torch.zeros(1, 4))[0, 3]) == 0.0


def test_sequence_breakers() -> None:
    newline = 9
    dry = DRYLogitsProcessor(multiplier=1.0, base=2.0, allowed_length=1, sequence_breakers=[newline])
    # a breaker inside the suffix stops the match: only "5 6" (L = 2) counts, not "9 5 6"
    crossed = torch.tensor([[9, 5, 6, 4, 9, 5, 6]])
    assert float(dry(crossed, torch.zeros(1, 10))[0, 4]) == -2.0
    assert float(DRYLogitsProcessor(1.0, 2.0, 1)(crossed, torch.zeros(1, 10))[0, 4]) == -4.0  # no breaker: L = 3
    # a context ending in a breaker is not penalised at all
    assert torch.equal(dry(torch.tensor([[9, 5, 9]]), torch.zeros(1, 10)), torch.zeros(1, 10))
    # a breaker is never the penalised token
    assert float(dry(torch.tensor([[5, 6, 9, 5, 6]]), torch.zeros(1, 10))[0, 9]) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_exact_against_the_plain_loop_on_random_contexts(seed: int) -> None:
    rng = random.Random(seed)
    vocab = rng.choice([3, 5, 8])  # small vocabularies: many long repeats
    rows = [[rng.randrange(vocab) for _ in range(rng.randrange(1, 40))] for _ in range(5)]
    params = {
        "multiplier": rng.choice([0.8, 1.3]),
        "base": rng.choice([1.0, 1.75, 3.0]),
        "allowed": rng.choice([1, 2, 3]),
        "breakers": set(rng.sample(range(vocab), rng.choice([0, 1]))),
        "range_limit": rng.choice([0, 0, 7, 20]),
        "cap": rng.choice([4, 50]),
    }
    dry = DRYLogitsProcessor(
        multiplier=params["multiplier"],
        base=params["base"],
        allowed_length=params["allowed"],
        sequence_breakers=params["breakers"],
        range_limit=params["range_limit"],
        max_match_length=params["cap"],
    )
    for row in rows:
        scores = torch.randn(1, vocab, dtype=torch.float64)
        expected = scores[0] - torch.tensor(naive_dry(row, vocab, **params), dtype=torch.float64)
        assert torch.allclose(dry(torch.tensor([row]), scores)[0], expected, rtol=0, atol=1e-9), (row, params)


def test_batch_rows_are_independent_and_left_padding_is_invisible() -> None:
    rng = random.Random(11)
    rows = [[rng.randrange(1, 6) for _ in range(n)] for n in (3, 17, 30, 9)]
    rows.append([3, 1, 4, PAD, 4, 1, 4, PAD, 4])  # the pad id inside the text is a token
    dry = DRYLogitsProcessor(pad_token_id=PAD, sequence_breakers=[5])
    batch = left_pad(rows)
    scores = torch.randn(len(rows), 6)
    out = dry(batch["input_ids"], scores)
    for index, row in enumerate(rows):
        alone = dry(torch.tensor([row]), scores[index : index + 1])
        assert torch.equal(out[index : index + 1], alone)
        expected = scores[index] - torch.tensor(naive_dry(row, 6, 0.8, 1.75, 2, {5}), dtype=torch.float32)
        assert torch.allclose(out[index], expected, atol=1e-6)


def test_dtypes_are_kept_and_banned_tokens_stay_banned() -> None:
    ids = torch.tensor([[1, 2, 3, 4, 1, 2, 3]])  # 4 would extend a repeat of 3
    reference = DRYLogitsProcessor()(ids, torch.zeros(1, 6))
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        scores = torch.zeros(1, 6, dtype=dtype)
        scores[0, 5] = -math.inf
        out = DRYLogitsProcessor()(ids, scores)
        assert out.dtype == dtype and torch.isneginf(out[0, 5])
        assert torch.allclose(out[0, :5].float(), reference[0, :5], atol=1e-2)
    # a penalty beyond float16's range leaves a finite, lowest logit (a penalty, not a ban)
    loop = torch.tensor([[4] * 40])
    huge = DRYLogitsProcessor(base=10.0)(loop, torch.zeros(1, 6, dtype=torch.float16))
    assert float(huge[0, 4]) == torch.finfo(torch.float16).min
    assert torch.isfinite(huge).all()


def test_multiplier_zero_is_the_identity_and_scores_are_not_modified() -> None:
    ids = torch.tensor([[1, 2, 1, 2, 1]])
    scores = torch.randn(1, 4)
    before = scores.clone()
    assert torch.equal(DRYLogitsProcessor(multiplier=0.0)(ids, scores), before)
    DRYLogitsProcessor()(ids, scores)
    assert torch.equal(scores, before)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"multiplier": -0.1}, "multiplier"),
        ({"multiplier": math.nan}, "multiplier"),
        ({"base": 0.9}, "base"),
        ({"base": True}, "base"),
        ({"allowed_length": 0}, "allowed_length"),
        ({"allowed_length": 2.0}, "allowed_length"),
        ({"range_limit": -1}, "range_limit"),
        ({"max_match_length": 0}, "max_match_length"),
        ({"max_match_length": 5000}, "max_match_length"),
        ({"pad_token_id": -2}, "pad_token_id"),
        ({"sequence_breakers": [3, -1]}, "sequence_breakers"),
        ({"sequence_breakers": 7}, "sequence_breakers"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"`{name}`"):
        DRYLogitsProcessor(**kwargs)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"input_ids \[B, T\] and scores \[B, V\]"):
        DRYLogitsProcessor()(torch.tensor([[1, 2]]), torch.zeros(2, 4))


class _Tokenizer:
    texts = ("a", "\n", "b:\n", "hello", ":", 'say "', "*", "**", "x")
    pad_token_id = 0

    def __len__(self) -> int:
        return len(self.texts)

    def batch_decode(self, ids: list[list[int]]) -> list[str]:
        return [self.texts[row[0]] for row in ids]


def test_breaker_strings_resolve_to_every_token_containing_them() -> None:
    tokenizer = _Tokenizer()
    assert sequence_breaker_ids(tokenizer) == [1, 2, 4, 5, 6, 7]
    assert sequence_breaker_ids(tokenizer, ["\n"]) == [1, 2]
    assert sequence_breaker_ids(tokenizer, []) == []
    dry = DRYLogitsProcessor.from_tokenizer(tokenizer, DEFAULT_SEQUENCE_BREAKERS, multiplier=1.0)
    assert dry.sequence_breakers == (1, 2, 4, 5, 6, 7) and dry.pad_token_id == 0 and dry.multiplier == 1.0


def test_in_generate_on_the_tiny_lm() -> None:
    model = tiny_llama()
    inputs = left_pad([[5, 6, 7, 8, 9, 10], [11, 12, 13]])
    common = {"max_new_tokens": 40, "min_new_tokens": 40, "do_sample": False, "pad_token_id": PAD}
    greedy = model.generate(**inputs, **common)
    off = model.generate(
        **inputs, logits_processor=LogitsProcessorList([DRYLogitsProcessor(multiplier=0.0)]), **common
    )
    assert torch.equal(off, greedy)  # identity by construction

    def repeated_trigrams(row: list[int]) -> int:
        grams = [tuple(row[i : i + 3]) for i in range(len(row) - 2)]
        return len(grams) - len(set(grams))

    width = inputs["input_ids"].shape[1]
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    greedy_rows = [p + greedy[i, width:].tolist() for i, p in enumerate(prompts)]
    assert sum(repeated_trigrams(r) for r in greedy_rows) > 10  # the tiny LM loops when greedy
    strong = DRYLogitsProcessor(multiplier=1e4, pad_token_id=PAD)  # so strong that no 3-gram may repeat
    out = model.generate(**inputs, logits_processor=LogitsProcessorList([strong]), **common)
    assert all(repeated_trigrams(p + out[i, width:].tolist()) == 0 for i, p in enumerate(prompts))
