"""`benchmarks.training.lm_finetune`: the comparison report and figure from a run's results, and bad arguments."""

from __future__ import annotations

import pytest

from benchmarks.training import lm_finetune as bench


def _arm(ppl: float, gates) -> dict:
    return {
        "eval_ppl": ppl,
        "steps_done": 10,
        "gates": gates,
        "log": [{"step": 0, "eval_nll": 3.5}, {"step": 5, "loss": 3.4}, {"step": 10, "eval_nll": 3.3}],
    }


RESULTS = {
    "settings": {"steps": 10, "batch_size": 2, "seq_len": 64, "seed": 0, "eval_articles": 5},
    "arms": {
        "control": _arm(27.1, None),
        "momentum": _arm(26.9, {"scale_mean_abs": 0.01, "scale_max_abs": 0.05, "eta_min": 0.04, "eta_max": 0.06}),
    },
    "perplexity": {"ratio": 0.9926, "ratio_low": 0.98, "ratio_high": 1.005, "worse_articles": 2, "ppl": 26.9},
    "fewshot": {
        "sentiment": {
            "control": 0.7,
            "accuracy": 0.72,
            "diff": 0.02,
            "diff_low": -0.03,
            "diff_high": 0.07,
            "won": 5,
            "lost": 3,
        },
    },
}


def test_report_and_figure(tmp_path) -> None:
    text = bench.report(RESULTS)
    assert "| control (plain attention) | 27.100 | 10 |" in text and "| momentum attention | 26.900 | 10 |" in text
    assert "Ratio momentum / control: 0.9926 (95% interval 0.9800-1.0050" in text and "mean |λ_h| 0.0100" in text
    assert "| sentiment | 0.700 | 0.720 | +0.020 | -0.030 to +0.070 | 5 / 3 |" in text
    assert bench.figure(RESULTS, tmp_path / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--seq-len", "4"], ["--eval-articles", "500"]])
def test_bad_arguments_exit_before_any_work(argv, monkeypatch) -> None:
    monkeypatch.setattr(bench, "run", lambda args: pytest.fail("ran despite bad arguments"))
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
