"""A DigitsPipeline saved with either inertia scheduler reloads in a fresh process-like load (diffusers resolves the
scheduler's module and looks up `SchedulerMixin` in it)."""

import pytest
import torch
from tiny_pipelines import tiny_digits_unet

from inertia.pipelines import DigitsPipeline
from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler


@pytest.mark.parametrize(
    "scheduler",
    [MomentumDPMSolverMultistepScheduler(momentum_beta=0.8), MomentumPLMSScheduler(momentum_beta=0.8)],
    ids=lambda s: type(s).__name__,
)
def test_pipeline_with_inertia_scheduler_round_trips(scheduler, tmp_path):
    pipe = DigitsPipeline(unet=tiny_digits_unet(), scheduler=scheduler)
    pipe.save_pretrained(tmp_path)
    loaded = DigitsPipeline.from_pretrained(tmp_path)
    assert type(loaded.scheduler) is type(scheduler)
    assert loaded.scheduler.config.momentum_beta == 0.8
    kwargs = {"num_inference_steps": 3, "output_type": "pt"}
    first = pipe([4], generator=torch.Generator().manual_seed(0), **kwargs).images
    again = loaded([4], generator=torch.Generator().manual_seed(0), **kwargs).images
    assert torch.equal(first, again)
