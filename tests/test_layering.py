"""The physical layout of the `inertia` package: core <- adapters <- public face <- products (docs/design.md).

Statically (with `ast`, nothing imported), every import statement counts, at module level or inside a function (a
lazy import is still a dependency), and so do ``importlib.import_module("inertia....")`` calls and the module paths
of the public packages' lazy name tables. Then, in fresh interpreters, what importing a module really loads.

Units: ``inertia.core.<area>`` (one per method area), ``inertia.adapters.<host>`` (one per host), and every other
subpackage or top-level module of ``inertia`` (``inertia.samplers``, ``inertia.pipelines``, ``inertia.cli``, ...).
The layer of a unit is where it sits on disk, never a list kept by hand:

1. ``inertia/core/``: the math. Imports the standard library, torch, numpy and other core units only.
2. ``inertia/adapters/<host>/``: one per host. Imports the core and its own host, never another adapter.
3. The public face (``PUBLIC`` below): the packages the docs import from. Their ``__init__`` only re-exports, lazily,
   from adapters and core; their other modules are old import paths (``alias_module``).
4. Everything else under ``inertia/`` is a product (pipelines, presets applied, CLI, UI, training, metrics, models,
   data). Products import anything below them and each other, without cycles.
"""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inertia"

CORE, ADAPTER, PUBLIC_FACE, PRODUCT = 0, 1, 2, 3

PUBLIC = ("samplers", "guidance", "attention", "decoders", "k_diffusion")
"""The public packages whose code lives in adapters and core (``inertia.pipelines`` and ``inertia.ui`` are products)."""

BASE = ("_lazy",)
"""Standard-library helpers every layer may use (lazy attributes, module aliases)."""

HOSTS = {"diffusers", "transformers", "accelerate", "gradio", "comfy", "vllm", "llama_cpp"}
"""Host libraries: no core module may load one. ``comfy`` is ComfyUI's package: only ``inertia.adapters.comfyui``
imports it, inside the node methods that run in ComfyUI. ``vllm`` lives in an environment of its own: only
``inertia.adapters.vllm`` imports it, when vLLM asks for the processor class. ``llama_cpp`` is llama-cpp-python (an
optional extra): only ``inertia.adapters.llama_cpp`` imports it, inside the functions that need it."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str | None:
    """``inertia.core.guidance.apg`` -> ``core.guidance``; ``inertia.adapters.diffusers.x`` -> ``adapters.diffusers``;
    ``inertia.pipelines.digits`` -> ``pipelines``; ``inertia`` itself (the lazy facade), ``inertia.core`` and
    ``inertia.adapters`` (docstring-only packages) -> None."""
    parts = module.split(".")
    if parts[0] != "inertia" or len(parts) < 2:
        return None
    if parts[1] in ("core", "adapters"):
        return f"{parts[1]}.{parts[2]}" if len(parts) > 2 else None
    return parts[1]


def layer_of(unit: str) -> int:
    if unit.startswith("core.") or unit in BASE:
        return CORE
    if unit.startswith("adapters."):
        return ADAPTER
    if unit in PUBLIC:
        return PUBLIC_FACE
    return PRODUCT


def _is_module_path(value: object) -> bool:
    """A string naming a module or package of inertia (``"inertia.core.guidance.config"``)."""
    if not isinstance(value, str) or not value.startswith("inertia.") or not value.replace(".", "").isidentifier():
        return False
    parts = value.split(".")
    folder = PACKAGE.parent.joinpath(*parts)
    return all(parts) and (folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file())


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, absolute, with its line: ``import``/``from`` statements anywhere in the file
    (relative ones resolved), ``importlib.import_module("...")`` / ``alias_module(__name__, "...")`` calls and the
    values of lazy name tables (string constants that are module paths of inertia)."""
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
        elif isinstance(node, ast.Constant) and _is_module_path(node.value):
            found.append((node.value, node.lineno))  # a module path in a lazy table or an import_module call
    return found


