"""vLLM 0.34's model-runner V2 logits-processor interface, read from vLLM's own wheel, for the contract tests.

vLLM 0.34 is a CUDA build that pins torch 2.14 and transformers < 5.23, so it cannot be installed next to inertia.
Its interface module (``vllm/v1/worker/gpu/sample/logits_processor/interface.py``) is import-light by design
(vLLM's front end loads it to validate requests): the standard library only, the rest under ``TYPE_CHECKING``. So
the file alone is executed here under a private name, giving the real ``LogitsProcessor`` base class and the real
``LogitsProcRequestState`` / ``LogitsContext`` dataclasses.

``make vllm-interface`` downloads the wheel once (``pip download --no-deps vllm==0.34.0``), keeps that file in
``benchmarks/out/vllm-0.34.0/`` and deletes the wheel; ``INERTIA_VLLM_INTERFACE`` points elsewhere. Without it,
:func:`load` returns ``None`` and the tests skip with that command in their reason.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

MEMBER = "vllm/v1/worker/gpu/sample/logits_processor/interface.py"
"""The interface's path inside the wheel."""

DEFAULT = Path(__file__).resolve().parents[3] / "benchmarks" / "out" / "vllm-0.34.0" / "interface.py"
FETCH = "make vllm-interface"
NAME = "_vllm_034_logits_processor_interface"


def interface_path() -> Path:
    return Path(os.environ.get("INERTIA_VLLM_INTERFACE", DEFAULT))


def load() -> types.ModuleType | None:
    """The executed interface module of vLLM 0.34.0, or ``None`` when the file is not there."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    path = interface_path()
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(NAME, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
