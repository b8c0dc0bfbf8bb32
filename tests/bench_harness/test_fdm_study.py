"""`benchmarks.fdm_study`: the steps-to-match statistic, its spread over seeds, the report and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import fdm_study


def _log(run: Path, curve: list[tuple[int, float]]) -> None:
    run.mkdir(parents=True)
    lines = [json.dumps({"step": 5, "loss": 1.0})]  # training lines carry no evaluation
    lines += [json.dumps({"step": s, "eval": {"fd_digits": fd, "class_accuracy": 0.9}}) for s, fd in curve]
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")


def test_steps_to_match_over_seeds(tmp_path) -> None:
    vp = [(100, 4.0), (200, 3.0), (300, 2.0), (400, 1.5)]
    _log(fdm_study.run_dir(tmp_path, "vp", 0), vp)
    _log(fdm_study.run_dir(tmp_path, "fdm", 0), [(100, 3.0), (200, 1.4), (300, 1.2), (400, 1.1)])  # 200/400
    _log(fdm_study.run_dir(tmp_path, "vp", 1), vp)
    _log(fdm_study.run_dir(tmp_path, "fdm", 1), [(100, 3.0), (200, 2.0), (300, 1.5), (400, 1.2)])  # 300/400
    _log(fdm_study.run_dir(tmp_path, "vp", 2), vp)
    _log(fdm_study.run_dir(tmp_path, "fdm", 2), [(100, 5.0), (200, 4.0), (300, 3.0), (400, 2.0)])  # never
    summary = fdm_study.summarise(tmp_path, [0, 1, 2, 3])  # seed 3 has no runs: left out
    assert sorted(summary["seeds"]) == [0, 1, 2]
    assert summary["ratios"] == [0.5, 0.75] and summary["not_reached"] == 1
    assert summary["mean"] == pytest.approx(0.625) and summary["std"] == pytest.approx(0.1767767, rel=1e-6)
    text = fdm_study.report(summary)
    assert "| 2 | 400 | 1.500 | not reached | - |" in text and "mean **0.62x** over 2 seeds" in text
    assert "not reached in 1 seed(s)" in text
    figure = fdm_study.figure(summary, tmp_path / "curves.png")
    assert figure.stat().st_size > 1000


def test_train_commands_differ_only_in_the_preconditioning(tmp_path) -> None:
    parser_args = ["train", "--root", str(tmp_path), "--max-steps", "10", "--eval-every", "5"]
    seen = []
    original = fdm_study.subprocess.run
    fdm_study.subprocess.run = lambda command, check: seen.append(command)  # type: ignore[assignment]
    try:
        assert fdm_study.main([*parser_args, "--seeds", "4"]) == 0
    finally:
        fdm_study.subprocess.run = original  # type: ignore[assignment]
    vp, fdm = seen
    assert [a for a in vp if a not in fdm] == ["vp", str(tmp_path / "vp-seed4")]
    assert "--resume" in vp and vp[vp.index("--resume") + 1] == "latest" and "--cpu" in vp


@pytest.mark.parametrize("argv", [["train", "--eval-every", "0"], ["report", "--seeds", "-1"]])
def test_bad_arguments_exit_2(argv) -> None:
    with pytest.raises(SystemExit) as info:
        fdm_study.main(argv)
    assert info.value.code == 2


def test_report_without_runs_fails(tmp_path, capsys) -> None:
    assert fdm_study.main(["report", "--root", str(tmp_path)]) == 1
    assert "no finished pair of runs" in capsys.readouterr().err
