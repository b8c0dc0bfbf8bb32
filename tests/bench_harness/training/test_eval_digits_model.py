"""`benchmarks.training.eval_digits_model`: scoring a saved digits pipeline and comparing training curves."""

import json
from pathlib import Path

import torch
from diffusers import DPMSolverMultistepScheduler

from benchmarks.training import eval_digits_model
from inertia.models.preconditioned_unet import PreconditionedUNet
from inertia.pipelines.digits import DigitsPipeline


def test_score_reports_every_target_metric(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pipe = DigitsPipeline(unet=PreconditionedUNet.tiny(), scheduler=DPMSolverMultistepScheduler())
    pipe.save_pretrained(tmp_path)
    result = eval_digits_model.score(tmp_path, images_per_digit=2, steps=3)
    assert result["images"] == 20
    assert 0.0 <= result["class_accuracy"] <= 1.0
    assert result["fd_digits"] > 0 and result["images_per_s_batch16_20steps"] > 0
    assert {"colour/mean_saturation", "colour/clipped_fraction"} <= set(result)


def test_curves_and_steps_to_match(tmp_path: Path) -> None:
    for name, fds in {"vp": [3.0, 2.0, 1.0], "fdm": [2.5, 1.0, 0.5]}.items():
        run = tmp_path / name
        run.mkdir()
        lines = [{"step": 10 * (i + 1), "loss": 0.1} for i in range(3)]
        lines += [{"step": 10 * (i + 1), "eval": {"fd_digits": fd, "class_accuracy": 0.9}} for i, fd in enumerate(fds)]
        (run / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    table = eval_digits_model.curves([tmp_path / "vp", tmp_path / "fdm"])
    assert "| 20 | 2.000 | 0.900 | 1.000 | 0.900 |" in table
    assert "at step 20: 0.67x" in table
