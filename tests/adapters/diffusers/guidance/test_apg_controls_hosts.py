"""APG interval / norm dims through the adapters: the classic hook on tiny real pipelines and the modular guider."""

import math

import pytest
import torch
from diffusers import DDIMScheduler, HeunDiscreteScheduler, KDPM2DiscreteScheduler, PNDMScheduler
from diffusers.guiders import ClassifierFreeGuidance
from tiny_pipelines import make_call_kwargs, make_pipeline, run, tiny_digits_unet

from inertia.adapters.diffusers.guidance_hook import guidance_hook, run_steps
from inertia.core.guidance.apg import apg_guidance, cfg_guidance
from inertia.guidance import APG, APGGuider, apply_guidance, remove_guidance
from inertia.pipelines import DigitsPipeline

INF = float("inf")
R = 2.0  # a threshold that clips on the tiny models


def _digits(scheduler=None) -> DigitsPipeline:
    pipe = DigitsPipeline(unet=tiny_digits_unet(), scheduler=scheduler or DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _digits_run(pipe, steps=4, guidance_scale=7.5):
    kwargs = {"digits": [1, 2], "num_inference_steps": steps, "guidance_scale": guidance_scale}
    return pipe(**kwargs, generator=torch.Generator().manual_seed(0), output_type="pt").images


# --- identity on whole pipelines ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["digits", "sd", "sd3"])
def test_full_interval_is_todays_apg_and_empty_is_cfg_bit_for_bit(kind):
    def call(*methods):
        if kind == "digits":
            pipe = _digits()
            apply_guidance(pipe, *methods)
            return _digits_run(pipe)
        pipe = make_pipeline(kind)
        apply_guidance(pipe, *methods)
        return run(pipe, **make_call_kwargs(kind))

    stock, today = call(), call(APG(norm_threshold=R))
    assert not torch.allclose(stock, today, atol=1e-4)
    # 4 steps: int(0.01·4) = 0, so start=0.01 still covers every step (but runs the interval code)
    for full in (APG(norm_threshold=R, start=0.01), APG(norm_threshold=R, sigma_range=(0.0, INF))):
        assert torch.equal(call(full), today), full
    far = (100.0, 200.0) if kind != "sd3" else (2.0, 3.0)  # above every σ of the run (VP σ_max ≈ 14.6; flow σ <= 1)
    for empty in (
        APG(norm_threshold=R, start=0.5, stop=0.5),
        APG(norm_threshold=R, start=0.3, stop=0.45),  # int(1.2) == int(1.8): no step of 4
        APG(norm_threshold=R, sigma_range=far),
    ):
        assert torch.equal(call(empty), stock), empty


def test_partial_interval_differs_from_both_and_is_repeatable():
    pipe = _digits()
    stock = _digits_run(pipe, steps=8)
    apply_guidance(pipe, APG(norm_threshold=R))
    full = _digits_run(pipe, steps=8)
    apply_guidance(pipe, APG(norm_threshold=R, start=0.25, stop=0.75))
    partial = _digits_run(pipe, steps=8)
    assert not torch.allclose(partial, stock, atol=1e-4) and not torch.allclose(partial, full, atol=1e-4)
    assert torch.equal(_digits_run(pipe, steps=8), partial)
    remove_guidance(pipe)


# --- step by step on the hooked denoiser ----------------------------------------------------------------------


def _x0_apg(pipe, cond, uncond, x, t, scale, buffer):
    alpha = pipe.scheduler.alphas_cumprod[int(t)]
    a, s = alpha.sqrt().float(), (1 - alpha).sqrt().float()
    g0, buffer = apg_guidance(
        (x - s * cond) / a, (x - s * uncond) / a, scale, buffer, eta=0.0, momentum=-0.5, norm_threshold=R
    )
    return (x - a * g0) / s, buffer


def _stepwise(apg, active):
    """Drives the hooked digits UNet through 8 DDIM steps; checks CFG (bit for bit) outside `active`, APG inside."""
    pipe = _digits()
    pipe._guidance_scale = 6.0
    pipe.scheduler.set_timesteps(8)
    generator = torch.Generator().manual_seed(5)
    labels = torch.tensor([10, 10, 4, 7])
    xs = [torch.randn(2, 3, 8, 8, generator=generator) for _ in range(8)]
    timesteps = list(pipe.scheduler.timesteps)
    raw = [pipe.unet(torch.cat([x, x]), t, class_labels=labels).sample for x, t in zip(xs, timesteps, strict=True)]
    apply_guidance(pipe, apg)
    buffer = None
    for index, (x, t, out) in enumerate(zip(xs, timesteps, raw, strict=True)):
        guided = pipe.unet(torch.cat([x, x]), t, class_labels=labels).sample
        uncond, cond = out.chunk(2)
        if index in active:
            expected, buffer = _x0_apg(pipe, cond, uncond, x, t, 6.0, buffer)  # momentum of active steps only
            assert torch.allclose(guided[:2], expected, atol=1e-4), index
        else:
            assert torch.equal(guided[:2], cfg_guidance(cond, uncond, 6.0)), index
    assert guidance_hook(pipe).state().steps == 8
    return pipe


def test_step_interval_step_by_step():
    pipe = _stepwise(APG(norm_threshold=R, start=0.25, stop=0.75), active={2, 3, 4, 5})
    assert guidance_hook(pipe).state().cache["num_steps"] == 8


def test_sigma_range_step_by_step():
    scheduler = DDIMScheduler()
    scheduler.set_timesteps(8)
    alphas = scheduler.alphas_cumprod[scheduler.timesteps]
    sigmas = ((1 - alphas) / alphas).sqrt().tolist()  # σ = √((1 − ᾱ)/ᾱ) at DDIM's integer timesteps
    low, high = (sigmas[6] + sigmas[5]) / 2, (sigmas[2] + sigmas[1]) / 2  # between steps: clear of rounding
    _stepwise(APG(norm_threshold=R, sigma_range=(low, high)), active={2, 3, 4, 5})


# --- what the hook counts as the run's steps ------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheduler",
    [DDIMScheduler(), PNDMScheduler(skip_prk_steps=True), HeunDiscreteScheduler(), KDPM2DiscreteScheduler()],
    ids=lambda s: type(s).__name__,
)
def test_step_count_matches_the_commits(scheduler):
    pipe = _digits(scheduler)
    apply_guidance(pipe, APG(norm_threshold=R, start=0.01))
    _digits_run(pipe, steps=5)
    state = guidance_hook(pipe).state()
    assert state.cache["num_steps"] == state.steps == 5


