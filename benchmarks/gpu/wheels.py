"""The wheels the GPU machine lacks for ``benchmarks.gpu.check``, fetched here (it has no network).

``python -m benchmarks.gpu.wheels DIR`` (or ``python -m benchmarks.gpu.check --wheels DIR``, ``make gpu-wheels``):
diffusers and transformers at the versions installed here, plus every requirement of theirs that the GPU machine's
image does not satisfy (docs/gpu.md).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["GPU_MACHINE_PACKAGES", "download_wheels", "installed_version", "wheels_main"]

GPU_MACHINE_PACKAGES: dict[str, str | None] = {
    # preinstalled
    "torch": "2.11.0",
    "accelerate": "1.15.0",
    "huggingface-hub": "1.33.0",
    "transformers": "5.17.0",
    "numpy": "1.17",  # transformers 5.17 needs numpy>=1.17; never shadow it (scipy and sklearn are built against it)
    "scipy": None,
    "scikit-learn": None,
    "pytest": None,
    "pytest-xdist": None,
    "matplotlib": None,
    "safetensors": "0.8.0",
    "pillow": None,
    "tqdm": "4.60",
    # required by transformers 5.17 (lower bounds of its pins) and huggingface_hub 1.33 / httpx
    "tokenizers": "0.23.1",
    "regex": "2025.10.22",
    "pyyaml": "5.1",
    "packaging": "20.9",
    "typer": None,
    "filelock": "3.10.0",
    "fsspec": "2023.5.0",
    "httpx": "0.23.0",
    "idna": None,
    "certifi": None,
    "typing-extensions": "4.1.0",
    "click": "8.4.2",
    "hf-xet": "1.6.0",
}
"""What the GPU machine has: name -> its version (the lowest it may be, where only a range is known), or None when
only its presence is known (then a requirement with a version range is fetched anyway)."""

NOT_NEEDED: dict[str, str] = {"importlib-metadata": "diffusers imports it only on Python < 3.8"}
"""Requirements left out on purpose, with the reason."""

WHEEL_ROOTS = ("diffusers", "transformers")
"""The packages whose locally installed versions the GPU tests need."""

TARGET = {"python": "3.12", "platforms": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")}
TARGET_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
WHEEL_BUDGET_MIB = 40.0


def installed_version(name: str) -> str:
    """The installed version of distribution ``name`` here, or ``"missing"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def pip_download(spec: str, folder: Path) -> Path:
    """``pip download`` of one binary wheel for the GPU machine (CPython 3.12, manylinux x86_64), without deps."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    command += ["--python-version", TARGET["python"], "--implementation", "cp"]
    for platform_tag in TARGET["platforms"]:
        command += ["--platform", platform_tag]
    command += ["-d", str(folder), spec]
    subprocess.run(command, check=True)
    from packaging.requirements import Requirement

    name = canonical(Requirement(spec).name)
    wheels = [path for path in folder.glob("*.whl") if canonical(path.name.split("-")[0]) == name]
    if not wheels:
        raise FileNotFoundError(f"pip download {spec} left no wheel of {name} in {folder}")
    return max(wheels, key=lambda path: path.stat().st_mtime)


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def _satisfied(version: str | None, requirement: Any) -> bool:
    if version is None:
        return not str(requirement.specifier)
    return requirement.specifier.contains(version, prereleases=True)


def download_wheels(
    folder: Path,
    roots: Sequence[str] = WHEEL_ROOTS,
    downloader: Callable[[str, Path], Path] | None = None,
    machine: dict[str, str | None] | None = None,
) -> list[tuple[Path, str]]:
    """Fetches the wheels the GPU machine lacks: ``roots`` at their local versions, then every requirement of a
    fetched wheel (markers evaluated for CPython 3.12 on Linux x86_64) that ``machine`` does not satisfy, pinned to
    the local version where that fits. Returns ``(wheel, why)`` in download order.

    Args:
        folder: where the wheels go.
        roots: the packages to fetch at their locally installed versions.
        downloader: ``(requirement, folder) -> wheel path``; defaults to :func:`pip_download`.
        machine: what the GPU machine has; defaults to :data:`GPU_MACHINE_PACKAGES`.
    """
    from packaging.requirements import Requirement

    downloader = downloader or pip_download
    machine = GPU_MACHINE_PACKAGES if machine is None else machine
    folder.mkdir(parents=True, exist_ok=True)
    missing = [name for name in roots if installed_version(name) == "missing"]
    if missing:
        raise ValueError(f"{', '.join(missing)} not installed here: the wheels must be the versions tested here")
    queue: list[tuple[Requirement, str]] = [
        (Requirement(f"{name}=={installed_version(name)}"), "tested here") for name in roots
    ]
    fetched: dict[str, Path] = {}
    out: list[tuple[Path, str]] = []
    while queue:
        requirement, why = queue.pop(0)
        name = canonical(requirement.name)
        if name in fetched:
            continue
        local = installed_version(name)
        pinned = local != "missing" and requirement.specifier.contains(local, prereleases=True)
        spec = f"{requirement.name}=={local}" if pinned else f"{requirement.name}{requirement.specifier}"
        print(f"fetching {spec} ({why})", flush=True)
        wheel = downloader(spec, folder)
        fetched[name] = wheel
        out.append((wheel, why))
        for line in wheel_requirements(wheel):
            needed = Requirement(line)
            dependency = canonical(needed.name)
            if needed.marker is not None and not needed.marker.evaluate(TARGET_MARKERS):
                continue
            if dependency in fetched or dependency in NOT_NEEDED:
                continue
            if dependency in machine and _satisfied(machine[dependency], needed):
                continue
            queue.append((needed, f"{requirement.name} needs {line}"))
    return out


def wheels_main(folder: Path) -> int:
    """``--wheels DIR``: downloads, lists each wheel with its size and why it is needed, prints the total."""
    try:
        wheels = download_wheels(folder)
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as error:
        print(f"gpu wheels: downloading wheels failed: {error}", file=sys.stderr)
        return 1
    total = 0
    for wheel, why in wheels:
        size = wheel.stat().st_size
        total += size
        print(f"{size / 2**20:7.2f} MiB  {wheel.name}  ({why})")
    for name, reason in NOT_NEEDED.items():
        print(f"   skipped  {name}  ({reason})")
    mib = total / 2**20
    print(f"total {mib:.2f} MiB in {len(wheels)} wheels in {folder}")
    if mib > WHEEL_BUDGET_MIB:
        print(f"gpu wheels: the wheels exceed the {WHEEL_BUDGET_MIB:.0f} MiB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(wheels_main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".whl")))
