"""The vLLM processor's logic, driven as vLLM's model runners drive it (tests/adapters/vllm/fake_runners.py), without
vLLM: at every step each row that asked for momentum decoding equals the stateless core on that request's whole
history, every other row is untouched, over long random histories with repeats, recycled slots, reordered and moved
rows, mixed settings and speculative rows."""

from __future__ import annotations

import importlib.util
import logging
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from inertia.adapters.vllm.logits_processor import MomentumDecodingProcessor, build_processor_class
from tests.adapters.vllm.fake_runners import Direction, FakeRunnerV1, FakeRunnerV2, Step, expected_row, params

Processor = build_processor_class()

SETTINGS = [
    {"md_alpha": 0.2, "md_top_k": 5},
    {"md_alpha": 0.5, "md_top_k": 3, "md_resistance": "linear"},
    {"md_alpha": 0.3, "md_resistance": "ngram_block", "md_top_k": 50},  # k above the vocabulary: every token
    {},  # no momentum decoding
]


def random_walk(seed: int, alphabet: int = 6):
    """The committed token: random from a few ids (loops of every length), whatever the scores say."""
    generator = torch.Generator().manual_seed(seed)
    return lambda request, row: int(torch.randint(0, alphabet, (1,), generator=generator))


def greedy(request: str, row: torch.Tensor) -> int:
    return int(row.argmax())


def check(steps: list[Step]) -> None:
    for step in steps:
        expected = expected_row(step.history, step.before, step.extra)
        assert torch.equal(step.after, expected), (step.request, len(step.history), step.extra)


