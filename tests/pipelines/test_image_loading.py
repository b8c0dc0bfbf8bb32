"""`load_image_pipeline`: the embedded model, saved DigitsPipeline and diffusers folders, and clear errors."""

from pathlib import Path

import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from inertia.models.preconditioned_unet import PreconditionedUNet
from inertia.pipelines import DigitsPipeline, load_image_pipeline


def test_saved_digits_pipeline_folder_loads_as_digits_pipeline(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = DigitsPipeline(unet=PreconditionedUNet.tiny(), scheduler=DPMSolverMultistepScheduler())
    original.save_pretrained(tmp_path)
    pipe = load_image_pipeline(tmp_path, device="cpu")
    assert isinstance(pipe, DigitsPipeline) and pipe.unet.dtype == torch.float32
    for name, value in original.unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], value), name
    assert load_image_pipeline(str(tmp_path), device="cpu", dtype=torch.bfloat16).unet.dtype == torch.bfloat16


def test_saved_diffusers_pipeline_folder_loads_and_samples_the_same(tmp_path: Path) -> None:
    # A pipeline diffusers can reload without a text encoder: the generic `DiffusionPipeline.from_pretrained` route.
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 8), norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), layers_per_block=1,
    )  # fmt: skip
    original = DDPMPipeline(unet=unet, scheduler=DDPMScheduler())
    original.save_pretrained(tmp_path)
    pipe = load_image_pipeline(tmp_path, device="cpu")
    assert isinstance(pipe, DDPMPipeline) and pipe.unet.dtype == torch.float32
    for p in (pipe, original):
        p.set_progress_bar_config(disable=True)
    outputs = [
        p(generator=torch.Generator().manual_seed(0), num_inference_steps=3, output_type="np").images
        for p in (pipe, original)
    ]
    for name, value in original.unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], value), name
    assert abs(outputs[0] - outputs[1]).max() < 1e-5  # same weights; conv thread scheduling may differ in the last bit


@pytest.mark.parametrize("name", [None, "digits"])
def test_default_is_the_embedded_model(name: str | None) -> None:
    assert isinstance(load_image_pipeline(name, device="cpu"), DigitsPipeline)


def test_folder_without_model_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"name_or_path.*model_index\.json"):
        load_image_pipeline(tmp_path)


@pytest.mark.parametrize("name", ["not-a-hub-id", "a/b/c", "./missing/folder", "/no/such/dir"])
def test_bad_names_are_refused_before_any_download(name: str) -> None:
    with pytest.raises(ValueError, match=r"name_or_path"):
        load_image_pipeline(name)


@pytest.mark.parametrize("dtype", [torch.int64, "float16"])
def test_bad_dtype_is_refused(dtype: object) -> None:
    with pytest.raises(ValueError, match=r"`dtype`"):
        load_image_pipeline(None, dtype=dtype)  # type: ignore[arg-type]
