"""Per-model preset settings (inertia_presets.json): checked, loaded with the model, used by configure, yours win."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from fixture_models import DIGITS16_DIR

from inertia.adapters.diffusers.guidance_hook import guidance_hook
from inertia.attention import MomentumAttention
from inertia.core.presets.models import (
    PRESETS_FILE,
    check_model_presets,
    model_presets,
    read_model_presets,
    write_model_presets,
)
from inertia.guidance import APG, HiGS
from inertia.pipelines import configure, load_image_pipeline
from inertia.pipelines.presets import guidance_methods

TUNED = {
    "guidance": {
        "apg": {"norm_threshold": 0.35, "momentum": -0.25, "eta": 0.25},
        "higs": {"weight": 0.5},
        "apg+higs": {"apg_norm_threshold": 0.3, "higs_weight": 0.75},
    },
    "attention": {"ema": {"beta": 0.4}, "extrapolate": {"beta": -0.3}},
    "sampler": {"ghvb": 2.5, "hb-dpm++": 0.7},
    "tuning": {"seeds": [100000, 100001]},
}


@pytest.fixture(scope="module")
def tuned_pipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tuned") / "digits"
    shutil.copytree(DIGITS16_DIR, folder)
    write_model_presets(folder, TUNED)
    pipe = load_image_pipeline(folder, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def installed(monkeypatch):
    """The `MomentumAttention` configs configure() installs, in order."""
    import inertia.attention

    seen: list[MomentumAttention] = []
    monkeypatch.setattr(inertia.attention, "apply_momentum_attention", lambda pipe, config: seen.append(config))
    return seen


def test_the_tuned_values_are_the_presets_defaults(tuned_pipe) -> None:
    assert guidance_methods(tuned_pipe, "apg") == (APG(norm_threshold=0.35, momentum=-0.25, eta=0.25),)
    assert guidance_methods(tuned_pipe, "higs") == (HiGS(weight=0.5),)
    assert guidance_methods(tuned_pipe, "apg+higs") == (APG(norm_threshold=0.3), HiGS(weight=0.75))
    configure(tuned_pipe, sampler="ghvb")
    assert (tuned_pipe.scheduler.config.momentum_method, tuned_pipe.scheduler.config.solver_order) == ("ghvb", 3)
    assert tuned_pipe.scheduler.config.momentum_beta == pytest.approx(0.5)
    configure(tuned_pipe, sampler="hb-dpm++")
    assert tuned_pipe.scheduler.config.momentum_beta == 0.7


def test_your_parameters_and_values_win_over_the_tuned_ones(tuned_pipe, installed) -> None:
    assert guidance_methods(tuned_pipe, "apg", momentum=0.0) == (APG(norm_threshold=0.35, momentum=0.0, eta=0.25),)
    configure(tuned_pipe, sampler="ghvb:3.8")
    assert tuned_pipe.scheduler.config.solver_order == 4
    configure(tuned_pipe, attention="ema", attention_params={"beta": 0.1})
    assert installed == [MomentumAttention(mode="ema", beta=0.1)]


def test_tuned_attention_and_the_stock_defaults_stay_stock(tuned_pipe, installed) -> None:
    configure(tuned_pipe, attention="ema")
    configure(tuned_pipe, attention="extrapolate")
    assert installed == [MomentumAttention(mode="ema", beta=0.4), MomentumAttention(mode="extrapolate", beta=-0.3)]
    stock = type(tuned_pipe._inertia_base_scheduler)
    configure(tuned_pipe)  # defaults: the stock pipeline, whatever the model ships
    assert guidance_hook(tuned_pipe) is None and type(tuned_pipe.scheduler) is stock and len(installed) == 2


def test_a_model_without_the_file_gets_the_generic_rules(tmp_path, installed) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(DIGITS16_DIR, folder)
    (folder / PRESETS_FILE).unlink()
    pipe = load_image_pipeline(folder, device="cpu")
    assert model_presets(pipe) == {"guidance": {}, "attention": {}, "sampler": {}}
    assert guidance_methods(pipe, "higs") == (HiGS(weight=1.0),)
    assert guidance_methods(pipe, "apg")[0].norm_threshold == 0.2  # DigitsPipeline's fallback (DIGITS_APG_THRESHOLD)
    configure(pipe, attention="ema")
    assert installed == [MomentumAttention(mode="ema", beta=0.2)]


def test_the_16x16_model_ships_the_apg_threshold_it_was_benchmarked_with() -> None:
    presets = read_model_presets(DIGITS16_DIR)
    assert presets["guidance"]["apg"] == {"norm_threshold": 0.2}


def test_identity_the_file_changes_nothing_the_generic_rule_did_not(tmp_path) -> None:
    """The 16x16 model's file holds the value the code used before: same images, bit for bit."""
    pipe = load_image_pipeline(device="cpu")
    pipe.set_progress_bar_config(disable=True)
    images = []
    for attached in (pipe.inertia_presets, {}):
        pipe.inertia_presets = attached
        configure(pipe, sampler="dpm++2m", guidance="apg")
        generator = torch.Generator().manual_seed(3)
        images.append(pipe([1, 7], num_inference_steps=4, guidance_scale=9.0, generator=generator, output_type="pt"))
    assert torch.equal(images[0].images, images[1].images)


def test_save_pretrained_keeps_the_tuned_settings(tuned_pipe, tmp_path) -> None:
    tuned_pipe.save_pretrained(tmp_path / "saved")
    assert read_model_presets(tmp_path / "saved") == check_model_presets(TUNED)


@pytest.mark.parametrize(
    ("presets", "message"),
    [
        ([], "must be a JSON object, got list"),
        ({"colours": {}}, r"unknown sections \['colours'\]"),
        ({"guidance": {"cfg": {}}}, r"`guidance`\['cfg'\] is not a preset that takes settings; valid: apg"),
        ({"guidance": {"apg": 0.2}}, r"`guidance`\['apg'\] must be an object of parameters, got 0.2"),
        ({"attention": {"off": {}}}, r"`attention`\['off'\] is not a preset that takes settings; valid: ema"),
        ({"sampler": {"ghvb": -1}}, r"`sampler`\['ghvb'\] must be a positive momentum number, got -1"),
        ({"sampler": {"ghvb": True}}, r"must be a positive momentum number, got True"),
        ({"sampler": {"ddim": 1.0}}, r"`sampler`\['ddim'\] is not a preset that takes settings; valid: ghvb"),
    ],
)
def test_bad_presets_are_refused_naming_the_entry(presets, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_model_presets(presets)


def test_a_broken_file_is_refused_before_the_weights_load(tmp_path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(DIGITS16_DIR, folder)
    (folder / PRESETS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"inertia_presets.json: not valid JSON"):
        load_image_pipeline(folder, device="cpu")
    (folder / PRESETS_FILE).write_text(json.dumps({"guidance": {"apg": {"norm_threshold": 0.2}}, "extra": 1}))
    with pytest.raises(ValueError, match=r"inertia_presets.json: unknown sections \['extra'\]"):
        load_image_pipeline(folder, device="cpu")


def test_bad_tuned_parameters_fail_when_the_preset_is_applied(tuned_pipe) -> None:
    saved = tuned_pipe.inertia_presets
    try:
        tuned_pipe.inertia_presets = {"guidance": {"apg": {"threshold": 0.2}}}
        with pytest.raises(
            ValueError, match=r"`guidance` parameters \['norm_threshold', 'threshold'\] do not fit APG"
        ):
            configure(tuned_pipe, guidance="apg")
    finally:
        tuned_pipe.inertia_presets = saved
