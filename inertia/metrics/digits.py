"""Metrics for generated coloured digits: class accuracy, FD-digits and colour statistics.

A small CNN, :class:`DigitClassifier`, is trained on the offline coloured digits of
:mod:`inertia.data.digits` (recipe: ``python -m benchmarks.training.digit_classifier``) and its weights ship with
the package (``inertia/metrics/classifier_weights/``), so nothing is downloaded. On top of it:

* :func:`predict_digits` / :func:`class_accuracy`: does a class-conditional sample show the digit it was asked for?
* :func:`frechet_distance` / :func:`fd_digits`: the Fréchet distance between Gaussians fitted to the classifier's
  penultimate features of generated and held-out real images (FID's recipe, with a domain-specific feature extractor);
  :func:`real_fd_baseline` is the FD between two disjoint halves of the real held-out images, the yardstick.
* :func:`colour_stats` / :func:`real_colour_stats`: mean HSV saturation and value, and the fraction of clipped
  channel values, which is where strong guidance shows (oversaturated, burnt-out colours).

**Range convention:** every function taking images expects float ``(N, 3, 16, 16)`` (``(N, 3, H, W)`` for
:func:`colour_stats`) tensors in **[0, 1]**, NCHW, i.e. what ``DigitsPipeline(..., output_type="pt")`` returns.
Larger square images whose side is a multiple of 16 (the 32x32 model's) are area-downsampled to 16x16 first, so the
classifier and FD-digits judge every model at the resolution they were trained on.
Data in [-1, 1] (the diffusion convention of :mod:`inertia.data.digits`) must be converted first with
:func:`inertia.data.digits.to_unit_range`; values outside [0, 1] by more than :data:`RANGE_TOLERANCE` raise
``ValueError`` (values within the tolerance are clamped).

Example:
    >>> import torch
    >>> from inertia.metrics.digits import colour_stats
    >>> red = torch.zeros(1, 3, 16, 16)
    >>> red[:, 0] = 1.0
    >>> colour_stats(red)["mean_saturation"]
    1.0
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inertia.metrics.frechet import frechet_distance

__all__ = [
    "CLASSIFIER_WEIGHTS_DIR",
    "DigitClassifier",
    "DigitClassifierWeightsNotFoundError",
    "class_accuracy",
    "colour_stats",
    "fd_digits",
    "frechet_distance",
    "load_digit_classifier",
    "predict_digits",
    "real_colour_stats",
    "real_fd_baseline",
]

CLASSIFIER_WEIGHTS_DIR = Path(__file__).resolve().parent / "classifier_weights"
"""Folder of the shipped classifier: ``digit_classifier.safetensors`` and ``config.json``."""
WEIGHTS_FILENAME = "digit_classifier.safetensors"
CONFIG_FILENAME = "config.json"

RESOLUTION = 16
"""Side of the images the classifier takes."""
NUM_CLASSES = 10
RANGE_TOLERANCE = 1e-3
"""How far outside [0, 1] image values may be (rounding noise) before a ``ValueError``; they are clamped."""
CLIP_LEVELS = (1, 254)
"""A channel value counts as clipped when its uint8 quantisation ``round(255 * x)`` is <= 1 or >= 254, i.e. it sits
at an end of the range (``x <= 1/255`` or ``x >= 254/255``, give or take half a level)."""
_BATCH = 512


class DigitClassifierWeightsNotFoundError(FileNotFoundError):
    """The shipped classifier weights (or their config) are missing; the message names the path and the fix.

    Example:
        >>> issubclass(DigitClassifierWeightsNotFoundError, FileNotFoundError)   # catch it as a missing file
        True
    """


class DigitClassifier(nn.Module):
    """A small CNN classifying coloured 16x16 digits; its penultimate layer is the feature space of FD-digits.

    Three 3x3 conv blocks (``channels``, e.g. 32-64-64, each with GroupNorm, SiLU and 2x2 max-pooling: 16 -> 8 -> 4 ->
    2 pixels), global average pooling, a ``feature_dim``-d fully connected feature layer (SiLU) and a linear head. The
    input is ``(N, 3, 16, 16)`` in [0, 1]; it is mapped to [-1, 1] inside.

    Args:
        channels: output channels of the three conv blocks (each > 0).
        feature_dim: size of the penultimate feature layer (> 0).
        num_classes: number of classes (> 1).

    Example:
        >>> import torch
        >>> model = DigitClassifier()
        >>> model(torch.rand(2, 3, 16, 16)).shape, model.features(torch.rand(2, 3, 16, 16)).shape
        (torch.Size([2, 10]), torch.Size([2, 128]))
    """

    def __init__(
        self, channels: tuple[int, int, int] = (32, 64, 64), feature_dim: int = 128, num_classes: int = NUM_CLASSES
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"`channels` must be three positive integers, got {channels!r}.")
        if int(feature_dim) < 1:
            raise ValueError(f"`feature_dim` must be a positive integer, got {feature_dim!r}.")
        if int(num_classes) < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
        self.channels = channels
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out),
                nn.SiLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def config(self) -> dict[str, Any]:
        """The constructor arguments (what ``config.json`` stores)."""
        return {"channels": list(self.channels), "feature_dim": self.feature_dim, "num_classes": self.num_classes}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(N, feature_dim)`` of images ``(N, 3, 16, 16)`` in [0, 1]."""
        h = self.body(x * 2 - 1)
        return F.silu(self.fc(h.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, 3, 16, 16)`` in [0, 1]."""
        return self.head(self.features(x))


# --------------------------------------------------------------------------------------------------------------------
# Loading


def _weights_paths(weights_dir: str | Path | None) -> tuple[Path, Path]:
    folder = CLASSIFIER_WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    return folder / WEIGHTS_FILENAME, folder / CONFIG_FILENAME


@functools.lru_cache(maxsize=8)
def _load_cached(weights_dir: str, device: str, dtype: torch.dtype) -> DigitClassifier:
    from safetensors.torch import load_file

    weights, config_path = _weights_paths(weights_dir)
    for path in (config_path, weights):
        if not path.is_file():
            raise DigitClassifierWeightsNotFoundError(
                f"Digit classifier file not found: {path}. Reinstall inertia, or retrain it with "
                f"`python -m benchmarks.training.digit_classifier --out {path.parent}`."
            )
    config = json.loads(config_path.read_text())
    arch = config.get("architecture", config)
    model = DigitClassifier(
        channels=tuple(arch["channels"]), feature_dim=arch["feature_dim"], num_classes=arch["num_classes"]
    )
    model.load_state_dict(load_file(str(weights)))
    model.to(device=torch.device(device), dtype=dtype).eval()
    model.requires_grad_(False)
    return model


def load_digit_classifier(
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    weights_dir: str | Path | None = None,
) -> DigitClassifier:
    """Load the shipped :class:`DigitClassifier` (eval mode, no grad; cached per folder, device and dtype).

    Do not modify or train the returned module: it is shared between callers.

    Args:
        device: where to put it (default CPU).
        dtype: a floating dtype (default float32).
        weights_dir: folder holding ``digit_classifier.safetensors`` and ``config.json`` (default
            :data:`CLASSIFIER_WEIGHTS_DIR`, the weights shipped with the package).

    Returns:
        The classifier, in eval mode.

    Raises:
        ValueError: if ``dtype`` is not a floating dtype.
        DigitClassifierWeightsNotFoundError: (a ``FileNotFoundError``) naming the missing file.

    Example:
        >>> model = load_digit_classifier()
        >>> model.training, model.feature_dim
        (False, 128)
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"`dtype` must be a floating torch dtype, got {dtype!r}.")
    device = torch.device("cpu" if device is None else device)
    folder = str((CLASSIFIER_WEIGHTS_DIR if weights_dir is None else Path(weights_dir)).resolve())
    return _load_cached(folder, str(device), dtype)


