"""Frechet distance between two feature sets (the FID formula, on any feature extractor's activations).

    FD = ||μ_a − μ_b||² + Tr(Σ_a + Σ_b − 2·(Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2})

computed in float64 with eigen-based symmetric square roots, so the result is real and never negative.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["frechet_distance"]


def _as_features(features: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (n_samples, n_features), got shape {arr.shape}.")
    if arr.shape[0] < 2:
        raise ValueError(f"`{name}` must have at least 2 samples to estimate a covariance, got {arr.shape[0]}.")
    if arr.shape[1] < 1:
        raise ValueError(f"`{name}` must have at least 1 feature, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` must be finite, got NaN or inf.")
    return arr


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((matrix + matrix.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula), in float64.

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, with unbiased covariances. The matrix square
    root is taken by symmetric eigendecompositions, so it is real and the result symmetric in its arguments up to
    rounding; tiny negative results from rounding are clipped to 0.

    Args:
        features_a: ``(n_a, D)`` features, ``n_a >= 2``.
        features_b: ``(n_b, D)`` features, ``n_b >= 2``, same ``D``.

    Returns:
        The distance (>= 0).

    Raises:
        ValueError: if an input is not 2-D, has fewer than 2 samples or non-finite values, or the dims differ.

    Example:
        >>> a = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
        >>> round(frechet_distance(a, a), 6)
        0.0
        >>> round(frechet_distance(a, a + 2.0), 6)  # ||mu_a - mu_b||^2 = 4 * 2**2
        16.0
    """
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"`features_a` and `features_b` must have the same feature dim, got {a.shape[1]} and {b.shape[1]}."
        )
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    cross = _sqrt_psd(root_a @ cov_b @ root_a)
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(cross))
    return max(fd, 0.0)
