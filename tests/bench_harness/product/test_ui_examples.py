"""`benchmarks.product.ui_examples`: the win rule, the choice, and smoke runs of both commands on the 16x16 fixture."""

from __future__ import annotations

import json
from pathlib import Path

from fixture_models import DIGITS16_DIR

from benchmarks.product import ui_examples
from inertia.ui.image_controls import EXAMPLES


def _row(recognised: float, clipped: float, base_recognised: float = 0.9, base_clipped: float = 0.2) -> dict:
    score = {"class_accuracy": recognised, "clipped_fraction": clipped}
    baseline = {"class_accuracy": base_recognised, "clipped_fraction": base_clipped}
    return {"recognised": recognised, "clipped": clipped, "baseline_recognised": base_recognised,
            "baseline_clipped": base_clipped, "wins": ui_examples.wins(score, baseline)}  # fmt: skip


def test_a_win_needs_both_figures_at_least_as_good() -> None:
    assert _row(0.9, 0.2)["wins"]  # a tie wins
    assert not _row(0.89, 0.05)["wins"]  # fewer clipped values but fewer digits recognised
    assert not _row(1.0, 0.21)["wins"]


def test_the_choice_is_the_winner_that_clips_least_relative_to_its_baseline() -> None:
    rows = [_row(0.9, 0.15), _row(0.95, 0.1), _row(0.8, 0.01), _row(1.0, 0.12, base_clipped=0.3)]
    assert ui_examples.choose(rows) is rows[3]  # 0.18 fewer clipped than its own baseline
    assert ui_examples.choose([_row(0.5, 0.5)]) is None


def test_the_settings_are_the_tabs_and_the_baseline_the_compare_modes() -> None:
    for example in EXAMPLES:
        setting, baseline = ui_examples.setting_of(example), ui_examples.baseline_of(example)
        assert (setting.sampler, setting.guidance) == (example.presets()["sampler"], example.guidance)
        assert (baseline.sampler, baseline.guidance, baseline.scale, baseline.steps) == (
            "default", "none", example.scale, example.steps
        )  # fmt: skip


def test_quick_runs_write_their_tables(tmp_path: Path, capsys) -> None:
    folder = str(DIGITS16_DIR)
    assert ui_examples.main(["check", "--quick", "--pipeline", folder, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "check.json").read_text())["result"]
    assert [r["label"] for r in result] == [e.label for e in EXAMPLES]
    assert all(r["images"] == 10 and isinstance(r["wins"], bool) for r in result)
    assert "buttons win on the evaluation seeds" in capsys.readouterr().out
    assert ui_examples.main(["search", "--quick", "--pipeline", folder, "--out", str(tmp_path)]) == 0
    assert "Chosen:" in (tmp_path / "search.md").read_text()
