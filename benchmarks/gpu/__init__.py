"""For a session with a GPU lent (docs/gpu.md): the GPU check, the wheels it needs, a one-command training run.

* :mod:`~benchmarks.gpu.wheels`: here, with the registry: the wheels the offline GPU machine lacks (``make
  gpu-wheels``).
* :mod:`~benchmarks.gpu.check`: there: the ``pytest -m gpu`` tests and quick GPU figures
  (:mod:`~benchmarks.gpu.figures`), with a report (:mod:`~benchmarks.gpu.report`; ``make gpu-check``).
* :mod:`~benchmarks.gpu.train_digits`: a training run of the 32x32 digits model fitted to a wall-clock budget.

These run on a bare machine from the repository: they import torch, diffusers, transformers and inertia, nothing
that machine cannot be given as a wheel.
"""
