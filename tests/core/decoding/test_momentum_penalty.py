"""The momentum penalty's math: every token's level, known answers, α = 0, the relation to the paper's greedy rule,
and bad input."""

from __future__ import annotations

import math
import random

import pytest
import torch

from inertia.core.decoding.momentum import (
    DEFAULT_RESISTANCE,
    leading_pad_mask,
    momentum_scores,
    penalty_table,
    repetition_levels,
)
from inertia.core.decoding.momentum_penalty import (
    apply_momentum_penalty,
    momentum_penalty_table,
    token_levels,
)
from tests.adapters.transformers.reference import reference_level


def _history(rng: random.Random, length: int, vocab: int) -> list[int]:
    """A random or a highly repetitive history (loops of every length are what the penalty is about)."""
    if rng.random() < 0.5:
        return [rng.randrange(vocab) for _ in range(length)]
    pattern = [rng.randrange(vocab) for _ in range(rng.randint(1, 6))]
    tokens = (pattern * (length // len(pattern) + 1))[:length]
    return [rng.randrange(vocab) if rng.random() < 0.1 else t for t in tokens]


@pytest.mark.parametrize("max_ngram", [1, 2, 3, 5, 8])
def test_every_tokens_level_is_the_candidates_level(max_ngram: int) -> None:
    rng = random.Random(max_ngram)
    for case in range(120):
        batch, length, vocab = 3, rng.randint(1, 50), 9
        ids = torch.tensor([_history(rng, length, 7) for _ in range(batch)])
        ids[0, : min(3, length)] = 0
        ignore = leading_pad_mask(ids, 0) if case % 2 else None
        expected = repetition_levels(ids, torch.arange(vocab).expand(batch, vocab), max_ngram, ignore)
        assert torch.equal(token_levels(ids, vocab, max_ngram, ignore), expected), (ids, ignore)


def test_levels_match_the_authors_find_max_repetition_length() -> None:
    rng = random.Random(0)
    for _ in range(300):
        history = _history(rng, rng.randint(1, 30), rng.randint(2, 8))
        levels = token_levels(torch.tensor([history]), 10, max_ngram=5)[0].tolist()
        assert levels == [reference_level(history, token, 5) for token in range(10)], history


def test_history_ids_beyond_the_vocabulary_are_nodes_without_a_logit() -> None:
    ids = torch.tensor([[7, 1, 7, 1, 7]])  # 7 >= V: no logit, but "7 1" is a bigram seen
    levels = token_levels(ids, 4, max_ngram=5)
    assert levels.tolist() == [[0, 4, 0, 0]]  # the suffix "7 1 7" was followed by 1: the 4-gram (7, 1, 7, 1)
    out = apply_momentum_penalty(ids, torch.zeros(1, 4), momentum_penalty_table(1.0))
    assert out.tolist() == [[0.0, -5.0, 0.0, 0.0]]  # 1.0 · R(4) = 5


def test_known_answer_on_a_five_token_vocabulary() -> None:
    # history 1 2 3 1 2: token 0 and 4 are new (l = 0); 1 and 2 are nodes never seen after "2" (l = 1); after the
    # suffix "1 2", token 3 closes the 3-gram (1, 2, 3) but "3 1 2" was never followed by anything (l = 3).
    ids = torch.tensor([[1, 2, 3, 1, 2]])
    logits = torch.tensor([[1.0, 2.0, 0.5, 3.0, -1.0]])
    table = momentum_penalty_table(0.2)  # 0.2 · (0, 1, 3, 4, 5, 5)
    out = apply_momentum_penalty(ids, logits, table)
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.8, 0.3, 2.2, -1.0]]), rtol=0, atol=1e-6)
    # after the softmax: q(v) ∝ p(v) · exp(−α·R(l(v)))
    p = torch.softmax(logits, -1)[0]
    weights = torch.tensor([1.0, math.exp(-0.2), math.exp(-0.2), math.exp(-0.8), 1.0])
    torch.testing.assert_close(torch.softmax(out, -1)[0], p * weights / (p * weights).sum(), rtol=1e-6, atol=0)


