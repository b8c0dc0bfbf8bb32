"""Divergence "magnitude score" of the momentum-sampling paper: how far final latents leave the data range.

Wizadwongsa et al., ICLR 2024 (arXiv 2307.11118) §5.1 and the authors' `metrics.py`: standardise the final
latents per channel, take |·|, the maximum over channels, a 4x4 max-pool, zero the values below τ = 3 (standard
deviations), and take the **mean** (the paper's text says "sum"; the authors' code, which we follow, uses the mean).
It needs no model weights: only latents. The defaults are the paper's COCO statistics of SD 1.x VAE latents (already
multiplied by the VAE's ``scaling_factor``); pass your own ``mean``/``std`` for other latent spaces.

Example:
    >>> import torch
    >>> magnitude_score(torch.zeros(2, 4, 64, 64))
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["SD_LATENT_MEAN", "SD_LATENT_STD", "magnitude_score"]

SD_LATENT_MEAN = (0.14560, -0.10773, 0.02368, 0.04595)
"""Per-channel mean of scaled SD 1.x latents on COCO (the authors' `metrics.py`)."""
SD_LATENT_STD = (0.92208, 1.09139, 0.73026, 0.72271)
"""Per-channel standard deviation of scaled SD 1.x latents on COCO (the authors' `metrics.py`)."""


def magnitude_score(
    latents: torch.Tensor,
    mean: Sequence[float] | torch.Tensor = SD_LATENT_MEAN,
    std: Sequence[float] | torch.Tensor = SD_LATENT_STD,
    tau: float = 3.0,
    kernel_size: int = 4,
) -> float:
    """Mean over samples and pooled cells of the out-of-range magnitude (0 = nothing beyond ``tau`` std).

    Args:
        latents: ``(B, C, H, W)`` final latents (scaled like the statistics).
        mean, std: per-channel statistics, ``C`` values each.
        tau: threshold in standard deviations (the paper's 3).
        kernel_size: max-pool window (the paper's 4, i.e. 64x64 → 16x16).

    Returns:
        The score; samples with non-finite values are left out, and ``nan`` is returned when none is finite.

    Raises:
        ValueError: on a non-4-D input, statistics of the wrong length, a non-positive std, ``tau`` or window.
    """
    if latents.ndim != 4:
        raise ValueError(f"`latents` must be (B, C, H, W), got shape {tuple(latents.shape)}.")
    mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
    channels = latents.shape[1]
    if mean_t.numel() != channels or std_t.numel() != channels:
        raise ValueError(
            f"`mean` and `std` need {channels} values (one per channel), got {mean_t.numel()} and {std_t.numel()}."
        )
    if not bool((std_t > 0).all()):
        raise ValueError(f"`std` must be > 0, got {std_t.tolist()}.")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"`tau` must be a finite number > 0, got {tau!r}.")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"`kernel_size` must be an integer >= 1, got {kernel_size!r}.")
    finite = torch.isfinite(latents.reshape(latents.shape[0], -1)).all(dim=1)
    if not bool(finite.any()):
        return math.nan
    x = latents[finite].to(torch.float64)
    z = ((x - mean_t.to(x.device).view(1, -1, 1, 1)) / std_t.to(x.device).view(1, -1, 1, 1)).abs()
    pooled = F.max_pool2d(z.amax(dim=1, keepdim=True), kernel_size)  # max over channels, then a k x k max-pool
    return float(torch.where(pooled < tau, torch.zeros_like(pooled), pooled).mean())
