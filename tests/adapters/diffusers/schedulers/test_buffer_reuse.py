"""A denoiser that hands back one reused output buffer (a graphed or compiled UNet does) gets the same samples."""

from __future__ import annotations

import pytest
import torch

from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

CASES = {
    "ghvb": lambda: MomentumPLMSScheduler(momentum_method="ghvb", solver_order=4, momentum_beta=0.8),
    "hb": lambda: MomentumPLMSScheduler(momentum_method="hb", solver_order=2, momentum_beta=0.6),
    "nt": lambda: MomentumPLMSScheduler(momentum_method="nt", solver_order=3, momentum_beta=0.8),
    "plms": lambda: MomentumPLMSScheduler(momentum_method="ghvb", solver_order=4, momentum_beta=1.0),
    "hb-dpm++": lambda: MomentumDPMSolverMultistepScheduler(momentum_beta=0.7),
    "hb-dpm++-v": lambda: MomentumDPMSolverMultistepScheduler(momentum_beta=0.7, prediction_type="v_prediction"),
    "hb-dpm++-x0": lambda: MomentumDPMSolverMultistepScheduler(momentum_beta=0.7, prediction_type="sample"),
    "dpm++-x0": lambda: MomentumDPMSolverMultistepScheduler(momentum_beta=1.0, prediction_type="sample"),
}


def _toy(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) * (0.5 + t.float() / 2000)


def _loop(make, reuse: bool, dtype: torch.dtype) -> torch.Tensor:
    scheduler = make()
    scheduler.set_timesteps(10)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    buffer = torch.empty_like(x)
    for t in scheduler.timesteps:
        if reuse:
            buffer.copy_(_toy(x, t))  # the denoiser's one output buffer, overwritten every call
            out = buffer
        else:
            out = _toy(x, t)
        x = scheduler.step(out, t, x).prev_sample
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_reused_output_buffer_gives_the_same_samples(name: str, dtype: torch.dtype) -> None:
    assert torch.equal(_loop(CASES[name], reuse=True, dtype=dtype), _loop(CASES[name], reuse=False, dtype=dtype))
