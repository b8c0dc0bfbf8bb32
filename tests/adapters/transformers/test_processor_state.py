"""HistoryProcessorState: the checks and the per-thread cache shared by our history-keyed processors."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
import torch

from inertia.adapters.transformers.processor_state import HistoryProcessorState


def state(**overrides: object) -> HistoryProcessorState:
    kwargs: dict = {"pad_token_id": None, "prompt_attention_mask": None, "incremental": "auto", **overrides}
    return HistoryProcessorState(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pad_token_id": -1}, r"`pad_token_id` must be None or an integer >= 0, got -1"),
        ({"pad_token_id": True}, r"`pad_token_id` must be None or an integer >= 0, got True"),
        ({"pad_token_id": 1.0}, r"`pad_token_id` must be None or an integer >= 0, got 1.0"),
        ({"prompt_attention_mask": [[1, 1]]}, r"`prompt_attention_mask` must be None or a \[B, T0\] tensor, got list"),
        (
            {"prompt_attention_mask": torch.ones(3)},
            r"`prompt_attention_mask` must be None or a \[B, T0\] tensor, got Tensor of shape \(3,\)",
        ),
        ({"incremental": "yes"}, r"`incremental` must be True, False or 'auto', got 'yes'"),
        ({"incremental": 1}, r"`incremental` must be True, False or 'auto', got 1"),
    ],
)
def test_bad_arguments_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        state(**overrides)


def test_numpy_pad_id_is_kept_as_a_python_int() -> None:
    kept = state(pad_token_id=np.int64(7)).pad_token_id
    assert kept == 7 and type(kept) is int


@pytest.mark.parametrize(
    ("input_shape", "score_shape", "mask_shape"),
    [((2, 4), (3, 10), None), ((2, 4), (2, 3, 10), None), ((4,), (1, 10), None), ((2, 4), (2, 10), (1, 4)),
     ((2, 4), (2, 10), (2, 5))],
)  # fmt: skip
def test_call_shapes_are_checked(input_shape: tuple, score_shape: tuple, mask_shape: tuple | None) -> None:
    mask = None if mask_shape is None else torch.ones(mask_shape, dtype=torch.long)
    checked = state(prompt_attention_mask=mask)
    with pytest.raises(ValueError, match=r"Owner expects input_ids|does not match input_ids"):
        checked.check_call("Owner", torch.zeros(input_shape, dtype=torch.long), torch.zeros(score_shape))


def test_a_fitting_call_passes() -> None:
    mask = torch.ones(2, 3, dtype=torch.long)
    state(prompt_attention_mask=mask).check_call("Owner", torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 10))


@pytest.mark.parametrize(("incremental", "expected"), [(True, True), (False, False), ("auto", True)])
def test_wants_cache_on_the_cpu(incremental: bool | str, expected: bool) -> None:
    assert state(incremental=incremental).wants_cache(torch.zeros(1, 2, dtype=torch.long)) is expected


def test_auto_keeps_no_cache_off_the_cpu() -> None:
    meta = torch.zeros(1, 2, dtype=torch.long, device="meta")
    assert state(incremental="auto").wants_cache(meta) is False
    assert state(incremental=True).wants_cache(meta) is True


def test_one_cache_per_thread_built_once() -> None:
    shared = state()
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    first = shared.cached(build)
    assert shared.cached(build) is first
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(shared.cached(build)))
    thread.start()
    thread.join()
    assert len(built) == 2 and other[0] is built[1] and other[0] is not first


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, lambda s: pickle.loads(pickle.dumps(s))])
def test_copies_start_without_a_cache(duplicate) -> None:
    original = state(pad_token_id=3)
    original.cached(lambda: [1, 2, 3])
    clone = duplicate(original)
    assert clone.pad_token_id == 3 and clone.incremental == "auto"
    assert clone.cached(list) == []
    assert original.cached(list) == [1, 2, 3]
