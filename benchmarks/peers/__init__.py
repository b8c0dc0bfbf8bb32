"""The peers our users run instead of inertia, implemented or wrapped for side-by-side benchmarks.

One module per area, each importable on its own (nothing is imported here eagerly, so importing one area does not
pull another's host library):

* :mod:`benchmarks.peers.decoding`: anti-repetition logits processors users reach for (DRY, from its public
  description), next to transformers' own ``repetition_penalty`` / ``no_repeat_ngram_size``.
* :mod:`benchmarks.peers.guidance`: the guidance rules of diffusers' guiders (CFG-Zero*, APG, tangential,
  frequency-decoupled, magnitude-aware) and ``guidance_rescale``, as functions our classic hook can run.
* :mod:`benchmarks.peers.k_diffusion`: k-diffusion's sampler update rules (Euler, Heun, LMS, DPM++ 2M, ...),
  transcribed with citations, for the exact-denoiser sampler benchmark.
* :mod:`benchmarks.peers.caches`: the caching rules of diffusers' cache hooks (TaylorSeer, PAB, First Block
  Cache, MagCache) as pure functions; :mod:`benchmarks.peers.cache_hooks` (attention modules, transformer blocks)
  and :mod:`benchmarks.peers.unet_cache_hooks` run them where diffusers' hooks do not attach (UNets), with the
  same outputs as diffusers' hooks where they do.

These are benchmark references, not product code: ``inertia`` never imports them. This folder is the only place for
the peers' transcriptions; our own methods are never transcribed in ``benchmarks/`` at all (the benchmarks import
them from ``inertia``, e.g. heavy-ball DPM-Solver++ as :func:`inertia.k_diffusion.sample_hb_dpmpp_2m`).
"""
