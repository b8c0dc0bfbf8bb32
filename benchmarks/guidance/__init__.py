"""Guidance benchmarks (docs/benchmarks/guidance.md §4, §11) on the embedded digits models.

* :mod:`~benchmarks.guidance.apg_higs`: §4, CFG vs APG vs HiGS vs APG+HiGS on the 16x16 digits model (what it runs:
  :mod:`~benchmarks.guidance.apg_higs_grid`; its tables and picture grid: :mod:`~benchmarks.guidance.apg_higs_report`;
  the hook's overhead on SD-sized tensors: :mod:`~benchmarks.guidance.hook_overhead`).
* :mod:`~benchmarks.guidance.vs_peers`: §11, our presets against diffusers' guiders on the 32x32 digits model.
"""
