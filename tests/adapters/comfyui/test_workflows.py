"""The example workflows in comfyui/inertia_nodes/workflows/: the API-format one names real nodes and inputs and runs
headless through ComfyUI's own executor (``execution.PromptExecutor``) on a tiny SD1.5 checkpoint that
``CheckpointLoaderSimple`` loads by ComfyUI's model detection; the UI-format one is the same graph."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.adapters.comfyui.host import FOLDER, SKIP

pytestmark = SKIP
API = FOLDER / "workflows" / "hb_dpmpp_apg_higs_api.json"
UI = FOLDER / "workflows" / "hb_dpmpp_apg_higs_ui.json"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}  # COMBO: a V3 node's list input
SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}
CHECKPOINT = "tiny_sd15.safetensors"
SIZE = 32  # pixels: a 4x4 latent


@pytest.fixture(scope="module")
def node_classes() -> dict[str, type]:
    from benchmarks.peers.comfyui_headless import load_nodes

    return load_nodes(FOLDER)


def api_graph() -> dict[str, Any]:
    return json.loads(API.read_text())


def test_api_workflow_uses_existing_nodes_and_inputs(node_classes: dict[str, type]) -> None:
    for node_id, node in api_graph().items():
        spec = node_classes[node["class_type"]].INPUT_TYPES()
        names = set(spec.get("required", {})) | set(spec.get("optional", {}))
        assert set(node["inputs"]) <= names, (node_id, set(node["inputs"]) - names)
        assert set(spec.get("required", {})) <= set(node["inputs"]), (node_id, node["class_type"])


def ui_to_api(ui: dict[str, Any], node_classes: dict[str, type]) -> dict[str, Any]:
    """The API-format prompt of a UI-format workflow, as ComfyUI's frontend makes it: each node's widget values in
    the order of its ``INPUT_TYPES`` (required, then optional; a seed's control value skipped), links as
    ``[source node id, output slot]``."""
    links = {link[0]: link for link in ui["links"]}
    prompt = {}
    for node in ui["nodes"]:
        cls = node_classes[node["type"]]
        spec = cls.INPUT_TYPES()
        linked = {entry["name"]: entry for entry in node["inputs"] if entry.get("link") is not None}
        widgets = iter(node["widgets_values"])
        inputs: dict[str, Any] = {}
        for name, (kind, *options) in (spec.get("required", {}) | spec.get("optional", {})).items():
            if name in linked:
                _, source, slot, target, target_slot, link_type = links[linked[name]["link"]]
                assert (target, node["inputs"][target_slot]["name"]) == (node["id"], name), (node["id"], name)
                source_type = next(n["type"] for n in ui["nodes"] if n["id"] == source)
                assert link_type == str(node_classes[source_type].RETURN_TYPES[slot]) == linked[name]["type"]
                inputs[name] = [str(source), slot]
            elif isinstance(kind, list) or kind in WIDGET_TYPES:
                inputs[name] = next(widgets)
                if options and options[0].get("control_after_generate"):
                    assert next(widgets) in SEED_CONTROLS, (node["id"], name)
        assert next(widgets, None) is None, f"node {node['id']} has more widget values than widgets"
        for slot, output in enumerate(node["outputs"]):
            assert output["type"] == str(cls.RETURN_TYPES[slot])
            assert sorted(output["links"] or []) == sorted(
                k for k, link in links.items() if (link[1], link[2]) == (node["id"], slot)
            )
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def test_ui_workflow_is_the_api_workflow(node_classes: dict[str, type]) -> None:
    ui = json.loads(UI.read_text())
    assert ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
    assert ui["last_link_id"] == max(link[0] for link in ui["links"])
    assert ui_to_api(ui, node_classes) == api_graph()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, node_classes: dict[str, type]) -> Iterator[Path]:
    from tests.adapters.comfyui.tiny_checkpoint import write_tiny_sd15

    path = write_tiny_sd15(tmp_path_factory.mktemp("models") / "checkpoints" / CHECKPOINT)
    yield path
    path.unlink()  # 465 MB: not left in pytest's kept temporary folders


def test_api_workflow_runs_headless_on_a_tiny_sd15_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from PIL import Image

    from benchmarks.peers.comfyui_headless import run_prompt, use_folders

    use_folders(checkpoints=tiny_checkpoint.parent, output=tmp_path)
    graph = api_graph()
    assert [graph[i]["class_type"] for i in ("5", "6", "7", "9")] == [
        "InertiaAPG", "InertiaHiGS", "InertiaHBDPMPP2M", "SamplerCustom"
    ]  # fmt: skip
    graph["1"]["inputs"]["ckpt_name"] = CHECKPOINT
    graph["4"]["inputs"].update(width=SIZE, height=SIZE)
    run = run_prompt(copy.deepcopy(graph))
    assert run.success, run.error()
    decoded = run.output("10")  # VAEDecode's IMAGE: (batch, height, width, RGB) in [0, 1]
    assert decoded.shape == (1, SIZE, SIZE, 3) and bool(torch.isfinite(decoded).all())
    assert float(decoded.std()) > 1e-3  # not a constant image
    (saved,) = run.history["outputs"]["11"]["images"]
    with Image.open(tmp_path / saved["subfolder"] / saved["filename"]) as image:
        pixels = np.asarray(image)
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.std() > 0
    # our nodes did run: with plain CFG and ComfyUI's dpmpp_2m instead the picture differs
    stock = copy.deepcopy(graph)
    stock["9"]["inputs"]["model"] = ["1", 0]
    stock["8"]["inputs"]["model"] = ["1", 0]
    stock["7"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}}
    for node_id in ("5", "6"):
        del stock[node_id]
    plain = run_prompt(stock, prompt_id="stock")
    assert plain.success, plain.error()
    assert not torch.equal(plain.output("10"), decoded)
