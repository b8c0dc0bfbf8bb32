"""`benchmarks.product.embedded_model`: the report's structure and targets, tune's choices and `--write`, the picture grid,
the seeds and the command line, on the shipped 16x16 model with one sample per digit and 2-3 steps."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_models import DIGITS16_DIR
from PIL import Image

from benchmarks.common.paths import REPO_ROOT
from benchmarks.product import embedded_model as em
from benchmarks.product import embedded_report, embedded_scoring, embedded_tune
from inertia.core.presets.models import PRESETS_FILE, read_model_presets
from inertia.pipelines.presets import ATTENTION_PRESETS, GUIDANCE_PRESETS, guidance_methods

REPO = REPO_ROOT


def _model16() -> Path:
    """The 16x16 digits model (the test suite's fixture, outside the wheel)."""
    return DIGITS16_DIR


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with embedded_scoring.limit_threads(
        1
    ):  # a busy 2-core machine runs small calls several times faster on one thread
        yield


@pytest.fixture(scope="module")
def model16(tmp_path_factory) -> Path:
    """A copy of the 16x16 model: the tests never write into the repository's model folders."""
    return Path(shutil.copytree(_model16(), tmp_path_factory.mktemp("model") / "digits16"))


@pytest.fixture(scope="module")
def report(model16: Path, tmp_path_factory) -> dict:
    grid = tmp_path_factory.mktemp("grid") / "grid.png"
    return em.run_report(model16, model16, 1, steps=embedded_scoring.QUICK_STEPS, grid=grid, command="test", log=False)


def test_evaluation_and_tuning_seeds_are_disjoint(model16: Path) -> None:
    n = 10 * embedded_scoring.MAX_SAMPLES_PER_DIGIT
    assert set(embedded_scoring.seeds(embedded_scoring.EVAL_SEED_BASE, n)).isdisjoint(
        embedded_scoring.seeds(embedded_scoring.TUNING_SEED_BASE, n)
    )
    # one generator per image: image i of a scorer is digit i % 10 from seed base + i, alone
    pipe = embedded_scoring.load(model16)
    setting = embedded_scoring.Setting(steps=2)
    for base in (embedded_scoring.EVAL_SEED_BASE, embedded_scoring.TUNING_SEED_BASE):
        images = embedded_scoring.Scorer(pipe, base, log=False).images(setting, 1)
        alone = pipe(3, num_inference_steps=2, guidance_scale=3.0, generator=torch.Generator().manual_seed(base + 3),
                     output_type="pt").images  # fmt: skip
        torch.testing.assert_close(images[3:4], alone, atol=1e-5, rtol=0)


def test_report_structure(report: dict, model16: Path) -> None:
    head = report["headline"]
    assert head["images"] == 10 and 0 <= head["class_accuracy"] <= 1
    assert head["fd_ratio"] == pytest.approx(head["fd_digits"] / head["real_fd_halves"])
    high = report["high_guidance"]
    assert high["clipped_ratio"] == pytest.approx(high["cfg"]["clipped_fraction"] / high["apg"]["clipped_fraction"])
    assert high["accuracy_gap"] == pytest.approx(high["apg"]["class_accuracy"] - high["cfg"]["class_accuracy"])
    expected = {("sampler", s) for s in embedded_report.usable_samplers(embedded_scoring.load(model16))}
    expected |= {("guidance", g) for g in GUIDANCE_PRESETS} | {("attention", a) for a in ATTENTION_PRESETS}
    assert len(expected) >= 19  # a VP model takes every sampler preset
    tables = report["presets"]
    assert {(r["kind"], r["preset"]) for r in tables["guidance_3"]} == expected
    assert {(r["kind"], r["preset"]) for r in tables["ui_defaults"]} == expected | {("UI default", "hb-dpm++ + apg")}
    for rows in tables.values():
        stock = next(r for r in rows if r["preset"] == "dpm++2m")
        for r in rows:
            assert r["diff"] == pytest.approx(r["class_accuracy"] - stock["class_accuracy"])
            assert r["met"] is (r["diff"] >= -0.02 - 1e-9)
    assert report["seeds"] == "0..9" and report["machine"]["torch_threads"] == 1
    assert report["speed"]["pipeline"] > 0 and report["speed"]["ratio"] > 0  # --old given: the same model
    assert [t["met"] for t in report["targets"]] == [t["met"] for t in embedded_report.evaluate_targets(report)]
    assert len(report["targets"]) == 6 and all(isinstance(t["met"], bool) for t in report["targets"])
    text = embedded_report.report_markdown(report)
    for needle in ("| class accuracy at w 3 |", "| FD-digits / real-halves FD at w 3 |", "`test`", "new / old",
                   "| sampler | `ghvb` |", "| UI default | `hb-dpm++ + apg` |", "torch thread(s)"):  # fmt: skip
        assert needle in text
    assert text.count("met |") + text.count("**not met** |") >= 6


def test_grid_has_8_rows_of_10_digits(report: dict) -> None:
    image = np.asarray(Image.open(report["grid"]).convert("RGB"))
    cell = 16 * 6  # 16x16 images enlarged 6x: 96 px
    assert image.shape == (embedded_report.HEADER_HEIGHT + 8 * cell, embedded_report.LABEL_WIDTH + 10 * cell, 3)
    labels = [label for label, _ in embedded_report.grid_rows(embedded_scoring.QUICK_STEPS)]
    assert len(labels) == 8 and labels[0].startswith("stock CFG · w 3") and labels[7].startswith("GHVB · w 15")
    for row in range(8):
        for col in range(10):
            y, x = embedded_report.HEADER_HEIGHT + row * cell, embedded_report.LABEL_WIDTH + col * cell
            tile = image[y : y + cell, x : x + cell]
            assert tile.std() > 0  # an image, not background
            assert (tile[::6, ::6].repeat(6, 0).repeat(6, 1) == tile).all()  # nearest-neighbour blocks


def _result(accuracy=0.98, fd=2.5, real=1.0, cfg_clip=0.3, apg_clip=0.1, cfg_acc=0.98, apg_acc=0.96, diffs=(0.0,)):
    rows = [{"kind": "sampler", "preset": f"s{i}", "diff": d} for i, d in enumerate(diffs)]
    return {
        "headline": {"class_accuracy": accuracy, "fd_ratio": fd / real},
        "high_guidance": {
            "clipped_ratio": embedded_report._ratio(cfg_clip, apg_clip),
            "accuracy_gap": apg_acc - cfg_acc,
        },
        "presets": {"guidance_3": rows, "ui_defaults": rows},
    }


@pytest.mark.parametrize(
    ("changes", "missed"),
    [
        ({}, set()),  # every value exactly at its bound (0.96 - 0.98 is -0.020000000000000018 in floats)
        ({"accuracy": 0.979}, {0}),
        ({"fd": 2.51}, {1}),
        ({"fd": 1.0, "real": 0.0001}, {1}),
        ({"apg_clip": 0.1001}, {2}),
        ({"apg_clip": 0.0}, set()),  # CFG clips, APG never: infinitely better
        ({"apg_acc": 0.9599}, {3}),
        ({"apg_acc": 1.0}, set()),  # better than CFG is fine
        ({"diffs": (0.05, -0.02, -0.0201)}, {4, 5}),
        ({"diffs": (0.05, 0.1)}, set()),
    ],
)
def test_target_logic(changes: dict, missed: set) -> None:
    targets = embedded_report.evaluate_targets(_result(**changes))
    assert {i for i, t in enumerate(targets) if not t["met"]} == missed
    if "diffs" in changes and missed:
        assert "worst: sampler s2" in targets[4]["target"]


def test_apg_choice_picks_the_least_clipping_candidate_that_passes_the_checks() -> None:
    rows = [
        {"name": "a", "class_accuracy": 0.85, "clipped_fraction": 0.01},  # 5 points below CFG: out
        {"name": "b", "class_accuracy": 0.89, "clipped_fraction": 0.05},  # exactly 1 point below: in
        {"name": "c", "class_accuracy": 0.95, "clipped_fraction": 0.10},
        {"name": "d", "class_accuracy": 0.95, "clipped_fraction": 0.20},
    ]
    assert [r["name"] for r in embedded_tune.rank_apg(rows, 0.90)] == ["b", "c", "d"]
    checks = {"b": (0.80, 0.99), "c": (0.92, 0.97), "d": (0.99, 0.99)}  # (accuracy at w 3, at the UI defaults)

    def check(row):
        return dict(zip(("accuracy_w3", "accuracy_ui"), checks[row["name"]], strict=True))

    chosen = embedded_tune.select_apg([dict(r) for r in rows], 0.90, 0.93, 0.97, check, finalists=3)
    assert chosen["name"] == "c" and chosen["passes"]  # b loses 13 points at w 3; c: 1 below stock, = stock CFG at UI
    assert (
        embedded_tune.select_apg([dict(r) for r in rows], 0.90, 0.93, 0.98, check, finalists=2) is None
    )  # c 1 point below
    assert embedded_tune.select_apg([dict(r) for r in rows], 0.90, 0.93, 0.98, check, finalists=3)["name"] == "d"


def test_neutral_choice() -> None:
    rows = [
        {"beta": 0.4, "class_accuracy": 0.97, "fd_digits": 1.0},
        {"beta": 0.1, "class_accuracy": 0.97, "fd_digits": 2.0},
        {"beta": -0.2, "class_accuracy": 0.97, "fd_digits": 2.0},
    ]
    row, reason = embedded_tune.select_neutral(rows, 0.97, "beta")
    assert row["beta"] == 0.4 and "lowest FD" in reason  # exactly at stock's accuracy counts; FD halved
    rows[0]["fd_digits"] = 1.9  # 5% lower than the neutral 0.1's: not enough to leave it
    row, reason = embedded_tune.select_neutral(rows, 0.97, "beta")
    assert row["beta"] == 0.1 and "most neutral" in reason
    rows[0]["fd_digits"], rows[1]["class_accuracy"] = 1.0, 0.96  # 0.1 loses accuracy: -0.2 is the neutral one left
    assert embedded_tune.select_neutral(rows, 0.97, "beta")[0]["beta"] == 0.4
    rows[0]["fd_digits"] = 1.95
    assert embedded_tune.select_neutral(rows, 0.97, "beta")[0]["beta"] == -0.2
    row, reason = embedded_tune.select_neutral(rows, 0.99, "beta")  # nothing keeps accuracy
    assert row["beta"] == 0.1 and "no value" in reason


def test_merge_keeps_what_tune_does_not_search() -> None:
    existing = {"guidance": {"higs": {"weight": 1.0, "ema": 0.5}}, "sampler": {"ghvb": 3.8}, "tuning": {"old": 1}}
    merged = embedded_tune.merge_presets(existing, {"guidance": {"higs": {"weight": 0.5}, "apg": {"momentum": -0.25}}})
    assert merged == {"guidance": {"higs": {"weight": 0.5, "ema": 0.5}, "apg": {"momentum": -0.25}},
                      "sampler": {"ghvb": 3.8}}  # fmt: skip
    assert existing["guidance"]["higs"]["weight"] == 1.0


def test_tune_write_saves_the_choice_into_the_given_folder(model16: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(model16, tmp_path / "model"))
    shipped = (_model16() / PRESETS_FILE).read_bytes() if (_model16() / PRESETS_FILE).is_file() else None
    result = em.run_tune(
        folder, 1, embedded_tune.QUICK_GRID, embedded_scoring.QUICK_STEPS, write=True, command="tune test", log=False
    )
    assert result["written"] == str(folder / PRESETS_FILE)
    searched = [r["search"] for r in result["candidates"]]
    assert searched == ["apg"] * 3 + ["higs", "ema", "extrapolate"]  # r x2 at β -0.5, then β 0 at the best r
    presets = read_model_presets(folder)
    apg = presets["guidance"]["apg"]
    assert set(apg) == {"norm_threshold", "momentum", "eta"}
    assert presets["guidance"]["apg+higs"] == {**{f"apg_{k}": v for k, v in apg.items()},
                                               "higs_weight": presets["guidance"]["higs"]["weight"]}  # fmt: skip
    assert set(presets["attention"]) == {"ema", "extrapolate"}
    tuning = presets["tuning"]
    assert tuning["command"] == "tune test" and tuning["samples_per_digit"] == 1
    assert tuning["seeds"].startswith(f"{embedded_scoring.TUNING_SEED_BASE}..") and len(tuning["candidates"]) == 6
    (method,) = guidance_methods(embedded_scoring.load(folder), "apg")  # configure() now uses the tuned values
    assert (method.norm_threshold, method.momentum, method.eta) == (apg["norm_threshold"], apg["momentum"], apg["eta"])
    after = (_model16() / PRESETS_FILE).read_bytes() if (_model16() / PRESETS_FILE).is_file() else None
    assert after == shipped  # the repository's model is untouched
    assert "| apg |" in embedded_tune.tune_markdown(result)


def test_cli_quick_tune_without_write_writes_only_the_json(model16: Path, tmp_path: Path, capsys) -> None:
    before = (model16 / PRESETS_FILE).read_bytes()
    assert em.main(["tune", str(model16), "--quick", "--out", str(tmp_path)]) == 0
    assert (model16 / PRESETS_FILE).read_bytes() == before
    assert json.loads((tmp_path / "tune.json").read_text())["written"] is None
    assert "pass --write" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "{model}", "--samples-per-digit", "0"], "must be an integer in [1, 10000]"),
        (["tune", "{model}", "--samples-per-digit", "ten"], "must be an integer in [1, 10000]"),
        (["report", "{missing}"], "neither an existing directory nor a hub id"),
        (["report", "{model}", "--old", "{empty}"], "without a model_index.json"),
        (["tune", "{model}", "--threads", "0"], "must be an integer in [1, 256]"),
        (["score", "{model}"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(argv, message, model16, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(em, "run_report", lambda *a, **k: pytest.fail("ran despite bad arguments"))
    monkeypatch.setattr(em, "run_tune", lambda *a, **k: pytest.fail("ran despite bad arguments"))
    (tmp_path / "empty").mkdir()
    paths = {"model": model16, "missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    with pytest.raises(SystemExit) as info:
        em.main([a.format(**paths) for a in argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_module_help() -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.product.embedded_model", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert "report" in out and "tune" in out


def test_ui_defaults_match_the_image_tab() -> None:
    import inspect

    from inertia.ui.image_tab import generate_images

    params = inspect.signature(generate_images).parameters
    assert {k: params[k].default for k in embedded_scoring.UI_DEFAULTS} == embedded_scoring.UI_DEFAULTS
    assert params["auto_beta"].default is True  # plain `hb-dpm++`: β from the scale and the steps
    assert embedded_scoring.Steps().low == embedded_scoring.UI_DEFAULTS["steps"]
