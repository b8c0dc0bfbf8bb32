"""benchmarks.decoding.step_cost: both paths are timed on the same steady-state steps and the table says which wins."""

import pytest

from benchmarks.decoding import step_cost


def test_quick_run_writes_one_row_per_cell(tmp_path, capsys) -> None:
    assert step_cost.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "step_cost.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 4 and text == capsys.readouterr().out


def test_a_step_is_timed_after_the_build() -> None:
    assert 0 < step_cost.step_seconds(True, batch=1, history=64, vocab=100, steps=2) < 1


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--threads", "0"], ["--histories", "0"]])
def test_bad_arguments_are_named(argv, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        step_cost.main(argv)
    assert info.value.code == 2 and argv[0].lstrip("-") in capsys.readouterr().err