def test_logits_and_log_probabilities_give_the_same_distribution() -> None:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 6, (4, 40), generator=gen)
    logits = torch.randn(4, 12, generator=gen) * 3
    table = momentum_penalty_table(0.7, "linear")
    from_logits = torch.softmax(apply_momentum_penalty(ids, logits, table), -1)
    from_logprobs = torch.softmax(apply_momentum_penalty(ids, logits.log_softmax(-1), table), -1)
    torch.testing.assert_close(from_logits, from_logprobs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_alpha_zero_returns_the_scores_bit_for_bit(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 5, (3, 30), generator=gen)
    scores = (torch.randn(3, 16, generator=gen) * 4).to(dtype)
    scores[0, 3] = -math.inf
    for resistance in ("default", "ngram_block"):  # α = 0 also switches off infinite resistance
        out = apply_momentum_penalty(ids, scores, momentum_penalty_table(0.0, resistance))
        assert out.dtype == dtype and out.data_ptr() != scores.data_ptr()
        assert torch.equal(out, scores)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_unpenalised_tokens_keep_their_score_bit_for_bit(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 8, (2, 25), generator=gen)
    scores = (torch.randn(2, 20, generator=gen) * 4).to(dtype)
    out = apply_momentum_penalty(ids, scores, momentum_penalty_table(0.5))
    assert out.dtype == dtype
    new = token_levels(ids, 20, 5) == 0
    assert torch.equal(out[new], scores[new]) and bool((out[~new] < scores[~new]).all())
    reference = apply_momentum_penalty(ids, scores.double(), momentum_penalty_table(0.5))
    torch.testing.assert_close(out.double(), reference, rtol=1e-2, atol=1e-2)


def test_scores_and_input_ids_are_not_modified() -> None:
    gen = torch.Generator().manual_seed(4)
    ids, scores = torch.randint(0, 9, (3, 12), generator=gen), torch.randn(3, 9, generator=gen)
    ids_copy, scores_copy = ids.clone(), scores.clone()
    apply_momentum_penalty(ids, scores, momentum_penalty_table(0.4), pad_token_id=0)
    assert torch.equal(ids, ids_copy) and torch.equal(scores, scores_copy)


def test_banned_tokens_stay_banned_and_infinite_resistance_bans() -> None:
    ids = torch.tensor([[3, 4, 5, 6, 7, 3, 4, 5, 6]])  # after "4 5 6", 7 repeats the 5-gram (3, 4, 5, 6, 7)
    scores = torch.zeros(1, 10)
    scores[0, 9] = -math.inf
    out = apply_momentum_penalty(ids, scores, momentum_penalty_table(0.2, "ngram_block"))
    assert torch.isneginf(out[0, 9]) and torch.isneginf(out[0, 7])
    assert torch.isfinite(out[0, :7]).all() and torch.isfinite(out[0, 8])


def test_a_row_never_loses_its_last_allowed_token() -> None:
    ids = torch.tensor([[3, 4, 5, 6, 7, 3, 4, 5, 6], [1, 2, 1, 2, 1, 2, 1, 2, 1]])
    scores = torch.full((2, 10), -math.inf)
    scores[0, 7] = 1.5  # the only allowed token of row 0 repeats a 5-gram: infinite resistance
    scores[1, 2], scores[1, 5] = 0.5, 0.25  # row 1 keeps a new token (5)
    out = apply_momentum_penalty(ids, scores, momentum_penalty_table(0.2, "ngram_block"))
    assert out[0].tolist() == scores[0].tolist()  # restored: sampling still has a token to draw
    assert torch.isneginf(out[1, 2]) and out[1, 5] == 0.25


def test_prompt_mask_wins_over_the_pad_id() -> None:
    # the prompt really starts with the pad id (pad = eos = bos): only the mask can tell
    ids = torch.tensor([[0, 0, 5, 6, 0]])
    mask = torch.tensor([[0, 1, 1, 1]])
    table = momentum_penalty_table(1.0, (0, 1, 2))
    by_mask = apply_momentum_penalty(ids, torch.zeros(1, 8), table, pad_token_id=0, prompt_mask=mask)
    by_pad = apply_momentum_penalty(ids, torch.zeros(1, 8), table, pad_token_id=0)
    assert by_mask[0, 5].item() == -2.0  # "0 5" was seen once the real 0 at position 1 counts
    assert by_pad[0, 5].item() == -1.0


def test_the_greedy_limit_is_not_the_papers_choice_rule() -> None:
    # Paper: argmax over the top-k of p(v) − α·R(l(v)). Ours at temperature → 0: argmax of log p(v) − α·R(l(v)).
    ids = torch.tensor([[1, 2, 1]])  # after "1", token 2 closes the bigram (1, 2): l = 2; token 3 is new
    probs = torch.tensor([[0.05, 0.05, 0.7, 0.2]])
    logits = probs.log()
    paper = momentum_scores(ids, logits, penalty_table(0.2, DEFAULT_RESISTANCE), top_k=4).argmax().item()
    ours = apply_momentum_penalty(ids, logits, momentum_penalty_table(0.2)).argmax().item()
    assert paper == 3  # 0.7 − 0.6 = 0.1 < 0.2: the paper leaves the loop
    assert ours == 2  # log 0.7 − 0.6 = −0.96 > log 0.2 = −1.61: a likely repeat pays a factor e^−0.6, not 0.6
    # They agree when the top token is new (R(0) = 0 and α·R ≥ 0 only lower the others), and at α = 0.
    gen = torch.Generator().manual_seed(5)
    for _ in range(200):
        history = torch.randint(0, 6, (1, 20), generator=gen)
        logits = torch.randn(1, 12, generator=gen) * 3
        top = int(logits.argmax())
        if token_levels(history, 12, 5)[0, top] == 0:
            assert int(apply_momentum_penalty(history, logits, momentum_penalty_table(0.5)).argmax()) == top
            assert int(momentum_scores(history, logits, penalty_table(0.2, DEFAULT_RESISTANCE), 5).argmax()) == top


def test_penalty_table_values() -> None:
    assert momentum_penalty_table() == pytest.approx((0.0, 0.2, 0.6, 0.8, 1.0, 1.0))
    assert momentum_penalty_table(0.5, (0, 1, 2), max_ngram=4) == (0.0, 0.5, 1.0, math.inf, math.inf)
    assert momentum_penalty_table(0.0, "ngram_block") == (0.0,) * 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -0.1}, r"`alpha` must be in \[0.0, inf\), got -0.1"),
        ({"alpha": math.nan}, r"`alpha` must be a finite number in \[0.0, inf\), got nan"),
        ({"alpha": math.inf}, "`alpha` must be a finite number"),
        ({"alpha": "0.2"}, "`alpha`"),
        ({"alpha": True}, "`alpha`"),
        ({"resistance": "quadratic"}, r"`resistance` must be one of \['constant', 'default'"),
        ({"resistance": [0]}, "at least 2 entries"),
        ({"resistance": [0, -1]}, r"R\(1\) = -1"),
        ({"max_ngram": 0}, r"`max_ngram` must be an integer in \[1, 32\], got 0"),
        ({"max_ngram": 3}, "smaller than the resistance table"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        momentum_penalty_table(**kwargs)


def test_bad_shapes_are_named() -> None:
    table = momentum_penalty_table()
    with pytest.raises(ValueError, match=r"input_ids \[B, T\] and scores \[B, V\]"):
        apply_momentum_penalty(torch.tensor([[1, 2]]), torch.zeros(1, 2, 8), table)
    with pytest.raises(ValueError, match=r"same B, got \(2, 2\) and \(1, 8\)"):
        apply_momentum_penalty(torch.tensor([[1, 2], [3, 4]]), torch.zeros(1, 8), table)
