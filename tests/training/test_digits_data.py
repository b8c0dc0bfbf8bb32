"""Tests of the offline coloured digits data set (`inertia.data.digits`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inertia.data.digits import (
    BACKGROUND_COLOURS,
    FOREGROUND_COLOURS,
    MIN_LUMA_CONTRAST,
    NUM_CLASSES,
    PALETTE,
    DigitsDataset,
    DigitsSplit,
    load_digits_rgb,
    palette_rgb,
    to_uint8_images,
    to_unit_range,
)

N_SOURCE = 1797
LUMA = torch.tensor([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def train() -> DigitsSplit:
    return load_digits_rgb("train", seed=0)


@pytest.fixture(scope="module")
def holdout() -> DigitsSplit:
    return load_digits_rgb("holdout", seed=0)


def hsv_saturation(rgb: torch.Tensor) -> torch.Tensor:
    """HSV saturation of ``(N, 3, H, W)`` images in [0, 1]: ``(max - min) / max`` per pixel (0 for black)."""
    mx, mn = rgb.amax(dim=1), rgb.amin(dim=1)
    return torch.where(mx > 0, (mx - mn) / mx.clamp_min(1e-8), torch.zeros_like(mx))


def grayscale_normalised(images: torch.Tensor) -> torch.Tensor:
    """Luma in [0, 1] with the stroke bright (inverted when the border is bright), centred and size-normalised.

    Centring on the intensity centroid and rescaling to the mean radius of gyration undoes the random shift and zoom
    (which a template matcher cannot), so what is left measures whether the digit's shape survived.
    """
    g = (to_unit_range(images) * LUMA.view(1, 3, 1, 1)).sum(1)
    g = g - g.amin((1, 2), keepdim=True)
    g = g / g.amax((1, 2), keepdim=True).clamp_min(1e-6)
    border = torch.cat([g[:, 0], g[:, -1], g[:, :, 0], g[:, :, -1]], dim=1).mean(1)
    g = torch.where(border[:, None, None] > 0.5, 1 - g, g)
    n, h, w = g.shape
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w)
    mass = g.sum((1, 2)).clamp_min(1e-6)
    cy = (g.sum(2) * ys).sum(1) / mass
    cx = (g.sum(1) * xs).sum(1) / mass
    dist2 = (ys[None, :, None] - cy[:, None, None]) ** 2 + (xs[None, None, :] - cx[:, None, None]) ** 2
    radius = ((dist2 * g).sum((1, 2)) / mass).sqrt()
    s = radius / radius.mean()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = s
    theta[:, 0, 2], theta[:, 1, 2] = cx, cy
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    return F.grid_sample(g[:, None], grid, align_corners=False).flatten(1)


# --- shapes, dtypes, ranges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [16, 32])
def test_shapes_dtypes_and_ranges(resolution: int) -> None:
    ds = load_digits_rgb("holdout", resolution=resolution, augmentations_per_image=3)
    n = ds.labels.numel()
    assert ds.images.shape == (n, 3, resolution, resolution)
    assert ds.images.dtype == torch.float32 and ds.images.is_contiguous()
    assert ds.labels.dtype == ds.source_index.dtype == torch.int64
    assert ds.foreground_index.shape == ds.background_index.shape == (n,)
    assert len(ds) == n and n % 3 == 0
    assert ds.images.min() >= -1 and ds.images.max() <= 1
    assert ds.images.min() < -0.5 and ds.images.max() > 0.5  # uses the range, not a sliver of it
    assert ds.labels.min() >= 0 and ds.labels.max() < NUM_CLASSES
    # Variants of one source image are consecutive, share its label, and differ from each other.
    src = ds.source_index.view(-1, 3)
    assert (src == src[:, :1]).all()
    assert (ds.labels.view(-1, 3) == ds.labels.view(-1, 3)[:, :1]).all()
    variants = ds.images.view(-1, 3, 3, resolution, resolution)
    assert not torch.equal(variants[:, 0], variants[:, 1])


def test_sizes_add_up(train: DigitsSplit, holdout: DigitsSplit) -> None:
    assert len(train) + len(holdout) == N_SOURCE
    assert abs(len(holdout) / N_SOURCE - 0.2) < 0.01


# --- determinism --------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_tensors(train: DigitsSplit) -> None:
    again = load_digits_rgb("train", seed=0)
    for name in ("images", "labels", "source_index", "foreground_index", "background_index"):
        assert torch.equal(getattr(train, name), getattr(again, name)), name


def test_different_seed_gives_different_data(train: DigitsSplit) -> None:
    other = load_digits_rgb("train", seed=1)
    assert not torch.equal(train.source_index, other.source_index)
    same_sources = np.intersect1d(train.source_index.numpy(), other.source_index.numpy())
    assert len(same_sources) > 0
    a = train.images[torch.isin(train.source_index, torch.from_numpy(same_sources))]
    b = other.images[torch.isin(other.source_index, torch.from_numpy(same_sources))]
    assert (a - b).abs().amax(dim=(1, 2, 3)).gt(0.1).float().mean() > 0.9  # augmentations differ too


# --- the split ----------------------------------------------------------------------------------------------------


def test_split_is_disjoint_and_complete(train: DigitsSplit, holdout: DigitsSplit) -> None:
    tr, ho = set(train.source_index.tolist()), set(holdout.source_index.tolist())
    assert tr.isdisjoint(ho)
    assert tr | ho == set(range(N_SOURCE))


def test_split_does_not_depend_on_resolution_or_augmentations(train: DigitsSplit) -> None:
    other = load_digits_rgb("train", seed=0, resolution=32, augmentations_per_image=2)
    assert torch.equal(other.source_index[::2], train.source_index)


def test_split_is_stratified(train: DigitsSplit, holdout: DigitsSplit) -> None:
    tr = torch.bincount(train.labels, minlength=NUM_CLASSES)
    ho = torch.bincount(holdout.labels, minlength=NUM_CLASSES)
    assert (tr > 0).all() and (ho > 0).all()
    share = ho / (tr + ho)
    assert (share - 0.2).abs().max() < 0.01


def test_small_holdout_fraction_keeps_every_class() -> None:
    ho = load_digits_rgb("holdout", holdout_fraction=0.001)
    assert torch.equal(torch.bincount(ho.labels, minlength=NUM_CLASSES), torch.ones(NUM_CLASSES, dtype=torch.int64))


def test_label_distribution_is_close_to_uniform(train: DigitsSplit) -> None:
    counts = torch.bincount(train.labels, minlength=NUM_CLASSES).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.05


# --- colours ------------------------------------------------------------------------------------------------------


def test_palette_is_distinct_saturated_and_pairable() -> None:
    rgb = palette_rgb()
    assert len(PALETTE) == rgb.shape[0] and len({c.name for c in PALETTE}) == len(PALETTE)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert torch.cdist(rgb, rgb).add(torch.eye(len(PALETTE))).min() > 0.1
    assert len(FOREGROUND_COLOURS) == 8 and len(BACKGROUND_COLOURS) >= 3
    assert set(FOREGROUND_COLOURS).isdisjoint(BACKGROUND_COLOURS)
    fg_sat = hsv_saturation(rgb[list(FOREGROUND_COLOURS)].view(-1, 3, 1, 1))
    assert fg_sat.min() > 0.6
    luma = rgb @ LUMA
    contrast = (luma[list(FOREGROUND_COLOURS)][:, None] - luma[list(BACKGROUND_COLOURS)][None, :]).abs()
    assert (contrast >= MIN_LUMA_CONTRAST).sum(1).min() >= 2  # every foreground has at least two backgrounds


def test_colours_come_from_the_palette(train: DigitsSplit) -> None:
    rgb = palette_rgb()
    fg, bg = train.foreground_index, train.background_index
    assert torch.isin(fg, torch.tensor(FOREGROUND_COLOURS)).all()
    assert torch.isin(bg, torch.tensor(BACKGROUND_COLOURS)).all()
    assert (fg != bg).all()
    assert ((rgb[fg] @ LUMA - rgb[bg] @ LUMA).abs() >= MIN_LUMA_CONTRAST).all()
    assert len(torch.unique(fg)) == len(FOREGROUND_COLOURS) and len(torch.unique(bg)) == len(BACKGROUND_COLOURS)
    # The brightest and darkest pixels of each image are (close to) two distinct palette colours: the recorded ones.
    images = to_unit_range(train.images[:200]).flatten(2).transpose(1, 2)  # (n, pixels, 3)
    luma = images @ LUMA
    brightest = images[torch.arange(len(images)), luma.argmax(1)]
    darkest = images[torch.arange(len(images)), luma.argmin(1)]
    d_bright, i_bright = torch.cdist(brightest, rgb).min(1)
    d_dark, i_dark = torch.cdist(darkest, rgb).min(1)
    assert d_bright.max() < 0.1 and d_dark.max() < 0.1
    assert (i_bright != i_dark).all()
    recorded = {tuple(p) for p in torch.stack([fg[:200], bg[:200]], 1).tolist()}
    found = {tuple(sorted(p)) for p in torch.stack([i_bright, i_dark], 1).tolist()}
    assert found == {tuple(sorted(p)) for p in recorded}


def test_foreground_colour_is_independent_of_label(train: DigitsSplit) -> None:
    for cls in range(NUM_CLASSES):
        assert len(torch.unique(train.foreground_index[train.labels == cls])) == len(FOREGROUND_COLOURS)


def test_mean_saturation_is_high(train: DigitsSplit) -> None:
    assert hsv_saturation(to_unit_range(train.images)).mean() > 0.3


# --- the digits survive the augmentation -------------------------------------------------------------------------


def test_nearest_class_mean_recognises_holdout_digits(train: DigitsSplit, holdout: DigitsSplit) -> None:
    x_train, x_holdout = grayscale_normalised(train.images), grayscale_normalised(holdout.images)
    means = torch.stack([x_train[train.labels == c].mean(0) for c in range(NUM_CLASSES)])
    predicted = torch.cdist(x_holdout, means).argmin(1)
    accuracy = (predicted == holdout.labels).float().mean().item()
    assert accuracy > 0.8, accuracy


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"split": "test"}, "split"),
        ({"resolution": 24}, "resolution"),
        ({"resolution": 16.0}, "resolution"),
        ({"holdout_fraction": 0.0}, "holdout_fraction"),
        ({"holdout_fraction": 1.0}, "holdout_fraction"),
        ({"augmentations_per_image": 0}, "augmentations_per_image"),
        ({"augmentations_per_image": 1.5}, "augmentations_per_image"),
        ({"seed": -1}, "seed"),
    ],
)
@pytest.mark.parametrize("factory", [load_digits_rgb, DigitsDataset])
def test_bad_input_raises_value_error_naming_the_parameter(factory: object, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"`{name}`.*{kwargs[name]!r}"):
        factory(**kwargs)


def test_bad_epoch_raises() -> None:
    ds = DigitsDataset("holdout", augment_on_the_fly=True)
    with pytest.raises(ValueError, match=r"`epoch`.*-1"):
        ds.set_epoch(-1)


# --- helpers ------------------------------------------------------------------------------------------------------


def test_to_unit_range_and_uint8(holdout: DigitsSplit) -> None:
    unit = to_unit_range(holdout.images)
    assert unit.min() >= 0 and unit.max() <= 1
    torch.testing.assert_close(unit * 2 - 1, holdout.images)
    u8 = to_uint8_images(holdout.images[:5])
    assert u8.dtype == np.uint8 and u8.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(to_uint8_images(holdout.images[0]), u8[:1])
    expected = (unit[:5].permute(0, 2, 3, 1).numpy() * 255).round()
    assert np.abs(u8.astype(np.float32) - expected).max() <= 1
    with pytest.raises(ValueError, match="`x`"):
        to_uint8_images(torch.zeros(2, 1, 4, 4))


# --- the Dataset --------------------------------------------------------------------------------------------------


def test_fixed_dataset_matches_load_digits_rgb(holdout: DigitsSplit) -> None:
    ds = DigitsDataset("holdout", seed=0)
    assert len(ds) == len(holdout)
    image, label = ds[7]
    assert torch.equal(image, holdout.images[7]) and label == int(holdout.labels[7])
    assert torch.equal(ds[-1][0], holdout.images[-1])
    assert torch.equal(ds.labels, holdout.labels) and torch.equal(ds.source_index, holdout.source_index)
    ds.set_epoch(3)  # no effect on a fixed set
    assert torch.equal(ds[7][0], image)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_on_the_fly_dataset_is_deterministic_per_seed_epoch_and_index(holdout: DigitsSplit) -> None:
    ds = DigitsDataset("holdout", seed=0, augment_on_the_fly=True, augmentations_per_image=2)
    assert len(ds) == 2 * len(holdout)
    a, label = ds[5]
    assert a.shape == (3, 16, 16) and a.dtype == torch.float32 and -1 <= a.min() and a.max() <= 1
    assert label == int(holdout.labels[2])  # index 5 is source 5 // 2
    assert torch.equal(DigitsDataset("holdout", seed=0, augment_on_the_fly=True, augmentations_per_image=2)[5][0], a)
    assert not torch.equal(ds[4][0], a)  # another variant of the same source image
    ds.set_epoch(1)
    b, label_b = ds[5]
    assert label_b == label and not torch.equal(a, b)
    ds.set_epoch(0)
    assert torch.equal(ds[5][0], a)
    other_seed = DigitsDataset("holdout", seed=1, augment_on_the_fly=True)
    assert not torch.equal(other_seed[0][0], DigitsDataset("holdout", seed=0, augment_on_the_fly=True)[0][0])


def test_dataset_works_with_a_dataloader() -> None:
    ds = DigitsDataset("holdout", resolution=32, augment_on_the_fly=True)
    images, labels = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)))
    assert images.shape == (8, 3, 32, 32) and labels.dtype == torch.int64
    assert torch.equal(labels, ds.labels[:8])


# --- performance --------------------------------------------------------------------------------------------------
