"""Loading a GGUF file into a ``llama_cpp.Llama`` the way the decoding generators expect it: quiet, a context long
enough for prompt plus new tokens, on the CPU or with every layer on the GPU.

Example:
    >>> from inertia.adapters.llama_cpp.loading import load_llama
    >>> # llm = load_llama("SmolLM2-135M-Instruct.Q4_1.gguf", device="cpu", n_threads=1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inertia.adapters.llama_cpp.availability import require_llama_cpp
from inertia.core.validation import check_int

__all__ = ["DEFAULT_N_CTX", "load_llama"]

DEFAULT_N_CTX = 8192
"""Context in tokens (prompt plus new tokens): SmolLM2's training context."""


def load_llama(
    path: str | Path, device: str | None = None, n_threads: int | None = None, n_ctx: int = DEFAULT_N_CTX
) -> Any:
    """A ``llama_cpp.Llama`` on the GGUF file ``path``, with llama.cpp's logging off.

    Args:
        path: a ``.gguf`` file.
        device: ``None``: every layer on the GPU when this llama-cpp-python build supports it, else the CPU;
            ``"cpu"``; ``"cuda"`` / ``"cuda:N"`` (an error when the build has no GPU support).
        n_threads: threads for generation (``None``: llama-cpp-python's default, half the cores).
        n_ctx: the context in tokens, >= 1.

    Raises:
        LlamaCppNotInstalledError: llama-cpp-python is missing.
        FileNotFoundError: ``path`` is not a file.
        ValueError: CUDA asked of a build without GPU support, a device other than cpu/cuda, or an invalid number.
    """
    require_llama_cpp()
    if device is not None and device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"`device` must be None, 'cpu' or 'cuda' for llama.cpp, got {device!r}.")
    if n_threads is not None:
        check_int("n_threads", n_threads, 1)
    check_int("n_ctx", n_ctx, 1)
    source = Path(path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"the GGUF file {str(path)!r} does not exist.")
    import llama_cpp

    offload = bool(llama_cpp.llama_supports_gpu_offload())
    if device is not None and device.startswith("cuda") and not offload:
        raise ValueError(
            f"`device`={device!r}: this llama-cpp-python build has no GPU support (rebuild it with "
            'CMAKE_ARGS="-DGGML_CUDA=on"); use the CPU.'
        )
    layers = -1 if offload and device != "cpu" else 0
    return llama_cpp.Llama(
        model_path=str(source), n_ctx=n_ctx, n_gpu_layers=layers, n_threads=n_threads, verbose=False
    )
