"""Guidance (APG, HiGS) and momentum-attention hooks on the tiny real pipelines, on CUDA in fp16.

Each check runs the same pipeline (tiny random weights, `tests/tiny_pipelines.py`) on CUDA in fp16 and on the CPU in
fp32: neutral settings are the stock pipeline bit for bit on CUDA, active settings give finite latents that change the
result and stay close to the fp32 CPU result.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tiny_pipelines import PIPELINE_KINDS, make_call_kwargs, make_pipeline, run

from inertia.attention import MomentumAttention, apply_momentum_attention, remove_momentum_attention
from inertia.guidance import APG, CFG, HiGS, apply_guidance, remove_guidance

pytestmark = pytest.mark.gpu

DTYPE = torch.float16
GUIDANCE_SCALE = 9.0
ATTENTION_STEPS = 8
# max |fp16 on the device - fp32 on the CPU| / max(1, max |fp32|) after a few steps of a tiny random model; the
# difference between an active method and the stock pipeline is far larger (checked below as the control).
TOLERANCE = 0.02

CFG_KINDS = ("sd", "sdxl", "sd3")  # the pipelines with batched CFG; Flux is guidance-distilled (HiGS only)
NEUTRAL_GUIDANCE = {
    "none": (),
    "cfg": (CFG(),),
    "neutral-apg+higs": (APG(eta=1.0, momentum=0.0, norm_threshold=float("inf")), HiGS(weight=0.0)),
}
ACTIVE_GUIDANCE = {
    "apg": (APG(eta=0.0, momentum=-0.5, norm_threshold=2.0),),
    "higs": (HiGS(weight=1.0),),
    "apg+higs": (APG(norm_threshold=2.0), HiGS(weight=1.0)),
}
FLUX_HIGS = (HiGS(weight=1.5, t_min=0.0),)
ACTIVE_ATTENTION = {
    "extrapolate": MomentumAttention(mode="extrapolate", window=(2, None)),
    "first_order": MomentumAttention.faster_cache(window=(2, None), targets=("self", "cross")),
}


def on(kwargs: dict[str, Any], device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The call kwargs with every floating-point tensor (prompt embeddings, image) on ``device`` in ``dtype``."""
    return {
        key: value.to(device, dtype) if torch.is_tensor(value) and value.is_floating_point() else value
        for key, value in kwargs.items()
    }


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    scale = max(1.0, float(reference.abs().max()))
    return float((result.float().cpu() - reference.float()).abs().max()) / scale


@pytest.fixture(scope="module")
def pipes(device) -> dict[str, Any]:
    """Each tiny pipeline on the CPU in fp32, and on the device in fp16 and in fp32 (same weights)."""
    return {
        kind: {
            "cpu": make_pipeline(kind),
            "device": make_pipeline(kind).to(device=device, dtype=DTYPE),
            "device32": make_pipeline(kind).to(device=device),
        }
        for kind in PIPELINE_KINDS
    }


def generate(pipe: Any, kind: str, device: torch.device, dtype: torch.dtype, **overrides: Any) -> torch.Tensor:
    return run(pipe, **on(make_call_kwargs(kind, **overrides), device, dtype))


def _check_half(result: torch.Tensor, device: torch.device) -> None:
    assert result.dtype == DTYPE and result.device.type == device.type
    assert bool(torch.isfinite(result).all())


# --------------------------------------------------------------------------------------------------------------------
# guidance


@pytest.mark.parametrize("name", list(NEUTRAL_GUIDANCE))
@pytest.mark.parametrize("kind", CFG_KINDS)
def test_neutral_guidance_is_the_stock_pipeline_on_the_device(pipes, device, deterministic, kind, name) -> None:
    pipe = pipes[kind]["device"]
    stock = generate(pipe, kind, device, DTYPE, guidance_scale=GUIDANCE_SCALE)
    assert torch.equal(generate(pipe, kind, device, DTYPE, guidance_scale=GUIDANCE_SCALE), stock), "not repeatable"
    apply_guidance(pipe, *NEUTRAL_GUIDANCE[name])
    try:
        assert torch.equal(generate(pipe, kind, device, DTYPE, guidance_scale=GUIDANCE_SCALE), stock)
    finally:
        remove_guidance(pipe)
    assert torch.equal(generate(pipe, kind, device, DTYPE, guidance_scale=GUIDANCE_SCALE), stock)


def _guided(pipe: Any, kind: str, device: torch.device, dtype: torch.dtype, methods: tuple) -> torch.Tensor:
    apply_guidance(pipe, *methods)
    try:
        return generate(pipe, kind, device, dtype, guidance_scale=GUIDANCE_SCALE)
    finally:
        remove_guidance(pipe)


