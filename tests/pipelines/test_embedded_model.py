"""The embedded digits model shipped in the package: it loads offline and draws the digits it is asked for."""

import pytest
import torch

from inertia.metrics import predict_digits
from inertia.pipelines import EMBEDDED_DIGITS_DIR, load_digits_pipeline


def test_embedded_model_files_are_shipped() -> None:
    weights = EMBEDDED_DIGITS_DIR / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 20 * 2**20
    assert (EMBEDDED_DIGITS_DIR / "README.md").is_file()  # the model card


@pytest.fixture(scope="module")
def pipe():
    pipe = load_digits_pipeline(device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_embedded_model_draws_the_requested_digits(pipe) -> None:
    digits = list(range(10)) * 2
    images = pipe(
        digits,
        num_inference_steps=20,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    agree = (predict_digits(images) == torch.tensor(digits)).float().mean().item()
    assert agree >= 0.8, f"the classifier agrees with only {agree:.0%} of the requested digits"


def test_embedded_model_with_momentum_scheduler(pipe) -> None:
    from inertia.samplers import MomentumDPMSolverMultistepScheduler

    pipe.scheduler = MomentumDPMSolverMultistepScheduler.from_config(pipe.scheduler.config, momentum_beta=0.8)
    images = pipe([3, 7], num_inference_steps=10, guidance_scale=7.5, output_type="pt").images
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
