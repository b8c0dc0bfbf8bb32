"""`python -m benchmarks.attention.vs_peers`: the work accounting, the curves and a quick run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.attention import vs_peers as bench
from benchmarks.attention.vs_peers_report import at_speedup, measured, speedup_at_error, winners
from benchmarks.common.sd15_unet import QUICK_UNET
from inertia.attention import MomentumAttention

COSTS = {"full": 10.0, "attention": 6.0, "probe": 1.0, "none": 0.0}


def test_compose_charges_each_call_for_the_work_it_did() -> None:
    work = [("full", 0.0), ("full", 1.0), ("full", 0.5), ("probe", 1.0), ("none", 1.0)]
    assert bench.compose(work, COSTS) == 10.0 + 6.0 + 8.0 + 1.0 + 0.0


def test_attention_families_skip_the_same_steps_as_extrapolate() -> None:
    chosen = bench.variants(20, mag_ratios=[1.0] * 20)
    for k in (2, 3, 4, 5):
        ours = chosen[f"extrapolate skip_every={k}"].config
        assert isinstance(ours, MomentumAttention)
        for peer in (f"taylorseer-1 interval={k}", f"taylorseer-2 interval={k}", f"fastercache skip_every={k}"):
            assert chosen[peer].config.num_skipped(20) == ours.num_skipped(20), peer
    assert {v.family for v in chosen.values()} == {"full", *bench.FAMILIES}
    assert "magcache K=1" not in bench.variants(20, mag_ratios=None)  # no calibration, no MagCache


def test_curves_are_read_at_equal_speedup_and_at_equal_error() -> None:
    points = [(1.0, 0.0, 2.0), (1.2, 0.01, 2.2), (1.5, 0.03, 2.6)]
    assert at_speedup(points, 1.1) == pytest.approx(0.005)
    assert at_speedup(points, 1.35, index=2) == pytest.approx(2.4)
    assert at_speedup(points, 1.6) is None  # faster than any setting
    assert speedup_at_error(points, 0.02) == (pytest.approx(1.35), True)
    assert speedup_at_error(points, 0.05) == (1.5, False)  # never that bad: "at least 1.5x"
    slower = [(1.0, 0.0, 2.0), (1.2, 0.02, 2.2), (1.3, 0.04, 2.4)]
    by_speed, by_error = winners({"a": points, "b": slower})
    assert by_speed[1.2] == "a" and by_speed[2.0] is None and by_error[0.02] == "a"
    assert not measured(points, 1.1) and by_speed[1.1] is None  # only full computation and a line: not ranked
    assert by_error[0.005] is None  # both families cross 0.005 before their mildest setting


def test_per_call_costs_of_the_tiny_models() -> None:
    unet = bench.unet_costs(QUICK_UNET, rounds=1, device=bench.torch.device("cpu"))
    assert len(unet["samples"]["full"]) == 3 and unet["none"] == 0.0
    assert 0 < unet["probe"] < unet["full"]
    flux = bench.flux_costs(bench.QUICK_FLUX, rounds=1, device=bench.torch.device("cpu"), image_tokens=16)
    assert len(flux["samples"]["double_attn"]) == 1
    blocks = flux["blocks"]
    assert flux["full"] == pytest.approx(blocks["rest"] + 19 * blocks["double"] + 38 * blocks["single"])
    assert flux["none"] < flux["probe"] < flux["full"]


def test_quick_run_with_given_costs_writes_every_setting(tmp_path: Path) -> None:
    costs = {
        "sd15": {**COSTS, "label": "given", "short": "SD1.5"},
        "flux": {**COSTS, "attention": 5.0, "label": "given", "short": "Flux"},
    }
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"costs": costs}))
    argv = ["--quick", "--threads", "1", "--speed-from", str(earlier), "--out", str(tmp_path)]
    assert bench.main([*argv, "--families", "fewer-steps", "--beta", "0"]) == 0
    data = json.loads((tmp_path / "peers_caches.json").read_text())
    rows = data["rows"]
    families = ("full", "extrapolate", "fewer-steps")  # extrapolate is always compared
    expected = {
        n for n, v in bench.variants(8, data["meta"]["mag_ratios"], quick=True).items() if v.family in families
    }
    assert set(rows) == expected and data["meta"]["mag_ratios"] is None  # MagCache not chosen: no calibration
    assert data["meta"]["extrapolate_beta"] == 0.0 and data["meta"]["seed"] == 0
    assert rows["full"]["rmse"] == 0.0 and rows["full"]["speedup"]["sd15"] == 1.0
    assert rows["fewer-steps 5 steps"]["speedup"]["flux"] == pytest.approx(8 / 5)
    ours = rows["extrapolate skip_every=2"]
    assert ours["attention_skipped"] == 2 and ours["rmse"] > 0  # steps 5 and 7 of 8
    assert ours["speedup"]["sd15"] == pytest.approx(80.0 / (6 * 10.0 + 2 * 6.0))
    report = (tmp_path / "peers_caches.md").read_text()
    for text in ("equal speed-up", "speed-up at equal error", "## Target", "fewer-steps"):
        assert text in report
    assert "taylorseer" not in report and "magcache" not in report
    assert bench.main(["--report-from", str(tmp_path / "peers_caches.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "peers_caches.md").read_text() == report
    # the same work logs charged at freshly measured costs (tiny models)
    assert bench.main(["--quick", "--speed-only", "--threads", "1", "--out", str(tmp_path / "speed")]) == 0
    speed = tmp_path / "speed" / "peers_caches.json"
    argv = ["--report-from", str(tmp_path / "peers_caches.json"), "--speed-from", str(speed)]
    assert bench.main([*argv, "--out", str(tmp_path / "recomposed")]) == 0
    recomposed = json.loads((tmp_path / "recomposed" / "peers_caches.json").read_text())
    costs = json.loads(speed.read_text())["costs"]["sd15"]
    row = recomposed["rows"]["extrapolate skip_every=2"]
    assert row["speedup"]["sd15"] == pytest.approx(8 * costs["full"] / bench.compose(row["work"], costs))
