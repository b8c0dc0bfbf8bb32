"""inertia: momentum-based sampling, guidance and decoding for diffusers and transformers.

Subpackages: `inertia.samplers` (HB/GHVB schedulers), `inertia.guidance` (APG, HiGS), `inertia.attention` (momentum
attention), `inertia.decoders` (momentum decoding and its sampling penalty, contrastive search), `inertia.metrics`, `inertia.core.diffusion`
(VP/EDM/FDM preconditioning and loss), `inertia.models`, `inertia.training` (digits data set, training recipe),
`inertia.pipelines` (loaders, presets), `inertia.ui`, `inertia.cli`. The main classes are also importable from here,
lazily, so that ``import inertia`` stays light.

Example:
    >>> import inertia
    >>> inertia.__version__
    '0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Main public classes, by defining module (saved pipelines record these module paths; keep them stable).
_LAZY = {
    "PreconditionedUNet": "inertia.models.preconditioned_unet",
    "DigitsPipeline": "inertia.pipelines.digits",
    "MomentumPLMSScheduler": "inertia.samplers",
    "MomentumDPMSolverMultistepScheduler": "inertia.samplers",
    "APG": "inertia.guidance",
    "HiGS": "inertia.guidance",
    "apply_guidance": "inertia.guidance",
    "remove_guidance": "inertia.guidance",
    "MomentumAttention": "inertia.attention",
    "apply_momentum_attention": "inertia.attention",
    "remove_momentum_attention": "inertia.attention",
    "MomentumDecodingLogitsProcessor": "inertia.decoders",
    "momentum_decode": "inertia.decoders",
    "MomentumPenaltyLogitsProcessor": "inertia.decoders",
    "momentum_sample": "inertia.decoders",
    "contrastive_search": "inertia.decoders",
    "load_image_pipeline": "inertia.pipelines",
    "load_text_model": "inertia.pipelines",
    "configure": "inertia.pipelines",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'inertia' has no attribute {name!r}")
