"""inertia's momentum samplers as k-diffusion sampler functions (ComfyUI, Forge and other k-diffusion hosts).

Every function has k-diffusion's signature ``sample_x(model, x, sigmas, extra_args=None, callback=None,
disable=None, **options)``: ``model(x, sigma * s_in, **extra_args)`` returns the denoised x0, ``x`` starts at noise
level ``sigmas[0]`` and ``sigmas`` is a decreasing 1-D tensor, usually ending in 0. They live in the k-diffusion adapter
(:mod:`inertia.adapters.k_diffusion`) over the same math core as the diffusers schedulers
(:mod:`inertia.core.samplers.plms_momentum`, :mod:`inertia.core.samplers.heavy_ball_dpm`), so on the same sigmas they
take the same steps as `MomentumDPMSolverMultistepScheduler` and `MomentumPLMSScheduler`. Importing this package loads
torch and our core, never diffusers or transformers.

Example:
    >>> import torch
    >>> from inertia.k_diffusion import sample_ghvb, sample_hb_dpmpp_2m
    >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)   # exact x0 for data ~ N(0, 1)
    >>> sigmas = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.0])
    >>> x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    >>> a = sample_hb_dpmpp_2m(denoiser, x, sigmas, disable=True, beta=0.8)
    >>> b = sample_ghvb(denoiser, x, sigmas, disable=True, order=4, beta=0.8)
    >>> a.shape == b.shape == x.shape
    True
"""

from inertia.adapters.k_diffusion import (
    SAMPLERS,
    sample_ghvb,
    sample_hb,
    sample_hb_dpmpp_2m,
    sample_hb_dpmpp_3m,
    sample_nt,
)

__all__ = ["SAMPLERS", "sample_ghvb", "sample_hb", "sample_hb_dpmpp_2m", "sample_hb_dpmpp_3m", "sample_nt"]
