"""Lazy package attributes (PEP 562), so that importing a package, or a light module inside it, stays cheap.

The CLI answers ``--help`` and argument errors without importing torch, diffusers or transformers; packages whose
``__init__`` would import them eagerly use :func:`lazy_attributes` instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: attribute ``name`` is imported from module ``names[name]`` on
    first access (a module path relative to ``package`` when it starts with a dot).

    Example:
        >>> getattr_, dir_ = lazy_attributes("inertia", {"lazy_attributes": "._lazy"})
        >>> getattr_("lazy_attributes") is lazy_attributes
        True
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__


def names_by_module(table: Mapping[str, str]) -> dict[str, str]:
    """A lazy-attribute table written module by module: ``{module: "name other_name ..."}`` → ``{name: module}``.

    Example:
        >>> names_by_module({"inertia.core.validation": "check_int check_range"})
        {'check_int': 'inertia.core.validation', 'check_range': 'inertia.core.validation'}
    """
    return {name: module for module, names in table.items() for name in names.split()}


def alias_module(old: str, new: str) -> None:
    """Makes the module ``old`` the very module ``new`` (``sys.modules[old] = new``): an old import path that keeps
    working after its code moved, for saved pipelines (``model_index.json`` records module paths) and user code.

    Call it as the only statement of the module at the old path: ``alias_module(__name__, "inertia.x.y")``. Its
    attributes, classes and mock targets are then those of the new module.

    Example:
        >>> import sys
        >>> import inertia.samplers.scheduling_momentum_plms as old
        >>> old is sys.modules["inertia.adapters.diffusers.scheduling_momentum_plms"]
        True
    """
    import sys

    sys.modules[old] = importlib.import_module(new)
