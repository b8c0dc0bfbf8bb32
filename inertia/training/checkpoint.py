"""Checkpoint directories of a training run: finding the newest complete ``checkpoint-{step}`` (for resuming) and
pruning old ones."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = ["latest_checkpoint"]

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "training_state.pt"


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The ``checkpoint-{step}`` directory with the largest step under ``output_dir`` (complete ones only), or None."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir() and (p / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def prune_checkpoints(out_dir: Path, limit: int | None) -> None:
    if limit is None:
        return
    found = sorted((int(m.group(1)), p) for p in out_dir.iterdir() if (m := _CHECKPOINT_RE.match(p.name)))
    for _, path in found[: max(len(found) - limit, 0)]:
        shutil.rmtree(path, ignore_errors=True)
