"""Wall-clock timing on any device: a CUDA call returns before its kernels finish, so every timed region syncs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["seconds_of", "synchronize"]


def synchronize(device: torch.device) -> None:
    """Waits for ``device``'s queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_of(call: Callable[[], Any], device: torch.device) -> float:
    """Seconds one ``call()`` takes on ``device``, its queued work included."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start
