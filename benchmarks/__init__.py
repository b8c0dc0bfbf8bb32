"""inertia's benchmarks: every figure of BENCHMARKS.md (run as ``python -m benchmarks.<area>.<suite>``).

``python -m benchmarks.run_all`` (``make bench``) runs every suite; benchmarks/README.md maps each BENCHMARKS.md
section and figure to its command and module, and lays out the areas (``samplers``, ``guidance``, ``attention``,
``decoding``, ``training``, ``product``, ``gpu``), the shared code (``common``) and the peers' code (``peers``).
"""
