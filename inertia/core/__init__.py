"""inertia's math: every method as pure torch, read equation by equation next to its paper.

Imports nothing but torch, numpy and the standard library (``tests/test_layering.py`` checks it), so a host adapter
(diffusers, transformers, k-diffusion) or a product can use it without loading any other host.

- :mod:`inertia.core.samplers`: PLMS/GHVB/NT coefficients and update rules, heavy ball on DPM-Solver++ (2M/3M), the
  β policy of ``momentum_beta="auto"``.
- :mod:`inertia.core.guidance`: CFG, APG and HiGS rules, their configs and per-generation state.
- :mod:`inertia.core.attention`: momentum attention across denoising steps (rules, per-call trajectory state).
- :mod:`inertia.core.lm_attention`: Dai et al.'s momentum attention for language models (the value EMA).
- :mod:`inertia.core.decoding`: momentum decoding (repetition levels, resistance, selection scores).
- :mod:`inertia.core.diffusion`: VP/EDM/FDM preconditioning and losses.
- :mod:`inertia.core.presets`: every named preset (pure data) and the per-model tuned values.
- :mod:`inertia.core.validation`: the parameter checks whose errors every layer raises.
"""
