"""One llama.cpp SmolLM2 per test process (a fraction of a second to load, but 100+ MB of context), and the skip
that every test needing llama-cpp-python uses."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from inertia.adapters.llama_cpp.availability import LLAMA_CPP_INSTALL, llama_cpp_installed

needs_llama_cpp = pytest.mark.skipif(
    not llama_cpp_installed(), reason=f"llama-cpp-python is not installed ({LLAMA_CPP_INSTALL}; `make setup` does)"
)


@functools.cache
def shared_llama() -> Any:
    """The embedded SmolLM2-135M-Instruct Q4_1 GGUF in llama.cpp, on the CPU, one thread (deterministic and light on
    a shared 2-core machine)."""
    from inertia.pipelines.llama_cpp_text import load_llama_cpp_model

    return load_llama_cpp_model(device="cpu", n_threads=1)
