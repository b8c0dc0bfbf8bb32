"""Tensor conventions shared by every method: the dtype math runs in, and per-sample values broadcast over a batch.

Example:
    >>> import torch
    >>> compute_dtype(torch.bfloat16), compute_dtype(torch.float64)
    (torch.float32, torch.float64)
    >>> per_sample(torch.tensor([1.0, 2.0]), torch.zeros(2, 3, 4, 4)).shape
    torch.Size([2, 1, 1, 1])
"""

from __future__ import annotations

import torch

__all__ = ["compute_dtype", "per_sample"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to compute (and keep state) in for inputs of ``dtype``: float64 stays float64, everything else
    (float16, bfloat16, float32) is float32; results go back in the caller's dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample values, shape (B,) or (1,), reshaped to (B, 1, 1, …) to broadcast against ``like``."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))
