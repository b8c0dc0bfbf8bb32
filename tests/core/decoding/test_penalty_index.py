"""The momentum penalty's per-sequence index gives exactly the stateless scores: long random histories with repeats,
left padding, a prompt mask, reordered rows, two generations in a row, a per-request row fed in chunks."""

from __future__ import annotations

import math

import pytest
import torch

from inertia.core.decoding.momentum_penalty import apply_momentum_penalty, momentum_penalty_table, token_levels
from inertia.core.decoding.ngram_index import IGNORED, NgramIndex
from inertia.core.decoding.penalty_index import IncrementalPenalty, MomentumPenaltyRow, NgramSuccessors

VOCAB = 40


def _steps(prompt: torch.Tensor, steps: int, seed: int, alphabet: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, scores) of a walk that grows the prompt by one token per step, with many repeats."""
    generator = torch.Generator().manual_seed(seed)
    ids, out = prompt, []
    for _ in range(steps):
        out.append((ids, torch.randn(ids.shape[0], VOCAB, generator=generator) * 2))
        ids = torch.cat([ids, torch.randint(0, alphabet, (ids.shape[0], 1), generator=generator)], dim=1)
    return out


@pytest.mark.parametrize(("seed", "resistance"), [(0, "default"), (1, "linear"), (2, (0, 1, 2)), (3, "exp")])
def test_long_random_histories_give_the_stateless_scores_at_every_step(seed: int, resistance: object) -> None:
    generator = torch.Generator().manual_seed(100 + seed)
    prompt = torch.randint(0, 6, (4, 300), generator=generator)
    table = momentum_penalty_table(0.7, resistance)  # type: ignore[arg-type]
    cache = IncrementalPenalty(table)
    for ids, scores in _steps(prompt, 80, seed):
        assert torch.equal(cache(ids, scores), apply_momentum_penalty(ids, scores, table))
    assert cache.rebuilds == 1  # built once, then extended 79 times


def test_a_larger_alphabet_with_ids_beyond_the_vocabulary() -> None:
    generator = torch.Generator().manual_seed(9)
    prompt = torch.randint(0, VOCAB + 5, (3, 200), generator=generator)  # some history ids have no logit
    table = momentum_penalty_table(1.0, "default", max_ngram=7)
    cache = IncrementalPenalty(table)
    for ids, scores in _steps(prompt, 60, seed=9, alphabet=VOCAB + 5):
        assert torch.equal(cache(ids, scores), apply_momentum_penalty(ids, scores, table))


def test_left_padding_by_pad_id_and_by_prompt_mask() -> None:
    prompt = torch.tensor([[0, 0, 0, 3, 4, 3], [5, 4, 3, 5, 4, 3], [0, 0, 0, 0, 0, 0], [0, 3, 0, 3, 0, 3]])
    mask = (torch.arange(6) >= torch.tensor([[3], [0], [6], [1]])).long()
    table = momentum_penalty_table(0.5)
    for kwargs in ({"pad_token_id": 0}, {"prompt_mask": mask}):
        cache = IncrementalPenalty(table)
        for ids, scores in _steps(prompt, 40, seed=7):
            assert torch.equal(cache(ids, scores, **kwargs), apply_momentum_penalty(ids, scores, table, **kwargs))


def test_reordered_rows_and_a_second_generation_rebuild() -> None:
    generator = torch.Generator().manual_seed(3)
    table = momentum_penalty_table(0.5)
    cache = IncrementalPenalty(table)
    first = torch.randint(0, 6, (3, 50), generator=generator)
    for ids, scores in _steps(first, 10, seed=1):
        cache(ids, scores)
    probes = (ids[[2, 0, 1]], ids[:2], first, torch.randint(0, 6, (3, 61), generator=generator))
    for probe in probes:
        scores = torch.randn(probe.shape[0], VOCAB, generator=generator)
        assert torch.equal(cache(probe, scores), apply_momentum_penalty(probe, scores, table))
    assert cache.rebuilds == 5


def test_a_rewritten_history_and_another_vocabulary_are_not_continued() -> None:
    table = momentum_penalty_table(0.5)
    cache = IncrementalPenalty(table)
    cache(torch.tensor([[1, 2, 3, 1, 2]]), torch.randn(1, 10))
    changed = torch.tensor([[4, 2, 3, 1, 2, 5]])  # one token more, but the first token differs
    scores = torch.randn(1, 10)
    assert torch.equal(cache(changed, scores), apply_momentum_penalty(changed, scores, table))
    longer = torch.tensor([[4, 2, 3, 1, 2, 5, 4]])
    wider = torch.randn(1, 12)  # one token more, but the vocabulary changed
    assert torch.equal(cache(longer, wider), apply_momentum_penalty(longer, wider, table))
    assert cache.rebuilds == 3


def test_build_after_starts_stateless_and_builds_once() -> None:
    table = momentum_penalty_table(0.5)
    cache = IncrementalPenalty(table, build_after=5)
    generator = torch.Generator().manual_seed(11)
    for step, (ids, scores) in enumerate(_steps(torch.randint(0, 6, (2, 30), generator=generator), 20, seed=11)):
        assert torch.equal(cache(ids, scores), apply_momentum_penalty(ids, scores, table)), step
        assert bool(cache._rows) == (step >= 5), step
    assert cache.rebuilds == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_give_the_stateless_scores(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(12)
    table = momentum_penalty_table(0.3)
    cache = IncrementalPenalty(table)
    for ids, scores in _steps(torch.randint(0, 6, (2, 40), generator=generator), 20, seed=12):
        scores = scores.to(dtype)
        out = cache(ids, scores)
        assert out.dtype == dtype and torch.equal(out, apply_momentum_penalty(ids, scores, table))


def test_infinite_resistance_matches_the_stateless_fallback() -> None:
    table = momentum_penalty_table(0.2, "ngram_block")
    ids = torch.tensor([[3, 4, 5, 6, 7, 3, 4, 5, 6]])
    scores = torch.full((1, 10), -math.inf)
    scores[0, 7] = 1.5
    assert torch.equal(IncrementalPenalty(table)(ids, scores), apply_momentum_penalty(ids, scores, table))
    generator = torch.Generator().manual_seed(13)
    cache = IncrementalPenalty(table)
    for ids, scores in _steps(torch.randint(0, 4, (3, 60), generator=generator), 30, seed=13, alphabet=4):
        assert torch.equal(cache(ids, scores), apply_momentum_penalty(ids, scores, table))


def test_a_row_fed_in_chunks_equals_the_stateless_penalty_of_its_sequence() -> None:
    # What an engine does per request: feed the prompt, then each sampled token, apply to the logits row.
    generator = torch.Generator().manual_seed(14)
    table = momentum_penalty_table(0.6, "linear")
    sequence = [IGNORED, IGNORED, *torch.randint(0, 8, (150,), generator=generator).tolist()]
    row = MomentumPenaltyRow(table)
    fed = 0
    for chunk in (2, 30, 1, 1, 17, 1, 5, *([1] * 95)):
        row.extend(sequence[fed : fed + chunk])
        fed += chunk
        ids = torch.tensor([[t if t != IGNORED else 0 for t in sequence[:fed]]])
        ignore = torch.zeros_like(ids, dtype=torch.bool)
        ignore[0, :2] = True
        scores = torch.randn(VOCAB, generator=generator)
        expected = apply_momentum_penalty(ids, scores[None], table, prompt_mask=(~ignore[:, :2]).long())[0]
        if fed > 2:
            assert torch.equal(row.apply(scores), expected), fed
    assert row.length == len(sequence) == fed


@pytest.mark.parametrize("resistance", ["default", "ngram_block"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_row_can_penalise_the_logits_in_place(resistance: str, dtype: torch.dtype) -> None:
    # An engine may hand its logits row as `out`: the level-2+ scores must be read before they are overwritten.
    generator = torch.Generator().manual_seed(16)
    table = momentum_penalty_table(0.5, resistance)
    sequence = torch.randint(0, 5, (80,), generator=generator).tolist()
    row = MomentumPenaltyRow(table)
    row.extend(sequence[:20])
    for position in range(20, 80):
        scores = (torch.randn(VOCAB, generator=generator) * 2).to(dtype)
        scores[torch.randint(0, VOCAB, (30,), generator=generator)] = -math.inf
        expected = row.apply(scores)
        logits = scores.clone()
        assert row.apply(logits, out=logits) is logits and torch.equal(logits, expected), position
        assert torch.equal(
            expected, apply_momentum_penalty(torch.tensor([sequence[:position]]), scores[None], table)[0]
        )
        row.append(sequence[position])


def test_successor_levels_are_every_token_of_level_two_or_more() -> None:
    generator = torch.Generator().manual_seed(15)
    for max_ngram in (1, 2, 3, 5, 8):
        index, plain = NgramSuccessors(max_ngram), NgramIndex(max_ngram)
        history: list[int] = []
        for token in torch.randint(0, 5, (200,), generator=generator).tolist():
            index.extend([token])
            plain.append(token)
            history.append(token)
            levels = token_levels(torch.tensor([history]), 6, max_ngram)[0].tolist()
            assert index.successor_levels() == {v: lvl for v, lvl in enumerate(levels) if lvl >= 2}
            assert index.levels(range(6)) == plain.levels(range(6)) == levels
            assert index.seen == {v for v, lvl in enumerate(levels) if lvl >= 1}


def test_extend_returns_each_new_node_once() -> None:
    index = NgramSuccessors(5)
    assert index.extend([IGNORED, 4, 4, 2, 4]) == [4, 2]
    assert index.extend([2, 7, IGNORED]) == [7]
    assert index.extend([]) == [] and index.length == 8


def test_rows_share_nothing() -> None:
    table = momentum_penalty_table(0.5)
    first, second = MomentumPenaltyRow(table), MomentumPenaltyRow(table)
    first.extend([1, 2, 1, 2, 1])
    second.extend([3])
    assert second.apply(torch.zeros(5)).tolist() == [0.0, 0.0, 0.0, -0.5, 0.0]


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"`build_after` must be an integer >= 0, got -1"):
        IncrementalPenalty(momentum_penalty_table(), build_after=-1)
    with pytest.raises(ValueError, match=r"`max_ngram` must be an integer in \[1, 32\]"):
        NgramSuccessors(0)
    with pytest.raises(ValueError, match=r"one \[V\] row of logits, got \(1, 5\)"):
        MomentumPenaltyRow(momentum_penalty_table()).apply(torch.zeros(1, 5))
