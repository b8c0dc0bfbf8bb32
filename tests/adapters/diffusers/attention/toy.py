"""A toy denoiser whose attention outputs are known numbers, to check the hooks step by step.

`ToyDenoiser.forward(sample, timestep)` runs one diffusers ``Attention`` module on ``sample`` with a processor that
returns its input (or, with ``residual=True``, the processor adds a known "attention part" and the residual like
``AttnProcessor2_0`` does). So the attention output at step ``s`` is whatever sequence the test feeds in, and every
hooked output can be compared with the rules computed by hand.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin
from diffusers.models.attention_processor import Attention
from diffusers.models.cache_utils import CacheMixin


class EchoProcessor:
    """Returns ``hidden_states`` (a copy): the attention "output" is the input. Counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None):
        self.calls += 1
        return hidden_states.clone()


class ResidualProcessor:
    """``(part + hidden_states) / r`` with ``part = 10·hidden_states``, as a residual-connection processor would."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None):
        self.calls += 1
        part = 10.0 * hidden_states
        return (part + hidden_states) / attn.rescale_output_factor


class ToyDenoiser(ModelMixin, CacheMixin):
    """One attention module named ``attn`` (self-attention) and, optionally, ``cross`` (cross-attention)."""

    def __init__(self, residual: bool = False, rescale_output_factor: float = 1.0, cross: bool = False) -> None:
        super().__init__()
        self.attn = Attention(
            query_dim=4,
            heads=1,
            dim_head=4,
            residual_connection=residual,
            rescale_output_factor=rescale_output_factor,
        )
        self.processor = ResidualProcessor() if residual else EchoProcessor()
        self.attn.set_processor(self.processor)
        if cross:
            self.cross = Attention(query_dim=4, cross_attention_dim=4, heads=1, dim_head=4)
            self.cross.set_processor(EchoProcessor())

    def forward(self, sample: torch.Tensor, timestep: float | torch.Tensor) -> torch.Tensor:
        out = self.attn(sample)
        if hasattr(self, "cross"):
            out = out + self.cross(sample, encoder_hidden_states=sample)
        return out


def constant(value: float, shape: tuple[int, ...] = (1, 2, 4)) -> torch.Tensor:
    """A toy "sample": every entry equals ``value``."""
    return torch.full(shape, float(value))


def run_loop(model: ToyDenoiser, values: list[float], timesteps: list[float] | None = None) -> list[float]:
    """Calls the model once per value (decreasing timesteps by default) and returns the first output entry."""
    timesteps = timesteps if timesteps is not None else [1000.0 - 100.0 * i for i in range(len(values))]
    return [model(constant(v), t).reshape(-1)[0].item() for v, t in zip(values, timesteps)]
