"""Import layering of the `inertia` package, checked statically with `ast` (nothing is imported).

Each subpackage of `inertia` (and each top-level module such as `inertia.cli`) is a *unit*. Every import statement
counts, at module level or inside a function (a lazy import is still a dependency), and so does
``importlib.import_module("inertia....")`` with a literal name. The package's own ``inertia/__init__.py`` is the
public facade that lazily re-exports the main classes of every unit; it is not a unit and is not checked.

Rules (DESIGN.md, "Layers"):

1. No cycles between units: two units never import each other, directly or through others.
2. Imports run down the layers: math core ← host adapters ← products. A unit imports units of its own layer or
   below, never above. Known exceptions are listed in :data:`KNOWN_UPWARD_IMPORTS` with the reason; an entry that is
   no longer needed fails the test, so the list only shrinks.
3. Math-core modules import the standard library and torch only (plus other core modules).
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inertia"

CORE, ADAPTER, PRODUCT = 0, 1, 2
LAYERS: dict[str, int] = {
    "_lazy": CORE,  # lazy-attribute helper (standard library only)
    "diffusion": CORE,  # VP/EDM/FDM preconditioning and loss, shared by models and training
    "samplers": ADAPTER,
    "k_diffusion": ADAPTER,  # k-diffusion sampler functions over the samplers' math core
    "guidance": ADAPTER,
    "attention": ADAPTER,
    "decoders": ADAPTER,
    "metrics": ADAPTER,
    "models": ADAPTER,
    "pipelines": PRODUCT,
    "training": PRODUCT,
    "ui": PRODUCT,
    "cli": PRODUCT,
}
"""Layer of every unit. A new subpackage must be placed here (the test fails until it is)."""

KNOWN_UPWARD_IMPORTS: dict[tuple[str, str], str] = {
    ("metrics", "training"): (
        "inertia.metrics.digits loads the held-out split of the digits data set from inertia.training.digits_data; "
        "moving the data set to a lower package would remove this"
    ),
}
"""(importer, imported) pairs allowed to go up a layer, with the reason."""

CORE_MODULES = (
    "inertia.diffusion.precond",
    "inertia.diffusion.loss",
    "inertia.samplers.dpm_momentum",
    "inertia.samplers.momentum",
    "inertia.guidance.apg",
    "inertia.guidance.higs",
    "inertia.guidance.spaces",
    "inertia.attention.config",
    "inertia.attention.rules",
    "inertia.attention.value_ema",
    "inertia.attention.lm_config",
    "inertia.decoders.momentum",
    "inertia.decoders.validation",
    "inertia.metrics.divergence",
)
"""Modules that document themselves as math core ("pure torch"): standard library, torch and each other only."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str | None:
    """``inertia.models.preconditioned_unet`` → ``models``; ``inertia`` itself (the facade) → ``None``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "inertia" and len(parts) > 1 else None


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, absolute, with its line: ``import``/``from`` statements anywhere in the file
    (relative ones resolved) and ``importlib.import_module("...")`` calls with a literal name."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from inertia import models` imports the subpackage `inertia.models`
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names if target == "inertia"]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            found.append((node.args[0].value, node.lineno))
    return found


def source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def unit_edges() -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) → the import sites ``path:line``."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in source_files():
        source = unit_of(module_name(path))
        if source is None:
            continue
        for target, line in imported_modules(path):
            imported = unit_of(target)
            if imported is not None and imported != source:
                edges[source, imported].append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return edges


def find_cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Elementary cycles of the unit graph, each as ``[a, b, ..., a]``, one per set of units (smallest first)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    cycles: dict[frozenset[str], list[str]] = {}

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.setdefault(frozenset(path), [*path, start])
            elif nxt not in path and nxt > start:  # each cycle is found from its smallest unit only
                walk(start, nxt, [*path, nxt])

    for unit in sorted(graph):
        walk(unit, unit, [unit])
    return sorted(cycles.values(), key=lambda c: (len(c), c))


def describe(cycle: list[str], edges: dict[tuple[str, str], list[str]]) -> str:
    steps = [f"  {a} -> {b}: {', '.join(edges[a, b][:3])}" for a, b in itertools.pairwise(cycle)]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


# ------------------------------------------------------------------------------------------------ the helpers


def test_the_scan_sees_relative_and_lazy_imports() -> None:
    # imported_modules() resolves relative imports against the file's package and finds imports inside functions.
    path = PACKAGE / "diffusion" / "loss.py"
    targets = {t for t, _ in imported_modules(path)}
    assert "inertia.diffusion.precond" in targets
    path = PACKAGE / "training" / "train.py"
    assert "inertia.models.preconditioned_unet" in {t for t, _ in imported_modules(path)}  # lazy, in train()


def test_find_cycles_reports_direct_and_longer_cycles() -> None:
    edges = {("a", "b"): ["x:1"], ("b", "a"): ["y:2"], ("b", "c"): ["z:3"], ("c", "d"): ["z:4"], ("d", "b"): ["w:5"]}
    assert find_cycles(edges) == [["a", "b", "a"], ["b", "c", "d", "b"]]
    assert "a -> b: x:1" in describe(["a", "b", "a"], edges)


# ------------------------------------------------------------------------------------------------ the rules


def test_no_two_units_import_each_other() -> None:
    edges = unit_edges()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles between inertia's subpackages:\n" + "\n".join(describe(c, edges) for c in cycles)


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(module_name(p)) for p in source_files()} - {None}
    missing = sorted(units - set(LAYERS))
    assert not missing, f"place these units in LAYERS (tests/test_layering.py): {missing}"


def test_imports_run_down_the_layers() -> None:
    edges = unit_edges()
    upward = {(a, b): sites for (a, b), sites in edges.items() if LAYERS.get(b, PRODUCT) > LAYERS.get(a, PRODUCT)}
    unexpected = {pair: sites for pair, sites in upward.items() if pair not in KNOWN_UPWARD_IMPORTS}
    assert not unexpected, "imports going up a layer (core < adapters < products):\n" + "\n".join(
        f"  {a} -> {b}: {', '.join(sites[:3])}" for (a, b), sites in sorted(unexpected.items())
    )
    stale = sorted(set(KNOWN_UPWARD_IMPORTS) - set(upward))
    assert not stale, f"KNOWN_UPWARD_IMPORTS entries no longer needed, remove them: {stale}"


@pytest.mark.parametrize("module", CORE_MODULES)
def test_math_core_imports_only_the_standard_library_and_torch(module: str) -> None:
    path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
    allowed_third_party = {"torch"}
    bad = []
    for target, line in imported_modules(path):
        top = target.split(".")[0]
        if top == "inertia":
            if target not in CORE_MODULES and not target.startswith("inertia.diffusion"):
                bad.append(f"{target} (line {line})")
        elif top not in sys.stdlib_module_names and top not in allowed_third_party and top != "__future__":
            bad.append(f"{target} (line {line})")
    assert not bad, f"{module} is math core (standard library and torch only) but imports: {bad}"
