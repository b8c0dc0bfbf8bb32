"""`benchmarks.gpu.train_digits`: the step count that fits the budget, the timing, bad input, and the whole path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gpu import train_digits as gtd


def test_fitted_steps_fills_the_budget_and_respects_the_cap() -> None:
    assert gtd.fitted_steps(400, 0.02, 300.0, 60000) == 400 + int(0.9 * 300 / 0.02)  # 13,900
    assert gtd.fitted_steps(400, 0.02, 300.0, 5000) == 5000
    assert gtd.fitted_steps(400, 0.02, -5.0, 60000) == 400  # no time left: stop where calibration stopped
    with pytest.raises(ValueError, match="seconds_per_step"):
        gtd.fitted_steps(400, 0.0, 300.0, 60000)


def test_seconds_per_step_is_the_median_after_the_first_steps(tmp_path) -> None:
    rows = [{"step": 10, "loss": 1.0, "wall_time_s": 5.0}]  # before first_step: a compile cost, skipped
    rows += [{"step": 10 * k, "loss": 1.0, "wall_time_s": 5.0 + 0.1 * k} for k in range(2, 7)]  # 0.01 s/step
    for row in rows[3:]:
        row["wall_time_s"] += 2.0  # one slow log interval (steps 20-30): the median ignores it
    rows.append({"step": 60, "eval": {"fd_digits": 1.0}})  # not a training line
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert gtd._seconds_per_step(log, first_step=20) == pytest.approx(0.01)
    with pytest.raises(RuntimeError, match="calibration-steps"):
        gtd._seconds_per_step(log, first_step=1000)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--minutes", "0"], "--minutes must be in"),
        (["--batch-size", "0"], "--batch-size must be in"),
        (["--images", "105"], "--images must be a multiple of 10"),
        (["--model-size", "huge"], "--model-size must be one of"),
        (["--decay-fraction", "1.5"], "--decay-fraction must be in"),
        (["--max-steps", "100"], "--max-steps must be in"),
        (["--ema-halflife-kimg", "0"], "--ema-halflife-kimg must be in"),
        (["--seed", "-1"], "--seed must be in"),
        (["--score-seconds", "-5"], "--score-seconds must be in"),
    ],
)
def test_bad_input_is_named_before_any_work(argv, message, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(gtd, "run", lambda args: pytest.fail("work started"))
    with pytest.raises(SystemExit, match=message):
        gtd.main([*argv, "--out", str(tmp_path)])


def test_quick_run_writes_a_loadable_pipeline_and_the_report(tmp_path) -> None:
    from inertia.pipelines import load_image_pipeline

    assert gtd.main(["--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_train_report.json").read_text())
    assert report["steps"] == 40 and 20 <= report["lr_decay_from"] < 40
    assert report["headline"]["images"] == 50 and report["fd_ratio"] == pytest.approx(
        report["headline"]["fd_digits"] / report["real_halves_fd"]
    )
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) <= 8 and all(len(Path(f).parts) <= 3 for f in files)  # what the device tool brings back
    pipe = load_image_pipeline(tmp_path / "pipeline", device="cpu")
    assert pipe.unet.config.sample_size == 32
    assert "| DPM++2M, 20 steps, w 3 | 50 |" in (tmp_path / "gpu_train_report.md").read_text()
