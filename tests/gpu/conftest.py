"""Shared setup of the GPU tests (``pytest -m gpu tests/gpu``; docs/gpu.md).

Every module here sets ``pytestmark = pytest.mark.gpu``, so ``make test`` (``-m "not slow and not gpu"``) deselects
them. Where ``torch.cuda.is_available()`` is false every test in this folder is skipped at collection, with the
reason, before any fixture runs.

``INERTIA_GPU_TESTS_ON_CPU=1`` runs the device-agnostic tests on the CPU instead (the same code, with ``device`` =
CPU), which checks the tests themselves on a machine without a GPU; the tests that need CUDA itself (sync debug mode,
CUDA graphs, the default-device choice) still skip. It proves nothing about CUDA.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ON_CPU_VARIABLE = "INERTIA_GPU_TESTS_ON_CPU"
"""Environment variable: ``1`` runs the device-agnostic GPU tests on the CPU (a dry run of the tests themselves)."""

NO_CUDA_REASON = (
    "needs a CUDA device: torch.cuda.is_available() is False "
    f"(set {ON_CPU_VARIABLE}=1 to dry-run the device-agnostic checks on the CPU)"
)
CUDA_ONLY_REASON = "needs CUDA itself (sync debug mode, CUDA graphs or the default-device choice)"

_HERE = Path(__file__).resolve().parent

# cuBLAS is deterministic only with a fixed workspace; it reads this once, when CUDA initialises (after this import).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def cuda_available() -> bool:
    """Whether a CUDA device is usable by torch."""
    return torch.cuda.is_available()


def dry_run_on_cpu() -> bool:
    """Whether the device-agnostic tests run on the CPU because there is no CUDA and the dry run was asked for."""
    return not cuda_available() and os.environ.get(ON_CPU_VARIABLE) == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips every test of this folder without CUDA (unless dry-running on the CPU), before any fixture runs."""
    if cuda_available() or dry_run_on_cpu():
        return
    skip = pytest.mark.skip(reason=NO_CUDA_REASON)
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The CUDA device (the CPU in a dry run)."""
    if cuda_available():
        return torch.device("cuda")
    if dry_run_on_cpu():
        return torch.device("cpu")
    pytest.skip(NO_CUDA_REASON)


@pytest.fixture(scope="session")
def cuda() -> torch.device:
    """The CUDA device, for tests that need CUDA itself; skips in a CPU dry run."""
    if not cuda_available():
        pytest.skip(CUDA_ONLY_REASON if dry_run_on_cpu() else NO_CUDA_REASON)
    return torch.device("cuda")


@pytest.fixture(autouse=True)
def no_tf32() -> Iterator[None]:
    """Full-precision fp32 matmuls and convolutions on CUDA during each test (restored afterwards).

    The tests compare fp32 on the device with fp32 on the CPU; cuDNN's default TF32 convolutions alone would add
    about 1e-3 relative error.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.fixture
def deterministic() -> Iterator[None]:
    """Deterministic kernels during the test (for bit-for-bit comparisons of two runs on the device)."""
    algorithms, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


@pytest.fixture
def forbid_syncs() -> contextlib.AbstractContextManager:
    """A context manager factory: inside ``with forbid_syncs():`` any host synchronisation raises ``RuntimeError``.

    It uses ``torch.cuda.set_sync_debug_mode("error")`` and restores the previous mode on exit. Only meaningful on
    CUDA (the tests that use it request the ``cuda`` fixture).
    """

    @contextlib.contextmanager
    def forbid() -> Iterator[None]:
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(previous)

    return forbid
