"""`load_digits_pipeline`: device/dtype handling and clear errors for missing weights."""

from pathlib import Path

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from inertia.models.preconditioned_unet import PreconditionedUNet
from inertia.pipelines import DigitsPipeline, EmbeddedWeightsNotFoundError, load_digits_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("digits")
    DigitsPipeline(unet=PreconditionedUNet.tiny(), scheduler=DPMSolverMultistepScheduler()).save_pretrained(folder)
    return folder


def test_loads_a_saved_pipeline_on_cpu(saved: Path) -> None:
    pipe = load_digits_pipeline(device="cpu", path=saved)
    assert isinstance(pipe, DigitsPipeline) and pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32
    pipe.set_progress_bar_config(disable=True)
    images = pipe([1, 2], num_inference_steps=2, output_type="pt").images
    assert images.shape == (2, 3, 16, 16)


def test_bfloat16(saved: Path) -> None:
    assert load_digits_pipeline(device="cpu", dtype=torch.bfloat16, path=saved).unet.dtype == torch.bfloat16


def test_missing_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedWeightsNotFoundError, match=r"model_index\.json"):
        load_digits_pipeline(path=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"dtype": torch.int64}, "dtype"), ({"device": "toaster"}, "device"), ({"dtype": "float32"}, "dtype")],
)
def test_bad_device_or_dtype(kwargs: dict, name: str, saved: Path) -> None:
    with pytest.raises(ValueError, match=name):
        load_digits_pipeline(path=saved, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_clear_error(saved: Path) -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_digits_pipeline(device="cuda", path=saved)
