"""The layout rules of benchmarks/ (benchmarks/README.md): no import cycle between benchmark modules, no private
name imported from another one, our methods' math taken from inertia (never re-written here), modules of a readable
size, and tests/bench_harness/ mirroring the area folders."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmarks.common.paths import REPO_ROOT
from inertia.core.samplers import heavy_ball_dpm as dpm_momentum
from inertia.core.samplers import plms_momentum as momentum

BENCHMARKS = REPO_ROOT / "benchmarks"
TESTS = REPO_ROOT / "tests" / "bench_harness"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(BENCHMARKS.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        if "out" in parts:
            continue
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str]]:
    """``(module, imported name)`` for every import of a benchmark module in ``path``, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    pairs = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    pairs.append((f"{base}.{alias.name}", ""))
                elif base in MODULES:
                    pairs.append((base, alias.name))
        elif isinstance(node, ast.Import):
            pairs += [(alias.name, "") for alias in node.names if alias.name in MODULES]
    return pairs


def test_no_import_cycle_between_benchmark_modules() -> None:
    edges = {
        name: {m for m, _ in _imports(name, path) if not (m.startswith(name + ".") or name.startswith(m + "."))}
        for name, path in MODULES.items()
    }  # a package and its own modules do not count
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    cycles: list[str] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], name, target]))
            elif target not in state:
                visit(target, [*path, name])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_is_imported_from_another_benchmark_module() -> None:
    private = [
        f"{name} imports {imported} from {module}"
        for name, path in MODULES.items()
        for module, imported in _imports(name, path)
        if imported.startswith("_") and module != name
    ]
    assert not private, "make it public in its home, or move it to benchmarks/common: " + "; ".join(private)


def test_our_methods_math_is_not_rewritten_in_the_benchmarks() -> None:
    """HB-DPM++'s combination, heavy ball and step and the momentum samplers' updates come from inertia."""
    ours = {
        *dpm_momentum.__all__,
        *(
            f.__name__
            for f in (
                momentum.adams_bashforth_coefficients,
                momentum.ghvb_coefficients,
                momentum.hb_direction,
                momentum.nt_direction,
                momentum.ghvb_direction,
                momentum.momentum_direction,
            )
        ),
    }
    defined = [
        f"{name}: {node.name}"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in ours
    ]
    assert not defined, f"import these from inertia.core.samplers instead: {defined}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_readable(name: str) -> None:
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES, f"split {name} where it is natural"


def test_the_tests_mirror_the_area_folders() -> None:
    folders = [p for p in TESTS.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    assert all((folder / "__init__.py").is_file() for folder in [TESTS, *folders])
    assert {f.relative_to(TESTS) for f in folders} <= {
        p.relative_to(BENCHMARKS) for p in BENCHMARKS.iterdir() if (p / "__init__.py").is_file()
    }
