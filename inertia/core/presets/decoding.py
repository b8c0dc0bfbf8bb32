"""Momentum decoding's named resistance tables R(l) (Lan et al. 2022, eq. 2), from the authors' code.

Example:
    >>> RESISTANCE_PRESETS["default"]
    (0.0, 1.0, 3.0, 4.0, 5.0, 5.0)
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_RESISTANCE", "RESISTANCE_PRESETS"]

DEFAULT_RESISTANCE: tuple[float, ...] = (0.0, 1.0, 3.0, 4.0, 5.0, 5.0)
"""R(0..5) of the authors' code on the arXiv-v1 date (commit cac238b, "for GPT2-XL"); the pack default."""

RESISTANCE_PRESETS: dict[str, tuple[float, ...]] = {
    "default": DEFAULT_RESISTANCE,
    # The linear table left commented out at the repository's HEAD, also labelled "for GPT2-XL".
    "linear": (0.0, 1.0, 2.0, 3.0, 4.0, 5.0),
    # Ablations in the authors' code (`ngram_lookup_table_constant/log/exp`); every one has R(0) = 0.
    "constant": (0.0, 2.0, 2.0, 2.0, 2.0, 2.0),
    "log": tuple(0.0 if lvl == 0 else math.log(1 + lvl, 6) / 0.2 for lvl in range(6)),
    "exp": tuple(0.0 if lvl == 0 else 1.5**lvl / 2 for lvl in range(6)),
    # The table active at HEAD, used with a huge k: a 5-gram repeat is forbidden (+inf), a 4-gram repeat costs 5.
    "ngram_block": (0.0, 0.0, 0.0, 0.0, 5.0, math.inf),
}
"""Named resistance tables R(0), R(1), ..., R(5) of eq. (2). A level missing from a table costs +inf."""
