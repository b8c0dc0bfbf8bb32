"""Offline, class-conditional, coloured digits: scikit-learn's 1,797 real 8x8 digits as RGB images at 16x16 or 32x32.

scikit-learn ships the images (``sklearn.datasets.load_digits()``), so nothing is downloaded. Each source image is
resampled to the target resolution with a random sub-pixel shift (up to ±1.5 px at 16x16) and scale (0.85-1.15) in one
bicubic ``grid_sample`` pass, its stroke is thickened or thinned (a soft 3x3 dilation/erosion and a gamma on the
intensity), and the intensity is used to blend a background colour into a foreground colour, both drawn from
:data:`PALETTE` with a clear luminance contrast. Colour matters: it is what guidance oversaturates.

Everything is deterministic from the seed: the train/holdout split is made on the 1,797 *source* images (stratified by
label), so no source image appears in both splits, and the same arguments give bit-identical tensors. Images are
float32 in [-1, 1] (the diffusion-model convention); :func:`to_unit_range` and :func:`to_uint8_images` convert them for
display and metrics.

Example:
    >>> from inertia.data.digits import load_digits_rgb
    >>> holdout = load_digits_rgb("holdout", seed=0)
    >>> tuple(holdout.images.shape[1:]), holdout.images.dtype, len(holdout) == holdout.labels.numel()
    ((3, 16, 16), torch.float32, True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = [
    "BACKGROUND_COLOURS",
    "FOREGROUND_COLOURS",
    "NUM_CLASSES",
    "PALETTE",
    "DigitsDataset",
    "DigitsSplit",
    "PaletteColour",
    "load_digits_rgb",
    "palette_rgb",
    "to_uint8_images",
    "to_unit_range",
]

NUM_CLASSES = 10
"""Number of digit classes (labels 0..9)."""

SPLITS = ("train", "holdout")
RESOLUTIONS = (16, 32)

MAX_SHIFT_PX = 1.5
"""Largest random shift, in pixels at 16x16 (scaled with the resolution: ±3 px at 32x32)."""
SCALE_RANGE = (0.85, 1.15)
"""Range of the random zoom factor (uniform)."""
STROKE_RANGE = (-0.5, 0.5)
"""Soft erosion (< 0) / dilation (> 0) strength: the blend weight towards a 3x3 (5x5 at 32x32) min/max filter."""
GAMMA_RANGE = (0.7, 1.4)
"""Range of the intensity gamma (log-uniform): < 1 fattens the stroke, > 1 thins it."""
MIN_LUMA_CONTRAST = 0.25
"""Smallest luma difference (Rec. 601 on sRGB values) allowed between a foreground and a background colour."""


class PaletteColour(NamedTuple):
    """One named palette entry: ``rgb`` floats in [0, 1] and its ``role`` ("foreground" or "background").

    Example:
        >>> PALETTE[0]
        PaletteColour(name='red', rgb=(0.9, 0.12, 0.12), role='foreground')
    """

    name: str
    rgb: tuple[float, float, float]
    role: Literal["foreground", "background"]


PALETTE: tuple[PaletteColour, ...] = (
    # Foreground candidates: saturated, mid-to-high luminance.
    PaletteColour("red", (0.90, 0.12, 0.12), "foreground"),
    PaletteColour("orange", (0.98, 0.55, 0.08), "foreground"),
    PaletteColour("yellow", (0.98, 0.86, 0.10), "foreground"),
    PaletteColour("green", (0.15, 0.75, 0.20), "foreground"),
    PaletteColour("teal", (0.05, 0.70, 0.68), "foreground"),
    PaletteColour("blue", (0.15, 0.35, 0.95), "foreground"),
    PaletteColour("purple", (0.58, 0.20, 0.88), "foreground"),
    PaletteColour("pink", (0.96, 0.35, 0.70), "foreground"),
    # Background candidates: three dark tinted colours and two pale ones.
    PaletteColour("navy", (0.04, 0.05, 0.20), "background"),
    PaletteColour("aubergine", (0.20, 0.04, 0.14), "background"),
    PaletteColour("forest", (0.03, 0.18, 0.08), "background"),
    PaletteColour("cream", (0.99, 0.95, 0.82), "background"),
    PaletteColour("ice", (0.85, 0.93, 1.00), "background"),
)
"""The fixed palette. Entries with ``role == "foreground"`` colour the digit, ``"background"`` ones the canvas; a
foreground/background pair is only used when their luma differs by at least :data:`MIN_LUMA_CONTRAST` (so yellow never
goes on cream or ice, red and blue never on forest)."""

FOREGROUND_COLOURS: tuple[int, ...] = tuple(i for i, c in enumerate(PALETTE) if c.role == "foreground")
"""Indices into :data:`PALETTE` of the foreground candidates."""
BACKGROUND_COLOURS: tuple[int, ...] = tuple(i for i, c in enumerate(PALETTE) if c.role == "background")
"""Indices into :data:`PALETTE` of the background candidates."""


def palette_rgb() -> torch.Tensor:
    """The palette as a float32 ``(len(PALETTE), 3)`` tensor in [0, 1], in :data:`PALETTE` order.

    Example:
        >>> palette_rgb().shape
        torch.Size([13, 3])
    """
    return torch.tensor([c.rgb for c in PALETTE], dtype=torch.float32)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype)


def _valid_pairs() -> torch.Tensor:
    """Bool ``(n_foreground, n_background)``: which pairs have enough luma contrast."""
    rgb = palette_rgb()
    luma = _luma(rgb)
    fg = luma[list(FOREGROUND_COLOURS)]
    bg = luma[list(BACKGROUND_COLOURS)]
    return (fg[:, None] - bg[None, :]).abs() >= MIN_LUMA_CONTRAST


@dataclass
class DigitsSplit:
    """One split of the coloured digits.

    Attributes:
        images: float32 ``(N, 3, R, R)`` in [-1, 1].
        labels: int64 ``(N,)`` digit classes 0..9.
        source_index: int64 ``(N,)`` index of the source image in ``sklearn.datasets.load_digits()``.
        foreground_index: int64 ``(N,)`` index into :data:`PALETTE` of the digit colour.
        background_index: int64 ``(N,)`` index into :data:`PALETTE` of the canvas colour.

    Example:
        >>> split = load_digits_rgb("holdout", seed=0)
        >>> len(split) == split.labels.numel() == split.images.shape[0]
        True
        >>> PALETTE[int(split.foreground_index[0])].role, PALETTE[int(split.background_index[0])].role
        ('foreground', 'background')
    """

    images: torch.Tensor
    labels: torch.Tensor
    source_index: torch.Tensor
    foreground_index: torch.Tensor
    background_index: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())


@functools.lru_cache(maxsize=1)
def _source_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 sklearn digits as float32 ``(N, 1, 8, 8)`` in [0, 1] and int64 labels (cached; do not mutate)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The digits data set needs scikit-learn (it ships the images): `pip install inertia[train]`."
        ) from err
    digits = load_digits()
    images = torch.from_numpy(np.asarray(digits.images, dtype=np.float32) / 16.0).unsqueeze(1).contiguous()
    labels = torch.from_numpy(np.asarray(digits.target, dtype=np.int64))
    return images, labels


def _mix_seed(*words: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers (one independent stream per tuple)."""
    state = np.random.SeedSequence(list(words)).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def _generator(*words: int) -> torch.Generator:
    return torch.Generator().manual_seed(_mix_seed(*words))


