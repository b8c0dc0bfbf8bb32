"""`python -m benchmarks.gpu.wheels` (= `gpu.check --wheels`): the wheel plan for the offline GPU machine."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from benchmarks.gpu import wheels as gpu_wheels


def _fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {line}\n" for line in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", metadata)
    return path


def test_wheel_plan_fetches_what_the_gpu_machine_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from packaging.requirements import Requirement

    requires = {
        "diffusers": ["importlib_metadata", "huggingface-hub<3.0,>=1.32.0", "requests", "Pillow", "numpy"],
        "transformers": [
            "huggingface-hub<3.0,>=1.31.0",
            "tokenizers<0.24.0,>=0.23.1",
            "tomli; python_version < '3.11'",
            "pytest; extra == 'testing'",
            "safetensors>=0.8.0",
        ],
        "requests": ["idna<4,>=2.5", "certifi>=2023.5.7"],
    }
    calls: list[str] = []

    def downloader(spec: str, folder: Path) -> Path:
        calls.append(spec)
        requirement = Requirement(spec)
        version = str(requirement.specifier).removeprefix("==") if "==" in str(requirement.specifier) else "9.9"
        return _fake_wheel(folder, requirement.name, version, requires.get(requirement.name, []))

    wheels = gpu_wheels.download_wheels(tmp_path / "w", downloader=downloader)
    local = gpu_wheels.installed_version
    assert calls[:2] == [f"diffusers=={local('diffusers')}", f"transformers=={local('transformers')}"]
    names = [gpu_wheels.canonical(Requirement(spec).name) for spec in calls]
    assert names == ["diffusers", "transformers", "requests", "idna", "certifi"]  # hub, tokenizers, ... are there
    assert calls[2] == f"requests=={local('requests')}"  # pinned to the version tested here
    assert [why for _, why in wheels][2] == "diffusers needs requests"

    monkeypatch.setattr(gpu_wheels, "pip_download", downloader)
    assert gpu_wheels.wheels_main(tmp_path / "v") == 0
    monkeypatch.setattr(gpu_wheels, "WHEEL_BUDGET_MIB", 0.0)
    assert gpu_wheels.wheels_main(tmp_path / "v") == 1  # over budget
