"""benchmarks.samplers.comfyui_parity: the report, the rules, and the quick run through real ComfyUI (skips without
``make comfyui``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.peers import comfyui
from benchmarks.samplers import comfyui_parity


def test_render_marks_the_winner_and_the_identical_default() -> None:
    rows = [{"guidance": 15.0, "steps": 10, "dpmpp_2m": 0.4, "default_identical": True,
             "ratios": {"0.9": 1.01, "0.8": 0.75, "0.6": 1.2}}]  # fmt: skip
    text = comfyui_parity.render({"grid": rows}, 1.0)
    assert "| 15 | 10 | 0.4000 | identical | 1.010 | 0.750 | 1.200 | β 0.8 |" in text
    rows[0]["ratios"]["0.8"] = 1.1
    rows[0]["default_identical"] = False
    assert "| **differs** | 1.010 | 1.100 | 1.200 | dpmpp_2m |" in comfyui_parity.render({"grid": rows}, 1.0)


def test_rules_apply_only_at_few_steps_and_high_guidance() -> None:
    rule = (0.6, 7, 5.0)
    assert comfyui_parity.rule_beta(rule, 15.0, 7) == 0.6
    assert comfyui_parity.rule_beta(rule, 15.0, 8) == 1.0
    assert comfyui_parity.rule_beta(rule, 3.0, 5) == 1.0


def test_summary_counts_wins_and_losses_where_a_rule_applies() -> None:
    name_9, name_6 = comfyui_parity.RULES
    rows = [
        {"scheduler": "karras", "guidance": 20.0, "steps": 7, "ratios": {name_9: 1.0, name_6: 0.05}},
        {"scheduler": "normal", "guidance": 20.0, "steps": 6, "ratios": {name_9: 1.5, name_6: 0.99}},
    ]
    by_rule = {s["rule"]: s for s in comfyui_parity.summarise(rows)}
    assert (by_rule[name_9]["cells"], by_rule[name_9]["losses"]) == (1, 1)  # β 0.9 does not apply at 7 steps
    assert by_rule[name_9]["worst_cell"] == "normal CFG 20 6 steps"
    assert (by_rule[name_6]["cells"], by_rule[name_6]["wins"], by_rule[name_6]["losses"]) == (2, 1, 0)


@pytest.mark.skipif(not comfyui.is_fetched(), reason=f"ComfyUI is not in the cache: run `{comfyui.FETCH}`")
def test_quick_run_writes_its_table(tmp_path: Path) -> None:
    assert comfyui_parity.main(["--quick", "--out", str(tmp_path)]) == 0  # 1 only if the default is not identical
    assert "| 15 | 10 |" in (tmp_path / "comfyui_parity_quick.md").read_text()
