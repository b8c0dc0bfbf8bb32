"""Guidance that replaces classifier-free guidance: APG (ICLR 2025) and HiGS (ICLR 2026).

The public face of the guidance methods:

- Configs: :class:`CFG`, :class:`APG`, :class:`HiGS` (validated, stateless; :mod:`inertia.core.guidance.config`);
  named APG settings in :data:`APG_PRESETS` (``APG.preset("sdxl")``; :mod:`inertia.core.presets.apg`).
- Classic pipelines: :func:`apply_guidance` / :func:`remove_guidance` (a hook on the denoiser; SD, SDXL, SD3,
  img2img variants, Flux with HiGS, inertia's DigitsPipeline; :mod:`inertia.adapters.diffusers.guidance_hook`).
- Modular pipelines: :class:`APGGuider`, :class:`HiGSGuider` (diffusers ``BaseGuidance`` subclasses;
  :mod:`inertia.adapters.diffusers.guiders`).
- The math: :mod:`inertia.core.guidance` (APG, HiGS, the x0 conversions, the per-generation state).

Names are imported on first use: the configs load without diffusers.

Example:
    >>> from inertia.guidance import APG, HiGS
    >>> APG(eta=0.0, momentum=-0.5, norm_threshold=15.0).space
    'x0'
"""

from inertia._lazy import lazy_attributes

_NAMES = {
    "APG": "inertia.core.guidance.config",
    "CFG": "inertia.core.guidance.config",
    "HiGS": "inertia.core.guidance.config",
    "APG_PRESETS": "inertia.core.presets.apg",
    "APGPreset": "inertia.core.presets.apg",
    "GuidanceLayoutError": "inertia.adapters.diffusers.guidance_layouts",
    "apply_guidance": "inertia.adapters.diffusers.guidance_hook",
    "remove_guidance": "inertia.adapters.diffusers.guidance_hook",
    "APGGuider": "inertia.adapters.diffusers.guiders",
    "HiGSGuider": "inertia.adapters.diffusers.guiders",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
