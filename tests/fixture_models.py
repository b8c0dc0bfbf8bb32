"""Models the test suite keeps outside the wheel."""

from pathlib import Path

DIGITS16_DIR = Path(__file__).resolve().parent / "fixtures" / "digits16"
"""The 16x16 `DigitsPipeline` (about 2.5x faster than the shipped 32x32 model): the suite's default digits model."""
