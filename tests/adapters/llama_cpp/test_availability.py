"""The llama.cpp extra's availability check: a named error with the install command, nothing imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inertia.adapters.llama_cpp import availability
from inertia.adapters.llama_cpp.availability import (
    LLAMA_CPP_INSTALL,
    LlamaCppNotInstalledError,
    llama_cpp_installed,
    require_llama_cpp,
)


@pytest.fixture
def without_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if llama-cpp-python were not installed (its import name replaced by one that does not exist)."""
    monkeypatch.setattr(availability, "_MODULES", {"inertia_no_llama_cpp_here": "llama-cpp-python"})


def test_a_missing_llama_cpp_is_named_with_the_install_command(without_llama_cpp: None) -> None:
    assert not llama_cpp_installed()
    with pytest.raises(LlamaCppNotInstalledError) as raised:
        require_llama_cpp("the llama.cpp backend")
    assert str(raised.value) == (
        'the llama.cpp backend needs llama-cpp-python, which is not installed: pip install "inertia[llama]"'
    )
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, ValueError)
    assert LLAMA_CPP_INSTALL in str(raised.value)


def test_the_check_imports_neither_llama_cpp_nor_torch() -> None:
    code = (
        "import sys\nfrom inertia.adapters.llama_cpp.availability import llama_cpp_installed\nllama_cpp_installed()\n"
        "print(sorted(m for m in ('llama_cpp', 'diskcache', 'torch', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
