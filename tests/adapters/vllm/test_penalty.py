"""The momentum penalty (``mp_*`` keys) in the vLLM processor, driven as vLLM's model runners drive it
(tests/adapters/vllm/fake_runners.py), without vLLM: at every step each row that asked for the penalty equals the
core's stateless ``apply_momentum_penalty`` on that request's whole history, bit for bit; rows of momentum decoding
equal the stateless selection scores; every other row is untouched. Over long random histories with repeats,
recycled slots, moved and swapped rows, speculative rows and the placeholder token of asynchronous scheduling."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import pytest
import torch

from inertia.adapters.vllm.logits_processor import MomentumDecodingProcessor, build_processor_class
from inertia.adapters.vllm.settings import PENALTY_KEYS, PenaltySettings, check_request, penalty_settings_of
from inertia.core.decoding.momentum_penalty import apply_momentum_penalty, momentum_penalty_table
from inertia.core.decoding.penalty_index import MomentumPenaltyRow
from tests.adapters.vllm.fake_runners import Direction, FakeRunnerV1, FakeRunnerV2, Step, expected_row, params

Processor = build_processor_class()

PENALTIES = [
    {"mp_alpha": 0.2},
    {"mp_alpha": 0.7, "mp_resistance": "linear"},
    {"mp_alpha": 0.5, "mp_resistance": [0, 1, 3], "mp_max_ngram": 8},  # levels 3..8 cost +inf
    {"mp_alpha": 0.3, "mp_resistance": "ngram_block"},  # infinite resistance: a row keeps its top token
]
MIXED = [*PENALTIES, {"md_alpha": 0.2, "md_top_k": 5}, {}]


def random_walk(seed: int, alphabet: int = 6):
    """The committed token: random from a few ids (loops of every length), whatever the scores say."""
    generator = torch.Generator().manual_seed(seed)
    return lambda request, row: int(torch.randint(0, alphabet, (1,), generator=generator))


def sample(seed: int):
    """The committed token: drawn from the processed row, as sampling at temperature 1 does."""
    generator = torch.Generator().manual_seed(seed)
    return lambda request, row: int(torch.multinomial(torch.softmax(row, -1), 1, generator=generator))


def check(steps: list[Step]) -> None:
    for step in steps:
        expected = expected_row(step.history, step.before, step.extra)
        assert torch.equal(step.after, expected), (step.request, len(step.history), step.extra)
        if not step.extra:
            assert torch.equal(step.after, step.before)


@pytest.mark.parametrize("seed", range(2))
def test_v2_long_random_histories_equal_the_stateless_penalty_at_every_step(seed: int) -> None:
    runner = FakeRunnerV2(Processor, slots=len(MIXED), max_len=3000, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    for i, extra in enumerate(MIXED):
        runner.add(f"r{i}", torch.randint(0, 6, (1500 + 100 * i,), generator=generator).tolist(), **extra)
    walk = random_walk(seed)
    for _ in range(50):
        check(runner.step(walk))
    states = [r.index for r in runner.processor._requests.values() if isinstance(r.index, MomentumPenaltyRow)]
    assert len(states) == len(PENALTIES) and all(state.length >= 1500 for state in states)  # extended, not rebuilt


def test_v2_sampled_walks_over_a_larger_vocabulary() -> None:
    runner = FakeRunnerV2(Processor, slots=3, max_len=600, vocab=300, seed=7)
    runner.add("a", [5, 6, 7, 5, 6, 7, 5, 6], **PENALTIES[0])
    runner.add("b", list(range(3, 40)) * 3, **PENALTIES[3])
    runner.add("c", [9, 9, 9], **PENALTIES[1])
    draw = sample(7)
    for _ in range(120):
        check(runner.step(draw))


def test_v2_a_recycled_slot_starts_clean() -> None:
    runner = FakeRunnerV2(Processor, slots=2, max_len=400, seed=5)
    runner.add("a", [1, 2, 3, 1, 2, 3, 1, 2], **PENALTIES[0])
    runner.add("b", [4, 4, 4, 4], **PENALTIES[1])
    walk = random_walk(5)
    for _ in range(20):
        check(runner.step(walk))
    slot = runner.live["a"].slot
    runner.finish("a")
    # the slot's next occupants: the same tokens with another penalty, momentum decoding, nothing, then a penalty
    for name, extra in (("c", PENALTIES[2]), ("d", MIXED[4]), ("e", {}), ("f", PENALTIES[0])):
        assert runner.add(name, [1, 2, 3], **extra) == slot
        for _ in range(12):
            check(runner.step(walk))
        if name == "e":
            assert slot not in runner.processor._requests  # nothing of "d" was left behind
        runner.finish(name)


def test_v2_speculative_rows_are_penalised_on_the_drafts_before_them() -> None:
    runner = FakeRunnerV2(Processor, slots=3, seed=4)
    runner.add("a", [1, 2, 3, 1, 2], **PENALTIES[0])
    runner.add("b", [3, 3, 3], **PENALTIES[3])
    runner.add("c", [2, 1, 2], **MIXED[4])
    generator = torch.Generator().manual_seed(4)
    for _ in range(12):
        drafts = {name: torch.randint(0, 4, (3,), generator=generator).tolist() for name in ("a", "b", "c")}
        steps = runner.step(random_walk(4), drafts)
        assert len(steps) == 12  # 1 + 3 rows per request
        check(steps)


def test_v1_persistent_batch_with_removals_moves_and_swaps() -> None:
    runner = FakeRunnerV1(Processor, seed=3)
    generator = torch.Generator().manual_seed(3)
    walk = random_walk(3)

    def prompt() -> list[int]:
        return torch.randint(
            0, 6, (int(torch.randint(1, 600, (1,), generator=generator)),), generator=generator
        ).tolist()

    for i in range(5):
        runner.add(f"r{i}", prompt(), **MIXED[i % len(MIXED)])
    for step in range(80):
        check(runner.step(walk))
        if step % 9 == 4:  # two finish: one row goes to a new request, the last row moves into the other
            live = [r for r in runner.rows if r is not None]
            runner.finish(live[step % len(live)])
            runner.finish(live[(step + 1) % len(live)])
            runner.add(f"n{step}", prompt(), **MIXED[step % len(MIXED)])
        if step % 9 == 6:
            runner.add(f"m{step}", prompt(), **MIXED[(step + 1) % len(MIXED)])
        if step % 7 == 3 and len(runner.rows) > 2:
            runner.swap(0, len(runner.rows) - 1)
    assert {direction for *_, direction in (move for moves in runner.moves_seen for move in moves)} == {
        Direction.UNIDIRECTIONAL,
        Direction.SWAP,
    }


def test_v1_a_placeholder_token_is_fed_once_vllm_fills_it(caplog: pytest.LogCaptureFixture) -> None:
    processor = Processor(SimpleNamespace(), torch.device("cpu"), False)
    output: list[int] = []
    added = [(0, params(mp_alpha=0.5), [1, 2, 3], output)]
    processor.update_state(SimpleNamespace(removed=[], added=added, moved=[]))
    output += [1, -1]  # vLLM's V1 runner under asynchronous scheduling: the last token is not there yet
    with caplog.at_level(logging.WARNING):
        processor.apply(torch.randn(1, 10))
    assert "asynchronous scheduling" in caplog.text
    assert processor._requests[0].index.length == 4
    output[-1] = 2
    logits = torch.randn(1, 10)
    after = processor.apply(logits.clone())
    assert torch.equal(after[0], expected_row([1, 2, 3, 1, 2], logits[0], {"mp_alpha": 0.5}))


@pytest.mark.parametrize("extra", [{"mp_alpha": 0}, {"mp_alpha": 0.0, "mp_resistance": "ngram_block"}])
def test_alpha_zero_leaves_the_logits_bit_for_bit_and_keeps_no_state(extra: dict[str, object]) -> None:
    runner = FakeRunnerV2(Processor, slots=2, seed=2)
    runner.add("zero", [5, 6, 5, 6, 5], **extra)
    runner.add("on", [5, 6, 5, 6, 5], mp_alpha=0.2)
    for _ in range(10):
        steps = {step.request: step for step in runner.step(sample(2))}
        assert torch.equal(steps["zero"].after, steps["zero"].before)
        assert not torch.equal(steps["on"].after, steps["on"].before)
    assert list(runner.processor._requests) == [runner.live["on"].slot]
    v1 = Processor(SimpleNamespace(), torch.device("cpu"), False)
    v1.update_state(SimpleNamespace(removed=[], added=[(0, params(**extra), [5, 6, 5], [])], moved=[]))
    assert not v1._requests


def test_a_penalty_row_of_a_half_precision_batch_equals_the_stateless_core() -> None:
    runner = FakeRunnerV2(Processor, slots=2, seed=9)
    runner.add("a", [1, 2, 1, 2, 1, 2, 1], **PENALTIES[1])
    runner.add("b", [3, 4, 3], **PENALTIES[3])
    for _ in range(3):  # the states see the tokens; then one bfloat16 batch
        runner.step(random_walk(9))
    ctx_rows = sorted(runner.live.values(), key=lambda live: live.slot)
    histories = [runner.tokens[live.slot, : int(runner.total[live.slot])] for live in ctx_rows]
    logits = (torch.randn(2, 40, generator=torch.Generator().manual_seed(9)) * 3).to(torch.bfloat16)
    ctx = SimpleNamespace(
        idx_mapping_np=[live.slot for live in ctx_rows],
        expanded_idx_mapping=torch.tensor([live.slot for live in ctx_rows]),
        expanded_local_pos=torch.zeros(2, dtype=torch.long),
        pos=torch.tensor([len(history) - 1 for history in histories]),
        input_ids=torch.tensor([int(history[-1]) for history in histories]),
    )
    after = runner.processor.apply(logits.clone(), ctx)
    for i, (live, history) in enumerate(zip(ctx_rows, histories, strict=True)):
        expected = apply_momentum_penalty(
            history.long()[None], logits[i : i + 1], penalty_settings_of(live.extra).penalties
        )
        assert after.dtype == torch.bfloat16 and torch.equal(after[i], expected[0])


# ------------------------------------------------------------------------------------------------ request keys


def test_defaults_and_values_are_those_of_the_core() -> None:
    settings = penalty_settings_of({"mp_alpha": 0.2})
    assert settings == PenaltySettings(0.2, (0.0, 1.0, 3.0, 4.0, 5.0, 5.0))
    assert settings is not None and settings.penalties == momentum_penalty_table()
    assert penalty_settings_of({"mp_resistance": "linear"}).penalties == momentum_penalty_table(0.2, "linear")  # type: ignore[union-attr]
    long = penalty_settings_of({"mp_alpha": 1, "mp_resistance": [0, 1, 2], "mp_max_ngram": 4})
    assert long is not None and long.penalties == momentum_penalty_table(1, [0, 1, 2], 4)
    assert long.penalties == (0.0, 1.0, 2.0, math.inf, math.inf) and long.max_ngram == 4
    zero = penalty_settings_of({"mp_alpha": 0, "mp_resistance": "ngram_block"})
    assert zero is not None and zero.neutral and not long.neutral
    assert penalty_settings_of({"md_alpha": 0.2}) is None and penalty_settings_of(None) is None


@pytest.mark.parametrize(
    ("key", "value", "core_kwargs"),
    [
        ("mp_alpha", -0.1, {"alpha": -0.1}),
        ("mp_alpha", math.nan, {"alpha": math.nan}),
        ("mp_alpha", math.inf, {"alpha": math.inf}),
        ("mp_alpha", "0.2", {"alpha": "0.2"}),
        ("mp_alpha", True, {"alpha": True}),
        ("mp_resistance", "steep", {"resistance": "steep"}),
        ("mp_resistance", [0], {"resistance": [0]}),
        ("mp_resistance", [0, -1], {"resistance": [0, -1]}),
        ("mp_resistance", [math.inf, 1], {"resistance": [math.inf, 1]}),
        ("mp_resistance", 3, {"resistance": 3}),
        ("mp_max_ngram", 0, {"max_ngram": 0}),
        ("mp_max_ngram", 33, {"max_ngram": 33}),
        ("mp_max_ngram", 2.5, {"max_ngram": 2.5}),
        ("mp_max_ngram", 2, {"max_ngram": 2}),  # below the default table's N = 5
    ],
)
def test_bad_values_raise_the_cores_errors_named_by_key(
    key: str, value: object, core_kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError) as ours:
        check_request(params(**{key: value}))
    with pytest.raises(ValueError) as theirs:
        momentum_penalty_table(**core_kwargs)  # type: ignore[arg-type]
    name = next(iter(core_kwargs))
    assert str(ours.value) == str(theirs.value).replace(f"`{name}`", f"`{key}`")
    assert f"`{key}`" in str(ours.value)


def test_an_unknown_mp_key_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown momentum-penalty key\(s\) 'mp_top_k' in `extra_args`") as error:
        check_request(params(mp_alpha=0.2, mp_top_k=5))
    assert all(key in str(error.value) for key in PENALTY_KEYS)


def test_momentum_decoding_and_the_penalty_in_one_request_are_refused() -> None:
    with pytest.raises(ValueError, match=r"asks for momentum decoding .*'md_alpha'.* and for the momentum penalty"):
        MomentumDecodingProcessor.validate_params(params(md_alpha=0.2, mp_alpha=0.2))
    with pytest.raises(ValueError, match=r"'mp_typo'"):  # refused for asking both, before any key is read
        MomentumDecodingProcessor.validate_params(params(temperature=0.0, md_top_k=3, mp_typo=1))


@pytest.mark.parametrize("temperature", [0.0, 1e-5, 0.8, 1.5])
def test_the_penalty_goes_with_any_temperature(temperature: float) -> None:
    request = SimpleNamespace(temperature=temperature, extra_args={"mp_alpha": 0.4})
    assert MomentumDecodingProcessor.validate_params(request) == PenaltySettings(0.4, (0.0, 1.0, 3.0, 4.0, 5.0, 5.0))
    processor = Processor(SimpleNamespace(), SimpleNamespace(all_token_ids=torch.zeros(1, 8, dtype=torch.int32)))
    assert processor.add_request(0, request) is True
