"""benchmarks.decoding.vllm_step_cost: the vLLM processor's steady-state step through both interfaces, timed next to
the stateless computation."""

import pytest

from benchmarks.decoding import vllm_step_cost
from inertia.adapters.vllm.logits_processor import build_processor_class


def test_quick_run_writes_one_row_per_cell(tmp_path, capsys) -> None:
    assert vllm_step_cost.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "vllm_step_cost.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 4 and text == capsys.readouterr().out


def test_the_three_paths_are_timed_after_the_build() -> None:
    assert all(0 < ms < 1000 for ms in vllm_step_cost.cell_ms(build_processor_class(), 2, 64, 100, steps=3))


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--threads", "0"], ["--batches", "0"]])
def test_bad_arguments_are_named(argv, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        vllm_step_cost.main(argv)
    assert info.value.code == 2 and argv[0].lstrip("-") in capsys.readouterr().err
