"""Load the real ``k_diffusion.sampling`` (and ``external``) from the registry's wheel, for side-by-side tests only.

``pip install k-diffusion`` cannot work on our CPU machines (its ``utils`` module imports torchvision, whose registry
wheels need the CUDA build of torch), but ``k_diffusion/sampling.py`` itself needs very little: torch, scipy, tqdm,
``utils.append_dims``, and two imports it only uses in functions we do not call (torchdiffeq's ``odeint`` for
``log_likelihood``, torchsde for ``BrownianTreeNoiseSampler``). This helper reads the two source files from the wheel,
gives them a one-function ``utils`` and, only where those packages are missing, placeholders for torchdiffeq and
torchsde that raise if touched, and executes them under a private package name (``_real_k_diffusion``), so nothing
named ``k_diffusion`` is ever registered.

The wheel is not part of the repository (it is k-diffusion's code): fetch it once with

    pip download --no-deps k-diffusion==0.1.1.post1 -d benchmarks/out/wheels

or point ``INERTIA_K_DIFFUSION_WHEEL`` at it. Without it, :func:`load` returns ``None`` and the side-by-side tests
skip with that command in their reason.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import zipfile
from pathlib import Path

import torch

WHEEL_NAME = "k_diffusion-0.1.1.post1-py3-none-any.whl"
DEFAULT_WHEEL = Path(__file__).resolve().parents[3] / "benchmarks" / "out" / "wheels" / WHEEL_NAME
FETCH = "pip download --no-deps k-diffusion==0.1.1.post1 -d benchmarks/out/wheels"
PACKAGE = "_real_k_diffusion"


def wheel_path() -> Path:
    return Path(os.environ.get("INERTIA_K_DIFFUSION_WHEEL", DEFAULT_WHEEL))


def _placeholder(name: str, *attributes: str) -> types.ModuleType:
    module = types.ModuleType(name)

    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name} is not installed here; this test loader only provides a placeholder")

    for attribute in attributes:
        setattr(module, attribute, unavailable)
    module.__getattr__ = lambda attribute: unavailable  # any other use fails when called
    return module


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """k-diffusion's ``utils.append_dims``: trailing singleton dimensions up to ``target_dims``."""
    if target_dims < x.ndim:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * (target_dims - x.ndim)]


def load() -> tuple[types.ModuleType, types.ModuleType] | None:
    """``(sampling, external)`` modules of the real k-diffusion 0.1.1.post1, or ``None`` without the wheel."""
    if PACKAGE in sys.modules:
        package = sys.modules[PACKAGE]
        return package.sampling, package.external
    path = wheel_path()
    if not path.is_file():
        return None
    with zipfile.ZipFile(path) as wheel:
        sources = {name: wheel.read(f"k_diffusion/{name}.py").decode() for name in ("sampling", "external")}
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    utils = types.ModuleType(f"{PACKAGE}.utils")
    utils.append_dims = _append_dims
    package.utils = utils
    stand_ins = {}
    if importlib.util.find_spec("torchdiffeq") is None:
        stand_ins["torchdiffeq"] = _placeholder("torchdiffeq", "odeint")
    if importlib.util.find_spec("torchsde") is None:
        stand_ins["torchsde"] = _placeholder("torchsde", "BrownianTree")
    sys.modules.update({PACKAGE: package, f"{PACKAGE}.utils": utils})
    added = [name for name in stand_ins if name not in sys.modules]
    sys.modules.update({name: stand_ins[name] for name in added})
    try:
        for name in ("sampling", "external"):  # external imports sampling
            module = types.ModuleType(f"{PACKAGE}.{name}")
            module.__package__ = PACKAGE
            module.__file__ = f"{path}!k_diffusion/{name}.py"
            sys.modules[module.__name__] = module
            exec(compile(sources[name], module.__file__, "exec"), module.__dict__)  # their file, unchanged
            setattr(package, name, module)
    finally:
        for name in added:  # the placeholders never outlive the import
            sys.modules.pop(name, None)
    return package.sampling, package.external
