"""Our processor on vLLM 0.34's real model-runner V2 interface, read from vLLM's wheel (interface_034.py): the base
class, its abstract and overridable methods and their signatures, and the request-state and context dataclasses
our processor reads, driven through recycled slots, mixed settings and speculative rows."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest
import torch

from inertia.adapters.vllm.logits_processor import build_processor_class
from tests.adapters.vllm import interface_034
from tests.adapters.vllm.fake_runners import FakeRunnerV2, Step, expected_row

interface = interface_034.load()
pytestmark = pytest.mark.skipif(
    interface is None, reason=f"vLLM 0.34's interface file is missing: run `{interface_034.FETCH}`"
)


@pytest.fixture(scope="module")
def vllm() -> ModuleType:
    assert interface is not None
    return interface


@pytest.fixture(scope="module")
def processor_cls(vllm: ModuleType) -> type:
    return build_processor_class(vllm.LogitsProcessor)


def test_the_class_is_a_concrete_v2_logits_processor(vllm: ModuleType, processor_cls: type) -> None:
    assert issubclass(processor_cls, vllm.LogitsProcessor)
    assert vllm.LogitsProcessor.__abstractmethods__ == frozenset({"apply"})  # what vLLM requires of us
    assert not inspect.isabstract(processor_cls)
    assert isinstance(inspect.getattr_static(processor_cls, "validate_params"), classmethod)


@pytest.mark.parametrize("method", ["__init__", "validate_params", "add_request", "apply_staged_writes", "apply"])
def test_every_method_vllm_calls_takes_vllms_arguments(vllm: ModuleType, processor_cls: type, method: str) -> None:
    theirs = inspect.signature(getattr(vllm.LogitsProcessor, method))
    ours = inspect.signature(getattr(processor_cls, method))
    names = [p.name for p in theirs.parameters.values()]
    ours.bind(*names)  # vLLM passes them positionally ...
    ours.bind(**{name: name for name in names})  # ... and they keep vLLM's names


def test_the_fields_we_read_are_vllms(vllm: ModuleType) -> None:
    state_fields = set(vllm.LogitsProcRequestState.__dataclass_fields__)
    context_fields = set(vllm.LogitsContext.__dataclass_fields__)
    assert {"all_token_ids", "prompt_len", "total_len"} <= state_fields
    assert {"expanded_idx_mapping", "expanded_local_pos", "pos", "input_ids", "idx_mapping_np"} <= context_fields


def _runner(vllm: ModuleType, processor_cls: type, seed: int) -> FakeRunnerV2:
    # the dataclasses are frozen and keyword-built: a field vLLM adds or drops fails here
    return FakeRunnerV2(
        processor_cls, slots=3, max_len=2500, seed=seed, state=vllm.LogitsProcRequestState, context=vllm.LogitsContext
    )


def _check(steps: list[Step]) -> None:
    for step in steps:
        assert torch.equal(step.after, expected_row(step.history, step.before, step.extra)), step.request


def test_recycled_slots_mixed_settings_and_long_histories(vllm: ModuleType, processor_cls: type) -> None:
    runner = _runner(vllm, processor_cls, seed=11)
    generator = torch.Generator().manual_seed(11)

    def prompt(length: int) -> list[int]:
        return torch.randint(0, 6, (length,), generator=generator).tolist()

    runner.add("long", prompt(2000), md_alpha=0.2, md_top_k=5)
    runner.add("plain", prompt(50))
    runner.add("other", prompt(300), md_alpha=0.6, md_top_k=2, md_resistance="linear")
    walk = torch.Generator().manual_seed(1)
    for step in range(40):
        _check(runner.step(lambda request, row: int(torch.randint(0, 6, (1,), generator=walk))))
        if step == 15:  # "other" finishes; its slot goes to a request without momentum decoding, then to one with
            slot = runner.live["other"].slot
            runner.finish("other")
            assert runner.add("plain 2", prompt(20)) == slot
        if step == 25:
            slot = runner.live["plain 2"].slot
            runner.finish("plain 2")
            assert runner.add("again", prompt(10), md_alpha=0.3) == slot


def test_speculative_rows(vllm: ModuleType, processor_cls: type) -> None:
    runner = _runner(vllm, processor_cls, seed=12)
    runner.add("a", [1, 2, 1, 2, 1], md_alpha=0.2)
    runner.add("b", [3, 4, 3], md_alpha=0.4, md_top_k=3)
    generator = torch.Generator().manual_seed(12)
    for _ in range(10):
        drafts = {name: torch.randint(0, 5, (2,), generator=generator).tolist() for name in ("a", "b")}
        _check(runner.step(lambda request, row: int(row.argmax()), drafts))


def test_the_momentum_penalty_next_to_momentum_decoding(vllm: ModuleType, processor_cls: type) -> None:
    runner = _runner(vllm, processor_cls, seed=13)
    generator = torch.Generator().manual_seed(13)
    runner.add("penalty", torch.randint(0, 6, (1500,), generator=generator).tolist(), mp_alpha=0.3)
    runner.add("md", [1, 2, 1, 2, 1], md_alpha=0.2)
    runner.add("blocked", [4, 5, 4, 5], mp_alpha=0.2, mp_resistance="ngram_block")
    for step in range(20):
        drafts = {name: torch.randint(0, 6, (2,), generator=generator).tolist() for name in runner.live}
        _check(
            runner.step(lambda request, row: int(torch.multinomial(row.softmax(-1), 1, generator=generator)), drafts)
        )
        if step == 8:  # the penalty's slot goes to a request without it
            slot = runner.live["penalty"].slot
            runner.finish("penalty")
            assert runner.add("plain", [3, 3, 3]) == slot
