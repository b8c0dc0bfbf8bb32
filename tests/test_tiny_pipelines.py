"""Smoke tests for `tests/tiny_pipelines.py`: the real diffusers pipelines run offline on tiny weights."""

import time

import numpy as np
import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    PNDMScheduler,
)
from tiny_pipelines import (
    PIPELINE_KINDS,
    make_call_kwargs,
    make_pipeline,
    record_scheduler_calls,
    run,
)

LATENT_SHAPE = {"sd": (4, 16, 16), "sdxl": (4, 16, 16), "sd3": (4, 16, 16), "flux": (64, 16)}
STOCK_SCHEDULER = {
    "sd": PNDMScheduler,
    "sdxl": EulerDiscreteScheduler,
    "sd3": FlowMatchEulerDiscreteScheduler,
    "flux": FlowMatchEulerDiscreteScheduler,
}
CASES = [(kind, img2img) for kind in PIPELINE_KINDS for img2img in (False, True)]
CASE_IDS = [f"{kind}-{'img2img' if img2img else 't2i'}" for kind, img2img in CASES]


def _dpm_solver(kind: str, config) -> DPMSolverMultistepScheduler:
    if kind in ("sd", "sdxl"):
        return DPMSolverMultistepScheduler.from_config(config)
    return DPMSolverMultistepScheduler.from_config(config, prediction_type="flow_prediction", use_flow_sigmas=True)


@pytest.mark.parametrize(("kind", "img2img"), CASES, ids=CASE_IDS)
def test_stock_scheduler_runs_and_is_deterministic(kind, img2img):
    pipe = make_pipeline(kind, img2img=img2img)
    assert type(pipe.scheduler) is STOCK_SCHEDULER[kind]
    assert type(pipe).__name__.endswith("Img2ImgPipeline") == img2img

    start = time.perf_counter()
    first = run(pipe, **make_call_kwargs(kind, img2img=img2img))
    elapsed = time.perf_counter() - start
    second = run(pipe, **make_call_kwargs(kind, img2img=img2img))
    other_seed = run(pipe, **make_call_kwargs(kind, img2img=img2img, seed=1))

    assert isinstance(first, torch.Tensor)
    assert first.shape == (1, *LATENT_SHAPE[kind])
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)
    assert not torch.equal(first, other_seed)
    assert elapsed < 5.0, f"{kind} took {elapsed:.2f}s"


@pytest.mark.parametrize(("kind", "img2img"), CASES, ids=CASE_IDS)
def test_vae_decode_and_batching(kind, img2img):
    pipe = make_pipeline(kind, img2img=img2img)
    images = run(pipe, **make_call_kwargs(kind, batch_size=2, img2img=img2img, output_type="np"))
    assert isinstance(images, np.ndarray)
    assert images.shape == (2, 32, 32, 3)
    assert np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0
    # Row i of the batch always gets the same prompt embedding; the two prompts differ.
    assert not np.array_equal(images[0], images[1])


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_weights_are_seeded_and_shared_between_variants(kind):
    before = torch.random.get_rng_state()
    t2i = make_pipeline(kind)
    assert torch.equal(torch.random.get_rng_state(), before), "building must not consume the global RNG"
    i2i = make_pipeline(kind, img2img=True)
    other = make_pipeline(kind, seed=1)
    name = "unet" if kind in ("sd", "sdxl") else "transformer"
    for component in (name, "vae"):
        weights, i2i_weights = getattr(t2i, component).state_dict(), getattr(i2i, component).state_dict()
        assert weights.keys() == i2i_weights.keys()
        assert all(torch.equal(weights[k], i2i_weights[k]) for k in weights)
    denoiser, other_denoiser = getattr(t2i, name).state_dict(), getattr(other, name).state_dict()
    assert any(not torch.equal(denoiser[k], other_denoiser[k]) for k in denoiser)


