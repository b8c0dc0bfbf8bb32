"""The second APG search of the digits models: its choice rule, and a tiny run on the 16x16 model."""

from __future__ import annotations

import math

from fixture_models import DIGITS16_DIR

from benchmarks.product.embedded_apg_search import CANDIDATES, choose, main, search


def test_the_choice_keeps_accuracy_then_minimises_clipping() -> None:
    rows = [
        {"setting": "stock CFG", "w3": 0.99, "w15": 1.0, "clipped15": 0.23},
        {"setting": "clips most", "w3": 0.85, "w15": 1.0, "clipped15": 0.02},  # loses 14 points at w 3
        {"setting": "a", "w3": 0.985, "w15": 0.98, "clipped15": 0.05},
        {"setting": "b", "w3": 0.99, "w15": 0.97, "clipped15": 0.03},  # 3 points below CFG at w 15
        {"setting": "c", "w3": 0.98, "w15": 0.99, "clipped15": 0.07},
    ]
    assert choose(rows)["setting"] == "a"
    assert choose(rows[:2]) is None


def test_the_candidates_switch_each_part_of_apg() -> None:
    assert any(c["eta"] == 0 and c["momentum"] == 0 and math.isinf(c["norm_threshold"]) for c in CANDIDATES)
    assert any(c["eta"] == 1 and c["momentum"] == 0 and math.isfinite(c["norm_threshold"]) for c in CANDIDATES)


def test_a_tiny_search_scores_every_candidate(capsys) -> None:
    rows = search(str(DIGITS16_DIR), samples_per_digit=1)
    assert len(rows) == 1 + len(CANDIDATES)
    assert all(0.0 <= r["w3"] <= 1.0 and 0.0 <= r["clipped15"] <= 1.0 for r in rows)
    assert main([str(DIGITS16_DIR), "--samples-per-digit", "1", "--threads", "1"]) == 0
    assert "| stock CFG |" in capsys.readouterr().out
