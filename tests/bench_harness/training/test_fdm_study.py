"""`benchmarks.training.fdm_study`: the steps-to-match statistic, its spread over seeds, the report and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.training import fdm_study


def _log(run: Path, curve: list[tuple[int, float]]) -> None:
    run.mkdir(parents=True)
    lines = [json.dumps({"step": 5, "loss": 1.0})]  # training lines carry no evaluation
    lines += [json.dumps({"step": s, "eval": {"fd_digits": fd, "class_accuracy": 0.9}}) for s, fd in curve]
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")


def test_steps_to_match_over_seeds(tmp_path) -> None:
    vp = [(100, 4.0), (200, 3.0), (300, 2.0), (400, 1.5)]  # smoothed final: mean(3, 2, 1.5) = 2.1667
    _log(fdm_study.run_dir(tmp_path, "vp", 0), vp)
    # smoothed 3, 2.2, 1.867: the single evaluation 1.4 at step 200 is not enough on its own
    _log(fdm_study.run_dir(tmp_path, "fdm", 0), [(100, 3.0), (200, 1.4), (300, 1.2), (400, 1.1)])  # 300/400
    _log(fdm_study.run_dir(tmp_path, "vp", 1), vp)
    _log(fdm_study.run_dir(tmp_path, "fdm", 1), [(100, 3.0), (200, 2.0), (300, 1.8), (400, 1.2)])  # 400/400
    _log(fdm_study.run_dir(tmp_path, "vp", 2), vp)
    _log(fdm_study.run_dir(tmp_path, "fdm", 2), [(100, 5.0), (200, 4.0), (300, 3.0), (400, 2.0)])  # never
    summary = fdm_study.summarise(tmp_path, [0, 1, 2, 3])  # seed 3 has no runs: left out
    assert sorted(summary["seeds"]) == [0, 1, 2]
    assert summary["ratios"] == [0.75, 1.0] and summary["not_reached"] == 1
    assert summary["mean"] == pytest.approx(0.875) and summary["std"] == pytest.approx(0.1767767, rel=1e-6)
    # VP's smoothed FD still fell from 3.0 (step 300) to 2.1667 over the last quarter: 38%, not flat
    assert summary["seeds"][0]["last_quarter_gain"]["vp"] == pytest.approx(0.8333 / 2.1667, rel=1e-3)
    # the same quality for both arms: 2x, 1.25x and 1x VP's final smoothed FD (4.33, 2.71, 2.17)
    speed = summary["seeds"][0]["speed"]
    assert [(speed[f]["vp_step"], speed[f]["fdm_step"]) for f in ("2", "1.25", "1")] == [
        (100, 100),
        (400, 200),
        (400, 300),
    ]
    assert summary["speed"]["1.25"]["mean"] == pytest.approx(0.5)  # seeds 0 and 1 both at 200 of VP's 400
    assert summary["seeds"][2]["speed"]["1"]["ratio"] is None
    text = fdm_study.report(summary)
    assert "| 0 | 100 / 100 (1.00) | 400 / 200 (0.50) | 400 / 300 (0.75) |" in text
    assert "| 2 | 400 | 2.167 | not reached | - |" in text and "mean **0.88x** over 2 seeds" in text
    assert "not reached in 1 seed(s)" in text and "**Not every curve is flat**" in text
    figure = fdm_study.figure(summary, tmp_path / "curves.png")
    assert figure.stat().st_size > 1000


def test_flat_curves_are_reported_flat(tmp_path) -> None:
    curve = [(100 * i, fd) for i, fd in enumerate([9.0, 3.0, 2.0, 2.02, 1.98, 2.0, 2.01, 1.99], start=1)]
    _log(fdm_study.run_dir(tmp_path, "vp", 0), curve)
    _log(fdm_study.run_dir(tmp_path, "fdm", 0), curve)
    summary = fdm_study.summarise(tmp_path, [0])
    assert abs(summary["seeds"][0]["last_quarter_gain"]["fdm"]) < 0.01
    assert "Every curve is flat" in fdm_study.report(summary)


class _FakeProcess:
    """Stands in for a training subprocess that finishes at once with ``returncode``."""

    def __init__(self, command: list[str], env: dict[str, str] | None, returncode: int = 0) -> None:
        self.command, self.env, self.returncode = command, env, returncode

    def poll(self) -> int:
        return self.returncode

    def terminate(self) -> None:
        pass


def test_train_commands_differ_only_in_the_preconditioning(tmp_path, monkeypatch) -> None:
    parser_args = ["train", "--root", str(tmp_path), "--max-steps", "10", "--eval-every", "5"]
    seen: list[_FakeProcess] = []
    monkeypatch.setattr(fdm_study.subprocess, "Popen", lambda c, env: seen.append(_FakeProcess(c, env)) or seen[-1])
    assert fdm_study.main([*parser_args, "--seeds", "4"]) == 0
    vp, fdm = (p.command for p in seen)
    assert [a for a in vp if a not in fdm] == ["vp", str(tmp_path / "vp-seed4")]
    assert "--resume" in vp and vp[vp.index("--resume") + 1] == "latest" and "--cpu" in vp
    assert seen[0].env is None  # one at a time: the machine's thread settings are kept
    seen.clear()
    assert fdm_study.main([*parser_args, "--seeds", "4", "5", "--jobs", "2"]) == 0
    assert len(seen) == 4 and all(p.env is not None and p.env["OMP_NUM_THREADS"] == "1" for p in seen)


def test_a_failed_training_stops_the_study(tmp_path, monkeypatch) -> None:
    seen: list[_FakeProcess] = []
    monkeypatch.setattr(fdm_study.subprocess, "Popen", lambda c, env: seen.append(_FakeProcess(c, env, 3)) or seen[-1])
    assert fdm_study.main(["train", "--root", str(tmp_path), "--seeds", "0", "1"]) == 3
    assert len(seen) == 1


@pytest.mark.parametrize(
    "argv", [["train", "--eval-every", "0"], ["train", "--jobs", "0"], ["report", "--seeds", "-1"]]
)
def test_bad_arguments_exit_2(argv) -> None:
    with pytest.raises(SystemExit) as info:
        fdm_study.main(argv)
    assert info.value.code == 2


def test_report_without_runs_fails(tmp_path, capsys) -> None:
    assert fdm_study.main(["report", "--root", str(tmp_path)]) == 1
    assert "no finished pair of runs" in capsys.readouterr().err
