"""Finding a pipeline's denoiser: one implementation for the guidance hook and the attention hooks.

Example:
    >>> import torch
    >>> find_denoiser(type("Pipe", (), {"unet": torch.nn.Linear(2, 2)})())
    Linear(in_features=2, out_features=2, bias=True)
    >>> denoiser, pipeline = resolve_denoiser(torch.nn.Linear(2, 2))
    >>> pipeline is None
    True
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DiffusionPipeline

__all__ = ["DENOISER_NAMES", "find_denoiser", "is_pipeline", "resolve_denoiser"]

DENOISER_NAMES = ("unet", "transformer")
"""The pipeline attributes that hold the denoiser, in the order they are looked up."""


def find_denoiser(pipe: Any, name: str = "pipe") -> torch.nn.Module:
    """``pipe.unet`` or ``pipe.transformer``; a ``ValueError`` naming the parameter ``name`` and the pipeline class
    otherwise."""
    for attribute in DENOISER_NAMES:
        module = getattr(pipe, attribute, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ValueError(
        f"`{name}` must be a diffusers pipeline with a `unet` or `transformer` denoiser, got {type(pipe).__name__} "
        "without one."
    )


def is_pipeline(value: Any) -> bool:
    """A classic `DiffusionPipeline` or a modular one (``ModularPipeline``: components as attributes)."""
    if isinstance(value, DiffusionPipeline):
        return True
    return any(c.__name__ == "ModularPipeline" for c in type(value).__mro__)


def resolve_denoiser(pipe_or_denoiser: Any, name: str = "pipe_or_denoiser") -> tuple[torch.nn.Module, Any]:
    """``(denoiser, pipeline)`` of a pipeline (classic or modular), or ``(denoiser, None)`` of a bare denoiser."""
    if is_pipeline(pipe_or_denoiser):
        return find_denoiser(pipe_or_denoiser, name), pipe_or_denoiser
    if isinstance(pipe_or_denoiser, torch.nn.Module):
        return pipe_or_denoiser, None
    raise ValueError(
        f"`{name}` must be a diffusers DiffusionPipeline, a ModularPipeline or a denoiser torch.nn.Module, got "
        f"{type(pipe_or_denoiser).__name__}."
    )