@pytest.mark.parametrize("name", list(ACTIVE_GUIDANCE))
@pytest.mark.parametrize("kind", CFG_KINDS)
def test_active_guidance_in_fp16_is_finite_and_close_to_fp32_cpu(pipes, device, kind, name) -> None:
    methods = ACTIVE_GUIDANCE[name]
    reference = _guided(pipes[kind]["cpu"], kind, torch.device("cpu"), torch.float32, methods)
    stock = generate(pipes[kind]["cpu"], kind, torch.device("cpu"), torch.float32, guidance_scale=GUIDANCE_SCALE)
    result = _guided(pipes[kind]["device"], kind, device, DTYPE, methods)
    _check_half(result, device)
    error = relative_error(result, reference)
    assert error < TOLERANCE, f"{kind} {name}: fp16 vs fp32 CPU relative error {error:.3e}"
    assert relative_error(stock, reference) > 5 * error  # the control: the method's effect dwarfs fp16 noise


def test_higs_on_flux_in_fp16(pipes, device) -> None:
    reference = _guided(pipes["flux"]["cpu"], "flux", torch.device("cpu"), torch.float32, FLUX_HIGS)
    stock = generate(pipes["flux"]["cpu"], "flux", torch.device("cpu"), torch.float32)
    result = _guided(pipes["flux"]["device"], "flux", device, DTYPE, FLUX_HIGS)
    _check_half(result, device)
    error = relative_error(result, reference)
    assert error < TOLERANCE, f"flux HiGS: relative error {error:.3e}"
    assert relative_error(stock, reference) > 5 * error


# --------------------------------------------------------------------------------------------------------------------
# momentum attention


def _attended(pipe: Any, kind: str, device: torch.device, dtype: torch.dtype, config: MomentumAttention):
    apply_momentum_attention(pipe, config)
    try:
        return generate(pipe, kind, device, dtype, num_inference_steps=ATTENTION_STEPS, batch_size=2)
    finally:
        assert remove_momentum_attention(pipe)


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_attention_off_is_the_stock_pipeline_on_the_device(pipes, device, deterministic, kind) -> None:
    pipe = pipes[kind]["device"]
    stock = generate(pipe, kind, device, DTYPE, num_inference_steps=ATTENTION_STEPS, batch_size=2)
    assert torch.equal(_attended(pipe, kind, device, DTYPE, MomentumAttention.off()), stock)
    skip_one = MomentumAttention(mode="extrapolate", skip_every=1, window=(0, None))  # computes every step
    assert torch.equal(_attended(pipe, kind, device, DTYPE, skip_one), stock)
    assert torch.equal(generate(pipe, kind, device, DTYPE, num_inference_steps=ATTENTION_STEPS, batch_size=2), stock)


@pytest.mark.parametrize("mode", list(ACTIVE_ATTENTION))
@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_active_attention_on_the_device_matches_the_cpu(pipes, device, deterministic, kind, mode) -> None:
    # On these tiny models skipping attention moves the latents by only ~0.1 %, about fp16's resolution, so the
    # effect itself (active - stock) is compared in fp32 on the device against the CPU; fp16 must be finite, differ
    # from its own stock result and stay close to the fp32 CPU result.
    config = ACTIVE_ATTENTION[mode]
    cpu = torch.device("cpu")
    kwargs = {"num_inference_steps": ATTENTION_STEPS, "batch_size": 2}
    reference = _attended(pipes[kind]["cpu"], kind, cpu, torch.float32, config)
    effect = reference - generate(pipes[kind]["cpu"], kind, cpu, torch.float32, **kwargs)
    assert float(effect.abs().max()) > 0.0
    on_device = _attended(pipes[kind]["device32"], kind, device, torch.float32, config)
    device_effect = on_device - generate(pipes[kind]["device32"], kind, device, torch.float32, **kwargs)
    mismatch = float((device_effect.cpu() - effect).abs().max()) / float(effect.abs().max())
    assert mismatch < 0.05, f"{kind} {mode}: the fp32 effect on the device differs from the CPU's by {mismatch:.2%}"

    first = _attended(pipes[kind]["device"], kind, device, DTYPE, config)
    second = _attended(pipes[kind]["device"], kind, device, DTYPE, config)
    _check_half(first, device)
    assert torch.equal(first, second)  # state is per call on the device too
    assert not torch.equal(first, generate(pipes[kind]["device"], kind, device, DTYPE, **kwargs))
    error = relative_error(first, reference)
    assert error < TOLERANCE, f"{kind} {mode}: fp16 vs fp32 CPU relative error {error:.3e}"
