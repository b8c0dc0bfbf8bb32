"""The example workflow in comfyui/inertia_nodes/workflows/ names real nodes and their real inputs (ComfyUI's core
nodes and ours, as ComfyUI loads them). It is not executed here: that needs a full SD1.5 checkpoint."""

from __future__ import annotations

import asyncio
import json

from tests.adapters.comfyui.host import FOLDER, SKIP

pytestmark = SKIP


def test_api_workflow_uses_existing_nodes_and_inputs() -> None:
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    assert asyncio.run(nodes.load_custom_node(str(FOLDER)))
    graph = json.loads((FOLDER / "workflows" / "hb_dpmpp_apg_higs_api.json").read_text())
    for node_id, node in graph.items():
        cls = nodes.NODE_CLASS_MAPPINGS[node["class_type"]]
        spec = cls.INPUT_TYPES()
        names = set(spec.get("required", {})) | set(spec.get("optional", {}))
        assert set(node["inputs"]) <= names, (node_id, set(node["inputs"]) - names)
        assert set(spec.get("required", {})) <= set(node["inputs"]), (node_id, node["class_type"])
