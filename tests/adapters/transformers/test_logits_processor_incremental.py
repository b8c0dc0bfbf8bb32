"""The processor's n-gram cache (``incremental``) chooses exactly what the stateless computation chooses: long random
histories with repeats, left padding, a prompt mask, reordered rows, two generations in a row, threads."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
import torch

from inertia.decoders import MomentumDecodingLogitsProcessor

VOCAB = 40


def _steps(prompt: torch.Tensor, steps: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, scores) of a greedy-like walk that grows the prompt by one token per step, with many repeats."""
    generator = torch.Generator().manual_seed(seed)
    ids, out = prompt, []
    for _ in range(steps):
        scores = torch.randn(ids.shape[0], VOCAB, generator=generator) * 2
        out.append((ids, scores))
        nxt = torch.randint(0, 6, (ids.shape[0], 1), generator=generator)  # 6 tokens: loops of every length
        ids = torch.cat([ids, nxt], dim=1)
    return out


def _pair(**kwargs: object) -> tuple[MomentumDecodingLogitsProcessor, MomentumDecodingLogitsProcessor]:
    return (
        MomentumDecodingLogitsProcessor(incremental=True, **kwargs),  # type: ignore[arg-type]
        MomentumDecodingLogitsProcessor(incremental=False, **kwargs),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("seed", range(3))
def test_long_random_histories_give_the_stateless_scores_at_every_step(seed: int) -> None:
    generator = torch.Generator().manual_seed(100 + seed)
    prompt = torch.randint(0, 6, (4, 300), generator=generator)
    cached, stateless = _pair(alpha=0.3, top_k=6, resistance="linear")
    for ids, scores in _steps(prompt, 60, seed):
        assert torch.equal(cached(ids, scores), stateless(ids, scores))
    assert cached._local.cache.rebuilds == 1  # built once, then extended 59 times


def test_left_padding_by_pad_id_and_by_prompt_mask() -> None:
    prompt = torch.tensor([[0, 0, 0, 3, 4, 3], [5, 4, 3, 5, 4, 3], [0, 0, 0, 0, 0, 0]])
    mask = (torch.arange(6) >= torch.tensor([[3], [0], [6]])).long()
    for kwargs in ({"pad_token_id": 0}, {"prompt_attention_mask": mask}):
        cached, stateless = _pair(alpha=0.2, top_k=5, **kwargs)
        for ids, scores in _steps(prompt, 30, seed=7):
            assert torch.equal(cached(ids, scores), stateless(ids, scores)), kwargs


def test_reordered_rows_and_a_second_generation_rebuild() -> None:
    generator = torch.Generator().manual_seed(3)
    cached, stateless = _pair(alpha=0.2, top_k=5)
    first = torch.randint(0, 6, (3, 50), generator=generator)
    for ids, scores in _steps(first, 10, seed=1):
        cached(ids, scores)
    last_ids = ids
    for probe in (last_ids[[2, 0, 1]], last_ids[:2], first, torch.randint(0, 6, (3, 61), generator=generator)):
        scores = torch.randn(probe.shape[0], VOCAB, generator=generator)
        assert torch.equal(cached(probe, scores), stateless(probe, scores))
    assert cached._local.cache.rebuilds == 5


def test_a_rewritten_history_of_the_same_length_is_not_continued() -> None:
    cached, stateless = _pair(alpha=0.5, top_k=3)
    ids = torch.tensor([[1, 2, 3, 1, 2]])
    scores = torch.tensor([[0.0, 0.0, 0.0, 3.0, 2.9] + [0.0] * 5])
    cached(ids, scores)
    changed = torch.tensor([[4, 2, 3, 1, 2, 5]])  # one token more, but the first token differs
    scores = torch.randn(1, 10)
    assert torch.equal(cached(changed, scores), stateless(changed, scores))


def test_threads_keep_their_own_cache() -> None:
    processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, incremental=True)
    reference = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, incremental=False)
    failures: list[str] = []

    def run(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for ids, scores in _steps(torch.randint(0, 6, (2, 40), generator=generator), 40, seed):
            if not torch.equal(processor(ids, scores), reference(ids, scores)):
                failures.append(f"thread {seed}")

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_copies_and_pickles_start_without_a_cache() -> None:
    processor = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, incremental=True)
    processor(torch.tensor([[1, 2, 3]]), torch.randn(1, 10))
    for clone in (copy.deepcopy(processor), pickle.loads(pickle.dumps(processor))):
        assert getattr(clone._local, "cache", None) is None
        assert torch.equal(
            clone(torch.tensor([[1, 2, 3, 1]]), torch.ones(1, 10)),
            processor(torch.tensor([[1, 2, 3, 1]]), torch.ones(1, 10)),
        )


@pytest.mark.parametrize("incremental", ["yes", 1.5, None])
def test_bad_incremental_is_named(incremental: object) -> None:
    with pytest.raises(ValueError, match=r"`incremental` must be True, False or 'auto'"):
        MomentumDecodingLogitsProcessor(incremental=incremental)  # type: ignore[arg-type]


def test_auto_starts_stateless_and_builds_the_index_once_the_generation_runs_on() -> None:
    from inertia.adapters.transformers.logits_processor import AUTO_BUILD_AFTER

    auto = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5)  # incremental="auto"
    stateless = MomentumDecodingLogitsProcessor(alpha=0.2, top_k=5, incremental=False)
    generator = torch.Generator().manual_seed(11)
    for step, (ids, scores) in enumerate(_steps(torch.randint(0, 6, (3, 80), generator=generator), 30, seed=11)):
        assert torch.equal(auto(ids, scores), stateless(ids, scores)), step
        built = bool(auto._local.cache._rows)
        assert built == (step >= AUTO_BUILD_AFTER), step
    assert auto._local.cache.rebuilds == 1
