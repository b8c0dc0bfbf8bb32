"""The machine a benchmark ran on, as its reports record it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["cpu_model"]


def cpu_model(default: str) -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or ``default`` where there is none (not Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), default)
