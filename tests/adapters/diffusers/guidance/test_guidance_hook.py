"""apply_guidance on real pipeline classes (tiny random weights, offline) and on DigitsPipeline."""

import threading

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2DiscreteScheduler,
)
from tiny_pipelines import make_call_kwargs, make_pipeline, run, tiny_digits_unet

from inertia.adapters.diffusers.guidance_hook import guidance_hook
from inertia.core.guidance.apg import apg_guidance
from inertia.guidance import APG, CFG, GuidanceLayoutError, HiGS, apply_guidance, remove_guidance
from inertia.pipelines import DigitsPipeline
from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

METHODS = (APG(norm_threshold=2.0), HiGS(weight=1.0))


def _digits(scheduler=None) -> DigitsPipeline:
    pipe = DigitsPipeline(unet=tiny_digits_unet(), scheduler=scheduler or DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _digits_kwargs(guidance_scale=7.5, steps=4, digits=(1, 2)):
    return {
        "digits": list(digits),
        "num_inference_steps": steps,
        "guidance_scale": guidance_scale,
        "generator": torch.Generator().manual_seed(0),
        "output_type": "pt",
    }


CASES = [("sd", False), ("sdxl", False), ("sd3", False), ("sd", True), ("sdxl", True), ("sd3", True)]


@pytest.mark.parametrize(("kind", "img2img"), [*CASES, ("flux", False)])
def test_no_methods_and_cfg_are_the_stock_pipeline_bit_for_bit(kind, img2img):
    pipe = make_pipeline(kind, img2img=img2img)
    stock = run(pipe, **make_call_kwargs(kind, img2img=img2img))
    for methods in ((), (CFG(),), (APG(eta=1.0, momentum=0.0, norm_threshold=float("inf")), HiGS(weight=0.0))):
        apply_guidance(pipe, *methods)
        assert torch.equal(run(pipe, **make_call_kwargs(kind, img2img=img2img)), stock), methods


@pytest.mark.parametrize(("kind", "img2img"), CASES)
def test_end_to_end_deterministic_repeatable_and_removable(kind, img2img):
    pipe = make_pipeline(kind, img2img=img2img)
    stock = run(pipe, **make_call_kwargs(kind, img2img=img2img, guidance_scale=9.0))
    apply_guidance(pipe, *METHODS)
    first = run(pipe, **make_call_kwargs(kind, img2img=img2img, guidance_scale=9.0))
    second = run(pipe, **make_call_kwargs(kind, img2img=img2img, guidance_scale=9.0))
    assert torch.isfinite(first).all()
    assert not torch.allclose(first, stock, atol=1e-3)
    assert torch.equal(first, second)  # the state of the first call did not leak into the second
    fresh = make_pipeline(kind, img2img=img2img)
    apply_guidance(fresh, *METHODS)
    assert torch.equal(run(fresh, **make_call_kwargs(kind, img2img=img2img, guidance_scale=9.0)), first)
    remove_guidance(pipe)
    assert torch.equal(run(pipe, **make_call_kwargs(kind, img2img=img2img, guidance_scale=9.0)), stock)


def test_flux_higs_without_cfg():
    pipe = make_pipeline("flux")
    stock = run(pipe, **make_call_kwargs("flux"))
    apply_guidance(pipe, HiGS(weight=1.5, t_min=0.0))
    first, second = run(pipe, **make_call_kwargs("flux")), run(pipe, **make_call_kwargs("flux"))
    assert torch.equal(first, second) and not torch.allclose(first, stock, atol=1e-4)


def test_flux_unpacking_is_exact():
    from inertia.adapters.diffusers.guidance_hook import _pack, _unpack

    tokens = torch.randn(2, 6 * 5, 16)
    assert torch.equal(_pack(_unpack(tokens, 6, 5)), tokens)
    latents = torch.randn(1, 4, 4, 6)  # FluxPipeline._pack_latents layout
    packed = latents.view(1, 4, 2, 2, 3, 2).permute(0, 2, 4, 1, 3, 5).reshape(1, 6, 16)
    assert torch.equal(_unpack(packed, 2, 3), latents)


def test_higs_alone_on_a_cfg_pipeline_guides_the_cfg_output():
    pipe = make_pipeline("sd")
    stock = run(pipe, **make_call_kwargs("sd", guidance_scale=5.0))
    apply_guidance(pipe, HiGS(weight=1.0, t_min=0.0))
    assert not torch.allclose(run(pipe, **make_call_kwargs("sd", guidance_scale=5.0)), stock, atol=1e-4)


@pytest.mark.parametrize(
    "scheduler",
    [
        DDIMScheduler(),
        EulerDiscreteScheduler(),
        HeunDiscreteScheduler(),
        KDPM2DiscreteScheduler(),
        MomentumPLMSScheduler(momentum_method="ghvb", solver_order=2, momentum_beta=0.8),
        MomentumDPMSolverMultistepScheduler(momentum_beta=0.8),
    ],
    ids=lambda s: type(s).__name__,
)
def test_any_scheduler_one_commit_per_step(scheduler):
    pipe = _digits(scheduler)
    apply_guidance(pipe, *METHODS)
    calls = []
    pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    first = pipe(**_digits_kwargs(steps=5)).images
    assert torch.isfinite(first).all()
    state = guidance_hook(pipe).state()
    assert state.steps == 5  # momentum and history advance once per sampler step
    assert len(calls) == (9 if scheduler.order == 2 else 5)  # second-order: two evaluations but one commit
    assert torch.equal(pipe(**_digits_kwargs(steps=5)).images, first)


def test_batch_change_resets_and_batches_are_independent_of_each_other():
    pipe = apply_guidance(_digits(), *METHODS)
    alone = pipe(**_digits_kwargs(digits=(3,))).images
    pipe(**_digits_kwargs(digits=(5, 6, 7)))
    again = pipe(**_digits_kwargs(digits=(3,))).images
    assert torch.equal(alone, again)


def _manual_apg(pipe, cond, uncond, x, t, kind, scale):
    alphas = pipe.scheduler.alphas_cumprod[int(t)]
    a, s = alphas.sqrt().float(), (1 - alphas).sqrt().float()
    if kind == "epsilon":
        c0, u0 = (x - s * cond) / a, (x - s * uncond) / a
    else:
        c0, u0 = a * x - s * cond, a * x - s * uncond
    g0, _ = apg_guidance(c0, u0, scale, None, eta=0.0, momentum=-0.5, norm_threshold=2.0)
    eps = (x - a * g0) / s
    return eps if kind == "epsilon" else a * eps - s * g0


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_hook_computes_apg_on_x0_exactly(kind):
    pipe = _digits(DDIMScheduler(prediction_type=kind))
    pipe._guidance_scale = 6.0
    pipe.scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 8, generator=generator)
    labels = torch.tensor([10, 10, 4, 7])
    t = pipe.scheduler.timesteps[3]
    raw = pipe.unet(torch.cat([x, x]), t, class_labels=labels).sample
    apply_guidance(pipe, APG(norm_threshold=2.0))
    guided = pipe.unet(torch.cat([x, x]), t, class_labels=labels).sample
    uncond, cond = raw.chunk(2)
    expected = _manual_apg(pipe, cond, uncond, x, t, kind, 6.0)
    assert torch.allclose(guided[:2], expected, atol=1e-4) and torch.equal(guided[:2], guided[2:])


