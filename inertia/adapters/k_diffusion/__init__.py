"""The k-diffusion adapter: our momentum samplers in k-diffusion's calling convention (ComfyUI, Forge, A1111).

Public face: :mod:`inertia.k_diffusion`. Each function translates ``sample_x(model, x, sigmas, extra_args, callback,
disable, **options)`` into calls of the math core; it imports neither diffusers nor transformers.
"""

from inertia.adapters.k_diffusion.dpm_solver import sample_hb_dpmpp_2m, sample_hb_dpmpp_3m
from inertia.adapters.k_diffusion.plms import sample_ghvb, sample_hb, sample_nt

SAMPLERS = {
    "hb_dpmpp_2m": sample_hb_dpmpp_2m,
    "hb_dpmpp_3m": sample_hb_dpmpp_3m,
    "hb": sample_hb,
    "ghvb": sample_ghvb,
    "nt": sample_nt,
}
"""The sampler functions by short name (k-diffusion's naming: the function is ``sample_<name>``)."""

__all__ = ["SAMPLERS", "sample_ghvb", "sample_hb", "sample_hb_dpmpp_2m", "sample_hb_dpmpp_3m", "sample_nt"]