@pytest.mark.parametrize("kind", ["sd", "sdxl", "sd3"])
def test_img2img_counts_only_the_steps_it_runs(kind):
    pipe = make_pipeline(kind, img2img=True)
    apply_guidance(pipe, APG(norm_threshold=R, start=0.01))
    run(pipe, **make_call_kwargs(kind, img2img=True))  # 4 steps at strength 0.75: 3 run
    state = guidance_hook(pipe).state()
    assert state.cache["num_steps"] == state.steps == 3


def test_run_steps_hand_cases():
    assert run_steps([999.0, 749.0, 499.0, 249.0], 999.0, 1) == 4
    assert run_steps([999.0, 749.0, 499.0, 249.0], 499.0, 1) == 2  # img2img
    assert run_steps([999.0, 749.0, 499.0, 249.0], 999.0, 1, limit=3) == 3  # denoising_end
    assert run_steps([999.0, 749.0, 749.0, 499.0], 999.0, 1) == 3  # PNDM repeats a timestep
    assert run_steps([999.0, 800.0, 666.0, 500.0, 333.0], 999.0, 2) == 3  # KDPM2: midpoints interleaved


# --- norm dims and bad input through the hook -----------------------------------------------------------------


def test_explicit_default_dims_are_todays_apg_and_bad_dims_fail_before_any_step():
    pipe = _digits()
    apply_guidance(pipe, APG(norm_threshold=R))
    today = _digits_run(pipe)
    apply_guidance(pipe, APG(norm_threshold=R, norm_dims=(1, 2, 3)))
    assert torch.equal(_digits_run(pipe), today)
    apply_guidance(pipe, APG(norm_threshold=R, norm_dims="per_frame"))
    with pytest.raises(ValueError, match=r"`norm_dims`='per_frame' needs 5-D"):
        _digits_run(pipe)
    assert guidance_hook(pipe).state().momentum is None


