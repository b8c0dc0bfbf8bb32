"""The ComfyUI adapter: inertia's samplers and guidance as ComfyUI nodes (SAMPLER nodes and MODEL patches).

ComfyUI's sampler contract is k-diffusion's, so the SAMPLER nodes wrap k-diffusion-convention sampler functions in
``comfy.samplers.KSAMPLER``; the functions are handed in by the caller (:func:`node_mappings`), because an adapter
never imports another adapter: the custom-node folder ``comfyui/inertia_nodes/`` passes :data:`inertia.k_diffusion.
SAMPLERS`. Guidance (APG, HiGS) is a MODEL patch through ComfyUI's post-CFG hook that calls
:func:`inertia.core.guidance.state.guide`. ComfyUI itself is imported only inside the node methods (``comfy.samplers``
when a SAMPLER is built), so importing this package never needs ComfyUI.

Example:
    >>> from inertia.adapters.comfyui import node_mappings
    >>> from inertia.k_diffusion import SAMPLERS
    >>> classes, names = node_mappings(SAMPLERS)
    >>> names["InertiaHBDPMPP2M"]
    'HB-DPM++ 2M sampler (inertia)'
"""

from inertia.adapters.comfyui.guidance import APGNode, GuidancePatch, HiGSNode
from inertia.adapters.comfyui.nodes import node_mappings
from inertia.adapters.comfyui.samplers import DPMSamplerNode, PLMSSamplerNode, parse_beta_schedule

__all__ = [
    "APGNode",
    "DPMSamplerNode",
    "GuidancePatch",
    "HiGSNode",
    "PLMSSamplerNode",
    "node_mappings",
    "parse_beta_schedule",
]
