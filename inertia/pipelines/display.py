"""Images a person can see: integer nearest-neighbour enlargement of small images (the CLI's PNGs, the UI).

Pure PIL and numpy: the raw pixels are kept exactly (every source pixel becomes a ``factor x factor`` block), so the
enlarged image can be reduced back to the raw one.

Example:
    >>> from PIL import Image
    >>> display_factor(16), display_factor(32), display_factor(512)
    (16, 8, 1)
    >>> enlarge(Image.new("RGB", (16, 16)), 16).size
    (256, 256)
"""

from __future__ import annotations

import math

from PIL import Image

__all__ = ["DISPLAY_SIZE", "display_factor", "enlarge"]

DISPLAY_SIZE = 256
"""Small images are enlarged, nearest neighbour, until their longer side is at least this many pixels."""


def display_factor(longer_side: int, size: int = DISPLAY_SIZE) -> int:
    """The smallest integer factor that makes ``longer_side`` at least ``size`` pixels (1 for images that are)."""
    return max(1, math.ceil(size / longer_side))


def enlarge(image: Image.Image, factor: int) -> Image.Image:
    """``image`` enlarged ``factor`` times, nearest neighbour (``factor`` 1 returns it unchanged)."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"`factor` must be an integer >= 1, got {factor!r}.")
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
