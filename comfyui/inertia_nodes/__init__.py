"""inertia's ComfyUI nodes: momentum samplers (SAMPLER nodes) and APG / HiGS (MODEL patches).

Link or copy this folder into ``ComfyUI/custom_nodes/`` in an environment where ``inertia`` is installed. The nodes
live in :mod:`inertia.adapters.comfyui`; this folder hands them the k-diffusion-convention sampler functions.
"""

from inertia.adapters.comfyui import node_mappings
from inertia.k_diffusion import SAMPLERS

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(SAMPLERS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
