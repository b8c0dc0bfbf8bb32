"""benchmarks.peers.comfyui: the cache, the stand-in torchvision and the import of real ComfyUI."""

from __future__ import annotations

import pytest

from benchmarks.peers import comfyui


@pytest.mark.skipif(not comfyui.is_fetched(), reason=f"ComfyUI is not in the cache: run `{comfyui.FETCH}`")
def test_load_imports_comfyui_headless_on_the_cpu() -> None:
    comfy = comfyui.load()
    assert comfy is not None and comfyui.load() is comfy
    import comfy.model_management
    import comfyui_version

    assert comfyui_version.__version__ == comfyui.VERSION
    assert comfy.model_management.get_torch_device().type == "cpu"


def test_fetch_is_a_no_op_when_cached() -> None:
    if not comfyui.is_fetched():
        pytest.skip(f"ComfyUI is not in the cache: run `{comfyui.FETCH}`")
    assert comfyui.fetch() < 1.0