_STREAM_SPLIT, _STREAM_AUGMENT, _STREAM_ON_THE_FLY = 0, 1, 2


def _split_indices(labels: torch.Tensor, seed: int, holdout_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified split of the source indices: ``(train, holdout)``, each sorted; every class lands in both."""
    gen = _generator(seed, _STREAM_SPLIT)
    train, holdout = [], []
    for cls in range(NUM_CLASSES):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_holdout = min(max(round(holdout_fraction * idx.numel()), 1), idx.numel() - 1)
        holdout.append(idx[:n_holdout])
        train.append(idx[n_holdout:])
    return torch.cat(train).sort().values, torch.cat(holdout).sort().values


def _augment(
    sources: torch.Tensor, resolution: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment and colour ``(M, 1, 8, 8)`` intensities: ``(images (M, 3, R, R) in [-1, 1], fg index, bg index)``."""
    m = sources.shape[0]
    u = torch.rand(m, 5, generator=generator)
    # Geometry: zoom by `scale` about the centre, then shift; in normalised [-1, 1] coordinates.
    shift = (u[:, 0:2] * 2 - 1) * (MAX_SHIFT_PX * 2 / 16)
    scale = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * u[:, 2]
    theta = torch.zeros(m, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = -shift / scale[:, None]
    grid = F.affine_grid(theta, [m, 1, resolution, resolution], align_corners=False)
    x = F.grid_sample(sources, grid, mode="bicubic", padding_mode="zeros", align_corners=False).clamp_(0, 1)
    # Stroke width: blend towards a dilation (t > 0) or an erosion (t < 0).
    t = (STROKE_RANGE[0] + (STROKE_RANGE[1] - STROKE_RANGE[0]) * u[:, 3]).view(m, 1, 1, 1)
    k = 2 * (resolution // 16) + 1
    dilated = F.max_pool2d(x, k, stride=1, padding=k // 2)
    eroded = -F.max_pool2d(-x, k, stride=1, padding=k // 2)
    x = x + t.clamp(min=0) * (dilated - x) + (-t).clamp(min=0) * (eroded - x)
    # Full contrast (the stroke reaches the foreground colour exactly), then the gamma.
    x = x / x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    log_g = torch.tensor(GAMMA_RANGE).log()
    gamma = (log_g[0] + (log_g[1] - log_g[0]) * u[:, 4]).exp().view(m, 1, 1, 1)
    x = x.clamp(0, 1).pow(gamma)
    # Colours: a uniform foreground, then a uniform background among those with enough contrast to it.
    fg_pos = torch.randint(len(FOREGROUND_COLOURS), (m,), generator=generator)
    bg_pos = torch.multinomial(_valid_pairs()[fg_pos].float(), 1, generator=generator).squeeze(1)
    fg_index = torch.tensor(FOREGROUND_COLOURS)[fg_pos]
    bg_index = torch.tensor(BACKGROUND_COLOURS)[bg_pos]
    rgb = palette_rgb()
    fg = rgb[fg_index].view(m, 3, 1, 1)
    bg = rgb[bg_index].view(m, 3, 1, 1)
    images = (bg + x * (fg - bg)) * 2 - 1
    return images.clamp_(-1, 1).contiguous(), fg_index, bg_index


def _check_args(split: str, resolution: int, seed: int, augmentations_per_image: int, holdout_fraction: float) -> None:
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer) or resolution not in RESOLUTIONS:
        raise ValueError(f"`resolution` must be one of {RESOLUTIONS}, got {resolution!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    if isinstance(augmentations_per_image, bool) or not isinstance(augmentations_per_image, int | np.integer):
        raise ValueError(f"`augmentations_per_image` must be an integer >= 1, got {augmentations_per_image!r}.")
    if augmentations_per_image < 1:
        raise ValueError(f"`augmentations_per_image` must be an integer >= 1, got {augmentations_per_image!r}.")
    if not isinstance(holdout_fraction, int | float) or not 0.0 < float(holdout_fraction) < 1.0:
        raise ValueError(f"`holdout_fraction` must be in the open interval (0, 1), got {holdout_fraction!r}.")


def _split_sources(split: str, seed: int, holdout_fraction: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(source images (n, 1, 8, 8), labels (n,), source indices (n,))`` of one split."""
    images, labels = _source_digits()
    train, holdout = _split_indices(labels, int(seed), float(holdout_fraction))
    index = train if split == "train" else holdout
    return images[index], labels[index], index


def load_digits_rgb(
    split: str = "train",
    resolution: int = 16,
    seed: int = 0,
    augmentations_per_image: int = 1,
    holdout_fraction: float = 0.2,
) -> DigitsSplit:
    """Build one split of the coloured digits (deterministic: the same arguments give bit-identical tensors).

    The split is made on the 1,797 source images, stratified by label and shuffled by ``seed`` (every class gets at
    least one source image in each split), so it does not depend on ``split``, ``resolution`` or
    ``augmentations_per_image``. Each source image of the split yields ``augmentations_per_image`` consecutive
    variants (random shift, scale, stroke width and colours; see the module docstring).

    Args:
        split: ``"train"`` or ``"holdout"``.
        resolution: 16 or 32 (pixels per side).
        seed: non-negative integer seeding the split and the augmentations.
        augmentations_per_image: variants per source image, >= 1.
        holdout_fraction: share of each class's source images held out, in (0, 1).

    Returns:
        A :class:`DigitsSplit`; ``images`` are float32 ``(N, 3, resolution, resolution)`` in [-1, 1].

    Raises:
        ValueError: on an unknown ``split``, an unsupported ``resolution``, a negative ``seed``,
            ``augmentations_per_image < 1`` or ``holdout_fraction`` outside (0, 1).

    Example:
        >>> train = load_digits_rgb("train", seed=0, augmentations_per_image=2)
        >>> holdout = load_digits_rgb("holdout", seed=0)
        >>> len(train) == 2 * (1797 - len(holdout))
        True
        >>> bool(set(train.source_index.tolist()).isdisjoint(holdout.source_index.tolist()))
        True
    """
    _check_args(split, resolution, seed, augmentations_per_image, holdout_fraction)
    sources, labels, index = _split_sources(split, seed, holdout_fraction)
    reps = int(augmentations_per_image)
    sources = sources.repeat_interleave(reps, dim=0)
    gen = _generator(int(seed), _STREAM_AUGMENT, SPLITS.index(split))
    images, fg_index, bg_index = _augment(sources, int(resolution), gen)
    return DigitsSplit(
        images=images,
        labels=labels.repeat_interleave(reps),
        source_index=index.repeat_interleave(reps),
        foreground_index=fg_index,
        background_index=bg_index,
    )


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to [0, 1] (clamped).

    Example:
        >>> to_unit_range(torch.tensor([-1.0, 0.0, 1.0, 3.0])).tolist()
        [0.0, 0.5, 1.0, 1.0]
    """
    return ((x + 1) / 2).clamp(0, 1)


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """Convert ``(N, 3, H, W)`` (or one ``(3, H, W)``) images in [-1, 1] to a uint8 ``(N, H, W, 3)`` array.

    Raises:
        ValueError: if ``x`` is not 3-D or 4-D with 3 channels.

    Example:
        >>> to_uint8_images(torch.zeros(2, 3, 4, 4)).shape
        (2, 4, 4, 3)
    """
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"`x` must be (N, 3, H, W) or (3, H, W), got shape {tuple(x.shape)}.")
    unit = to_unit_range(x.detach().to("cpu", torch.float32))
    return (unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class DigitsDataset(Dataset[tuple[torch.Tensor, int]]):
    """The coloured digits as a ``torch.utils.data.Dataset`` of ``(image (3, R, R) in [-1, 1], label)`` pairs.

    With ``augment_on_the_fly=False`` the split is built once by :func:`load_digits_rgb` (same arguments, same images).
    With ``augment_on_the_fly=True`` every ``__getitem__`` draws a fresh augmentation of the source image from a
    generator seeded by ``(seed, epoch, index)``: deterministic, and different every epoch once :meth:`set_epoch` is
    called (like ``DistributedSampler.set_epoch``; with persistent ``DataLoader`` workers, recreate the loader or keep
    one epoch per worker lifetime, since each worker holds its own copy of the epoch). Either way the length is
    ``n_source_images * augmentations_per_image`` and index ``i`` shows source image ``i // augmentations_per_image``.

    Args:
        split: ``"train"`` or ``"holdout"``.
        resolution: 16 or 32.
        seed: non-negative integer seed of the split and the augmentations.
        augmentations_per_image: variants per source image, >= 1.
        holdout_fraction: share of each class's source images held out, in (0, 1).
        augment_on_the_fly: draw a fresh augmentation per item and epoch instead of a fixed set.

    Example:
        >>> ds = DigitsDataset("holdout", augment_on_the_fly=True, seed=1)
        >>> image, label = ds[0]
        >>> tuple(image.shape), 0 <= label <= 9
        ((3, 16, 16), True)
        >>> torch.equal(ds[0][0], image)
        True
        >>> ds.set_epoch(1)
        >>> torch.equal(ds[0][0], image)
        False
    """

    def __init__(
        self,
        split: str = "train",
        resolution: int = 16,
        seed: int = 0,
        augmentations_per_image: int = 1,
        holdout_fraction: float = 0.2,
        augment_on_the_fly: bool = False,
    ) -> None:
        _check_args(split, resolution, seed, augmentations_per_image, holdout_fraction)
        self.split = split
        self.resolution = int(resolution)
        self.seed = int(seed)
        self.augmentations_per_image = int(augmentations_per_image)
        self.augment_on_the_fly = bool(augment_on_the_fly)
        self.epoch = 0
        self._sources, self._labels, self.source_index = _split_sources(split, self.seed, holdout_fraction)
        self.data: DigitsSplit | None = None
        if not self.augment_on_the_fly:
            self.data = load_digits_rgb(split, resolution, seed, augmentations_per_image, holdout_fraction)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds on-the-fly augmentations (no effect on a fixed set).

        Raises:
            ValueError: if ``epoch`` is not a non-negative integer.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise ValueError(f"`epoch` must be a non-negative integer, got {epoch!r}.")
        self.epoch = int(epoch)

    @property
    def labels(self) -> torch.Tensor:
        """int64 ``(len(self),)`` labels, in index order."""
        return self._labels.repeat_interleave(self.augmentations_per_image)

    def __len__(self) -> int:
        return self._labels.numel() * self.augmentations_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a data set of {n} images.")
        index = index % n
        if self.data is not None:
            return self.data.images[index], int(self.data.labels[index])
        source = index // self.augmentations_per_image
        gen = _generator(self.seed, _STREAM_ON_THE_FLY, SPLITS.index(self.split), self.epoch, index)
        image, _, _ = _augment(self._sources[source : source + 1], self.resolution, gen)
        return image[0], int(self._labels[source])
