"""Shared test setup.

`make test` runs pytest with two workers on two cores; one torch thread per worker avoids OpenMP oversubscription,
which turns 0.1 s tiny-pipeline calls into 5-20 s ones on a busy machine.

The ComfyUI tests run in a pytest process of their own (``COMFYUI_TESTS``; ``make test`` runs both): importing
ComfyUI installs a stand-in ``torchvision`` (the registry's wheel needs CUDA torch), which breaks transformers' and
diffusers' lazy imports for every later test of the same process. A process that does not set
``INERTIA_COMFYUI_TESTS=1`` never collects them.

The suite's default digits model is the fast 16x16 one, a fixture outside the wheel (``INERTIA_DIGITS_MODEL`` set to
``tests/fixtures/digits16``, inherited by the CLI subprocesses); tests of the shipped 32x32 model name it
(``"digits"``) or clear the variable.
"""

import os

import torch
from fixture_models import DIGITS16_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("INERTIA_DIGITS_MODEL", str(DIGITS16_DIR))
torch.set_num_threads(1)

COMFYUI_TESTS = [
    "adapters/comfyui",
    "bench_harness/peers/test_comfyui.py",
    "bench_harness/samplers/test_comfyui_parity.py",
]
"""The test files that import ComfyUI, relative to ``tests/``."""
if os.environ.get("INERTIA_COMFYUI_TESTS") != "1":
    collect_ignore = COMFYUI_TESTS
