"""Comma-separated list arguments shared by the benchmark command lines (``--guidance 3,15 --nfe 8,10``)."""

from __future__ import annotations


def comma_floats(text: str) -> tuple[float, ...]:
    """``"3,7.5"`` → ``(3.0, 7.5)``; an empty item is skipped (argparse reports a bad number by the option name)."""
    return tuple(float(v) for v in text.split(",") if v)


def comma_ints(text: str) -> tuple[int, ...]:
    """``"8,10"`` → ``(8, 10)``."""
    return tuple(int(v) for v in text.split(",") if v)
