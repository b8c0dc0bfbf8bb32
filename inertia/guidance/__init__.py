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

from inertia._lazy import lazy_attributes, names_by_module

_NAMES = names_by_module(
    {
        "inertia.core.guidance.config": "APG CFG HiGS",
        "inertia.core.presets.apg": "APG_PRESETS APGPreset",
        "inertia.adapters.diffusers.guidance_layouts": "GuidanceLayoutError",
        "inertia.adapters.diffusers.guidance_hook": "apply_guidance remove_guidance",
        "inertia.adapters.diffusers.guiders": "APGGuider HiGSGuider",
    }
)
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