def source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def unit_edges() -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) -> the import sites ``path:line``."""
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


def loaded_by(statement: str) -> set[str]:
    """The host libraries (and torch) loaded after ``statement`` in a fresh interpreter."""
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(m for m in sys.modules if '.' not in m)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    return set(json.loads(out.stdout.strip().splitlines()[-1])) & (HOSTS | {"torch"})


# ------------------------------------------------------------------------------------------------ the helpers


def test_the_scan_sees_absolute_lazy_and_table_imports() -> None:
    targets = {t for t, _ in imported_modules(PACKAGE / "core" / "diffusion" / "loss.py")}
    assert "inertia.core.diffusion.precond" in targets
    targets = {t for t, _ in imported_modules(PACKAGE / "training" / "train.py")}
    assert "inertia.models.preconditioned_unet" in targets  # lazy, in train()
    targets = {t for t, _ in imported_modules(PACKAGE / "guidance" / "__init__.py")}
    assert "inertia.adapters.diffusers.guidance_hook" in targets  # a lazy name table's module path


def test_units_and_layers_follow_the_folders() -> None:
    assert unit_of("inertia.core.guidance.apg") == "core.guidance"
    assert unit_of("inertia.adapters.diffusers.guidance_hook") == "adapters.diffusers"
    assert unit_of("inertia.pipelines.digits") == "pipelines"
    assert [layer_of(u) for u in ("core.guidance", "adapters.diffusers", "guidance", "pipelines")] == [0, 1, 2, 3]


def test_find_cycles_reports_direct_and_longer_cycles() -> None:
    edges = {("a", "b"): ["x:1"], ("b", "a"): ["y:2"], ("b", "c"): ["z:3"], ("c", "d"): ["z:4"], ("d", "b"): ["w:5"]}
    assert find_cycles(edges) == [["a", "b", "a"], ["b", "c", "d", "b"]]
    assert "a -> b: x:1" in describe(["a", "b", "a"], edges)


# ------------------------------------------------------------------------------------------------ the rules


def test_no_two_units_import_each_other() -> None:
    edges = unit_edges()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles between inertia's units:\n" + "\n".join(describe(c, edges) for c in cycles)


def test_imports_run_down_the_layers() -> None:
    edges = unit_edges()
    upward = {(a, b): s for (a, b), s in edges.items() if layer_of(b) > layer_of(a)}
    assert not upward, "imports going up a layer (core < adapters < public face < products):\n" + "\n".join(
        f"  {a} -> {b}: {', '.join(sites[:3])}" for (a, b), sites in sorted(upward.items())
    )


def test_no_adapter_imports_another() -> None:
    edges = unit_edges()
    across = {(a, b): s for (a, b), s in edges.items() if layer_of(a) == layer_of(b) == ADAPTER}
    assert not across, f"adapters importing each other: {across}"


def test_the_public_packages_only_re_export() -> None:
    """``inertia.samplers``, ``inertia.guidance``, ... hold no code of their own: lazy tables and module aliases."""
    for unit in PUBLIC:
        for path in (PACKAGE / unit).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
            functions = [
                n.name
                for n in tree.body
                if isinstance(n, ast.FunctionDef) and n.name not in ("__getattr__", "__dir__")
            ]
            assert not classes and not functions, f"{path.relative_to(PACKAGE.parent)} defines {classes + functions}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").rglob("*.py")), ids=lambda p: module_name(p))
def test_core_modules_import_only_the_standard_library_torch_and_numpy(path: Path) -> None:
    bad = []
    for target, line in imported_modules(path):
        top = target.split(".")[0]
        if top == "inertia":
            if not target.startswith("inertia.core") and target.split(".")[1] not in BASE:
                bad.append(f"{target} (line {line})")
        elif top not in sys.stdlib_module_names and top not in ("torch", "numpy", "__future__"):
            bad.append(f"{target} (line {line})")
    assert not bad, f"{module_name(path)} is core (standard library, torch and numpy) but imports: {bad}"


def test_every_diffusers_private_name_is_in_one_module() -> None:
    """Private diffusers modules and names, ``_diffusers_hook`` and borrowed ``DPMSolverMultistepScheduler`` members
    appear only in :mod:`inertia.adapters.diffusers.private_api`."""
    home = PACKAGE / "adapters" / "diffusers" / "private_api.py"
    bad = []
    for path in source_files():
        if path == home:
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("diffusers"):
                private = any(part.startswith("_") for part in (node.module or "").split("."))
                private |= any(alias.name.startswith("_") for alias in node.names)
                if private:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports a private diffusers name")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "DPMSolverMultistepScheduler" and node.attr.startswith("_"):
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} borrows {node.attr}")
        if any(name in text for name in ("_diffusers_hook", "_execution_device", '"_num_timesteps"')):
            bad.append(f"{path.relative_to(PACKAGE.parent)} reads a private attribute of a diffusers object")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("host", "adapter"), [("comfy", "adapters.comfyui"), ("vllm", "adapters.vllm")])
def test_only_its_adapter_imports_a_host_with_an_environment_of_its_own(host: str, adapter: str) -> None:
    bad = []
    for path in source_files():
        if unit_of(module_name(path)) == adapter:
            continue
        bad += [
            f"{module_name(path)}:{line}" for target, line in imported_modules(path) if target.split(".")[0] == host
        ]
    assert not bad, f"{host} imported outside inertia.{adapter}: {bad}"


def test_only_the_llama_cpp_adapter_imports_llama_cpp() -> None:
    bad = []
    for path in source_files():
        if unit_of(module_name(path)) == "adapters.llama_cpp":
            continue
        bad += [
            f"{module_name(path)}:{line}"
            for target, line in imported_modules(path)
            if target.split(".")[0] in ("llama_cpp", "diskcache")
        ]
    assert not bad, f"llama-cpp-python imported outside inertia.adapters.llama_cpp: {bad}"


def test_no_private_name_is_imported_across_modules() -> None:
    bad = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("inertia"):
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if names:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.module} {names}")
    assert not bad, "make these public in their home, or move them:\n" + "\n".join(bad)


# ------------------------------------------------------------------------------------------------ what really loads


def test_importing_every_core_module_loads_no_host_library() -> None:
    modules = [module_name(p) for p in sorted((PACKAGE / "core").rglob("*.py"))]
    assert not loaded_by("\n".join(f"import {m}" for m in modules)) & HOSTS


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import inertia.k_diffusion", {"diffusers", "transformers"}),
        ("from inertia.k_diffusion import sample_hb_dpmpp_2m", {"diffusers", "transformers"}),
        ("from inertia.decoders import MomentumDecodingLogitsProcessor", {"diffusers", "gradio"}),
        ("from inertia.guidance import APG, HiGS, CFG", HOSTS),
        ("from inertia.samplers import recommended_beta, ghvb_coefficients", HOSTS),
        ("from inertia.attention import MomentumAttention, LMMomentumAttention", HOSTS),
        ("import inertia.cli", HOSTS | {"torch"}),
        ("import inertia.adapters.comfyui", HOSTS),
        ("import inertia.adapters.vllm", HOSTS | {"torch"}),
        ("from inertia.adapters.vllm.logits_processor import build_processor_class", HOSTS),
        # the optional llama.cpp extra: its processor, the products' checks and the UI tab import no llama_cpp
        ("from inertia.decoders import MomentumDecodingLlamaCppProcessor", HOSTS),
        ("from inertia.decoders import MomentumPenaltyLlamaCppProcessor", HOSTS),
        ("import inertia.adapters.llama_cpp.generate", HOSTS),
        ("import inertia.pipelines.llama_cpp_text", HOSTS | {"torch"}),
        ("import inertia.ui.text_tab", HOSTS),
    ],
)
def test_light_imports_stay_light(statement: str, forbidden: set[str]) -> None:
    assert not loaded_by(statement) & forbidden
