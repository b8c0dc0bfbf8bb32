"""Guidance that replaces classifier-free guidance: APG (ICLR 2025) and HiGS (ICLR 2026).

- Configs: :class:`CFG`, :class:`APG`, :class:`HiGS` (validated, stateless); named APG settings in
  :data:`APG_PRESETS` (``APG.preset("sdxl")``).
- Classic pipelines: :func:`apply_guidance` / :func:`remove_guidance` (a hook on the denoiser; SD, SDXL, SD3,
  img2img variants, Flux with HiGS, inertia's DigitsPipeline).
- Modular pipelines: :class:`APGGuider`, :class:`HiGSGuider` (diffusers ``BaseGuidance`` subclasses).
- Pure tensor cores: :mod:`inertia.guidance.apg`, :mod:`inertia.guidance.higs`, :mod:`inertia.guidance.spaces`,
  :mod:`inertia.guidance.state`.

Example:
    >>> from inertia.guidance import APG, HiGS
    >>> APG(eta=0.0, momentum=-0.5, norm_threshold=15.0).space
    'x0'
"""

from .apg_presets import APG_PRESETS, APGPreset
from .classic import GuidanceLayoutError, apply_guidance, remove_guidance
from .config import APG, CFG, HiGS
from .modular import APGGuider, HiGSGuider

__all__ = [
    "APG",
    "APG_PRESETS",
    "CFG",
    "APGGuider",
    "APGPreset",
    "GuidanceLayoutError",
    "HiGS",
    "HiGSGuider",
    "apply_guidance",
    "remove_guidance",
]
