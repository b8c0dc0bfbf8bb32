"""benchmarks.samplers.comfyui_parity: the quick run through real ComfyUI (skips without ``make comfyui``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.peers import comfyui
from benchmarks.samplers import comfyui_parity


def test_render_marks_the_winner() -> None:
    rows = [{"guidance": 15.0, "steps": 10, "hb_dpmpp_2m": 0.3, "dpmpp_2m": 0.4, "ratio": 0.75}]
    assert "| 15 | 10 | 0.3000 | 0.4000 | 0.75 | node |" in comfyui_parity.render(rows, 1.0)


@pytest.mark.skipif(not comfyui.is_fetched(), reason=f"ComfyUI is not in the cache: run `{comfyui.FETCH}`")
def test_quick_run_writes_its_table(tmp_path: Path) -> None:
    assert comfyui_parity.main(["--quick", "--out", str(tmp_path)]) == 0
    assert "| 15 | 10 |" in (tmp_path / "comfyui_parity_quick.md").read_text()
