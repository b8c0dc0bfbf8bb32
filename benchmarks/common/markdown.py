"""Markdown output helpers for the reports: a table, a number, a target verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["fmt", "met_text", "table"]


def fmt(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``inf`` / ``nan`` as Python writes them."""
    return str(value) if not math.isfinite(value) else f"{value:.{digits}f}"


def met_text(met: bool) -> str:
    """A target's verdict: ``met`` or a bold ``not met``."""
    return "met" if met else "**not met**"


def table(head: str, rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table; ``head`` like ``"name|value:"`` (a trailing ``:`` right-aligns the column)."""
    names = head.split("|")
    rule = "|".join("---:" if h.endswith(":") else "---" for h in names)
    return ["| " + " | ".join(h.rstrip(":") for h in names) + " |", f"|{rule}|",
            *("| " + " | ".join(map(str, r)) + " |" for r in rows), ""]  # fmt: skip
