"""The node tables ComfyUI reads from a custom-node folder: ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``.

Uses ComfyUI's classic node interface (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``, ``CATEGORY``): plain
classes, so building the tables needs no ComfyUI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inertia.adapters.comfyui.guidance import APGNode, HiGSNode
from inertia.adapters.comfyui.samplers import DPMSamplerNode, PLMSSamplerNode, SamplerFunction

__all__ = ["SAMPLER_NODES", "node_mappings"]

SAMPLER_NODES = {
    # node id: (sampler name in the k-diffusion table, node base, display name, ComfyUI's sampler at β = 1)
    "InertiaHBDPMPP2M": ("hb_dpmpp_2m", DPMSamplerNode, "HB-DPM++ 2M sampler (inertia)", "dpmpp_2m"),
    "InertiaHBDPMPP3M": ("hb_dpmpp_3m", DPMSamplerNode, "HB-DPM++ 3M sampler (inertia)", None),
    "InertiaHBPLMS": ("hb", PLMSSamplerNode, "HB (PLMS) sampler (inertia)", None),
    "InertiaGHVBPLMS": ("ghvb", PLMSSamplerNode, "GHVB (PLMS) sampler (inertia)", None),
    "InertiaNTPLMS": ("nt", PLMSSamplerNode, "NT (PLMS) sampler (inertia)", None),
}
"""The SAMPLER nodes: their ComfyUI ids, the sampler function each wraps, their menu names and the ComfyUI sampler
each equals at β = 1 (handed over as it is: ComfyUI 0.3.75 has no deterministic plain 3M, and no PLMS)."""


def node_mappings(samplers: Mapping[str, SamplerFunction]) -> tuple[dict[str, type], dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` with the SAMPLER nodes wrapping ``samplers``.

    Args:
        samplers: the k-diffusion-convention sampler functions by short name (``inertia.k_diffusion.SAMPLERS``):
            ``hb_dpmpp_2m``, ``hb_dpmpp_3m``, ``hb``, ``ghvb``, ``nt``.

    Raises:
        ValueError: naming ``samplers`` when one of those names is missing.

    Example:
        >>> from inertia.k_diffusion import SAMPLERS
        >>> classes, names = node_mappings(SAMPLERS)
        >>> sorted(classes)[:3]
        ['InertiaAPG', 'InertiaGHVBPLMS', 'InertiaHBDPMPP2M']
    """
    missing = sorted({name for name, *_ in SAMPLER_NODES.values()} - set(samplers))
    if missing:
        raise ValueError(f"`samplers` must hold the sampler functions {missing}, got {sorted(samplers)}.")
    classes: dict[str, type] = {}
    names: dict[str, str] = {}
    for node_id, (name, base, display, stock) in SAMPLER_NODES.items():
        attributes: dict[str, Any] = {"FUNCTION_IMPL": staticmethod(samplers[name]), "__module__": __name__}
        if stock is not None:
            attributes["STOCK_AT_BETA_1"] = stock
        classes[node_id] = type(node_id, (base,), attributes)
        names[node_id] = display
    classes["InertiaAPG"], names["InertiaAPG"] = APGNode, "APG, Algorithm 1 (inertia)"
    classes["InertiaHiGS"], names["InertiaHiGS"] = HiGSNode, "HiGS (inertia)"
    return classes, names
