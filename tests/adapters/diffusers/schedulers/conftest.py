"""Shared fixtures of the scheduler tests: small deterministic latents, noise and the toy model diffusers uses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

SAMPLE_SHAPE = (2, 4, 8, 8)


def _deterministic_latents(shape: tuple[int, ...] = SAMPLE_SHAPE) -> torch.Tensor:
    n = 1
    for d in shape:
        n *= d
    ramp = torch.linspace(-1.0, 1.0, n, dtype=torch.float32)
    return (ramp + 0.25 * torch.sin(7.0 * ramp)).reshape(shape)


def _toy_model(sample: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    # The toy "model" of diffusers' scheduler tests: output = sample * t / (t + 1).
    return sample * t / (t + 1)


@pytest.fixture
def sample() -> torch.Tensor:
    """Deterministic 2x4x8x8 float32 latents in about [-1.25, 1.25]."""
    return _deterministic_latents()


@pytest.fixture
def noise() -> torch.Tensor:
    """Seeded standard-normal noise of the sample's shape."""
    return torch.randn(SAMPLE_SHAPE, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def dummy_model() -> Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]:
    """``model(sample, t) = sample * t / (t + 1)``."""
    return _toy_model


@pytest.fixture(params=[MomentumPLMSScheduler, MomentumDPMSolverMultistepScheduler], ids=["plms", "dpm"])
def scheduler_class(request: pytest.FixtureRequest) -> type:
    """Each of our scheduler classes."""
    return request.param