@pytest.mark.parametrize("seed", range(3))
def test_v2_long_random_histories_give_the_stateless_choices_at_every_step(seed: int) -> None:
    runner = FakeRunnerV2(Processor, slots=4, max_len=3000, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    for i, extra in enumerate(SETTINGS):
        runner.add(f"r{i}", torch.randint(0, 6, (2000 + 100 * i,), generator=generator).tolist(), **extra)
    walk = random_walk(seed)
    for _ in range(60):
        check(runner.step(walk))
    indexes = [request.index for request in runner.processor._requests.values()]
    assert len(indexes) == 3 and all(index.length >= 2000 for index in indexes)  # extended, never rebuilt


def test_v2_greedy_walks_and_recycled_slots_start_clean() -> None:
    runner = FakeRunnerV2(Processor, slots=2, max_len=400, seed=5)
    runner.add("a", [1, 2, 3, 1, 2, 3, 1, 2], **SETTINGS[0])
    runner.add("b", [4, 4, 4, 4], **SETTINGS[1])
    for _ in range(20):
        check(runner.step(greedy))
    slot_a = runner.live["a"].slot
    runner.finish("a")
    # the slot's next occupant: same tokens at first, another setting, then one without momentum decoding
    for name, extra in (("c", SETTINGS[1]), ("d", {})):
        assert runner.add(name, [1, 2, 3], **extra) == slot_a
        for _ in range(15):
            check(runner.step(greedy))
        runner.finish(name)
    assert slot_a not in runner.processor._requests  # "d" did not ask: nothing of "c" was left behind


def test_v2_rows_of_requests_that_did_not_ask_are_bit_for_bit_untouched() -> None:
    runner = FakeRunnerV2(Processor, slots=3, seed=2)
    runner.add("plain", [5, 6, 5, 6, 5])
    runner.add("zero", [5, 6, 5, 6, 5], md_alpha=0.0)  # α = 0: the scores change, the greedy choice does not
    runner.add("md", [5, 6, 5, 6, 5], md_alpha=0.2)
    for _ in range(10):
        steps = {step.request: step for step in runner.step(greedy)}
        assert torch.equal(steps["plain"].after, steps["plain"].before)
        assert int(steps["zero"].after.argmax()) == int(steps["zero"].before.argmax())
        check(list(steps.values()))


def test_v2_speculative_rows_see_the_drafts_before_them() -> None:
    runner = FakeRunnerV2(Processor, slots=2, seed=4)
    runner.add("a", [1, 2, 3, 1, 2], **SETTINGS[0])
    runner.add("b", [3, 3, 3], **SETTINGS[3])
    generator = torch.Generator().manual_seed(4)
    for _ in range(12):
        drafts = {name: torch.randint(0, 4, (3,), generator=generator).tolist() for name in ("a", "b")}
        steps = runner.step(greedy, drafts)
        assert len(steps) == 8  # 1 + 3 rows per request
        check(steps)


def test_v2_a_batch_without_our_requests_costs_no_work() -> None:
    runner = FakeRunnerV2(Processor, slots=2, seed=1)
    runner.add("plain", [1, 2, 3])
    assert not runner.processor._requests
    check(runner.step(greedy))


def test_v1_persistent_batch_with_removals_moves_and_swaps() -> None:
    runner = FakeRunnerV1(Processor, seed=3)
    generator = torch.Generator().manual_seed(3)
    walk = random_walk(3)

    def prompt() -> list[int]:
        return torch.randint(
            0, 6, (int(torch.randint(1, 600, (1,), generator=generator)),), generator=generator
        ).tolist()

    for i in range(5):
        runner.add(f"r{i}", prompt(), **SETTINGS[i % len(SETTINGS)])
    for step in range(80):
        check(runner.step(walk))
        if step % 9 == 4:  # two finish: one row goes to a new request, the last row moves into the other
            live = [r for r in runner.rows if r is not None]
            runner.finish(live[step % len(live)])
            runner.finish(live[(step + 1) % len(live)])
            runner.add(f"n{step}", prompt(), **SETTINGS[step % len(SETTINGS)])
        if step % 9 == 6:
            runner.add(f"m{step}", prompt(), **SETTINGS[(step + 1) % len(SETTINGS)])
        if step % 7 == 3 and len(runner.rows) > 2:
            runner.swap(0, len(runner.rows) - 1)
    assert {direction for *_, direction in (move for moves in runner.moves_seen for move in moves)} == {
        Direction.UNIDIRECTIONAL,
        Direction.SWAP,
    }


def test_v1_a_placeholder_token_is_fed_once_vllm_fills_it(caplog: pytest.LogCaptureFixture) -> None:
    processor = Processor(SimpleNamespace(), torch.device("cpu"), False)
    output: list[int] = []
    processor.update_state(SimpleNamespace(removed=[], added=[(0, params(md_alpha=0.2), [1, 2, 3], output)], moved=[]))
    output += [1, -1]  # vLLM's V1 runner under asynchronous scheduling: the last token is not there yet
    with caplog.at_level(logging.WARNING):
        processor.apply(torch.randn(1, 10))
    assert "asynchronous scheduling" in caplog.text
    assert processor._requests[0].index.length == 4
    output[-1] = 2
    logits = torch.randn(1, 10)
    after = processor.apply(logits.clone())
    assert torch.equal(after[0], expected_row([1, 2, 3, 1, 2], logits[0], {"md_alpha": 0.2}))


def test_a_second_instance_for_the_same_engine_stands_aside() -> None:
    config = SimpleNamespace()
    state = SimpleNamespace(all_token_ids=torch.zeros(1, 8, dtype=torch.int32))
    first, second = Processor(config, state), Processor(config, state)
    assert first.add_request(0, params(md_alpha=0.2)) is True
    assert second.add_request(0, params(md_alpha=0.2)) is False  # the entry point and logits_processors= both
    assert Processor(SimpleNamespace(), state).add_request(0, params(md_alpha=0.2)) is True  # another engine


def test_validate_params_refuses_sampling_and_bad_keys() -> None:
    assert MomentumDecodingProcessor.validate_params(params(temperature=0.9)) is None  # not asked: not our business
    with pytest.raises(ValueError, match=r"greedy selection rule: set `temperature`=0, got 0\.7"):
        MomentumDecodingProcessor.validate_params(params(temperature=0.7, md_alpha=0.2))
    with pytest.raises(ValueError, match=r"`md_alpha` must be a finite number >= 0"):
        MomentumDecodingProcessor.validate_params(params(md_alpha=-1))


def test_the_package_imports_without_vllm_and_says_what_the_class_needs() -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: tests/adapters/vllm/test_engine.py loads the real class")
    import inertia.adapters.vllm as adapter

    with pytest.raises(ImportError, match=r"needs vLLM \(0\.32 or later"):
        adapter.MomentumDecodingLogitsProcessor  # noqa: B018


def test_the_entry_point_names_the_exported_class() -> None:
    with open(Path(__file__).resolve().parents[3] / "pyproject.toml", "rb") as file:
        entry_points = tomllib.load(file)["project"]["entry-points"]["vllm.logits_processors"]
    assert entry_points == {"momentum_decoding": "inertia.adapters.vllm:MomentumDecodingLogitsProcessor"}
    import inertia.adapters.vllm as adapter

    assert adapter.__all__ == ["MomentumDecodingLogitsProcessor"]
