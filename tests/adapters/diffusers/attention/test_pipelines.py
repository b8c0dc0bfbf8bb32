"""Momentum attention inside the real diffusers pipelines (tiny random SD, SDXL, SD3, Flux) and `DigitsPipeline`."""

from __future__ import annotations

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FasterCacheConfig
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor
from tiny_pipelines import PIPELINE_KINDS, make_call_kwargs, make_pipeline, run

from inertia.attention import (
    MomentumAttention,
    apply_momentum_attention,
    find_attention_modules,
    get_momentum_attention_tracker,
    remove_momentum_attention,
)
from inertia.models.preconditioned_unet import PreconditionedUNet
from inertia.pipelines.digits import DigitsPipeline

STEPS = 8
WINDOW = (2, None)
ZERO_STRENGTH = {
    "off": MomentumAttention.off(),
    "heavy_ball_lambda0": MomentumAttention(mode="heavy_ball", beta=0.9, lookahead=0.0),
    "extrapolate_skip1": MomentumAttention(mode="extrapolate", skip_every=1, window=(0, None)),
}
ACTIVE = {
    "extrapolate": MomentumAttention(mode="extrapolate", window=WINDOW),
    "first_order": MomentumAttention.faster_cache(window=WINDOW, targets=("self", "cross")),
    "ema": MomentumAttention(mode="ema", beta=0.3),
    "heavy_ball": MomentumAttention(mode="heavy_ball", beta=0.5, lookahead=0.5),
}


def denoiser_of(pipe) -> torch.nn.Module:
    return pipe.unet if hasattr(pipe, "unet") else pipe.transformer


def generate(pipe, kind: str, **overrides) -> torch.Tensor:
    return run(pipe, **{**make_call_kwargs(kind, num_inference_steps=STEPS, batch_size=2), **overrides})


@pytest.fixture(scope="module")
def pipes() -> dict[str, object]:
    return {kind: make_pipeline(kind) for kind in PIPELINE_KINDS}


@pytest.fixture(scope="module")
def references(pipes) -> dict[str, torch.Tensor]:
    return {kind: generate(pipe, kind) for kind, pipe in pipes.items()}


@pytest.mark.parametrize("name", ZERO_STRENGTH)
@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_zero_strength_is_bit_identical(pipes, references, kind: str, name: str) -> None:
    pipe = pipes[kind]
    apply_momentum_attention(pipe, ZERO_STRENGTH[name])
    try:
        assert torch.equal(generate(pipe, kind), references[kind])
    finally:
        remove_momentum_attention(pipe)


@pytest.mark.parametrize("mode", ACTIVE)
@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_active_modes_change_the_result_repeat_exactly_and_remove_cleanly(pipes, references, kind, mode) -> None:
    pipe = pipes[kind]
    apply_momentum_attention(pipe, ACTIVE[mode])
    try:
        first = generate(pipe, kind)
        second = generate(pipe, kind)
    finally:
        assert remove_momentum_attention(pipe)
    assert torch.isfinite(first).all()
    assert not torch.equal(first, references[kind])
    assert torch.equal(first, second)  # the state is reset at the start of every call
    assert torch.equal(generate(pipe, kind), references[kind])  # removal restores the stock pipeline


def count_attention_computations(denoiser: torch.nn.Module) -> tuple[dict[str, int], list]:
    """Counts real computations per attention module (calls of its ``to_q`` projection, which a skip never makes)."""
    counts: dict[str, int] = {}
    handles = []
    for name, module in find_attention_modules(denoiser):
        counts[name] = 0

        def pre_hook(_module, _args, name=name) -> None:
            counts[name] += 1

        handles.append(module.to_q.register_forward_pre_hook(pre_hook))
    return counts, handles


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_skip_schedule_really_skips_the_attention_computation(pipes, kind: str) -> None:
    pipe = pipes[kind]
    config = MomentumAttention(mode="extrapolate", skip_every=2, window=WINDOW, targets=("self",))
    calls = STEPS + (1 if kind == "sd" else 0)  # PNDM makes n + 1 denoiser calls for n steps
    counts, handles = count_attention_computations(denoiser_of(pipe))
    hooked = set(apply_momentum_attention(pipe, config))
    try:
        generate(pipe, kind)
    finally:
        remove_momentum_attention(pipe)
        for handle in handles:
            handle.remove()
    skipped = config.num_skipped(calls)
    assert skipped == 3  # steps 3, 5, 7
    for name, count in counts.items():
        assert count == (calls - skipped if name in hooked else calls), name
    assert any(name not in hooked for name in counts) == (kind in ("sd", "sdxl"))  # cross-attention left alone


class ProbeProcessor(AttnProcessor2_0):
    """SDPA processor with an extra keyword, as user processors have; records what it receives."""

    seen: list[float] = []  # noqa: RUF012

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, probe=0.0):
        ProbeProcessor.seen.append(probe)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class FluxProbeProcessor(FluxAttnProcessor):
    seen: list[float] = []  # noqa: RUF012

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None, probe=0.0
    ):
        FluxProbeProcessor.seen.append(probe)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)


@pytest.mark.parametrize("kind", ["sd", "flux"])
def test_user_attention_kwargs_still_reach_the_processors(kind: str) -> None:
    pipe = make_pipeline(kind)
    processor_cls = ProbeProcessor if kind == "sd" else FluxProbeProcessor
    denoiser_of(pipe).set_attn_processor(processor_cls())
    processor_cls.seen.clear()
    reference = generate(pipe, kind)
    apply_momentum_attention(pipe, MomentumAttention(mode="ema", beta=0.3))
    processor_cls.seen.clear()
    key = "cross_attention_kwargs" if kind == "sd" else "joint_attention_kwargs"
    hooked = generate(pipe, kind, **{key: {"probe": 2.5}})
    assert processor_cls.seen and set(processor_cls.seen) == {2.5}
    assert not torch.equal(hooked, reference)


