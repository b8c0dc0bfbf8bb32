"""Decoding benchmarks (docs/benchmarks/decoding.md §6, §10) on the embedded SmolLM2-135M, offline.

* :mod:`~benchmarks.decoding.momentum_decoding`: §6, quality and speed of seven decoding methods on our prompt set
  (:mod:`benchmarks.common.prompt_sets`).
* :mod:`~benchmarks.decoding.vs_peers`: §10, momentum decoding against what users run instead (its rows:
  :mod:`~benchmarks.decoding.vs_peers_grid`; its report: :mod:`~benchmarks.decoding.vs_peers_report`), with a human
  reference (:mod:`~benchmarks.decoding.human_reference`: news prompts with their true continuations, MAUVE).
"""
