"""The llama-cpp-python processor without llama.cpp: llama-cpp-python's calling convention (a 1-D int history and a
strided float32 view of the candidates' logits), the n-gram cache against the stateless core over long random
histories with repeats, state that never carries over to another completion, and named errors."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
import torch

from inertia.adapters.llama_cpp.logits_processor import MomentumDecodingLlamaCppProcessor
from inertia.core.decoding.momentum import momentum_scores, penalty_table, resolve_resistance

VOCAB = 50
CANDIDATES = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


def candidates(logits: np.ndarray) -> np.ndarray:
    """llama.cpp's ``llama_token_data`` array as llama-cpp-python views it: its ``logit`` field is strided."""
    data = np.zeros(len(logits), dtype=CANDIDATES)
    data["id"], data["logit"] = np.arange(len(logits)), logits
    return data


def stateless(ids: np.ndarray, logits: np.ndarray, alpha: float, top_k: int, resistance="default") -> np.ndarray:
    """The core's stateless computation (every level recomputed from the whole history)."""
    penalties = penalty_table(alpha, resolve_resistance(resistance))
    out = momentum_scores(
        torch.from_numpy(ids.astype(np.int64))[None], torch.from_numpy(logits)[None], penalties, top_k
    )
    return out[0].numpy()


def walk(prompt: np.ndarray, steps: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input_ids, logits) of a completion growing by one token per call, from a 6-token alphabet (loops of every
    length), as llama-cpp-python passes them (a prefix view of one int buffer)."""
    rng = np.random.default_rng(seed)
    buffer = np.concatenate([prompt, rng.integers(0, 6, steps)]).astype(np.intc)
    return [(buffer[: len(prompt) + i], (rng.standard_normal(VOCAB) * 2).astype(np.single)) for i in range(steps)]


@pytest.mark.parametrize("seed", range(3))
def test_long_random_histories_give_the_stateless_scores_at_every_step(seed: int) -> None:
    prompt = np.random.default_rng(100 + seed).integers(0, 6, 2000)
    processor = MomentumDecodingLlamaCppProcessor(alpha=0.3, top_k=6, resistance="linear")
    for ids, logits in walk(prompt, 80, seed):
        out = processor(ids, candidates(logits)["logit"])
        assert out.dtype == np.float32 and out.shape == (VOCAB,)
        np.testing.assert_array_equal(out, stateless(ids, logits, 0.3, 6, "linear"))
    assert processor.levels().rebuilds == 1  # built once, then extended 79 times


def test_a_new_completion_starts_from_its_own_history() -> None:
    processor = MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=5)
    first = walk(np.array([1, 2, 3, 1, 2]), 30, seed=1)
    for ids, logits in first:
        processor(ids, logits)
    # a second completion: another prompt, then the first prompt again, then a history one token longer than the
    # last one but rewritten at its start
    last = first[-1][0]
    rewritten = np.concatenate([[9], last[1:], [4]]).astype(np.intc)
    probes = [*walk(np.array([5, 5, 5]), 10, seed=2), *first[:3], (rewritten, first[0][1])]
    for ids, logits in probes:
        np.testing.assert_array_equal(processor(ids, logits), stateless(ids, logits, 0.2, 5))
    assert processor.levels().rebuilds == 1 + 1 + 1 + 1


def test_alpha_zero_keeps_the_greedy_choice_and_the_scores_are_not_modified() -> None:
    processor = MomentumDecodingLlamaCppProcessor(alpha=0.0, top_k=5)
    for ids, logits in walk(np.array([1, 2, 1, 2, 1]), 40, seed=3):
        view = candidates(logits)["logit"]
        before = view.copy()
        assert int(np.argmax(processor(ids, view))) == int(np.argmax(logits))
        np.testing.assert_array_equal(view, before)


def test_a_banned_token_stays_banned() -> None:
    processor = MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=3)
    logits = np.array([0.0, 5.0, 4.0, 3.0, 2.0], dtype=np.single)
    logits[1] = -np.inf  # an earlier processor (e.g. the end-of-generation ban) removed token 1
    out = processor(np.array([0, 2, 3], dtype=np.intc), logits)
    assert out[1] == -np.inf and int(np.argmax(out)) in (2, 3, 4)


def test_threads_keep_their_own_cache() -> None:
    processor = MomentumDecodingLlamaCppProcessor(alpha=0.2, top_k=5)
    walks = [walk(np.array([seed, 1, 2]), 40, seed) for seed in range(4)]
    results: dict[int, list[np.ndarray]] = {}

    def run(index: int) -> None:
        results[index] = [processor(ids, logits) for ids, logits in walks[index]]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, steps in enumerate(walks):
        for out, (ids, logits) in zip(results[index], steps, strict=True):
            np.testing.assert_array_equal(out, stateless(ids, logits, 0.2, 5))


def test_copies_and_pickles_start_without_a_cache() -> None:
    processor = MomentumDecodingLlamaCppProcessor(alpha=0.4, top_k=3)
    ids, logits = walk(np.array([1, 2, 3]), 1, seed=0)[0]
    processor(ids, logits)
    for clone in (copy.deepcopy(processor), pickle.loads(pickle.dumps(processor))):
        assert (clone.alpha, clone.top_k, clone.resistance) == (0.4, 3, processor.resistance)
        assert clone.levels().rebuilds == 0
        np.testing.assert_array_equal(clone(ids, logits), processor(ids, logits))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -0.1}, "`alpha` must be a finite number >= 0"),
        ({"alpha": float("nan")}, "`alpha` must be a finite number >= 0"),
        ({"top_k": 0}, "`top_k` must be an integer >= 1"),
        ({"top_k": 2.0}, "`top_k` must be an integer >= 1"),
        ({"resistance": "steep"}, "`resistance` must be one of"),
        ({"resistance": (0, 1), "max_ngram": 40}, "`max_ngram` must be an integer in [1, 32]"),
    ],
)
def test_bad_parameters_are_named_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        MomentumDecodingLlamaCppProcessor(**kwargs)


def test_bad_arrays_are_named_at_call_time() -> None:
    processor = MomentumDecodingLlamaCppProcessor(top_k=5)
    with pytest.raises(ValueError, match=r"expects input_ids \[T\] and scores \[V\]"):
        processor(np.array([[1, 2]]), np.zeros((1, 10), dtype=np.single))
    with pytest.raises(ValueError, match="`top_k`=5 exceeds the vocabulary size of the scores \\(3\\)"):
        processor(np.array([1, 2]), np.zeros(3, dtype=np.single))
