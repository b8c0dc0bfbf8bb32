"""Sampler benchmarks (docs/benchmarks: §1, §2, §12, §14): accuracy on the exact denoiser, step overhead, the peers.

* :mod:`~benchmarks.samplers.accuracy`: §1, diffusers' solvers vs inertia's momentum samplers on the exact denoiser
  (:mod:`~benchmarks.samplers.accuracy_grid`: what it runs; :mod:`~benchmarks.samplers.accuracy_report`: its tables).
* :mod:`~benchmarks.samplers.step_overhead`: §2, the per-step cost of the momentum schedulers.
* :mod:`~benchmarks.samplers.vs_peers`: §12, against k-diffusion's samplers (what it runs:
  :mod:`~benchmarks.samplers.vs_peers_grid`; its tables: :mod:`~benchmarks.samplers.vs_peers_report`);
  :mod:`~benchmarks.samplers.karras_probe`: its follow-up probe of β near 1 and per-step β.
* :mod:`~benchmarks.samplers.study`: §14, the sampler design study (its problems:
  :mod:`~benchmarks.samplers.study_problems`; its solvers: :mod:`~benchmarks.samplers.study_solvers`).
"""
