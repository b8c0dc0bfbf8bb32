"""Metrics that need no downloaded weights.

Example:
    >>> import torch
    >>> from inertia.metrics import magnitude_score
    >>> magnitude_score(torch.zeros(1, 4, 8, 8))
    0.0
"""

from .divergence import SD_LATENT_MEAN, SD_LATENT_STD, magnitude_score

__all__ = ["SD_LATENT_MEAN", "SD_LATENT_STD", "magnitude_score"]