def test_hook_computes_flow_apg_on_x0_exactly():
    pipe = make_pipeline("sd3")
    pipe._guidance_scale = 5.0
    pipe.scheduler.set_timesteps(4)
    t = pipe.scheduler.timesteps[1]
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    kwargs = make_call_kwargs("sd3")
    inputs = {
        "hidden_states": torch.cat([x, x]),
        "timestep": t.expand(2),
        "encoder_hidden_states": torch.cat([kwargs["negative_prompt_embeds"], kwargs["prompt_embeds"]]),
        "pooled_projections": torch.cat([kwargs["negative_pooled_prompt_embeds"], kwargs["pooled_prompt_embeds"]]),
    }
    raw = pipe.transformer(**inputs).sample
    apply_guidance(pipe, APG(norm_threshold=2.0))
    guided = pipe.transformer(**inputs).sample
    sigma = t / 1000
    uncond, cond = raw.chunk(2)
    c0, u0 = x - sigma * cond, x - sigma * uncond
    g0, _ = apg_guidance(c0, u0, 5.0, None, eta=0.0, momentum=-0.5, norm_threshold=2.0)
    assert torch.allclose(guided[:1], (x - g0) / sigma, atol=1e-4)


def test_state_is_per_thread():
    """Interleaved generations in two threads on one hooked denoiser each see only their own history."""
    pipe = _digits()
    pipe._guidance_scale = 6.0
    pipe.scheduler.set_timesteps(6)
    apply_guidance(pipe, *METHODS)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([10, 2])
    timesteps = list(pipe.scheduler.timesteps)

    def run_steps(results, barrier=None):
        outputs = []
        for t in timesteps:
            if barrier is not None:
                barrier.wait()
            outputs.append(pipe.unet(torch.cat([x, x]), t, class_labels=labels).sample)
        results.append(outputs)

    alone = []
    run_steps(alone)
    barrier = threading.Barrier(2)
    together = [[], []]
    threads = [threading.Thread(target=run_steps, args=(together[i], barrier)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outputs in together:
        assert all(torch.equal(a, b) for a, b in zip(outputs[0], alone[0], strict=True))


def test_sd3_skip_layer_guidance_calls_pass_through():
    pipe = make_pipeline("sd3")
    apply_guidance(pipe, *METHODS)
    calls = []
    hook = guidance_hook(pipe)
    original = hook._guide
    hook._guide = lambda *a, **k: calls.append(1) or original(*a, **k)
    out = run(pipe, **make_call_kwargs("sd3"), skip_guidance_layers=[0], skip_layer_guidance_start=0.0)
    assert torch.isfinite(out).all() and len(calls) == 4  # the 4 extra skip-layer calls were not guided


def test_applying_twice_replaces_and_remove_is_idempotent():
    pipe = _digits()
    apply_guidance(pipe, APG())
    apply_guidance(pipe, HiGS())
    hook = guidance_hook(pipe)
    assert hook.combiner is None and isinstance(hook.higs, HiGS)
    remove_guidance(pipe)
    remove_guidance(pipe)
    assert guidance_hook(pipe) is None


def test_bad_input():
    with pytest.raises(ValueError, match="`pipe` must be a diffusers pipeline with a `unet` or `transformer`"):
        apply_guidance(object(), APG())
    with pytest.raises(TypeError, match=r"`methods\[0\]`"):
        apply_guidance(_digits(), "apg")
    with pytest.raises(ValueError, match="one of CFG / APG"):
        apply_guidance(_digits(), APG(), CFG())
    with pytest.raises(ValueError, match="APG cannot apply; use HiGS alone"):
        apply_guidance(make_pipeline("flux"), APG())
    with pytest.raises(ValueError, match=r"`pipe\.scheduler\.config\.prediction_type`"):
        apply_guidance(_digits(DDIMScheduler(prediction_type="noise")), APG())


def test_flux_true_cfg_is_refused_at_call_time():
    pipe = apply_guidance(make_pipeline("flux"), HiGS())
    kwargs = make_call_kwargs("flux")
    kwargs.update(
        negative_prompt_embeds=kwargs["prompt_embeds"] + 1,
        negative_pooled_prompt_embeds=kwargs["pooled_prompt_embeds"],
        true_cfg_scale=4.0,
    )
    with pytest.raises(GuidanceLayoutError, match="true CFG"):
        run(pipe, **kwargs)


def test_flow_scheduler_on_sd3_is_detected():
    pipe = make_pipeline("sd3", scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    apply_guidance(pipe, APG(norm_threshold=2.0))
    assert guidance_hook(pipe).layout.family == "flow"


@pytest.mark.parametrize("methods", [(APG(),), (HiGS(weight=1.0),), (CFG(),), ()])
def test_a_pipeline_without_cfg_is_refused_when_applied(methods):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)  # fmt: skip
    pipe = DDPMPipeline(unet, DDPMScheduler())
    with pytest.raises(ValueError, match=r"`pipe` \(DDPMPipeline\) runs no classifier-free guidance"):
        apply_guidance(pipe, *methods)
    assert guidance_hook(pipe) is None
    remove_guidance(pipe)  # nothing to remove: still a no-op
