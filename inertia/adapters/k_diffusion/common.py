"""What every inertia k-diffusion sampler shares: argument checks and the per-call loop plumbing (no sampler math)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Callback", "Denoiser", "SamplerCall", "denoise", "prepare_call"]

Denoiser = Callable[..., torch.Tensor]
"""``model(x, sigma * s_in, **extra_args) -> denoised``: k-diffusion's denoiser, returning the data (x0) estimate."""

Callback = Callable[[dict[str, Any]], Any]
"""``callback({"x", "i", "sigma", "sigma_hat", "denoised"})``, called after each model call."""


@dataclass
class SamplerCall:
    """The validated arguments of one sampler call.

    Attributes:
        levels: the sigmas as python floats (read once, so the per-step code never syncs with the device).
        extra_args: keyword arguments for the model (the caller's mapping, passed through as is).
        s_in: ``x.new_ones([x.shape[0]])``, so the model sees one sigma per batch item.
        dtype: the caller's dtype: the model sees x in it and the result comes back in it.
        work_dtype: the dtype the sampler computes in (float32, or float64 for float64 inputs).
    """

    levels: list[float]
    extra_args: Mapping[str, Any]
    s_in: torch.Tensor
    dtype: torch.dtype
    work_dtype: torch.dtype


def _check_sigmas(sigmas: Any) -> list[float]:
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() == 0:
        got = f"shape {tuple(sigmas.shape)}" if isinstance(sigmas, torch.Tensor) else type(sigmas).__name__
        raise ValueError(f"`sigmas` must be a non-empty 1-D torch.Tensor of noise levels, got {got}.")
    if sigmas.is_complex() or sigmas.dtype == torch.bool:
        raise ValueError(f"`sigmas` must be real numbers, got dtype {sigmas.dtype}.")
    levels = [float(s) for s in sigmas.detach().tolist()]
    for i, s in enumerate(levels):
        if not math.isfinite(s) or s < 0.0:
            raise ValueError(f"`sigmas` must be finite and >= 0, got sigmas[{i}]={s!r}.")
    for i in range(1, len(levels)):
        if not levels[i] < levels[i - 1]:
            raise ValueError(
                f"`sigmas` must be strictly decreasing (from the highest noise level down, usually ending at 0), got "
                f"sigmas[{i - 1}]={levels[i - 1]!r} followed by sigmas[{i}]={levels[i]!r}."
            )
    return levels


def prepare_call(model: Any, x: Any, sigmas: Any, extra_args: Any, callback: Any) -> SamplerCall:
    """Checks the k-diffusion arguments shared by every sampler and returns them ready for the loop.

    Raises:
        ValueError: naming the first invalid argument (``model``, ``x``, ``sigmas``, ``extra_args`` or
            ``callback``), its value and what is valid.
    """
    if not callable(model):
        raise ValueError(
            f"`model` must be a callable denoiser model(x, sigma, **extra_args) -> x0, got {type(model).__name__}."
        )
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
        got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"`x` must be a floating-point torch.Tensor with a leading batch dimension, got {got}.")
    levels = _check_sigmas(sigmas)
    if extra_args is not None and not isinstance(extra_args, Mapping):
        raise ValueError(f"`extra_args` must be a mapping of model keyword arguments or None, got {extra_args!r}.")
    if callback is not None and not callable(callback):
        raise ValueError(f"`callback` must be callable or None, got {callback!r}.")
    return SamplerCall(
        levels=levels,
        extra_args={} if extra_args is None else extra_args,
        s_in=x.new_ones([x.shape[0]]),
        dtype=x.dtype,
        work_dtype=torch.promote_types(x.dtype, torch.float32),
    )


def denoise(
    model: Denoiser,
    call: SamplerCall,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    i: int,
    callback: Callback | None,
    keep: bool = False,
) -> torch.Tensor:
    """Calls the model at ``sigmas[i]`` and then the callback; returns denoised in the work dtype.

    With ``keep`` the result never aliases the model's own output, so that a denoiser reusing one output buffer (a
    graphed or compiled one) cannot overwrite a history the sampler keeps across steps.
    """
    x_in = x.to(call.dtype)
    out = model(x_in, sigmas[i] * call.s_in, **call.extra_args)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"`model` must return a denoised tensor of the shape of `x` {tuple(x.shape)}, got {got}.")
    if callback is not None:
        callback({"x": x_in, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": out})
    denoised = out.to(call.work_dtype)
    return denoised.clone() if keep and denoised is out else denoised
