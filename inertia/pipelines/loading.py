"""Loading the embedded digits model that ships inside the package (no download).

Example:
    >>> from inertia.pipelines import load_digits_pipeline
    >>> pipe = load_digits_pipeline()  # doctest: +SKIP
    >>> images = pipe([3, 7], num_inference_steps=20, guidance_scale=3.0).images  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from inertia.pipelines.limits import embedded_digits_folder

if TYPE_CHECKING:
    from inertia.pipelines.digits import DigitsPipeline

__all__ = ["EMBEDDED_DIGITS_DIR", "EmbeddedWeightsNotFoundError", "load_digits_pipeline"]

EMBEDDED_DIGITS_DIR = embedded_digits_folder("digits")
"""Where the shipped 32x32 `DigitsPipeline` (unet + scheduler, safetensors) lives inside the package."""

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class EmbeddedWeightsNotFoundError(FileNotFoundError):
    """The embedded model's files are missing from the installed package.

    Example:
        >>> issubclass(EmbeddedWeightsNotFoundError, FileNotFoundError)   # catch it as a missing file
        True
    """


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"`device` must be a torch device such as 'cpu' or 'cuda', got {device!r}.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device`={device!r} was requested but CUDA is not available; use 'cpu' or None.")
    return resolved


def load_digits_pipeline(
    device: str | torch.device | None = None, dtype: torch.dtype | None = None, path: str | Path | None = None
) -> DigitsPipeline:
    """Loads the embedded class-conditional digits model as a `DigitsPipeline`.

    Args:
        device: where to run; None picks CUDA when available, else the CPU.
        dtype: ``torch.float32`` (default on CPU), ``torch.float16`` (default on CUDA) or ``torch.bfloat16``.
        path: another saved `DigitsPipeline` directory; None: the default embedded model (``$INERTIA_DIGITS_MODEL``
            or ``"digits"``, the 32x32 one; see :data:`~inertia.pipelines.limits.EMBEDDED_DIGITS_MODELS`).

    Returns:
        The pipeline on ``device`` in ``dtype``.

    Raises:
        ValueError: on an unknown dtype, an invalid device or CUDA requested without CUDA.
        EmbeddedWeightsNotFoundError: when the files are missing (it names the path and the training command).
    """
    resolved = resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if resolved.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {_DTYPES}, got {dtype!r}.")
    folder = Path(path) if path is not None else embedded_digits_folder()
    for required in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"):
        if not (folder / required).is_file():
            raise EmbeddedWeightsNotFoundError(
                f"{folder / required} is missing: the embedded digits model is not installed. Train it with "
                "`inertia-train --preconditioning vp --model-size small-32 --resolution 32 --output-dir runs/vp` "
                "(its model card gives the full command) and copy runs/vp/pipeline here, or pass `path=` to a saved "
                "DigitsPipeline."
            )
    from inertia.core.presets.models import read_model_presets
    from inertia.pipelines.digits import DigitsPipeline

    presets = read_model_presets(folder)  # checked before the weights load
    pipe = DigitsPipeline.from_pretrained(folder, dtype=dtype)  # dtype at load: no float32-module warning
    pipe.inertia_presets = presets  # the model's tuned preset settings, used by configure()
    return pipe.to(device=resolved)
