"""The momentum penalty's llama-cpp-python processor without llama.cpp: llama-cpp-python's calling convention (a 1-D
int history and a strided float32 view of the candidates' logits), the incremental index against the stateless core
over long random histories with repeats, α = 0 bit for bit, state that never carries over to another completion,
and named errors."""

from __future__ import annotations

import copy
import pickle
import re
import threading

import numpy as np
import pytest
import torch

from inertia.adapters.llama_cpp.momentum_penalty import MomentumPenaltyLlamaCppProcessor
from inertia.core.decoding.momentum_penalty import apply_momentum_penalty, momentum_penalty_table
from tests.adapters.llama_cpp.test_logits_processor import VOCAB, candidates, walk


def stateless(ids: np.ndarray, logits: np.ndarray, alpha: float, resistance="default") -> np.ndarray:
    """The core's stateless eq. (4) (every level recomputed from the whole history)."""
    table = momentum_penalty_table(alpha, resistance)
    out = apply_momentum_penalty(torch.from_numpy(ids.astype(np.int64))[None], torch.from_numpy(logits)[None], table)
    return out[0].numpy()


@pytest.mark.parametrize(("seed", "resistance"), [(0, "default"), (1, "linear"), (2, (0, 0.5, 2, 2.5))])
def test_long_random_histories_give_the_stateless_scores_at_every_step(seed: int, resistance) -> None:
    prompt = np.random.default_rng(100 + seed).integers(0, 6, 2000)
    processor = MomentumPenaltyLlamaCppProcessor(alpha=0.3, resistance=resistance)
    penalised = 0
    for ids, logits in walk(prompt, 80, seed):
        view = candidates(logits)["logit"]
        out = processor(ids, view)
        assert out.dtype == np.float32 and out.shape == (VOCAB,)
        expected = stateless(ids, logits, 0.3, resistance)
        np.testing.assert_array_equal(out, expected)
        penalised += int((out != logits).sum())
    assert penalised >= 80 * 6  # every step charges the six tokens of the alphabet (all nodes of the graph)
    assert processor.cache().rebuilds == 1  # built once, then extended 79 times


def test_alpha_zero_returns_the_logits_bit_for_bit_in_a_new_array() -> None:
    processor = MomentumPenaltyLlamaCppProcessor(alpha=0.0)
    for ids, logits in walk(np.array([1, 2, 1, 2, 1]), 40, seed=3):
        view = candidates(logits)["logit"]
        out = processor(ids, view)
        assert out.dtype == np.float32 and out.tobytes() == logits.tobytes()
        assert not np.shares_memory(out, view)


def test_the_scores_are_never_modified() -> None:
    processor = MomentumPenaltyLlamaCppProcessor(alpha=0.5)
    for ids, logits in walk(np.array([1, 2, 1, 2, 1]), 20, seed=4):
        for scores in (candidates(logits)["logit"], logits.copy()):  # strided and contiguous float32
            before = scores.copy()
            out = processor(ids, scores)
            np.testing.assert_array_equal(scores, before)
            assert not np.shares_memory(out, scores) and (out != before).any()


def test_a_new_prompt_or_a_rewound_history_rebuilds_the_state() -> None:
    processor = MomentumPenaltyLlamaCppProcessor(alpha=0.4)
    first = walk(np.array([1, 2, 3, 1, 2]), 30, seed=1)
    for ids, logits in first:
        processor(ids, logits)
    assert processor.cache().rebuilds == 1
    # another prompt, then the first prompt again (a rewound history), then a history one token longer than the
    # last one but rewritten at its start, then the same history twice (not one token longer)
    last = first[-1][0]
    rewritten = np.concatenate([[9], last[1:], [4]]).astype(np.intc)
    probes = [*walk(np.array([5, 5, 5]), 10, seed=2), *first[:3], (rewritten, first[0][1]), (rewritten, first[1][1])]
    for ids, logits in probes:
        np.testing.assert_array_equal(processor(ids, logits), stateless(ids, logits, 0.4))
    assert processor.cache().rebuilds == 1 + 1 + 1 + 1 + 1


def test_a_loop_is_charged_and_a_banned_token_stays_banned() -> None:
    processor = MomentumPenaltyLlamaCppProcessor(alpha=0.5)
    logits = np.array([0, 0, 0, 0, 1.0, 1.0, 3.0, 2.9], dtype=np.single)
    logits[5] = -np.inf  # an earlier processor (e.g. the end-of-generation ban) removed token 5
    out = processor(np.array([4, 5, 6, 4, 5], dtype=np.intc), logits)
    np.testing.assert_allclose(out, [0, 0, 0, 0, 0.5, -np.inf, 1.0, 2.9], rtol=0, atol=1e-6)  # 6: 0.5·R(3) = 2


def test_threads_keep_their_own_state() -> None:
    processor = MomentumPenaltyLlamaCppProcessor(alpha=0.3)
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
            np.testing.assert_array_equal(out, stateless(ids, logits, 0.3))


def test_copies_and_pickles_start_without_state() -> None:
    processor = MomentumPenaltyLlamaCppProcessor(alpha=0.4, resistance="linear")
    ids, logits = walk(np.array([1, 2, 3]), 1, seed=0)[0]
    processor(ids, logits)
    for clone in (copy.deepcopy(processor), pickle.loads(pickle.dumps(processor))):
        assert (clone.alpha, clone.resistance, clone.max_ngram) == (0.4, processor.resistance, 5)
        assert clone.cache().rebuilds == 0
        np.testing.assert_array_equal(clone(ids, logits), processor(ids, logits))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -0.1}, "`alpha` must be in [0.0, inf), got -0.1"),
        ({"alpha": float("nan")}, "`alpha` must be a finite number in [0.0, inf), got nan"),
        ({"alpha": float("inf")}, "`alpha` must be a finite number in [0.0, inf), got inf"),
        ({"alpha": "0.2"}, "`alpha` must be a finite number in [0.0, inf), got '0.2'"),
        ({"resistance": "steep"}, "`resistance` must be one of"),
        ({"resistance": (0, 1), "max_ngram": 40}, "`max_ngram` must be an integer in [1, 32]"),
    ],
)
def test_bad_parameters_are_named_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MomentumPenaltyLlamaCppProcessor(**kwargs)


def test_bad_arrays_are_named_at_call_time() -> None:
    with pytest.raises(ValueError, match=r"expects input_ids \[T\] and scores \[V\]"):
        MomentumPenaltyLlamaCppProcessor()(np.array([[1, 2]]), np.zeros((1, 10), dtype=np.single))
