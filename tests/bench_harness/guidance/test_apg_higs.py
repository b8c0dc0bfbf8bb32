"""`benchmarks.guidance.apg_higs`: the quick run's outputs, the w = 1 identities it relies on, and its statistics."""

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from benchmarks.guidance import apg_higs
from benchmarks.guidance.apg_higs_grid import (
    APG_NORM_THRESHOLD,
    METHOD_NAMES,
    QUICK_GRID,
    REPORT_SEED,
    SDXL_RULE_THRESHOLD,
    TUNING_SEED,
    Grid,
    guidance_methods,
    identity_alias,
    initial_noise,
    rms_scaled_threshold,
)
from inertia.metrics import fd_digits


@pytest.fixture(scope="module")
def pipe():
    from inertia.pipelines import load_digits_pipeline

    pipe = load_digits_pipeline(device="cpu", dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_quick_run_reports_every_cell_target_and_overhead_row(tmp_path: Path) -> None:
    assert apg_higs.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "guidance_quick.json").read_text())

    expected = {(m, g, n) for m in METHOD_NAMES for g in QUICK_GRID.guidances for n in QUICK_GRID.nfes}
    assert {(c["method"], c["guidance"], c["nfe"]) for c in result["cells"]} == expected
    for cell in result["cells"]:
        assert cell["images"] == 10 * QUICK_GRID.images_per_digit
        for key in ("mean_saturation", "clipped_fraction", "class_accuracy", "saturation_vs_real"):
            assert math.isfinite(cell[key]) and cell[key] >= 0
        assert 0 <= cell["mean_saturation"] <= 1 and 0 <= cell["class_accuracy"] <= 1
        assert math.isfinite(cell["fd_digits"]) and cell["fd_digits"] > 0
    real = result["real"]
    assert 0.5 < real["mean_saturation"] < 0.7 and real["class_accuracy"] > 0.95 and real["fd_two_halves"] > 0

    # Overhead: one row per (shape, variant), each finite, the bare stub as reference.
    rows = result["overhead"]
    assert {r["method"] for r in rows} == {"no hook", *METHOD_NAMES}
    assert len(rows) == 2 * (1 + len(METHOD_NAMES))
    assert all(math.isfinite(r["ratio"]) and r["unet_ms"] > 0 for r in rows)

    targets = result["targets"]
    (apg,) = targets["apg"]  # w = 15 is in the quick grid, at its one NFE
    assert apg["nfe"] == QUICK_GRID.nfes[0] and isinstance(apg["met"], bool)
    low, high = apg["fd_ratio_interval"]
    assert 0 < low <= high
    assert targets["higs"] == []  # NFE 10 is not in the quick grid
    assert len(targets["overhead"]) == 2 * len(METHOD_NAMES)

    text = (tmp_path / "guidance_quick.md").read_text()
    assert "**real data**" in text and "### Targets" in text and "### Overhead" in text
    with Image.open(tmp_path / "guidance_grid_quick.png") as picture:
        assert picture.width > 5 * 16 * 4 and picture.height > len(METHOD_NAMES) * 2 * 16 * 4


def test_quick_run_on_the_embedded_32x32_model(tmp_path: Path, monkeypatch) -> None:
    """`inertia bench guidance --quick` as the README runs it: the default model is the shipped 32x32 one."""
    monkeypatch.delenv("INERTIA_DIGITS_MODEL", raising=False)
    assert apg_higs.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "guidance_quick.json").read_text())
    assert {c["images"] for c in result["cells"]} == {10}
    assert result["config"]["apg"]["norm_threshold"] == pytest.approx(2 * APG_NORM_THRESHOLD)  # 3x16x16 -> 3x32x32
    assert all(0 <= c["class_accuracy"] <= 1 and math.isfinite(c["fd_digits"]) for c in result["cells"])
    with Image.open(tmp_path / "guidance_grid_quick.png") as picture:
        assert picture.width > 5 * 32 * 2


def test_features_judge_larger_images_at_the_classifiers_size() -> None:
    images = torch.rand(4, 3, 16, 16)
    assert torch.equal(
        apg_higs.features(images.repeat_interleave(2, -1).repeat_interleave(2, -2)), apg_higs.features(images)
    )


def test_apg_is_the_identity_at_guidance_one(pipe) -> None:
    """The benchmark reuses CFG's / HiGS's images for APG / APG+HiGS at w = 1; they must be bit-identical."""
    latents, labels = initial_noise(REPORT_SEED, 1)
    methods = guidance_methods()
    images = {name: apg_higs.sample(pipe, ms, 1.0, 3, latents, labels, 10) for name, ms in methods.items()}
    for name in METHOD_NAMES:
        alias = identity_alias(name, 1.0)
        if alias is not None:
            assert torch.equal(images[name], images[alias]), name
    assert not torch.equal(images["HiGS"], images["CFG"])
    assert identity_alias("APG", 3.0) is None


def test_run_grid_labels_the_reused_cells_at_guidance_one(pipe) -> None:
    grid = Grid(guidances=(1.0,), nfes=(2,), images_per_digit=1, other_images_per_digit=1, picture_nfe=2, chunk=10)
    cells, feats, strips = apg_higs.run_grid(pipe, grid, guidance_methods(), REPORT_SEED, log=lambda _: None)
    assert [c["method"] for c in cells] == list(METHOD_NAMES)
    by = {c["method"]: c for c in cells}
    assert by["APG"]["identical_to"] == "CFG" and by["APG+HiGS"]["identical_to"] == "HiGS"
    assert by["APG"]["fd_digits"] == by["CFG"]["fd_digits"] and "identical_to" not in by["HiGS"]
    assert set(strips) == {(m, 1.0) for m in METHOD_NAMES} and set(feats) == {(m, 1.0, 2) for m in METHOD_NAMES}


def test_noise_is_balanced_seeded_and_distinct_from_the_tuning_seed() -> None:
    latents, labels = initial_noise(REPORT_SEED, 3)
    assert latents.shape == (30, 3, 16, 16) and labels.tolist() == list(range(10)) * 3
    assert torch.equal(latents, initial_noise(REPORT_SEED, 3)[0])
    assert REPORT_SEED != TUNING_SEED
    assert not torch.equal(latents, initial_noise(TUNING_SEED, 3)[0])


def test_swept_thresholds_hold_the_rms_rule_value_and_the_chosen_one() -> None:
    assert SDXL_RULE_THRESHOLD == pytest.approx(15.0 / 256 * math.sqrt(768))  # SDXL's r = 15, same RMS bound
    assert rms_scaled_threshold(15.0, 4 * 128 * 128, 4 * 128 * 128) == 15.0
    assert APG_NORM_THRESHOLD in apg_higs.TUNE_THRESHOLDS
    assert SDXL_RULE_THRESHOLD in apg_higs.TUNE_THRESHOLDS


def test_cell_fd_matches_fd_digits_and_bootstrap_of_equal_sets_is_one() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(20, 3, 16, 16, generator=generator)
    labels = torch.arange(10).repeat(2)
    ref = apg_higs.reference_features()
    feats = apg_higs.features(images)
    with apg_higs._blas_threads(1):  # as the benchmark runs it: fast eigendecompositions on a busy machine
        record = apg_higs.cell_metrics(images, labels, feats, ref, real_saturation=0.6)
        assert record["fd_digits"] == pytest.approx(fd_digits(images), rel=1e-9)
        assert apg_higs.bootstrap_ratio(feats, feats, ref, resamples=5) == pytest.approx((1.0, 1.0))
    assert record["images"] == 20 and record["saturation_vs_real"] == pytest.approx(record["mean_saturation"] / 0.6)