# --------------------------------------------------------------------------------------------------------------------
# Input checks


def _check_images(images01: torch.Tensor, name: str = "images01", fixed_size: bool = True) -> torch.Tensor:
    """Validate float NCHW RGB images in [0, 1] (within the tolerance) and return them clamped, detached."""
    if not isinstance(images01, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor of shape (N, 3, H, W) in [0, 1], got {type(images01)}.")
    if not images01.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor in [0, 1], got dtype {images01.dtype}.")
    size = f"{RESOLUTION}·k, {RESOLUTION}·k" if fixed_size else "H, W"
    shape = tuple(images01.shape)
    if images01.ndim != 4 or shape[1] != 3 or shape[0] < 1 or shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"`{name}` must have shape (N >= 1, 3, {size}), got {shape}.")
    if fixed_size and (shape[2] != shape[3] or shape[2] % RESOLUTION):
        raise ValueError(
            f"`{name}` must have shape (N, 3, {size}) (square, a multiple of {RESOLUTION}: 16x16, 32x32, ...), got "
            f"{shape}."
        )
    x = images01.detach()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` must be finite (values in [0, 1]), got NaN or inf.")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"`{name}` must be in [0, 1] (tolerance {RANGE_TOLERANCE}), got values in [{lo:.4g}, {hi:.4g}]; "
            "convert [-1, 1] images with inertia.data.digits.to_unit_range."
        )
    x = x.clamp(0, 1)
    if fixed_size and shape[2] != RESOLUTION:  # larger images are judged at the classifier's size: area averages
        x = F.avg_pool2d(x, shape[2] // RESOLUTION)
    return x


def _check_labels(labels: torch.Tensor | Any, n: int) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"`labels` must be an integer tensor, got dtype {labels.dtype}.")
    if labels.ndim != 1 or labels.numel() != n:
        raise ValueError(f"`labels` must have shape ({n},) (one per image), got {tuple(labels.shape)}.")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= NUM_CLASSES:
        raise ValueError(f"`labels` must be in 0..{NUM_CLASSES - 1}, got values in [{lo}, {hi}].")
    return labels.to("cpu", torch.int64)


def _resolve(classifier: DigitClassifier | None) -> DigitClassifier:
    if classifier is None:
        return load_digit_classifier()
    if not isinstance(classifier, nn.Module) or not hasattr(classifier, "features"):
        raise ValueError(f"`classifier` must be a DigitClassifier or None, got {type(classifier)}.")
    return classifier


def _param_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


@torch.no_grad()
def _run(model: DigitClassifier, x: torch.Tensor, fn: str) -> torch.Tensor:
    device, dtype = _param_device_dtype(model)
    was_training = model.training
    model.eval()
    try:
        out = [getattr(model, fn)(x[i : i + _BATCH].to(device, dtype)).float().cpu() for i in range(0, len(x), _BATCH)]
    finally:
        model.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------------------------------------------------
# Classification


def predict_digits(images01: torch.Tensor, classifier: DigitClassifier | None = None) -> torch.Tensor:
    """Predicted digit classes of images.

    Args:
        images01: float ``(N, 3, 16, 16)`` in [0, 1] (e.g. ``DigitsPipeline(..., output_type="pt").images``).
        classifier: a :class:`DigitClassifier` (default: the shipped one, :func:`load_digit_classifier`).

    Returns:
        int64 ``(N,)`` classes 0..9, on the CPU.

    Raises:
        ValueError: on a wrong shape or dtype, or values outside [0, 1].

    Example:
        >>> predict_digits(torch.rand(3, 3, 16, 16)).shape
        torch.Size([3])
    """
    x = _check_images(images01)
    return _run(_resolve(classifier), x, "forward").argmax(dim=1)


def class_accuracy(images01: torch.Tensor, labels: torch.Tensor, classifier: DigitClassifier | None = None) -> float:
    """Fraction of images the classifier assigns to their requested class.

    Args:
        images01: float ``(N, 3, 16, 16)`` in [0, 1].
        labels: integer ``(N,)`` requested classes in 0..9.
        classifier: a :class:`DigitClassifier` (default: the shipped one).

    Returns:
        Accuracy in [0, 1].

    Raises:
        ValueError: on a wrong shape, range or dtype of ``images01`` or ``labels``.

    Example:
        >>> from inertia.data.digits import load_digits_rgb, to_unit_range
        >>> real = load_digits_rgb("holdout")
        >>> class_accuracy(to_unit_range(real.images), real.labels) > 0.95
        True
    """
    x = _check_images(images01)
    y = _check_labels(labels, x.shape[0])
    return float((predict_digits(x, classifier) == y).double().mean())


# --------------------------------------------------------------------------------------------------------------------
# Frechet distance


def _check_count(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.shape[0] < 2:
        raise ValueError(f"`{name}` must hold at least 2 images for a Fréchet distance, got {x.shape[0]}.")
    return x


@functools.lru_cache(maxsize=4)
def _holdout_unit(seed: int, augmentations_per_image: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from inertia.data.digits import load_digits_rgb, to_unit_range

    split = load_digits_rgb(
        "holdout", resolution=RESOLUTION, seed=seed, augmentations_per_image=augmentations_per_image
    )
    return to_unit_range(split.images), split.labels, split.source_index


def _real_holdout(seed: int = 0, augmentations_per_image: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Held-out real images in [0, 1], labels and source indices (cached; do not mutate)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    return _holdout_unit(int(seed), augmentations_per_image)


@functools.lru_cache(maxsize=1)
def _shipped_holdout_features(model: DigitClassifier) -> torch.Tensor:
    return _run(model, _real_holdout()[0], "features")


def _holdout_features(model: DigitClassifier) -> torch.Tensor:
    """Features of the default held-out reference (cached for the shipped, shared classifier)."""
    if model is load_digit_classifier():
        return _shipped_holdout_features(model)
    return _run(model, _real_holdout()[0], "features")


def fd_digits(
    images01: torch.Tensor,
    reference_images01: torch.Tensor | None = None,
    classifier: DigitClassifier | None = None,
) -> float:
    """FD-digits: Fréchet distance in the classifier's penultimate feature space between images and real ones.

    Compare with :func:`real_fd_baseline` (the FD between two halves of the real data); like FID, the value is biased
    upwards at small sample sizes, so compare numbers computed on the same number of images (>= a few hundred).

    Args:
        images01: float ``(N, 3, 16, 16)`` in [0, 1], ``N >= 2``.
        reference_images01: float ``(M, 3, 16, 16)`` in [0, 1], ``M >= 2``; default: the held-out real split
            (seed 0, 4 augmentations per source image: 1,436 images), which no model or classifier trained on.
        classifier: a :class:`DigitClassifier` (default: the shipped one).

    Returns:
        The distance (>= 0).

    Raises:
        ValueError: on a wrong shape, dtype or range, or fewer than 2 images.

    Example:
        >>> from inertia.data.digits import load_digits_rgb, to_unit_range
        >>> train = to_unit_range(load_digits_rgb("train").images)
        >>> fd_digits(train) < fd_digits(torch.rand(500, 3, 16, 16))
        True
    """
    x = _check_count(_check_images(images01), "images01")
    ref = None
    if reference_images01 is not None:
        ref = _check_count(_check_images(reference_images01, "reference_images01"), "reference_images01")
    model = _resolve(classifier)
    ref_features = _holdout_features(model) if ref is None else _run(model, ref, "features")
    return frechet_distance(_run(model, x, "features"), ref_features)


def real_fd_baseline(seed: int = 0, classifier: DigitClassifier | None = None) -> float:
    """FD-digits between two disjoint halves of the real held-out images, split by source image.

    The yardstick for :func:`fd_digits`: "FD-digits at most 5x the FD between two disjoint halves of real data".
    The held-out split (4 augmentations per source image, 1,436 images) is cut into two halves of source images
    (stratified by label, shuffled by ``seed``), so no source digit appears in both. Each half has ~718 images: compare
    with :func:`fd_digits` computed on a similar number of generated images.

    Args:
        seed: non-negative integer; shuffles the halves (the held-out data itself is always seed 0).
        classifier: a :class:`DigitClassifier` (default: the shipped one).

    Returns:
        The distance (> 0).

    Raises:
        ValueError: if ``seed`` is not a non-negative integer.

    Example:
        >>> real_fd_baseline() > 0
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    _, labels, source = _real_holdout()
    gen = torch.Generator().manual_seed(int(seed))
    first = []
    for cls in range(NUM_CLASSES):
        sources = torch.unique(source[labels == cls])
        sources = sources[torch.randperm(sources.numel(), generator=gen)]
        first.append(sources[: sources.numel() // 2])
    in_first = torch.isin(source, torch.cat(first))
    features = _holdout_features(_resolve(classifier))
    return frechet_distance(features[in_first], features[~in_first])


# --------------------------------------------------------------------------------------------------------------------
# Colour statistics


def colour_stats(images01: torch.Tensor) -> dict[str, float]:
    """Colour statistics of images: mean HSV saturation and value, and the fraction of clipped channel values.

    * ``mean_saturation``: mean over pixels of HSV ``S = (max - min) / max`` over the RGB channels (0 where
      ``max == 0``). Guidance that oversaturates pushes it up.
    * ``mean_value``: mean over pixels of HSV ``V = max`` over the RGB channels.
    * ``clipped_fraction``: fraction of channel values at the ends of the range after uint8 quantisation:
      ``round(255 * x)`` in {0, 1, 254, 255}, i.e. ``x <= 1/255`` or ``x >= 254/255`` (:data:`CLIP_LEVELS`).

    Args:
        images01: float ``(N, 3, H, W)`` in [0, 1], any size.

    Returns:
        ``{"mean_saturation": ..., "mean_value": ..., "clipped_fraction": ...}``.

    Raises:
        ValueError: on a wrong shape or dtype, or values outside [0, 1].

    Example:
        >>> grey = torch.full((2, 3, 4, 4), 0.5)
        >>> colour_stats(grey)
        {'mean_saturation': 0.0, 'mean_value': 0.5, 'clipped_fraction': 0.0}
    """
    x = _check_images(images01, fixed_size=False).double()
    vmax = x.amax(dim=1)
    vmin = x.amin(dim=1)
    sat = torch.where(vmax > 0, (vmax - vmin) / vmax.clamp_min(1e-12), torch.zeros_like(vmax))
    levels = (x * 255).round()
    clipped = (levels <= CLIP_LEVELS[0]) | (levels >= CLIP_LEVELS[1])
    return {
        "mean_saturation": float(sat.mean()),
        "mean_value": float(vmax.mean()),
        "clipped_fraction": float(clipped.double().mean()),
    }


def real_colour_stats(seed: int = 0) -> dict[str, float]:
    """:func:`colour_stats` of the real held-out images (4 augmentations per source image), the reference.

    Args:
        seed: non-negative integer seed of the held-out data.

    Returns:
        The same keys as :func:`colour_stats`.

    Raises:
        ValueError: if ``seed`` is not a non-negative integer.

    Example:
        >>> stats = real_colour_stats()
        >>> sorted(stats), 0 < stats["mean_saturation"] < 1
        (['clipped_fraction', 'mean_saturation', 'mean_value'], True)
    """
    return colour_stats(_real_holdout(seed)[0])
