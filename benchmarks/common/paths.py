"""Where the repository is, seen from the benchmarks: the checkout root and the documentation's figure folder.

A full benchmark run copies its figures to :data:`FIGURE_DIR` (``docs/figures/``), which BENCHMARKS.md and the
documentation site show; smoke runs (``--quick``) leave it alone.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DIGITS16_DIR", "FIGURE_DIR", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository checkout (the folder holding ``benchmarks/``, ``inertia/`` and ``docs/``)."""
FIGURE_DIR = REPO_ROOT / "docs" / "figures"
"""The committed figures of BENCHMARKS.md and the documentation site."""
DIGITS16_DIR = REPO_ROOT / "tests" / "fixtures" / "digits16"
"""The 16x16 digits model: no longer shipped (the 32x32 one is), kept as the test suite's fixture, and the trained
network of the sampler study's transfer check (docs/benchmarks/samplers-vs-peers.md §14)."""
