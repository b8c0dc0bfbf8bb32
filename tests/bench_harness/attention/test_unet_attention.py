"""`python -m benchmarks.attention.unet_attention --quick` runs end to end and writes its report, data and figures."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from benchmarks.attention import unet_attention, unet_attention_grid, unet_attention_speed
from benchmarks.common.sd15_unet import SD15_UNET
from inertia.attention import MomentumAttention


def test_quick_run_writes_report_json_and_figures(tmp_path: Path) -> None:
    assert unet_attention.main(["--quick", "--e2e", "--out", str(tmp_path), "--no-figure-copy"]) == 0
    data = json.loads((tmp_path / "attention.json").read_text())
    assert set(data["quality"]) == set(unet_attention_grid.quality_variants())
    assert data["quality"]["full"]["rmse"] == 0.0
    for name, row in data["quality"].items():
        assert row["fd_digits"] >= 0 and 0 <= row["class_accuracy"] <= 1, name
    for k in unet_attention_grid.SCHEDULES:
        row = data["composed"][f"k={k}"]
        assert row["extrapolate"] == row["full_s"] / row["extrapolate_s"]
        assert row["pooled"] == row["full_s"] / row["pooled_s"]
    assert set(data["e2e"]) == {"full", "extrapolate k=2", "first_order k=2", "extrapolate k=3", "first_order k=3"}
    report = (tmp_path / "attention.md").read_text()
    for heading in ("## Speed", "## End to end", "## Quality", "## Targets", "skip_every=3"):
        assert heading in report
    assert (tmp_path / "attention_tradeoff.png").stat().st_size > 0
    assert (tmp_path / "attention_samples.png").stat().st_size > 0


def test_speed_from_an_earlier_run_and_other_schedules(tmp_path: Path) -> None:
    speed = {"full": 10.0, "computed": {"extrapolate": 10.0, "first_order": 10.0}}
    rule_ms = {f"{rule}/{phase}": 1.0 for rule in ("extrapolate", "first_order") for phase in ("observe", "predict")}
    speed.update(skipped={"extrapolate": 5.0, "first_order": 5.0}, rule_ms=rule_ms)
    speed["samples"] = {"full": [10.0], "extrapolate/computed": [10.0], "extrapolate/skipped": [5.0]}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"meta": {"rounds": 1}, "speed": speed}))
    argv = ["--quick", "--out", str(tmp_path), "--no-figure-copy", "--no-experimental"]
    assert unet_attention.main([*argv, "--speed-from", str(earlier), "--schedules", "4", "--window-start", "2"]) == 0
    data = json.loads((tmp_path / "attention.json").read_text())
    assert data["speed"] == speed
    assert set(data["quality"]) == {"full", "extrapolate k=4", "first_order k=4"}
    assert data["quality"]["extrapolate k=4"]["skipped_steps"] == 5  # steps 2, 3, 5, 6, 7 of 8
    # 20 steps, window (2, None), skip_every 4: 14 skipped -> 200 s / (6 x 10 s + 14 x 5 s)
    assert data["composed"]["k=4"]["extrapolate"] == 200.0 / 130.0
    assert "Per-call timings reused from" in (tmp_path / "attention.md").read_text()


def test_compose_sums_computed_and_skipped_calls() -> None:
    result = unet_attention_speed.SpeedResult(
        full=10.0, computed={"extrapolate": 10.5}, skipped={"extrapolate": 6.0}, samples={}, rule_ms={}
    )
    config = MomentumAttention(mode="extrapolate", skip_every=2, window=(4, None))  # skips 5, 7, ..., 19
    assert unet_attention_speed.compose(result, "extrapolate", config, steps=20) == 12 * 10.5 + 8 * 6.0


def test_pooled_takes_the_median_over_both_rules() -> None:
    samples = {"a/computed": [1.0, 9.0], "b/computed": [3.0], "a/skipped": [2.0], "b/skipped": [4.0, 6.0]}
    result = unet_attention_speed.SpeedResult(full=5.0, computed={}, skipped={}, samples=samples, rule_ms={})
    both = unet_attention_speed.pooled(result)
    assert (both.full, both.computed["pooled"], both.skipped["pooled"]) == (5.0, 3.0, 4.0)


def test_timed_unet_has_stable_diffusion_1_5_size() -> None:
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # runwayml/stable-diffusion-v1-5 unet
