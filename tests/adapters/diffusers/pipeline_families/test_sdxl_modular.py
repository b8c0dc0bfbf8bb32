"""SDXL modular (`StableDiffusionXLAutoBlocks`): scheduler swap and momentum attention (docs/hosts/pipelines.md)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.guiders import ClassifierFreeGuidance
from tiny_pipelines import default_scheduler, make_call_kwargs, make_modular_sdxl

from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention
from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

SKIP = MomentumAttention(mode="extrapolate", skip_every=2, window=(1, None))


@pytest.fixture(scope="module")
def modular_sdxl():
    pipe = make_modular_sdxl()
    pipe.update_components(guider=ClassifierFreeGuidance(guidance_scale=5.0))
    return pipe


def _run(pipe, scheduler=None) -> torch.Tensor:
    if scheduler is not None:
        pipe.update_components(scheduler=scheduler)
    kwargs = make_call_kwargs("sdxl")
    del kwargs["guidance_scale"], kwargs["output_type"]
    with torch.no_grad():
        return pipe(**kwargs, output="latents")


def test_scheduler_swap_neutral_is_stock_dpm_and_momentum_changes_it(modular_sdxl):
    config = default_scheduler("sdxl").config
    try:
        stock = _run(modular_sdxl, DPMSolverMultistepScheduler.from_config(config))
        neutral = _run(modular_sdxl, MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta=1.0))
        assert torch.equal(neutral, stock)
        for scheduler in (
            MomentumDPMSolverMultistepScheduler.from_config(config, momentum_beta=0.7),
            MomentumPLMSScheduler.from_momentum_number(config, 3.8, method="ghvb"),
        ):
            moved = _run(modular_sdxl, scheduler)
            assert torch.isfinite(moved).all() and not torch.allclose(moved, stock, atol=1e-4)
            assert torch.equal(_run(modular_sdxl), moved)  # no state carried into the next call
    finally:
        modular_sdxl.update_components(scheduler=default_scheduler("sdxl"))


def test_momentum_attention_on_the_modular_unet(modular_sdxl):
    stock = _run(modular_sdxl)
    assert torch.equal(_run(modular_sdxl), stock)
    apply_momentum_attention(modular_sdxl, MomentumAttention.off())
    try:
        assert torch.equal(_run(modular_sdxl), stock)
    finally:
        assert remove_momentum_attention(modular_sdxl)
    names = apply_momentum_attention(modular_sdxl, SKIP)
    try:
        assert names
        first = _run(modular_sdxl)
        assert torch.isfinite(first).all() and not torch.allclose(first, stock, atol=1e-4)
        assert torch.equal(_run(modular_sdxl), first)  # state resets per pipeline call
    finally:
        assert remove_momentum_attention(modular_sdxl)
    assert torch.equal(_run(modular_sdxl), stock)
