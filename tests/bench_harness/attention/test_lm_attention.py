"""`benchmarks.attention.lm_attention`: the paired perplexity statistic, the NLL and cost helpers, the report, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.attention import lm_attention as bench
from tests.adapters.transformers.tiny_lm import tiny_llama


class CharTokenizer:
    """Characters as token ids (mod 64), enough for a tiny random Llama."""

    def __call__(self, text, return_tensors="pt"):
        return {"input_ids": torch.tensor([[ord(c) % 64 for c in text]])}


def test_paired_ratio_and_interval() -> None:
    out = bench.paired([1.0, 2.0, 3.0, 4.0], [1.1, 2.1, 3.0, 4.2])
    assert out["ratio"] == pytest.approx(math.exp(0.1)) and out["worse_articles"] == 3
    assert out["ratio_low"] < out["ratio"] < out["ratio_high"]
    assert out["ppl"] == pytest.approx(math.exp(2.6))


def test_nll_and_cost_on_a_tiny_model() -> None:
    model, tokenizer = tiny_llama(), CharTokenizer()
    nll = bench.article_nll(model, tokenizer, ["hello world, again and again", "another text"], tokens=12)
    assert len(nll) == 2 and all(0 < value < 10 for value in nll)
    cost = bench.decode_cost(model, tokenizer, "some words here", context=20, steps=3)
    assert cost["prefill_s"] > 0 and cost["decode_step_s"] > 0


def test_report_lists_every_setting() -> None:
    results = {
        "articles": 4,
        "tokens": 64,
        "threads": 1,
        "sdpa_ppl": 30.0,
        "context": 1024,
        "grid": [
            {
                "eta": 0.05,
                "scale": 1.0,
                "ppl": 31.0,
                "ratio": 1.033,
                "ratio_low": 1.01,
                "ratio_high": 1.05,
                "worse_articles": 4,
            }
        ],
        "cost": {
            "sdpa": {"decode_step_s": 0.1, "prefill_s": 2.0},
            "momentum": {"decode_step_s": 0.105, "prefill_s": 2.2},
        },
    }
    text = bench.report(results)
    assert "| 0.05 | 1.0 | 31.00 | 1.0330 | 1.0100-1.0500 | 4/4 |" in text
    assert (
        "| decode step, ms (median) | 100.0 | 105.0 | 1.050 |" in text
        and "| prefill, s | 2.00 | 2.20 | 1.100 |" in text
    )


@pytest.mark.parametrize("argv", [["--articles", "1"], ["--tokens", "2"], ["--threads", "0"]])
def test_bad_arguments_exit_before_any_work(argv, monkeypatch) -> None:
    monkeypatch.setattr(bench, "run", lambda args: pytest.fail("ran despite bad arguments"))
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2


def test_calibration_removes_a_label_bias() -> None:
    # The model always prefers label 0 (by 1-3 nats) but ranks the examples right: calibrated, it is right on all
    # four; uncalibrated, on the two of label 0 only.
    logprobs = torch.tensor([[0.0, -3.0], [0.0, -2.5], [0.0, -1.0], [0.0, -1.5]])
    assert [int(p == a) for p, a in zip(logprobs.argmax(-1).tolist(), [0, 0, 1, 1], strict=True)] == [1, 1, 0, 0]
    assert bench.calibrated_correct(logprobs, [0, 0, 1, 1]) == [1, 1, 1, 1]
    out = bench.paired_accuracy([1, 0, 1, 0], [1, 1, 1, 0])
    assert out["accuracy"] == 0.75 and out["diff"] == 0.25 and (out["won"], out["lost"]) == (1, 0)


def test_review_style_hides_the_source_of_a_sentence() -> None:
    assert (
        bench._review_style("Warne said (again) it was fine, mostly.")
        == "warne said ( again ) it was fine , mostly . "
    )
