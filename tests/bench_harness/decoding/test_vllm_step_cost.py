"""benchmarks.decoding.vllm_step_cost: the vLLM processor's steady-state step through both interfaces, timed next to
the stateless computation, for momentum decoding and the momentum penalty."""

import pytest

from benchmarks.decoding import vllm_step_cost
from inertia.adapters.vllm.logits_processor import build_processor_class


def test_quick_run_writes_one_row_per_cell(tmp_path, capsys) -> None:
    assert vllm_step_cost.main(["--quick", "--memory", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "vllm_step_cost.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 10 and text == capsys.readouterr().out  # 2 batches x 2 histories per method; 2 of memory
    assert "momentum decoding (`md_alpha` 0.2" in text and "momentum penalty (`mp_alpha` 0.2)" in text
    assert "| history tokens | md MiB | mp MiB |" in text


@pytest.mark.parametrize("method", ["md", "mp"])
def test_the_three_paths_are_timed_after_the_build(method: str) -> None:
    cls = build_processor_class()
    assert all(0 < ms < 1000 for ms in vllm_step_cost.cell_ms(cls, 2, 64, 100, steps=3, method=method))


def test_the_penalty_paths_penalise_their_rows() -> None:
    processor_rows = []

    class Recording(build_processor_class()):  # type: ignore[misc]
        def apply(self, logits, ctx=None):
            before = logits.clone()
            after = super().apply(logits, ctx)
            processor_rows.append(not bool((after == before).all()))
            return after

    for path in (vllm_step_cost.v2_path, vllm_step_cost.v1_path):
        step = path(Recording, 2, 64, 100, extra=vllm_step_cost.METHODS["mp"])
        step()
        step()
    assert processor_rows == [True] * 4


def test_the_memory_of_a_state_grows_with_its_history() -> None:
    cls = build_processor_class()
    for method in ("md", "mp"):
        small, large = (vllm_step_cost.state_mib(cls, method, history, 100) for history in (200, 4000))
        assert 0 < small < large < 50


@pytest.mark.parametrize(
    "argv", [["--steps", "0"], ["--threads", "0"], ["--batches", "0"], ["--methods", "md,penalty"]]
)
def test_bad_arguments_are_named(argv, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        vllm_step_cost.main(argv)
    assert info.value.code == 2 and argv[0].lstrip("-") in capsys.readouterr().err
