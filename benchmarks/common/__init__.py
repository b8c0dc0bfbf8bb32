"""What several benchmarks share: the exact-denoiser problem, prompt sets, command-line list parsers, paths.

Nothing here measures anything on its own; the suites live in the area folders (``samplers``, ``guidance``, ...).
"""