def test_custom_scheduler_is_used_and_bad_kind_rejected():
    scheduler = EulerDiscreteScheduler()
    assert make_pipeline("sd", scheduler=scheduler).scheduler is scheduler
    with pytest.raises(ValueError, match="unknown pipeline kind"):
        make_pipeline("sd2")
    with pytest.raises(ValueError, match="unknown pipeline kind"):
        make_call_kwargs("kandinsky")


@pytest.mark.parametrize(
    ("kind", "img2img"),
    [("sd", False), ("sd", True), ("sdxl", False), ("sdxl", True), ("sd3", False), ("flux", False)],
    ids=["sd-t2i", "sd-img2img", "sdxl-t2i", "sdxl-img2img", "sd3-t2i", "flux-t2i"],
)
def test_dpm_solver_swap(kind, img2img):
    pipe = make_pipeline(kind, img2img=img2img)
    pipe.scheduler = _dpm_solver(kind, pipe.scheduler.config)
    out = run(pipe, **make_call_kwargs(kind, img2img=img2img))
    assert out.shape == (1, *LATENT_SHAPE[kind])
    assert torch.isfinite(out).all()
    assert torch.equal(out, run(pipe, **make_call_kwargs(kind, img2img=img2img)))


@pytest.mark.parametrize(
    ("kind", "error"),
    [("sd3", "scale_noise"), ("flux", "does not support custom sigmas")],
)
def test_dpm_solver_cannot_do_flow_img2img(kind, error):
    """Pinned diffusers 0.42 limitation: SD3/Flux img2img need `scale_noise`; FluxImg2Img always passes sigmas."""
    pipe = make_pipeline(kind, img2img=True)
    pipe.scheduler = _dpm_solver(kind, pipe.scheduler.config)
    with pytest.raises((AttributeError, ValueError), match=error):
        run(pipe, **make_call_kwargs(kind, img2img=True))


# Calls each pipeline makes on its stock scheduler before the denoising loop (4 steps, strength 0.75).
EXPECTED_SETUP = {
    ("sd", False): ["set_timesteps"],
    ("sd", True): ["set_timesteps", "add_noise"],  # PNDM has no set_begin_index
    ("sdxl", False): ["set_timesteps", "set_begin_index"],
    ("sdxl", True): ["set_timesteps", "set_begin_index", "add_noise"],
    ("sd3", False): ["set_timesteps"],
    ("sd3", True): ["set_timesteps", "set_begin_index", "scale_noise"],
    ("flux", False): ["set_timesteps", "set_begin_index"],
    ("flux", True): ["set_timesteps", "set_begin_index", "scale_noise"],
}


@pytest.mark.parametrize(("kind", "img2img"), CASES, ids=CASE_IDS)
def test_scheduler_call_protocol(kind, img2img):
    pipe = make_pipeline(kind, img2img=img2img)
    calls = record_scheduler_calls(pipe.scheduler)
    run(pipe, **make_call_kwargs(kind, img2img=img2img))

    names = [name for name, _, _ in calls]
    loop_start = min(i for i, name in enumerate(names) if name in ("scale_model_input", "step"))
    assert names[:loop_start] == EXPECTED_SETUP[kind, img2img]
    assert set(names[loop_start:]) == ({"scale_model_input", "step"} if kind in ("sd", "sdxl") else {"step"})
    # img2img at strength 0.75 of 4 steps skips the first timestep (PNDM: 5 timesteps for 4 steps, see module doc).
    assert names.count("step") == len(pipe.scheduler.timesteps) - int(img2img)

    _, args, kwargs = calls[0]
    if kind == "flux":  # keyword-only call, no num_inference_steps
        assert args == () and set(kwargs) == {"sigmas", "device", "mu"}
        np.testing.assert_allclose(kwargs["sigmas"], [1.0, 0.75, 0.5, 0.25])
    else:
        assert args == (4,) and set(kwargs) == {"device"}
    if "set_begin_index" in names:
        begin = next(args for name, args, _ in calls if name == "set_begin_index")
        assert begin == ((1,) if img2img else (0,))
