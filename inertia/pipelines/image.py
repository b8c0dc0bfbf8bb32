"""Loading an image pipeline: the embedded digits model by default, or any diffusers pipeline by path or hub id.

Example:
    >>> from inertia.pipelines import load_image_pipeline
    >>> pipe = load_image_pipeline(device="cpu")
    >>> type(pipe).__name__
    'DigitsPipeline'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inertia.pipelines.limits import ModelLoadError, check_image_model_name, pipeline_class_name
from inertia.pipelines.loading import load_digits_pipeline, resolve_device

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {_DTYPES} or None, got {dtype!r}.")


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
        ModelLoadError: the pipeline could not be loaded (e.g. a hub id while offline and not cached).
    """
    _check_dtype(dtype)
    checked = check_image_model_name(name_or_path)
    if checked is None:
        return load_digits_pipeline(device=device, dtype=dtype)
    resolved = resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if resolved.type == "cuda" else torch.float32
    if isinstance(checked, Path) and pipeline_class_name(checked) == "DigitsPipeline":
        # diffusers' generic loader would look the class up in diffusers itself
        return load_digits_pipeline(device=resolved, dtype=dtype, path=checked)
    from diffusers import DiffusionPipeline

    import inertia.pipelines.digits  # noqa: F401  (saved DigitsPipelines name their classes by module path)
    from inertia.core.presets.models import read_model_presets

    presets = read_model_presets(checked) if isinstance(checked, Path) else None
    try:
        pipe = DiffusionPipeline.from_pretrained(str(checked), dtype=dtype, trust_remote_code=False)
    except OSError as err:  # not on disk, not in the cache, no network (huggingface_hub errors are OSErrors)
        raise ModelLoadError(
            f"could not load the pipeline {str(name_or_path)!r}: {_first_line(err)} (a hub id needs internet or the "
            "Hugging Face cache; a folder needs `save_pretrained` output)"
        ) from err
    if presets is not None:
        pipe.inertia_presets = presets  # a local folder's tuned preset settings (inertia_presets.json), if any
    return pipe.to(resolved)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().replace(" Please check out the root cause in the stacktrace above.", "")
    return text.splitlines()[0] if text else type(err).__name__
