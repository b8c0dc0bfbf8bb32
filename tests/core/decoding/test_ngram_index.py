"""The incremental n-gram index gives exactly the stateless repetition levels, at every step of long histories."""

from __future__ import annotations

import pytest
import torch

from inertia.core.decoding.momentum import repetition_levels
from inertia.core.decoding.ngram_index import IGNORED, NgramIndex


def _stateless(history: list[int], candidates: list[int], max_ngram: int, padding: int) -> list[int]:
    ids = torch.tensor([history])
    ignore = torch.zeros_like(ids, dtype=torch.bool)
    ignore[:, :padding] = True
    return repetition_levels(ids, torch.tensor([candidates]), max_ngram=max_ngram, ignore=ignore)[0].tolist()


@pytest.mark.parametrize("seed", range(6))
def test_every_step_of_a_long_repetitive_history_matches_the_stateless_levels(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    vocab = [3, 5, 12][seed % 3]  # few tokens: many repeats of every length
    max_ngram = [1, 2, 5, 8, 5, 3][seed]
    padding = [0, 3, 0, 1, 7, 0][seed]
    history = [0] * padding + torch.randint(0, vocab, (400,), generator=generator).tolist()
    index = NgramIndex(max_ngram=max_ngram)
    index.extend([IGNORED] * padding)
    candidates = list(range(vocab + 1))  # every token, and one never seen
    for position in range(padding, len(history)):
        index.append(history[position])
        if position % 7 == 0 or position > len(history) - 20:
            got = index.levels(candidates)
            assert got == _stateless(history[: position + 1], candidates, max_ngram, padding), position
    assert index.length == len(history)


def test_a_loop_reaches_the_longest_level() -> None:
    index = NgramIndex(max_ngram=5)
    index.extend([1, 2, 3, 4, 5, 1, 2, 3, 4])
    assert index.levels([5, 1, 9]) == [5, 1, 0]  # "1 2 3 4" was followed by 5; 1 is a node; 9 is new


def test_padding_is_no_node_and_no_context() -> None:
    index = NgramIndex(max_ngram=3)
    index.extend([IGNORED, IGNORED])
    assert index.levels([IGNORED, 0]) == [0, 0]
    index.extend([7, 7])
    assert index.levels([7]) == _stateless([0, 0, 7, 7], [7], 3, padding=2)


@pytest.mark.parametrize("max_ngram", [0, 33, 2.0, True, None])
def test_bad_max_ngram_is_named(max_ngram: object) -> None:
    with pytest.raises(ValueError, match=r"`max_ngram` must be an integer in \[1, 32\]"):
        NgramIndex(max_ngram=max_ngram)  # type: ignore[arg-type]


@pytest.mark.parametrize("build_after", [-1, 1.5, True])
def test_bad_build_after_is_named(build_after: object) -> None:
    from inertia.core.decoding.ngram_index import IncrementalLevels

    with pytest.raises(ValueError, match=r"`build_after` must be an integer >= 0"):
        IncrementalLevels(5, build_after=build_after)  # type: ignore[arg-type]


def test_extend_builds_the_index_append_builds() -> None:
    tokens = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(5)).tolist()
    bulk, one_by_one = NgramIndex(6), NgramIndex(6)
    bulk.extend(tokens[:100])
    bulk.extend(tokens[100:])
    for token in tokens:
        one_by_one.append(token)
    assert bulk._grams == one_by_one._grams and bulk._tail == one_by_one._tail and bulk._seen == one_by_one._seen


@pytest.mark.parametrize("max_ngram", [3, 5, 8])
def test_extend_in_short_chunks_keeps_the_whole_tail(max_ngram: int) -> None:
    # A sequence shorter than N - 1 keeps all its tokens as the context of the next look-up.
    tokens = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(max_ngram)).tolist()
    chunked = NgramIndex(max_ngram)
    for position, token in enumerate(tokens):
        chunked.extend([token])
        expected = _stateless(tokens[: position + 1], [0, 1, 2, 3], max_ngram, padding=0)
        assert chunked.levels([0, 1, 2, 3]) == expected, position
