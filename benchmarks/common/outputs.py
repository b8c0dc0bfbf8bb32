"""Writing a run's files: the summary as JSON, its Markdown report and, one JSON object a line, its samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["print_and_save", "save_figure", "write_summary"]


def save_figure(fig: Any, path: Path, **savefig: Any) -> Path:
    """Lays out a matplotlib figure, saves it to ``path`` (its folder made; ``savefig`` passed on, e.g. ``dpi``) and
    closes it; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **savefig)
    plt.close(fig)
    return path


def write_summary(summary: dict[str, Any], out: Path, stem: str, markdown: str) -> list[Path]:
    """``out/{stem}.json`` (``summary`` without its ``"samples"``), ``{stem}.md`` (``markdown``) and
    ``{stem}_samples.jsonl`` (``summary["samples"]``); returns the three paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}_samples.jsonl"]
    paths[0].write_text(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=2) + "\n")
    paths[1].write_text(markdown)
    paths[2].write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in summary["samples"]))
    return paths


def print_and_save(text: str, out: Path | None, name: str) -> None:
    """Prints a report and, when ``out`` is given, writes it to ``out/name`` too (the folder is created)."""
    print(text, end="")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
