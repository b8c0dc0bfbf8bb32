"""Pipelines saved by inertia 0.1.0 (``tests/fixtures/saved_0_1_0``, recorded module paths
``inertia.samplers.scheduling_momentum_dpmsolver`` / ``..._plms`` and ``inertia.models.preconditioned_unet``) load
with today's layout and generate the images they generated then; a pipeline saved today round-trips too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inertia.pipelines import DigitsPipeline

FIXTURES = Path(__file__).parent / "fixtures" / "saved_0_1_0"


def _images(pipe: DigitsPipeline) -> np.ndarray:
    out = pipe(
        [3, 7], num_inference_steps=6, guidance_scale=7.5, generator=torch.Generator().manual_seed(0), output_type="np"
    )
    return out.images


@pytest.mark.parametrize(
    ("folder", "scheduler"), [("hb_dpm", "MomentumDPMSolverMultistepScheduler"), ("ghvb", "MomentumPLMSScheduler")]
)
def test_a_pipeline_saved_by_0_1_loads_and_generates_the_same_images(folder: str, scheduler: str) -> None:
    recorded = json.loads((FIXTURES / folder / "model_index.json").read_text())
    assert recorded["scheduler"][0].startswith("inertia.samplers.")  # the 0.1 path, not today's
    pipe = DigitsPipeline.from_pretrained(FIXTURES / folder)
    assert type(pipe.scheduler).__name__ == scheduler
    assert type(pipe.scheduler).__module__.startswith("inertia.adapters.diffusers.")
    expected = np.load(FIXTURES / f"{folder}_images.npy")
    np.testing.assert_allclose(_images(pipe), expected, rtol=0, atol=1e-5)


def test_a_pipeline_saved_today_records_todays_paths_and_round_trips(tmp_path: Path) -> None:
    pipe = DigitsPipeline.from_pretrained(FIXTURES / "hb_dpm")
    pipe.save_pretrained(tmp_path)
    recorded = json.loads((tmp_path / "model_index.json").read_text())
    assert recorded["scheduler"] == [
        "inertia.adapters.diffusers.scheduling_momentum_dpmsolver",
        "MomentumDPMSolverMultistepScheduler",
    ]
    assert recorded["unet"] == ["inertia.models.preconditioned_unet", "PreconditionedUNet"]
    np.testing.assert_array_equal(_images(DigitsPipeline.from_pretrained(tmp_path)), _images(pipe))
