"""``python -m benchmarks.decoding.momentum_decoding``: the target logic, the report, and a --quick run."""

from __future__ import annotations

import json

import pytest

from benchmarks.decoding import momentum_decoding
from tests.adapters.transformers.smollm2 import shared_smollm2


def _summary(momentum: dict, speed_ratio: float) -> dict:
    quality = {
        "greedy": {"rep-4": 40.0, "diversity": 0.3, "coherence": 0.5},
        "contrastive (0.6, 5)": {"rep-4": 5.0, "diversity": 0.9, "coherence": 0.45},
        "momentum (0.2, 5)": momentum,
    }
    block = {"ratio_of_medians": {"momentum/greedy": speed_ratio, "momentum/contrastive": speed_ratio / 0.3}}
    return {"quality": quality, "speed": {"batch 1": block, "batch 8": block}}


def test_targets_pass_and_fail_at_their_thresholds() -> None:
    good = momentum_decoding.evaluate_targets(_summary({"rep-4": 10.0, "diversity": 0.9, "coherence": 0.45}, 0.9))
    assert len(good) == 7 and all(t["met"] for t in good)
    bad = momentum_decoding.evaluate_targets(_summary({"rep-4": 10.01, "diversity": 0.89, "coherence": 0.449}, 0.89))
    assert not any(t["met"] for t in bad)


@pytest.mark.xdist_group("smollm2")
def test_quick_run_writes_every_output(tmp_path, capsys) -> None:
    assert momentum_decoding.main(["--quick", "--out", str(tmp_path)], loader=shared_smollm2) == 0
    summary = json.loads((tmp_path / "decoding_quick.json").read_text())
    assert list(summary["quality"]) == list(momentum_decoding.METHODS)
    for stats in summary["quality"].values():
        assert set(stats) == {"rep-2", "rep-3", "rep-4", "diversity", "coherence", "loops"}
        assert -1.0 <= stats["coherence"] <= 1.0
    assert set(summary["speed"]) == {"batch 1", "batch 2"}
    assert summary["speed"]["batch 1"]["median_tokens_per_s"]["momentum (0.2, 5)"] > 0
    assert [t["target"] for t in summary["targets"]][:3] == [
        "rep-4 <= 0.25x greedy's",
        "coherence >= 0.9x greedy's",
        "diversity >= contrastive search's",
    ]
    assert summary["environment"]["torch_threads"] == 1
    samples = [json.loads(line) for line in (tmp_path / "decoding_quick_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and all(set(momentum_decoding.METHODS) <= set(s) for s in samples)
    report = (tmp_path / "decoding_quick.md").read_text()
    assert "| momentum (0.2, 5) |" in report and "## Targets" in report and "## Examples" in report
    assert "## Targets" in capsys.readouterr().out


@pytest.mark.xdist_group("smollm2")
def test_forward_costs() -> None:
    model, tokenizer = shared_smollm2()
    costs = momentum_decoding.forward_costs(model, tokenizer, context=24, queries=(1, 3), repeats=2)
    assert list(costs) == ["1 token(s)", "3 token(s)"] and all(ms > 0 for ms in costs.values())
