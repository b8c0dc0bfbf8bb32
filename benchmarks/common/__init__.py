"""What several benchmarks share: the exact-denoiser problem, prompt sets, an SD1.5-sized UNet, timing, CLI parsers.

Nothing here measures anything on its own; the suites live in the area folders (``samplers``, ``guidance``, ...).
"""
