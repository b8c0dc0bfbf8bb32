"""Loading an image pipeline: the embedded digits model by default, or any diffusers pipeline by path or hub id.

Example:
    >>> from inertia.pipelines import load_image_pipeline
    >>> pipe = load_image_pipeline(device="cpu")
    >>> type(pipe).__name__
    'DigitsPipeline'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .loading import _resolve_device, load_digits_pipeline

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {_DTYPES} or None, got {dtype!r}.")


def _class_name(folder: Path) -> str | None:
    try:
        return json.loads((folder / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None  # diffusers reports an unreadable index itself


def load_image_pipeline(
    name_or_path: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Any:
    """Loads an image pipeline ready to sample.

    Args:
        name_or_path: None (or ``"digits"``) for the embedded `DigitsPipeline` (no download); a local directory
            saved with ``save_pretrained``; or a hub id such as ``"stabilityai/stable-diffusion-xl-base-1.0"``
            (needs internet or a local Hugging Face cache). Remote code is never trusted.
        device: None picks CUDA when available, else the CPU.
        dtype: None gives float16 on CUDA and float32 on the CPU.

    Returns:
        The pipeline, on ``device``, with its progress bar left on.

    Raises:
        ValueError: an invalid device or dtype, or a ``name_or_path`` that is neither an existing directory with a
            ``model_index.json`` nor a hub id of the form ``owner/name``.
    """
    _check_dtype(dtype)
    if name_or_path is None or str(name_or_path) == "digits":
        return load_digits_pipeline(device=device, dtype=dtype)
    resolved = _resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if resolved.type == "cuda" else torch.float32
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"`name_or_path`={str(name_or_path)!r} is a local path without a model_index.json; give a directory "
                "saved with `pipe.save_pretrained(...)` or a hub id such as 'owner/name'."
            )
        if _class_name(path) == "DigitsPipeline":  # diffusers' generic loader looks the class up in diffusers itself
            return load_digits_pipeline(device=resolved, dtype=dtype, path=path)
        source = str(path)
    else:
        text = str(name_or_path)
        parts = text.split("/")
        if len(parts) != 2 or not all(parts) or text.startswith((".", "/", "~")):
            raise ValueError(
                f"`name_or_path`={text!r} is neither an existing directory nor a hub id of the form 'owner/name'."
            )
        source = text
    from diffusers import DiffusionPipeline

    import inertia.pipelines.digits  # noqa: F401  (saved DigitsPipelines name their classes by module path)

    pipe = DiffusionPipeline.from_pretrained(source, dtype=dtype, trust_remote_code=False)
    return pipe.to(resolved)
