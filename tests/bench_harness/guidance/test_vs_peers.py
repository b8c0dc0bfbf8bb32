"""`benchmarks.guidance.vs_peers`: its Pareto/winner rules, and a tiny run on the 16x16 model end to end."""

import json

import pytest
from fixture_models import DIGITS16_DIR

from benchmarks.guidance import vs_peers as bench
from benchmarks.peers.guidance import PEERS


def cell(method, accuracy, saturation, fd=1.0):
    return {"method": method, "class_accuracy": accuracy, "mean_saturation": saturation, "fd_digits": fd}


def test_pareto_front_keeps_exactly_the_undominated_rows() -> None:
    cells = [cell("a", 0.99, 0.60), cell("b", 0.99, 0.55), cell("c", 0.90, 0.50), cell("d", 0.90, 0.58),
             cell("e", 0.95, 0.50)]  # fmt: skip
    assert bench.pareto_front(cells) == ["b", "e"]  # a: b is as accurate and less saturated; c, d: e beats them
    assert bench.pareto_front([cell("x", 0.9, 0.5), cell("y", 0.9, 0.5)]) == ["x", "y"]  # ties dominate nobody
    assert bench.pareto_front(cells, real_saturation=0.6) == ["a"]  # a is exactly at the real saturation


def test_winner_is_lowest_fd_within_two_points_of_best_accuracy() -> None:
    cells = [cell("a", 1.0, 0.6, fd=5.0), cell("b", 0.98, 0.6, fd=4.0), cell("c", 0.97, 0.5, fd=1.0)]
    assert bench.winner(cells) == "b"
    assert bench.winner(cells, points=0.05) == "c"


def test_rows_are_the_issue_rows_peers_first() -> None:
    names = [row.name for row in bench.ROWS]
    assert names[0] == "CFG" and names[1 : 1 + len(PEERS)] == list(PEERS)
    assert [row.guidance for row in bench.ROWS if row.ours] == ["apg", "higs", "apg+higs"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("peers")
    grid = bench.Grid(scales=(7.5,), nfes=(2,), per_digit=1)
    result = bench.run(bench._pipeline(str(DIGITS16_DIR)), grid, "test", log=False, partial=out / "partial.json")
    return {"result": result, "partial": json.loads((out / "partial.json").read_text())}


def test_tiny_run_scores_every_row_and_the_peers_change_the_samples(tiny) -> None:
    result = tiny["result"]
    assert [c["method"] for c in result["cells"]] == [row.name for row in bench.ROWS]
    assert len(tiny["partial"]["cells"]) == len(bench.ROWS)
    by_name = {c["method"]: c for c in result["cells"]}
    for c in result["cells"]:
        assert c["images"] == 10 and 0 <= c["class_accuracy"] <= 1 and 0 <= c["mean_saturation"] <= 1
        assert c["fd_digits"] > 0
    # the hook really runs each peer's rule: tangential CFG and CFG-Zero* do not reproduce CFG's samples
    for name in ("tangential CFG", "CFG-Zero*", "frequency-decoupled"):
        assert by_name[name]["fd_digits"] != by_name["CFG"]["fd_digits"], name
    (regime,) = result["regimes"]
    assert regime["front"] and regime["winner"] in by_name
    assert set(regime["ours_on_front"]) == {row.name for row in bench.ROWS if row.ours}


def test_markdown_has_one_table_per_scale_and_the_target_line(tiny) -> None:
    text = bench.markdown(tiny["result"])
    assert "#### w = 7.5" in text and "| CFG-Zero* |" in text and "Target (APG or APG+HiGS" in text
    assert text.count("★") >= 1 and text.count("**") >= 2


def test_render_reanalyses_a_saved_run(tiny, tmp_path, capsys) -> None:
    saved = dict(tiny["result"], regimes=[])
    (tmp_path / "run.json").write_text(json.dumps(saved))
    assert bench.main(["--render", str(tmp_path / "run.json")]) == 0
    assert capsys.readouterr().out.strip() == bench.markdown(tiny["result"]).strip()


def test_cli_rejects_a_bad_pipeline_and_count(capsys) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--pipeline", "/nonexistent/folder/x"])
    with pytest.raises(SystemExit):
        bench.main(["--samples-per-digit", "0"])
    assert "must be an integer >= 1" in capsys.readouterr().err
