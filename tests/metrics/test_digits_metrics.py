"""Tests of the digit metrics: the shipped classifier, FD-digits and colour statistics (fast: no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inertia.data.digits import load_digits_rgb, to_unit_range
from inertia.metrics import digits as dm
from inertia.metrics.digits import (
    DigitClassifier,
    DigitClassifierWeightsNotFoundError,
    class_accuracy,
    colour_stats,
    fd_digits,
    frechet_distance,
    load_digit_classifier,
    predict_digits,
    real_colour_stats,
    real_fd_baseline,
)


@pytest.fixture(scope="module")
def holdout() -> tuple[torch.Tensor, torch.Tensor]:
    split = load_digits_rgb("holdout", seed=0, augmentations_per_image=4)
    return to_unit_range(split.images), split.labels


# --------------------------------------------------------------------------------------------------------------------
# Classifier


def test_shipped_weights_and_config() -> None:
    weights = dm.CLASSIFIER_WEIGHTS_DIR / dm.WEIGHTS_FILENAME
    config = json.loads((dm.CLASSIFIER_WEIGHTS_DIR / dm.CONFIG_FILENAME).read_text())
    assert weights.is_file() and weights.stat().st_size < 1_000_000
    assert config["holdout_accuracy"] >= 0.97
    assert {"command", "seed", "date"} <= set(config["training"])


def test_shipped_classifier_accuracy_on_holdout(holdout) -> None:
    images, labels = holdout
    model = load_digit_classifier()
    assert not model.training
    assert class_accuracy(images, labels) >= 0.95
    pred = predict_digits(images[:10], classifier=model)
    assert pred.dtype == torch.int64 and pred.shape == (10,)
    assert model.features(images[:4]).shape == (4, model.feature_dim)


def test_load_is_cached_per_device_and_dtype() -> None:
    assert load_digit_classifier() is load_digit_classifier("cpu")
    double = load_digit_classifier(dtype=torch.float64)
    assert double is not load_digit_classifier() and next(double.parameters()).dtype == torch.float64
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(predict_digits(x, double), predict_digits(x))


def test_class_accuracy_with_wrong_labels_is_low(holdout) -> None:
    images, labels = holdout
    assert class_accuracy(images[:200], (labels[:200] + 1) % 10) < 0.1


def test_missing_weights_raise_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json") as info:
        load_digit_classifier(weights_dir=tmp_path)
    assert isinstance(info.value, DigitClassifierWeightsNotFoundError)
    assert str(tmp_path) in str(info.value)
    (tmp_path / dm.CONFIG_FILENAME).write_text(json.dumps({"architecture": DigitClassifier().config()}))
    with pytest.raises(DigitClassifierWeightsNotFoundError, match=r"digit_classifier\.safetensors"):
        load_digit_classifier(weights_dir=tmp_path)


def test_classifier_constructor_validates() -> None:
    with pytest.raises(ValueError, match="feature_dim"):
        DigitClassifier(feature_dim=0)
    with pytest.raises(ValueError, match="channels"):
        DigitClassifier(channels=(32, 64))
    with pytest.raises(ValueError, match="dtype"):
        load_digit_classifier(dtype=torch.int64)


# --------------------------------------------------------------------------------------------------------------------
# Frechet distance


def test_frechet_distance_identity_symmetry_and_closed_form() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 8, generator=gen, dtype=torch.float64) @ torch.randn(8, 8, generator=gen, dtype=torch.float64)
    b = torch.randn(300, 8, generator=gen, dtype=torch.float64) * 1.5 + 0.3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    shift = torch.linspace(-1, 2, 8, dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(float((shift**2).sum()), rel=1e-8)
    # numpy input, and a rank-deficient covariance (more dims than samples) stays finite and ~0 against itself
    c = np.random.default_rng(0).normal(size=(5, 20))
    assert frechet_distance(c, c) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 6))
    b = rng.normal(size=(250, 6)) @ rng.normal(size=(6, 6)) + 1.0
    mu_a, mu_b, s_a, s_b = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_fd_digits_real_vs_noise_and_baseline(holdout) -> None:
    baseline = real_fd_baseline()
    assert baseline > 0
    assert real_fd_baseline() == baseline  # deterministic
    train = to_unit_range(load_digits_rgb("train", seed=0).images)
    fd_train = fd_digits(train)
    fd_noise = fd_digits(torch.rand(500, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert fd_train < 0.1 * fd_noise
    images, _ = holdout
    assert fd_digits(images[:300], reference_images01=images[:300]) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------------------------------------------------
# Colour statistics


def test_colour_stats_hand_made() -> None:
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    stats = colour_stats(red)
    assert stats["mean_saturation"] == pytest.approx(1.0)
    assert stats["mean_value"] == pytest.approx(1.0)
    assert stats["clipped_fraction"] == pytest.approx(1.0)  # every channel value is 0 or 1

    grey = torch.full((2, 3, 4, 4), 0.5)
    assert colour_stats(grey) == pytest.approx({"mean_saturation": 0.0, "mean_value": 0.5, "clipped_fraction": 0.0})

    # half the pixels (0.8, 0.4, 0.4): S = 0.5; the other half black: S = 0 by convention, all 3 channels clipped
    mixed = torch.zeros(1, 3, 2, 2)
    mixed[0, :, 0, :] = torch.tensor([0.8, 0.4, 0.4]).view(3, 1)
    stats = colour_stats(mixed)
    assert stats["mean_saturation"] == pytest.approx(0.25)
    assert stats["mean_value"] == pytest.approx(0.4)
    assert stats["clipped_fraction"] == pytest.approx(6 / 12)

    # thresholds: 1/255 and 254/255 count as clipped, 2/255 and 253/255 do not
    edge = torch.tensor([1 / 255, 2 / 255, 253 / 255, 254 / 255]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    assert colour_stats(edge)["clipped_fraction"] == pytest.approx(0.5)


def test_real_colour_stats() -> None:
    stats = real_colour_stats()
    assert set(stats) == {"mean_saturation", "mean_value", "clipped_fraction"}
    assert 0.1 < stats["mean_saturation"] < 1 and 0 <= stats["clipped_fraction"] < 1


# --------------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: predict_digits(torch.rand(2, 1, 16, 16)), r"`images01`.*\(2, 1, 16, 16\)"),
        (lambda: predict_digits(torch.rand(2, 3, 24, 24)), r"`images01`.*a multiple of 16.*\(2, 3, 24, 24\)"),
        (lambda: predict_digits(torch.rand(2, 3, 32, 16)), r"`images01`.*square.*\(2, 3, 32, 16\)"),
        (lambda: predict_digits(torch.rand(3, 16, 16)), r"`images01`.*shape"),
        (lambda: predict_digits(torch.rand(2, 3, 16, 16) * 2 - 1), r"`images01` must be in \[0, 1\]"),
        (lambda: predict_digits(torch.full((1, 3, 16, 16), float("nan"))), r"`images01` must be finite"),
        (lambda: predict_digits(torch.zeros(1, 3, 16, 16, dtype=torch.uint8)), r"`images01`.*dtype"),
        (lambda: predict_digits(np.zeros((1, 3, 16, 16))), r"`images01` must be a torch.Tensor"),
        (lambda: colour_stats(torch.rand(1, 4, 8, 8)), r"`images01`.*\(1, 4, 8, 8\)"),
        (lambda: colour_stats(torch.full((1, 3, 8, 8), 1.01)), r"`images01` must be in \[0, 1\].*1\.01"),
        (lambda: class_accuracy(torch.rand(2, 3, 16, 16), torch.tensor([0, 10])), r"`labels` must be in 0\.\.9.*10"),
        (lambda: class_accuracy(torch.rand(2, 3, 16, 16), torch.tensor([-1, 0])), r"`labels` must be in 0\.\.9.*-1"),
        (lambda: class_accuracy(torch.rand(2, 3, 16, 16), torch.tensor([0])), r"`labels` must have shape \(2,\)"),
        (lambda: class_accuracy(torch.rand(2, 3, 16, 16), torch.tensor([0.0, 1.0])), r"`labels`.*integer"),
        (lambda: frechet_distance(torch.zeros(1, 4), torch.zeros(5, 4)), r"`features_a`.*at least 2 samples.*1"),
        (lambda: frechet_distance(torch.zeros(5, 4), torch.zeros(1, 4)), r"`features_b`.*at least 2 samples.*1"),
        (lambda: frechet_distance(torch.zeros(5, 4), torch.zeros(5, 3)), r"same feature dim.*4 and 3"),
        (lambda: frechet_distance(torch.zeros(5), torch.zeros(5, 3)), r"`features_a` must be 2-D"),
        (lambda: fd_digits(torch.rand(1, 3, 16, 16)), r"`images01`.*at least 2 images.*1"),
        (lambda: fd_digits(torch.rand(4, 3, 16, 16), torch.rand(4, 3, 8, 8)), r"`reference_images01`.*\(4, 3, 8, 8\)"),
        (lambda: real_fd_baseline(seed=-1), r"`seed`.*-1"),
        (lambda: predict_digits(torch.rand(2, 3, 16, 16), classifier="resnet"), r"`classifier`"),
    ],
)
def test_bad_input_raises_value_error(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_values_within_tolerance_are_accepted() -> None:
    x = torch.rand(2, 3, 16, 16)
    x[0, 0, 0, 0] = -1e-4
    x[1, 0, 0, 0] = 1 + 1e-4
    assert predict_digits(x).shape == (2,)
    assert colour_stats(x)["clipped_fraction"] >= 2 / x.numel()


def test_32x32_images_are_judged_at_16x16() -> None:
    # A 32x32 image that is a 16x16 one enlarged 2x (nearest) scores exactly like it: area averaging undoes it.
    from inertia.metrics.digits import class_accuracy, fd_digits, predict_digits

    torch.manual_seed(0)
    small = torch.rand(40, 3, 16, 16)
    large = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    labels = torch.arange(40) % 10
    assert torch.equal(predict_digits(large), predict_digits(small))
    assert class_accuracy(large, labels) == class_accuracy(small, labels)
    assert fd_digits(large) == pytest.approx(fd_digits(small), rel=1e-6)
