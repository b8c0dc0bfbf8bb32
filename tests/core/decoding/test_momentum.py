"""Exactness of the vectorised momentum-decoding core against the plain-loop reference of the authors' algorithm."""

from __future__ import annotations

import math
import random

import pytest
import torch

from inertia.adapters.transformers.logits_processor import MomentumDecodingLogitsProcessor
from inertia.core.decoding.momentum import (
    DEFAULT_RESISTANCE,
    RESISTANCE_PRESETS,
    leading_pad_mask,
    momentum_scores,
    penalty_table,
    repetition_levels,
    resolve_resistance,
)
from tests.adapters.transformers.reference import reference_choice, reference_level


def _history(rng: random.Random, length: int, vocab: int) -> list[int]:
    """A random or a highly repetitive history over a small vocabulary (loops are what the method is about)."""
    if rng.random() < 0.5:
        return [rng.randrange(vocab) for _ in range(length)]
    pattern = [rng.randrange(vocab) for _ in range(rng.randint(1, 6))]
    tokens = (pattern * (length // len(pattern) + 1))[:length]
    return [rng.randrange(vocab) if rng.random() < 0.1 else t for t in tokens]


def _random_history(rng: random.Random) -> list[int]:
    return _history(rng, rng.randint(1, 40), rng.randint(2, 12))


def test_levels_match_the_authors_find_max_repetition_length() -> None:
    rng = random.Random(0)
    checked = 0
    for case in range(1500):
        history = _random_history(rng)
        max_ngram = (2, 3, 5, 5, 7)[case % 5]
        candidates = list(range(13))  # every token of the vocabulary, plus unseen ones
        levels = repetition_levels(torch.tensor([history]), torch.tensor([candidates]), max_ngram=max_ngram)
        expected = [reference_level(history, c, max_ngram) for c in candidates]
        assert levels[0].tolist() == expected, (history, max_ngram)
        checked += 1
    assert checked == 1500


def test_levels_reach_every_value_in_the_random_histories() -> None:
    # The exactness test above is only meaningful if the histories exercise every level 0..5.
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        history = _random_history(rng)
        seen.update(repetition_levels(torch.tensor([history]), torch.arange(13)[None], max_ngram=5)[0].tolist())
    assert seen == {0, 1, 2, 3, 4, 5}


@pytest.mark.parametrize("preset", ["default", "linear", "constant", "log", "exp", "ngram_block"])
def test_selection_matches_the_reference_on_random_histories(preset: str) -> None:
    rng = random.Random(1)
    gen = torch.Generator().manual_seed(1)
    table = RESISTANCE_PRESETS[preset]
    for case in range(200):
        history = _random_history(rng)
        alpha = (0.2, 0.05, 0.5, 1.0)[case % 4]
        top_k = (5, 3, 1, 8, 13)[case % 5]
        # Logit scales from flat to peaked, so that p ranges over the values where resistance matters.
        logits = torch.randn(1, 13, generator=gen) * (0.5, 2.0, 5.0)[case % 3]
        out = momentum_scores(torch.tensor([history]), logits, penalty_table(alpha, table), top_k)
        chosen, top_ids, ref_scores = reference_choice(history, logits[0], alpha, top_k, table)
        assert int(out.argmax()) == chosen, (preset, history, alpha, top_k)
        for token, score in zip(top_ids, ref_scores):
            if math.isfinite(score):
                assert float(out[0, token]) == pytest.approx(score, abs=1e-6)
        assert int(torch.isfinite(out).sum()) <= top_k


def test_processor_matches_the_reference_on_1000_random_batches() -> None:
    # 1,000 (history, logits) pairs, evaluated as batches of 8 equal-length rows through the processor.
    rng = random.Random(2)
    gen = torch.Generator().manual_seed(2)
    processor = MomentumDecodingLogitsProcessor()  # alpha 0.2, k 5, (0, 1, 3, 4, 5, 5)
    agreed = 0
    for _ in range(125):
        length = rng.randint(1, 30)
        histories = [_history(rng, length, 10) for _ in range(8)]
        logits = torch.randn(8, 10, generator=gen) * 2.0
        out = processor(torch.tensor(histories), logits)
        for row, history in enumerate(histories):
            chosen, _, _ = reference_choice(history, logits[row], 0.2, 5, DEFAULT_RESISTANCE)
            assert int(out[row].argmax()) == chosen
            agreed += 1
    assert agreed == 1000


def test_alpha_zero_is_exactly_greedy() -> None:
    gen = torch.Generator().manual_seed(3)
    for preset in ("default", "ngram_block"):  # alpha = 0 also switches off infinite resistance
        processor = MomentumDecodingLogitsProcessor(alpha=0.0, top_k=5, resistance=preset)
        for _ in range(50):
            history = torch.randint(0, 6, (8, 25), generator=gen)  # a small vocabulary: many repeats
            logits = torch.randn(8, 50, generator=gen) * 3
            assert torch.equal(processor(history, logits).argmax(-1), logits.argmax(-1))


def _left_pad(rows: list[list[int]], pad: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([[pad] * (width - len(r)) + r for r in rows])


@pytest.mark.parametrize("pad", [0, 7])
def test_left_padded_batch_equals_one_by_one(pad: int) -> None:
    rng = random.Random(4)
    gen = torch.Generator().manual_seed(4)
    processor = MomentumDecodingLogitsProcessor(pad_token_id=pad)
    for _ in range(100):
        # Rows start with a non-pad token (13): a leading pad id is padding by definition.
        rows = [[13, *_random_history(rng)] for _ in range(6)]
        rows[0] = [13, pad, *rows[0][1:], pad]  # a pad id inside the text (pad == eos) is a real token
        logits = torch.randn(6, 14, generator=gen) * 2
        batch = processor(_left_pad(rows, pad), logits)
        for i, row in enumerate(rows):
            alone = processor(torch.tensor([row]), logits[i : i + 1])
            assert torch.equal(batch[i : i + 1], alone)
            chosen, _, _ = reference_choice(row, logits[i], 0.2, 5, DEFAULT_RESISTANCE)
            assert int(alone.argmax()) == chosen


def test_left_padding_without_pad_id_changes_the_graph() -> None:
    # The control for the test above: unmasked pad tokens are nodes, so the pad id must be given.
    history = torch.tensor([[0, 0, 0, 5, 6]])
    candidates = torch.tensor([[0]])
    assert repetition_levels(history, candidates).item() == 1
    assert repetition_levels(history, candidates, ignore=leading_pad_mask(history, 0)).item() == 0


def test_leading_pad_mask_only_masks_the_leading_run() -> None:
    ids = torch.tensor([[2, 2, 5, 2, 6], [5, 2, 2, 2, 2], [2, 2, 2, 2, 2]])
    assert leading_pad_mask(ids, 2).tolist() == [
        [True, True, False, False, False],
        [False, False, False, False, False],
        [True, True, True, True, True],
    ]


def test_banned_tokens_stay_banned_and_argmax_never_lands_on_one() -> None:
    gen = torch.Generator().manual_seed(5)
    processor = MomentumDecodingLogitsProcessor(top_k=5)
    for _ in range(200):
        logits = torch.randn(4, 20, generator=gen)
        banned = torch.rand(4, 20, generator=gen) < 0.8
        banned[:, 0] = False  # at least one allowed token per row
        scores = logits.masked_fill(banned, -math.inf)
        out = processor(torch.randint(0, 20, (4, 12), generator=gen), scores)
        assert torch.isneginf(out[banned]).all()
        assert not banned.gather(1, out.argmax(-1, keepdim=True)).any()


def test_infinite_resistance_falls_back_to_the_top_candidate() -> None:
    # "ngram_block": a 5-gram repeat costs +inf. If every candidate is a 5-gram repeat, the authors' max over the
    # k-vector of -inf picks the first (top-1) candidate; we must too, not token 0.
    history = torch.tensor([[3, 4, 5, 6, 7, 3, 4, 5, 6]])  # suffix (4, 5, 6) -> 7 repeats the 5-gram (3..7)
    logits = torch.full((1, 10), -5.0)
    logits[0, 7] = 4.0
    processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=1, resistance="ngram_block")
    out = processor(history, logits)
    assert int(out.argmax()) == 7
    assert float(out[0, 7]) == torch.finfo(torch.float32).min
    chosen, _, _ = reference_choice(history[0].tolist(), logits[0], 0.2, 1, RESISTANCE_PRESETS["ngram_block"])
    assert chosen == 7


def test_all_tokens_banned_gives_all_minus_inf() -> None:
    out = MomentumDecodingLogitsProcessor()(torch.tensor([[1, 2]]), torch.full((1, 8), -math.inf))
    assert torch.isneginf(out).all()


def test_fewer_allowed_tokens_than_k() -> None:
    scores = torch.full((1, 8), -math.inf)
    scores[0, 3], scores[0, 6] = 1.0, 0.5
    out = MomentumDecodingLogitsProcessor(top_k=5)(torch.tensor([[3, 6, 3]]), scores)
    assert torch.isfinite(out).sum() == 2
    # 3 -> 6 was seen (level 2), 3 -> 3 was not (level 1): p(3) - 0.2 = 0.422 vs p(6) - 0.6 = -0.22.
    assert int(out.argmax()) == 3


def test_scores_and_input_ids_are_not_modified() -> None:
    gen = torch.Generator().manual_seed(6)
    scores = torch.randn(3, 30, generator=gen)
    ids = torch.randint(0, 30, (3, 9), generator=gen)
    scores_copy, ids_copy = scores.clone(), ids.clone()
    out = MomentumDecodingLogitsProcessor()(ids, scores)
    assert out.data_ptr() != scores.data_ptr()
    assert torch.equal(scores, scores_copy) and torch.equal(ids, ids_copy)


def test_no_state_between_calls() -> None:
    gen = torch.Generator().manual_seed(7)
    processor = MomentumDecodingLogitsProcessor(pad_token_id=0)
    a_ids, a_scores = torch.randint(0, 9, (2, 15), generator=gen), torch.randn(2, 9, generator=gen)
    b_ids, b_scores = torch.randint(0, 9, (5, 4), generator=gen), torch.randn(5, 9, generator=gen)
    first = processor(a_ids, a_scores)
    processor(b_ids, b_scores)
    assert torch.equal(processor(a_ids, a_scores), first)
    assert torch.equal(MomentumDecodingLogitsProcessor(pad_token_id=0)(a_ids, a_scores), first)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(8)
    scores = (torch.randn(4, 64, generator=gen) * 3).to(dtype)
    ids = torch.randint(0, 64, (4, 20), generator=gen)
    out = MomentumDecodingLogitsProcessor()(ids, scores)
    assert out.dtype == dtype
    reference = MomentumDecodingLogitsProcessor()(ids, scores.float())
    assert torch.equal(out.argmax(-1), reference.argmax(-1))


def test_history_ids_beyond_the_score_vocabulary_are_fine() -> None:
    # Some models' embedding vocabulary is larger than the lm_head output.
    ids = torch.tensor([[100, 3, 100, 3]])
    out = MomentumDecodingLogitsProcessor(top_k=2)(ids, torch.randn(1, 10))
    assert torch.isfinite(out).sum() == 2


def test_presets_and_table_extension() -> None:
    assert resolve_resistance() == DEFAULT_RESISTANCE == (0.0, 1.0, 3.0, 4.0, 5.0, 5.0)
    assert resolve_resistance("linear") == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    assert resolve_resistance("ngram_block")[-1] == math.inf
    assert resolve_resistance((0, 1, 2), max_ngram=4) == (0.0, 1.0, 2.0, math.inf, math.inf)
    assert resolve_resistance("log")[5] == pytest.approx(5.0)  # log6(6) / 0.2
    assert resolve_resistance("exp")[1] == pytest.approx(0.75)
    assert penalty_table(0.0, (0.0, math.inf)) == (0.0, 0.0)
    assert penalty_table(0.2, (0.0, 1.0, math.inf)) == (0.0, 0.2, math.inf)