def test_flux_accepts_only_an_empty_apg():
    pipe = make_pipeline("flux")
    stock = run(pipe, **make_call_kwargs("flux"))
    apply_guidance(pipe, APG(start=0.5, stop=0.5))  # never applies: the identity
    assert torch.equal(run(pipe, **make_call_kwargs("flux")), stock)
    with pytest.raises(ValueError, match="APG cannot apply"):
        apply_guidance(pipe, APG(start=0.2, stop=0.5))


# --- modular guider -------------------------------------------------------------------------------------------


def _guided(guider, cond, uncond, step, steps, timestep):
    guider.set_state(step=step, num_inference_steps=steps, timestep=torch.tensor(timestep))
    guider.prepare_inputs({})
    return guider.forward(cond, uncond).pred


def test_modular_apg_interval_is_cfg_outside_and_apg_inside():
    w, settings = 6.0, {"eta": 0.25, "momentum": -0.5, "norm_threshold": 3.0}
    ours = APGGuider(guidance_scale=w, space="model_output", apg_start=0.25, apg_stop=0.75, **settings)
    cfg = ClassifierFreeGuidance(guidance_scale=w)
    generator = torch.Generator().manual_seed(6)
    buffer = None
    for step, timestep in enumerate(torch.linspace(999, 0, 8).round().tolist()):
        cond = torch.randn(2, 4, 8, 8, generator=generator)
        uncond = cond + torch.randn(2, 4, 8, 8, generator=generator)
        got = _guided(ours, cond, uncond, step, 8, timestep)
        assert ours.num_conditions == 2  # CFG outside APG's interval still needs the uncond pass
        if 2 <= step < 6:
            expected, buffer = apg_guidance(cond, uncond, w, buffer, **settings)
            assert torch.equal(got, expected), step
        else:
            assert torch.equal(got, _guided(cfg, cond, uncond, step, 8, timestep)), step


def test_modular_sigma_range_uses_the_guider_schedule():
    guider = APGGuider(guidance_scale=5.0, space="model_output", apg_sigma_range=(0.0, 1.0), norm_threshold=1.0)
    alpha = guider._alphas_cumprod
    sigma = lambda t: math.sqrt((1 - alpha[t]) / alpha[t])  # noqa: E731
    assert sigma(999) > 1.0 > sigma(100)
    cond, uncond = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8) * 3
    assert torch.equal(_guided(guider, cond, uncond, 0, 2, 999), cfg_guidance(cond, uncond, 5.0))
    expected, _ = apg_guidance(cond, uncond, 5.0, None, eta=0.0, momentum=-0.5, norm_threshold=1.0)
    assert torch.equal(_guided(guider, cond, uncond, 1, 2, 100), expected)


def test_modular_per_frame_on_video_latents():
    settings = {"eta": 0.0, "momentum": 0.0, "norm_threshold": 2.0}
    guider = APGGuider(guidance_scale=5.0, space="model_output", norm_dims="per_frame", **settings)
    cond, uncond = torch.randn(1, 4, 3, 6, 6, dtype=torch.float64), torch.randn(1, 4, 3, 6, 6, dtype=torch.float64)
    got = _guided(guider, cond, uncond, 0, 4, 999)
    for frame in range(3):
        alone, _ = apg_guidance(
            cond[:, :, frame].contiguous(), uncond[:, :, frame].contiguous(), 5.0, None, **settings
        )
        torch.testing.assert_close(got[:, :, frame], alone, atol=1e-12, rtol=0)


def test_modular_save_load_keeps_the_controls(tmp_path):
    guider = APGGuider(apg_start=0.1, apg_stop=0.9, apg_sigma_range=(0.5, 3.0), norm_dims=(1, 3, 4))
    guider.save_pretrained(tmp_path / "apg")
    loaded = APGGuider.from_pretrained(tmp_path / "apg")
    assert loaded.combiner == guider.combiner and loaded.combiner.sigma_range == (0.5, 3.0)
    assert guider.new(apg_stop=0.5).combiner.stop == 0.5


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"apg_start": -0.1}, "apg_start"),
        ({"apg_start": 0.5, "apg_stop": 0.4}, "apg_stop"),
        ({"apg_sigma_range": (3.0, 1.0)}, "apg_sigma_range"),
        ({"norm_dims": "frames"}, "norm_dims"),
    ],
)
def test_modular_bad_controls_name_the_guider_key(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        APGGuider(**kwargs)
