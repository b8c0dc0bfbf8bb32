"""The products choose CUDA by themselves: pipeline loaders, the UI's model store and tabs, and ``inertia generate``.

Documented defaults: with ``device=None`` everything runs on CUDA when it is available; image pipelines in float16,
text models in bfloat16. Nothing here imports Gradio (it is not needed for the store or the tab functions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from inertia.pipelines import configure, generate_text, load_digits_pipeline, load_image_pipeline
from inertia.pipelines.text import load_text_model
from tests.adapters.transformers.tiny_lm import tiny_llama

pytestmark = pytest.mark.gpu

DIGITS = [3, 7, 1, 0]
STEPS = 10
CONFIG = {"sampler": "hb-dpm++:0.8", "guidance": "apg", "attention": "extrapolate"}
# |images in [0, 1] - the fp32 CPU images| of the embedded digits model after 10 steps: (max, mean) per dtype.
IMAGE_TOLERANCE = {torch.float16: (0.05, 0.01), torch.bfloat16: (0.2, 0.03)}


def digits_images(pipe: Any) -> torch.Tensor:
    """``DIGITS`` at 10 steps with ``CONFIG``, image i from seed i, as float32 CPU images in [0, 1]."""
    pipe.set_progress_bar_config(disable=True)
    configure(pipe, **CONFIG, guidance_scale=7.5)
    generators = [torch.Generator().manual_seed(i) for i in range(len(DIGITS))]
    images = pipe(DIGITS, num_inference_steps=STEPS, guidance_scale=7.5, generator=generators, output_type="pt")
    return images.images.float().cpu()


@pytest.fixture(scope="module")
def cpu_images() -> torch.Tensor:
    return digits_images(load_digits_pipeline(device="cpu"))


def _check_close(images: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype) -> None:
    assert bool(torch.isfinite(images).all())
    difference = (images - reference).abs()
    largest, mean = IMAGE_TOLERANCE[dtype]
    assert float(difference.max()) < largest and float(difference.mean()) < mean, (
        f"{dtype}: max {float(difference.max()):.3g}, mean {float(difference.mean()):.3g}"
    )


# --------------------------------------------------------------------------------------------------------------------
# loaders


@pytest.mark.parametrize("loader", [load_image_pipeline, load_digits_pipeline], ids=["image", "digits"])
def test_loaders_pick_cuda_and_float16_by_default(cuda, loader, cpu_images) -> None:
    pipe = loader()
    assert type(pipe).__name__ == "DigitsPipeline"
    assert pipe.device.type == "cuda" and pipe.unet.device.type == "cuda"
    assert pipe.unet.dtype == torch.float16
    _check_close(digits_images(pipe), cpu_images, torch.float16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_explicit_dtypes_on_the_device(device, dtype, cpu_images) -> None:
    pipe = load_image_pipeline(device=device, dtype=dtype)
    assert pipe.unet.dtype == dtype and pipe.unet.device.type == device.type
    images = digits_images(pipe)
    if dtype == torch.float32:
        torch.testing.assert_close(images, cpu_images, rtol=0, atol=1e-3)
    else:
        _check_close(images, cpu_images, dtype)


@pytest.fixture(scope="module")
def tiny_text_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random Llama with a 64-word word-level tokenizer (built offline): a model folder to load."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-text")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": i for i in range(4, 64)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tiny_llama().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_text_loader_picks_cuda_and_bfloat16_by_default(cuda, tiny_text_folder) -> None:
    model, tokenizer = load_text_model(tiny_text_folder)
    assert model.device.type == "cuda" and model.dtype == torch.bfloat16
    assert tokenizer.padding_side == "left"
    words = []
    for method in ("greedy", "momentum", "contrastive"):
        text = generate_text(model, tokenizer, "w5 w6 w7 w8 w9", method=method, max_new_tokens=8)
        assert len(text.split()) <= 8 and all(word in tokenizer.get_vocab() for word in text.split()), (method, text)
        words += text.split()
    assert words  # a random model may stop early (eos) once, not on every method


# --------------------------------------------------------------------------------------------------------------------
# the UI's model store and tab functions (no Gradio)


def test_model_store_picks_cuda_and_the_image_tab_runs_there(cuda) -> None:
    from inertia.ui.image_tab import generate_images
    from inertia.ui.models import ModelStore, describe_device

    store = ModelStore()
    assert store.device.type == "cuda"
    assert describe_device(store.device).startswith("CUDA")
    model = store.image()
    assert model.pipe.unet.device.type == "cuda" and model.pipe.unet.dtype == torch.float16
    gallery, slider, table, summary = generate_images(store, digit=4, steps=6, batch=2, compare=True)
    assert summary["device"].startswith("cuda")
    assert len(gallery) == 2 and slider is not None and table
    for run in summary["runs"].values():
        assert np.isfinite(run["seconds"]) and 0.0 <= run["mean_saturation"] <= 1.0


def test_model_store_loads_the_text_model_on_cuda_and_the_text_tab_runs_there(cuda, tiny_text_folder) -> None:
    from inertia.ui.models import ModelStore
    from inertia.ui.text_tab import stream_comparison

    devices: list[torch.device] = []

    def loader(device: torch.device) -> tuple[Any, Any]:
        devices.append(device)
        return load_text_model(tiny_text_folder, device=device)

    store = ModelStore(text_loader=loader)
    states = list(stream_comparison(store, prompt="w5 w6 w7 w8 w9", max_new_tokens=8))
    assert [device.type for device in devices] == ["cuda"]
    assert store.text().model.dtype == torch.bfloat16
    first, second, _, summary = states[-1]
    assert summary["device"].startswith("cuda") and set(summary["runs"]) == {"A", "B"}
    assert first and second


# --------------------------------------------------------------------------------------------------------------------
# the CLI


def test_cli_generate_image_defaults_to_cuda_in_float16(cuda, tmp_path, monkeypatch, capsys) -> None:
    import inertia.pipelines.image as image_module
    from inertia.cli import main

    loaded: list[Any] = []
    original = image_module.load_image_pipeline

    def recording_loader(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        loaded.append(pipe)
        return pipe

    monkeypatch.setattr(image_module, "load_image_pipeline", recording_loader)
    out = tmp_path / "seven.png"
    argv = ["generate", "image", "--digit", "7", "--steps", "6", "--sampler", "ghvb", "--guidance", "apg"]
    assert main([*argv, "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out)]
    assert len(loaded) == 1 and loaded[0].unet.device.type == "cuda" and loaded[0].unet.dtype == torch.float16
    image = np.asarray(Image.open(out))
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8 and image.std() > 0
