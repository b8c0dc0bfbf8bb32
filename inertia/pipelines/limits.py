"""What the products (CLI, UI) accept, checked without importing torch, diffusers or transformers.

Every check here runs before a model is loaded, so a bad argument is answered at once with a message that names the
parameter, its value and the valid range.

Number ranges are checked with :func:`inertia.core.validation.check_range` against the limits here.

Example:
    >>> check_device_name("cuda:1")
    'cuda:1'
    >>> check_device_name("gpu")
    Traceback (most recent call last):
    ...
    ValueError: --device must be cpu, cuda, cuda:N or mps, got 'gpu'.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from inertia.core.validation import shown

__all__ = [
    "DIGITS_MODEL_ENV",
    "EMBEDDED_DIGITS_MODELS",
    "MAX_BATCH",
    "MAX_IMAGE_SIDE",
    "MAX_SEED",
    "MAX_STEPS",
    "ModelLoadError",
    "check_device_name",
    "check_image_model_name",
    "check_text_model_name",
    "default_digits_model",
    "embedded_digits_folder",
    "is_digits_model",
    "pipeline_class_name",
]

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
EMBEDDED_DIGITS_MODELS: dict[str, str] = {"digits": "digits32"}
"""The embedded digits models by name: their folders under ``inertia/models`` (``digits``: 32x32). The earlier
16x16 model is no longer shipped; it is the test suite's fixture (``tests/fixtures/digits16``), loaded by path."""
DIGITS_MODEL_ENV = "INERTIA_DIGITS_MODEL"
"""Environment variable naming the digits model used when none is given: an embedded model's name or a
`DigitsPipeline` folder (``digits`` when unset)."""


def _digits_folder(name: str, source: str) -> Path:
    if name in EMBEDDED_DIGITS_MODELS:
        return MODELS_DIR / EMBEDDED_DIGITS_MODELS[name]
    folder = Path(name).expanduser()
    if (folder / "model_index.json").is_file():
        return folder
    raise ValueError(
        f"{source}={name!r} is neither an embedded digits model ({', '.join(EMBEDDED_DIGITS_MODELS)}) nor a "
        "DigitsPipeline folder (a folder with model_index.json)."
    )


def default_digits_model() -> str:
    """The digits model used when none is named: ``$INERTIA_DIGITS_MODEL``, else ``"digits"``.

    Raises:
        ValueError: the variable names neither an embedded model nor a pipeline folder.
    """
    name = os.environ.get(DIGITS_MODEL_ENV, "").strip() or "digits"
    _digits_folder(name, DIGITS_MODEL_ENV)
    return name


def embedded_digits_folder(name: str | None = None) -> Path:
    """The folder of the digits model ``name``: an embedded model's name or a `DigitsPipeline` folder (None:
    :func:`default_digits_model`).

    Example:
        >>> embedded_digits_folder("digits").name
        'digits32'
    """
    return _digits_folder(default_digits_model() if name is None else name, "`name`")


MAX_STEPS = 200
"""Most denoising steps the UI and the CLI accept (the papers' methods are about 5-50 steps)."""
MAX_SEED = 2**31 - 1
"""Largest seed the UI and the CLI accept."""
MAX_BATCH = 8
"""Most images per UI request."""
MAX_IMAGE_SIDE = 4096
"""Largest ``--height`` / ``--width`` for a text-to-image model."""
IMAGE_SIDE_MULTIPLE = 8
"""Latent diffusion VAEs downsample by 8: a side must be a multiple of it."""

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class ModelLoadError(OSError):
    """A model could not be loaded (not found locally, not in the Hugging Face cache, and no network).

    Example:
        >>> issubclass(ModelLoadError, OSError)   # what diffusers / transformers raise for a missing model, too
        True
    """