def test_flux_true_cfg_keeps_cond_and_uncond_state_apart() -> None:
    pipe = make_pipeline("flux")

    def call(**extra):
        kwargs = make_call_kwargs("flux", num_inference_steps=STEPS)
        negative = {"negative_prompt_embeds": -kwargs["prompt_embeds"]}
        negative["negative_pooled_prompt_embeds"] = -kwargs["pooled_prompt_embeds"]
        return run(pipe, **kwargs, **negative, true_cfg_scale=3.0, **extra)

    reference = call()
    apply_momentum_attention(pipe, MomentumAttention(mode="extrapolate", window=(0, None)))
    tracker = get_momentum_attention_tracker(pipe)
    seen: list[dict[str, int]] = []

    def snapshot(_pipe, _i, _t, callback_kwargs):
        seen.append({name: t.step for name, t in tracker._session().contexts.items()})
        return callback_kwargs

    first = call(callback_on_step_end=snapshot)
    assert seen == [{"cond": i, "uncond": i} for i in range(STEPS)]
    assert tracker.num_buffers() == 0  # the pipeline resets stateful hooks at the end of the call
    assert torch.equal(call(), first)
    assert not torch.equal(first, reference)


def test_flux_first_order_equals_diffusers_faster_cache() -> None:
    """Our baseline is FasterCache's attention rule: on Flux (the model here diffusers' FasterCache supports), the
    FasterCache hook and our `faster_cache` preset give bit-identical images at the same schedule."""
    pipe = make_pipeline("flux")
    kwargs = lambda: make_call_kwargs("flux", num_inference_steps=STEPS, batch_size=2)  # noqa: E731
    pipe.scheduler.set_timesteps(sigmas=[1.0 - i / STEPS for i in range(STEPS)], mu=0.4675)
    reference = run(pipe, **kwargs())
    timesteps = pipe.scheduler.timesteps
    upper = float(timesteps[WINDOW[0] - 1] + timesteps[WINDOW[0]]) / 2  # steps >= 2 lie in (-1, upper)
    config = FasterCacheConfig(
        spatial_attention_block_skip_range=2,
        spatial_attention_timestep_skip_range=(-1, upper),
        is_guidance_distilled=True,
        current_timestep_callback=lambda: pipe.current_timestep,
    )
    pipe.transformer.enable_cache(config)
    try:
        theirs = run(pipe, **kwargs())
    finally:
        pipe.transformer.disable_cache()
    apply_momentum_attention(pipe, MomentumAttention.faster_cache(window=WINDOW))
    ours = run(pipe, **kwargs())
    remove_momentum_attention(pipe)
    assert not torch.equal(ours, reference)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("kind", ["sd", "sdxl", "flux"])
def test_img2img_pipelines(kind: str) -> None:
    pipe = make_pipeline(kind, img2img=True)
    kwargs = lambda: make_call_kwargs(kind, img2img=True, num_inference_steps=STEPS)  # noqa: E731
    reference = run(pipe, **kwargs())
    apply_momentum_attention(pipe, MomentumAttention(mode="extrapolate", window=(1, None)))
    first, second = run(pipe, **kwargs()), run(pipe, **kwargs())
    assert torch.equal(first, second) and not torch.equal(first, reference)


def test_batch_items_do_not_leak_in_a_pipeline(pipes) -> None:
    pipe = pipes["sd"]
    apply_momentum_attention(pipe, MomentumAttention(mode="extrapolate", window=WINDOW))
    try:
        pair = generate(pipe, "sd")
        single = run(pipe, **make_call_kwargs("sd", num_inference_steps=STEPS, batch_size=1))
    finally:
        remove_momentum_attention(pipe)
    # equal up to the UNet's batch-size-dependent rounding (a leak from the other prompt would be of order 1)
    torch.testing.assert_close(pair[:1], single, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def digits_pipe() -> DigitsPipeline:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = PreconditionedUNet.tiny()
    pipe = DigitsPipeline(unet=unet.eval(), scheduler=DPMSolverMultistepScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def digits(pipe: DigitsPipeline) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return pipe([3, 7], num_inference_steps=STEPS, generator=generator, output_type="pt").images


def test_digits_pipeline(digits_pipe: DigitsPipeline) -> None:
    reference = digits(digits_pipe)
    apply_momentum_attention(digits_pipe, MomentumAttention.off())
    assert torch.equal(digits(digits_pipe), reference)
    remove_momentum_attention(digits_pipe)
    counts, handles = count_attention_computations(digits_pipe.unet)
    names = apply_momentum_attention(digits_pipe, MomentumAttention(mode="extrapolate", window=WINDOW))
    try:
        first, second = digits(digits_pipe), digits(digits_pipe)
        layers = get_momentum_attention_tracker(digits_pipe)._session().contexts["default"].layers
    finally:
        remove_momentum_attention(digits_pipe)
        for handle in handles:
            handle.remove()
    assert names and all(name.startswith("unet.") for name in names)
    assert torch.equal(first, second) and not torch.equal(first, reference)
    assert all(layer.residual for layer in layers.values())  # UNet2DModel attention adds its input back
    assert set(counts.values()) == {2 * (STEPS - 3)}  # two calls, 3 of 8 steps skipped in each
    assert torch.equal(digits(digits_pipe), reference)
