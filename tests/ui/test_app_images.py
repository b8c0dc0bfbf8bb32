"""The Image tab through gradio_client: generation, compare mode, a local pipeline folder, readable errors."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError
from PIL import Image

from inertia.ui.image_tab import preset_attention_beta, to_display

FAST = {"steps": 6, "batch": 2}
"""Small requests: the tests check wiring and exactness, not quality."""


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@functools.cache
def _reference_pipe() -> Any:
    from inertia.pipelines.image import load_image_pipeline

    pipe = load_image_pipeline(device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(digit: int, seed: int, batch: int, steps: int, scale: float = 7.5, **configuration: Any) -> list:
    """The same request made directly on a separate pipeline: what the app must show, pixel for pixel."""
    from inertia.pipelines.presets import configure

    pipe = configure(_reference_pipe(), **configuration)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
    images = pipe(
        [digit] * batch, num_inference_steps=steps, guidance_scale=scale, generator=generators, output_type="pt"
    ).images
    return [np.asarray(image) for image in to_display(images)]


def test_generate_image_matches_the_pipeline(client) -> None:
    gallery, slider, table, figures = client.predict(
        digit=3,
        seed=11,
        sampler="ghvb",
        beta=0.8,
        auto_beta=False,
        order=4,
        guidance="apg",
        compare=False,
        **FAST,
        api_name="/generate_image",
    )
    assert slider is None and set(figures["runs"]) == {"chosen"}
    assert figures["runs"]["chosen"]["config"]["sampler"] == "ghvb:3.8"
    assert [item["caption"] for item in gallery] == ["seed 11", "seed 12"]
    shown = [pixels(item["image"]) for item in gallery]
    assert all(image.shape == (256, 256, 3) for image in shown)  # 16x16 enlarged 16x
    expected = reference(3, 11, 2, 6, sampler="ghvb:3.8", guidance="apg")
    for got, want in zip(shown, expected, strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert "| **chosen** | `ghvb:3.8` | `apg` | " in table and "attention" not in table  # no attention: no column
    assert 0.0 <= figures["runs"]["chosen"]["mean_saturation"] <= 1.0 and figures["runs"]["chosen"]["seconds"] > 0


def test_compare_mode_shows_baseline_and_choice_from_the_same_seeds(client) -> None:
    # Every momentum control left at the tab's defaults: they must be the presets' own defaults.
    gallery, slider, table, figures = client.predict(
        digit=5,
        seed=4,
        sampler="hb-dpm++",
        beta=0.6,
        auto_beta=False,
        guidance="apg+higs",
        attention="extrapolate",
        compare=True,
        **FAST,
        api_name="/generate_image",
    )
    baseline, chosen = (pixels(path) for path in slider)  # one seed, the first, on both sides
    assert baseline.shape == chosen.shape == (256, 256, 3)
    runs = figures["runs"]
    assert runs["baseline"]["config"] == {"sampler": "default", "guidance": "none", "attention": "off"}
    assert runs["chosen"]["config"]["sampler"] == "hb-dpm++:0.6"
    assert runs["chosen"]["config"]["attention_params"] == {}  # the model's tuned settings (none for attention)
    assert runs["chosen"]["settings"]["attention"]["beta"] == preset_attention_beta("extrapolate")
    apg, higs = runs["chosen"]["settings"]["guidance"]
    assert apg["method"] == "APG" and apg["norm_threshold"] == 0.2 and higs == {"method": "HiGS", **higs}
    assert 0.0 <= runs["chosen"]["recognised"] <= 1.0 and "| recognised |" in table
    assert "| **baseline** | stock scheduler | stock CFG | `off` |" in table  # the stock run is CFG, not "none"
    assert "| run | sampler | guidance | attention | s | saturation | clipped | recognised |" in table
    assert "**chosen**" in table
    want_base = reference(5, 4, 2, 6)
    want_chosen = reference(5, 4, 2, 6, sampler="hb-dpm++:0.6", guidance="apg+higs", attention="extrapolate")
    for side, want in ((baseline, want_base), (chosen, want_chosen)):
        assert np.abs(side.astype(int) - want[0].astype(int)).max() <= 1  # seed 4 on both sides
    assert np.array_equal(chosen, pixels(gallery[0]["image"]))
    assert not np.array_equal(baseline, chosen)


@pytest.mark.parametrize("sampler", ["ghvb", "hb", "nt", "hb-dpm++"])
def test_auto_beta_applies_to_every_momentum_sampler(client, sampler) -> None:
    _, _, table, figures = client.predict(
        digit=1, sampler=sampler, beta=0.55, auto_beta=True, guidance="none", scale=15.0, compare=False,
        **FAST, api_name="/generate_image",
    )  # fmt: skip
    chosen = figures["runs"]["chosen"]
    assert chosen["config"]["sampler"] == sampler  # the plain preset: momentum_beta="auto"
    beta = chosen["settings"]["momentum_beta"]
    pipe = _reference_pipe()
    from inertia.pipelines.presets import configure

    configure(pipe, sampler=sampler, guidance_scale=15.0)
    pipe.scheduler.set_timesteps(FAST["steps"])
    assert beta == pipe.scheduler.momentum_beta != 0.55  # the library's auto β, not the slider's
    assert f"| **chosen** | `{sampler}` auto β {beta:g} | stock CFG |" in table


def test_digit_is_a_string_in_the_api_and_accepted_as_one(client) -> None:
    digit = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate_image"]
    assert "'7'" in digit["parameters"][1]["python_type"]["type"]
    _, _, _, as_text = client.predict(digit="4", seed=2, compare=False, **FAST, api_name="/generate_image")
    _, _, _, as_number = client.predict(digit=4, seed=2, compare=False, **FAST, api_name="/generate_image")
    assert as_text["digit"] == as_number["digit"] == 4


def test_the_sliders_apply_when_the_tuned_settings_are_off(client) -> None:
    _, _, _, figures = client.predict(
        digit=2, attention="ema", ema_beta=0.5, tuned=False, compare=False, **FAST, api_name="/generate_image"
    )
    assert figures["runs"]["chosen"]["config"]["attention_params"] == {"beta": 0.5}
    assert figures["runs"]["chosen"]["settings"]["attention"]["beta"] == 0.5
    _, _, _, figures = client.predict(
        digit=2,
        guidance="apg",
        apg_momentum=0.25,
        apg_threshold=3.0,
        tuned=False,
        compare=False,
        **FAST,
        api_name="/generate_image",
    )
    (apg,) = figures["runs"]["chosen"]["settings"]["guidance"]
    assert (apg["momentum"], apg["norm_threshold"]) == (0.25, 3.0)


def test_the_tuned_settings_override_the_sliders(client) -> None:
    _, _, _, figures = client.predict(
        digit=2,
        guidance="apg",
        apg_threshold=3.0,
        attention="ema",
        ema_beta=0.5,
        compare=False,
        **FAST,
        api_name="/generate_image",
    )
    chosen = figures["runs"]["chosen"]
    assert figures["tuned"] is True
    assert chosen["settings"]["guidance"][0]["norm_threshold"] == 0.2  # digits-16's inertia_presets.json
    assert chosen["settings"]["attention"]["beta"] == preset_attention_beta("ema")


def test_a_saved_pipeline_folder_is_a_model(client, tmp_path) -> None:
    from inertia.pipelines.image import load_image_pipeline

    load_image_pipeline(device="cpu").save_pretrained(tmp_path / "my-digits")  # stock scheduler (see report)
    _, _, _, figures = client.predict(
        model=str(tmp_path / "my-digits"), seed=1, compare=False, **FAST, api_name="/generate_image"
    )
    assert figures["model"] == str(tmp_path / "my-digits")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"steps": 0}, "Steps: Value 0 is less than minimum value 1."),
        ({"batch": 99}, "Batch: Value 99 is greater than maximum value 8."),
        ({"sampler": "warp"}, "Sampler: Value: warp is not in the list of choices: ['default', 'dpm++2m',"),
        ({"guidance": "magic"}, "Guidance: Value: magic is not in the list of choices"),
        ({"digit": "12"}, "Digit (digits models): Value: '12' is not in the list of choices: ['0', '1',"),
        ({"digit": 12}, "Digit (digits models): Value: '12' is not in the list of choices: ['0', '1',"),
        ({"scale": 31}, "Guidance scale: Value 31 is greater than maximum value 30.0."),
        ({"apg_momentum": 1.5}, "APG β (momentum): Value 1.5 is greater than maximum value 0.95."),
        ({"higs_weight": -1, "guidance": "higs"}, "HiGS weight w_h: Value -1 is less than minimum value 0.0."),
        ({"seed": -3}, "Seed: Value -3 is less than minimum value 0."),
        ({"attention": "ema", "ema_beta": 0.99}, "ema β: Value 0.99 is greater than maximum value 0.95."),
        ({"prompt": "a cat"}, "The embedded digits model takes a digit, not a prompt"),
        ({"model": "./no/such/folder"}, "Could not load the image model './no/such/folder'"),
        ({"model": "not a hub id"}, "is neither an existing directory nor a hub id"),
        ({"seed": 1.5}, "Seed must be a whole number, got 1.5."),
        ({"seed": "abc"}, "Seed must be a number, got 'abc'."),
        ({"scale": "abc"}, "Guidance scale must be a number, got 'abc'."),
        ({"steps": 2.5}, "Steps must be a whole number, got 2.5."),
        ({"apg_threshold": "abc"}, "APG norm threshold r (0 = auto) must be a number, got 'abc'."),
        ({"sampler": "ghvb", "auto_beta": True, "order": 3}, "Order must be 4 with auto β"),
    ],
)
def test_invalid_inputs_are_readable_errors_and_the_app_keeps_serving(client, inputs, message) -> None:
    with pytest.raises(AppError) as info:
        client.predict(**{**FAST, "compare": False, **inputs}, api_name="/generate_image")
    assert message in str(info.value)
    assert not any(entity in str(info.value) for entity in ("&gt;", "&lt;", "&amp;"))  # plain text, not escaped
    gallery, *_ = client.predict(steps=2, batch=1, compare=False, api_name="/generate_image")
    assert len(gallery) == 1


def test_the_raw_pixels_are_kept_and_the_api_still_answers_four_values(client) -> None:
    from inertia.ui.image_tab import raw_pixels

    answer = client.predict(digit=6, seed=3, compare=False, **FAST, api_name="/generate_image")
    assert len(answer) == 4  # gallery, slider, table, figures: the raw images ride in a State, not in the API
    height, width = answer[3]["size"]
    images = torch.rand(3, 3, height, width)
    raw = raw_pixels(to_display(images), [height, width])
    want = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert all(np.array_equal(np.asarray(r), w) for r, w in zip(raw, want, strict=True))