def check_device_name(name: str | None, parameter: str = "--device") -> str | None:
    """Checks the spelling of a device (``cpu``, ``cuda``, ``cuda:N``, ``mps``); availability is checked on use."""
    if name is not None and not _DEVICE.match(name):
        raise ValueError(f"{parameter} must be cpu, cuda, cuda:N or mps, got {name!r}.")
    return name


def pipeline_class_name(folder: Path) -> str | None:
    """The ``_class_name`` of a saved pipeline folder's ``model_index.json``, or None if unreadable."""
    try:
        return json.loads((folder / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None  # diffusers reports an unreadable index itself


def check_image_model_name(name_or_path: str | Path | None) -> Path | str | None:
    """Checks what :func:`inertia.pipelines.load_image_pipeline` is given, without loading anything.

    Returns:
        None for the default embedded model (:func:`default_digits_model`), the folder as a ``Path`` for a named
        embedded model (``"digits"``) or a local folder, or the hub id as a string.

    Raises:
        ValueError: a local path without a ``model_index.json``, or a name that is neither a folder nor a hub id of
            the form ``owner/name``; ``$INERTIA_DIGITS_MODEL`` naming no embedded model.
    """
    if name_or_path is None:
        default_digits_model()  # a bad environment variable is answered before anything loads
        return None
    if str(name_or_path) in EMBEDDED_DIGITS_MODELS:
        return embedded_digits_folder(str(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"`name_or_path`={str(name_or_path)!r} is a local path without a model_index.json; give a directory "
                "saved with `pipe.save_pretrained(...)` or a hub id such as 'owner/name'."
            )
        return path
    text = str(name_or_path)
    parts = text.split("/")
    if len(parts) != 2 or not all(parts) or text.startswith((".", "/", "~")):
        raise ValueError(
            f"`name_or_path`={text!r} is neither an existing directory nor a hub id of the form 'owner/name'."
        )
    return text


def is_digits_model(name_or_path: str | Path | None) -> bool:
    """True for the embedded digits model and for a saved `DigitsPipeline` folder (a user's own trained model)."""
    checked = check_image_model_name(name_or_path)
    return checked is None or (isinstance(checked, Path) and pipeline_class_name(checked) == "DigitsPipeline")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
"""Files of which a text model folder has at least one (transformers' tokenizer formats)."""


def check_text_model_name(name_or_path: str | Path | None, parameter: str = "name_or_path") -> Path | str | None:
    """Checks what :func:`inertia.pipelines.load_text_model` is given, without loading anything.

    Returns:
        None for the embedded model, an existing local folder or ``.gguf`` file as a ``Path``, or a hub id string.

    Raises:
        FileNotFoundError: a local-looking path (``./``, ``/``, ``~``, ``*.gguf``, or more than one ``/``) that does
            not exist.
        ValueError: an existing file that is not a ``.gguf`` file, or a folder that is not a saved model (no
            ``config.json``, or no tokenizer file).
    """
    if name_or_path is None:
        return None
    name = shown(parameter)
    source = Path(name_or_path).expanduser()
    if source.exists():
        if source.is_file() and source.suffix != ".gguf":
            raise ValueError(f"{name} must be a folder, a .gguf file or a Hub id, got the file {source}.")
        if source.is_dir():
            saved = "give a folder saved with `save_pretrained` (config.json, weights, tokenizer files), a .gguf file"
            if not (source / "config.json").is_file():
                raise ValueError(
                    f"{name}={str(name_or_path)!r} is a folder without a config.json: {saved} or a hub id."
                )
            if not any((source / file).is_file() for file in TOKENIZER_FILES):
                raise ValueError(
                    f"{name}={str(name_or_path)!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the "
                    "tokenizer into the folder too (`tokenizer.save_pretrained(folder)`)."
                )
        return source
    text = str(name_or_path)
    if text.startswith((".", "/", "~")) or text.endswith(".gguf") or text.count("/") > 1 or not text.strip():
        raise FileNotFoundError(f"{name}={text!r} does not exist.")
    return text
