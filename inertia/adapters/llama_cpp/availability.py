"""Is llama-cpp-python installed? Answered without importing it (and without torch), so the CLI and the UI can name
the missing extra before any model loads.

Example:
    >>> LLAMA_CPP_INSTALL
    'pip install "inertia[llama]"'
    >>> issubclass(LlamaCppNotInstalledError, ImportError) and issubclass(LlamaCppNotInstalledError, ValueError)
    True
"""

from __future__ import annotations

import importlib.util

__all__ = ["LLAMA_CPP_INSTALL", "LlamaCppNotInstalledError", "llama_cpp_installed", "require_llama_cpp"]

LLAMA_CPP_INSTALL = 'pip install "inertia[llama]"'
"""The command that installs the llama.cpp backend (llama-cpp-python and diskcache, which it imports)."""

_MODULES = {"llama_cpp": "llama-cpp-python", "diskcache": "diskcache"}
"""Import name -> distribution: llama-cpp-python, and ``diskcache``, which ``import llama_cpp`` needs."""


class LlamaCppNotInstalledError(ModuleNotFoundError, ValueError):
    """The llama.cpp backend was asked for, but llama-cpp-python (or ``diskcache``) is not installed.

    A ``ModuleNotFoundError`` (what a missing package raises) and a ``ValueError`` (a choice the user can change:
    the CLI and the UI report it in one line, before loading anything).

    Example:
        >>> err = LlamaCppNotInstalledError("the llama.cpp backend needs llama-cpp-python", name="llama_cpp")
        >>> err.name
        'llama_cpp'
    """


def llama_cpp_installed() -> bool:
    """Whether ``import llama_cpp`` can be expected to work (both packages are installed; nothing is imported)."""
    return all(importlib.util.find_spec(module) is not None for module in _MODULES)


def require_llama_cpp(what: str = "the llama.cpp backend") -> None:
    """Raises :class:`LlamaCppNotInstalledError` naming ``what`` and the install command if llama-cpp-python or
    ``diskcache`` is missing; returns quietly otherwise. Imports neither."""
    missing = [module for module in _MODULES if importlib.util.find_spec(module) is None]
    if missing:
        raise LlamaCppNotInstalledError(
            f"{what} needs {_MODULES[missing[0]]}, which is not installed: {LLAMA_CPP_INSTALL}", name=missing[0]
        )
