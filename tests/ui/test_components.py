"""The app's pure parts, without a server: presets from the controls, highlighting, display, the model store."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from inertia.ui.app import METHODS, about_markdown
from inertia.ui.image_tab import guidance_params, sampler_preset, to_display
from inertia.ui.models import ModelStore, UserInputError, normalize_model_name, resolve_device
from inertia.ui.text_tab import REPEAT_LABEL, highlight_repeats


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("ghvb", 0.8, False, 4), "ghvb:3.8"),
        (("hb", 0.5, False, 2), "hb:1.5"),
        (("nt", 1.0, False, 3), "nt:3"),
        (("hb-dpm++", 0.7, False, 4), "hb-dpm++:0.7"),
        (("dpm++2m", 0.7, False, 4), "dpm++2m"),
        (("default", 0.3, True, 1), "default"),
        # auto β: the plain name, which configure() builds with momentum_beta="auto" (the library's policy)
        (("hb-dpm++", 0.7, True, 4), "hb-dpm++"),
        (("ghvb", 0.8, True, 4), "ghvb"),
        (("hb", 0.8, True, 4), "hb"),
        (("nt", 0.8, True, 4), "nt"),
    ],
)
def test_sampler_preset_from_controls(args, expected) -> None:
    assert sampler_preset(*args) == expected


@pytest.mark.parametrize("sampler", ["ghvb", "hb", "nt", "hb-dpm++"])
def test_auto_beta_is_the_librarys_policy_for_every_momentum_sampler(sampler) -> None:
    from inertia.pipelines import configure, load_image_pipeline

    pipe = load_image_pipeline(device="cpu")
    for scale, steps in ((15.0, 8), (7.5, 20), (3.0, 50)):
        configure(pipe, sampler=sampler_preset(sampler, 0.5, True, 4), guidance_scale=scale)
        pipe.scheduler.set_timesteps(steps)
        # the scheduler's own momentum_beta="auto" at this scale: whatever the policy picks, never the slider's 0.5
        assert pipe.scheduler.config.momentum_beta == "auto"
        assert pipe.scheduler.config.momentum_guidance_scale == scale
        assert 0.0 < pipe.scheduler.momentum_beta <= 1.0


def test_sampler_preset_rejects_bad_values() -> None:
    with pytest.raises(UserInputError, match="Sampler must be one of"):
        sampler_preset("warp", 0.8, False, 4)
    with pytest.raises(UserInputError, match="Order"):
        sampler_preset("ghvb", 0.8, False, 7)
    with pytest.raises(UserInputError, match="Momentum β"):
        sampler_preset("hb-dpm++", 0.0, False, 4)
    with pytest.raises(UserInputError, match="Order must be 4 with auto β"):
        sampler_preset("ghvb", 0.8, True, 3)
    with pytest.raises(UserInputError, match="auto β must be true or false"):
        sampler_preset("ghvb", 0.8, "yes", 4)


def test_guidance_params_per_preset() -> None:
    assert guidance_params("none", 0.0, -0.5, 0.0, 1.0) == {}
    assert guidance_params("apg", 0.1, -0.5, 0.0, 1.0) == {"eta": 0.1, "momentum": -0.5}
    assert guidance_params("apg", 0.0, 0.0, 2.5, 1.0) == {"eta": 0.0, "momentum": 0.0, "norm_threshold": 2.5}
    assert guidance_params("higs", 0.0, -0.5, 0.0, 1.5) == {"weight": 1.5}
    with pytest.raises(UserInputError, match="APG β"):
        guidance_params("apg", 0.0, 1.5, 0.0, 1.0)


def test_highlight_marks_every_word_of_a_repeated_ngram() -> None:
    text = "I like tea. I like tea. I like coffee"
    runs = highlight_repeats(text, n=2)
    assert "".join(piece for piece, _ in runs) == text  # nothing lost, whitespace kept
    repeated = [piece for piece, label in runs if label == REPEAT_LABEL]
    assert repeated == ["I like tea. I like"]
    assert highlight_repeats("no repeats here at all", n=2) == [("no repeats here at all", None)]
    assert highlight_repeats("", n=3) == []
    with pytest.raises(ValueError, match="`n`"):
        highlight_repeats("a b", n=0)


def test_small_images_are_enlarged_nearest_neighbour() -> None:
    images = torch.rand(2, 3, 16, 16)
    shown = to_display(images)
    assert [image.size for image in shown] == [(256, 256), (256, 256)]
    pixels = torch.from_numpy(np.array(shown[0].resize((16, 16), 0))).permute(2, 0, 1).to(torch.int64)
    assert torch.equal(pixels, (images[0] * 255).round().to(torch.int64))
    assert to_display(torch.rand(1, 3, 300, 200))[0].size == (200, 300)  # large images are left alone


def test_device_and_model_names() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserInputError, match="device"):
        resolve_device("tpu:7")
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match="CUDA is not available"):
            resolve_device("cuda")
    assert normalize_model_name(None) == normalize_model_name(" digits ") == "digits"
    assert normalize_model_name("owner/model") == "owner/model"


def test_store_loads_each_model_once_and_names_bad_ones() -> None:
    calls: list[str] = []

    def loader(name, device):
        calls.append(name)
        if name == "broken/model":
            raise OSError("offline and not in the cache\nmore detail")
        return object()

    store = ModelStore(device="cpu", max_image_models=2, image_loader=loader)
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.image("digits"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["digits"] and len({id(model) for model in results}) == 1
    store.image("a/b")
    store.image("c/d")  # evicts the least recently used, "digits"
    store.image("digits")
    assert calls == ["digits", "a/b", "c/d", "digits"]
    with pytest.raises(UserInputError, match=r"^Could not load the image model 'broken/model': offline"):
        store.image("broken/model")


def test_loads_of_different_models_take_turns_and_a_cached_model_does_not_wait() -> None:
    """Two hub pipelines never load at once (diffusers' lazy imports are not thread-safe); a loaded one is served."""
    running, overlaps, release = [0], [], threading.Event()

    def loader(name, device):
        running[0] += 1
        overlaps.append(running[0])
        if name == "slow/model":
            release.wait(5)
        time.sleep(0.02)
        running[0] -= 1
        return name

    store = ModelStore(device="cpu", max_image_models=4, image_loader=loader)
    store.image("digits")
    threads = [threading.Thread(target=store.image, args=(name,)) for name in ("slow/model", "a/b", "c/d")]
    for thread in threads:
        thread.start()
    assert store.image("digits").pipe == "digits"  # while slow/model is still loading
    release.set()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1 and sorted(overlaps) == [1, 1, 1, 1]


def test_the_app_imports_what_its_handlers_import_before_serving() -> None:
    """In a fresh process, building the app leaves no host module for a request thread to import lazily."""
    import subprocess
    import sys

    code = (
        "import sys; from inertia.ui.app import HANDLER_IMPORTS, import_handler_modules; import_handler_modules(); "
        "missing = [m for m in HANDLER_IMPORTS if m not in sys.modules]; "
        "import diffusers; assert 'DiffusionPipeline' in vars(diffusers) and not missing, missing"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_about_names_every_paper_and_the_device() -> None:
    text = about_markdown(ModelStore(device="cpu"))
    for arxiv in ("2307.11118", "2306.06991", "2410.02416", "2509.22300", "2212.02175"):
        assert f"https://arxiv.org/abs/{arxiv}" in text
    assert len(METHODS) == 6 and "Momentum attention (ours)" in text
    assert "**Device in use:** CPU" in text


def test_launch_binds_to_loopback_with_the_cli_signature() -> None:
    import inspect

    import httpx

    from inertia.ui import launch
    from tests.ui.conftest import free_port

    assert {"host", "port", "device", "block"} <= set(inspect.signature(launch).parameters)  # inertia demo's call
    assert inspect.signature(launch).parameters["host"].default == "127.0.0.1"
    demo = launch(port=free_port(), device="cpu", block=False, preload_text=False, quiet=True)
    try:
        assert demo.local_url.startswith("http://127.0.0.1:")
        assert httpx.get(demo.local_url, timeout=30).status_code == 200
    finally:
        demo.close()
    with pytest.raises(UserInputError, match="device"):
        launch(device="tpu", block=False)


def test_the_examples_are_checked_settings_the_tab_can_show() -> None:
    from inertia.pipelines.presets import GUIDANCE_PRESETS, SAMPLER_PRESETS
    from inertia.ui.image_controls import EXAMPLES
    from inertia.ui.image_tab import REQUEST_FIELDS

    assert len(EXAMPLES) >= 3 and len({e.label for e in EXAMPLES}) == len(EXAMPLES)
    for example in EXAMPLES:
        assert set(example.controls()) <= set(REQUEST_FIELDS) and example.controls()["compare"] is True
        presets = example.presets()  # valid, as the tab builds them
        assert presets["sampler"].split(":")[0] in SAMPLER_PRESETS and presets["guidance"] in GUIDANCE_PRESETS
        assert f"{example.scale:g}" in example.label and f"{example.steps} steps" in example.label  # says what


def test_the_sliders_start_at_the_default_models_tuned_values() -> None:
    from inertia.ui.image_controls import preset_attention_beta, tuned_defaults

    generic = tuned_defaults({})
    assert generic == {
        "apg_eta": 0.0,
        "apg_momentum": -0.5,
        "apg_threshold": 0.0,
        "higs_weight": 1.0,
        "extrapolate_beta": preset_attention_beta("extrapolate"),
        "ema_beta": preset_attention_beta("ema"),
    }
    tuned = tuned_defaults(
        {"guidance": {"apg": {"norm_threshold": 0.3, "eta": 0.25}}, "attention": {"ema": {"beta": 0.5}}}
    )
    assert (tuned["apg_threshold"], tuned["apg_eta"], tuned["ema_beta"], tuned["apg_momentum"]) == (
        0.3,
        0.25,
        0.5,
        -0.5,
    )
