"""Tests for `inertia.pipelines.digits.DigitsPipeline` with a tiny random class-conditional `UNet2DModel`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    ImagePipelineOutput,
    KDPM2DiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UNet2DModel,
    UniPCMultistepScheduler,
)

from inertia.pipelines.digits import NULL_LABEL, DigitsPipeline
from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

STEPS = 4
SCHEDULERS = [
    DDIMScheduler,
    DDPMScheduler,
    PNDMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    UniPCMultistepScheduler,
    DEISMultistepScheduler,
    EulerDiscreteScheduler,
    EulerAncestralDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    KDPM2DiscreteScheduler,
    MomentumPLMSScheduler,
    MomentumDPMSolverMultistepScheduler,
]


def make_unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
        num_class_embeds=11,
    )
    return unet.eval()


@pytest.fixture
def pipe() -> DigitsPipeline:
    pipeline = DigitsPipeline(unet=make_unet(), scheduler=DDIMScheduler())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run_pt(pipe: DigitsPipeline, digits: Any, **kwargs: Any) -> torch.Tensor:
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("generator", gen(0))
    return pipe(digits, output_type="pt", **kwargs).images


@contextmanager
def record_unet_calls(unet: torch.nn.Module) -> Iterator[list[dict[str, Any]]]:
    """Records batch size and class labels of every UNet forward call."""
    calls: list[dict[str, Any]] = []

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        calls.append({"batch": sample.shape[0], "labels": kwargs["class_labels"].tolist()})

    handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def reference_loop(pipe: DigitsPipeline, digits: list[int], guidance_scale: float, seed: int) -> torch.Tensor:
    """Plain DDIM loop, written independently: separate cond / uncond UNet calls; output in [0, 1]."""
    unet, scheduler = pipe.unet, DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(STEPS)
    x = torch.randn((len(digits), 3, 16, 16), generator=gen(seed))
    cond = torch.tensor(digits)
    uncond = torch.full_like(cond, NULL_LABEL)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = unet(x, t, class_labels=cond).sample
            if guidance_scale > 1:
                eps_u = unet(x, t, class_labels=uncond).sample
                eps = eps_u + guidance_scale * (eps - eps_u)
            x = scheduler.step(eps, t, x).prev_sample
    return (x / 2 + 0.5).clamp(0, 1)


# --- output types and shapes -------------------------------------------------------------------------------------


def test_output_types_and_shapes(pipe: DigitsPipeline) -> None:
    kwargs = {"num_images_per_prompt": 2, "num_inference_steps": 2}
    pil = pipe([3, 7], generator=gen(0), **kwargs).images
    assert isinstance(pil, list) and len(pil) == 4
    assert all(isinstance(im, PIL.Image.Image) and im.size == (16, 16) and im.mode == "RGB" for im in pil)

    arr = pipe([3, 7], generator=gen(0), output_type="np", **kwargs).images
    assert isinstance(arr, np.ndarray) and arr.shape == (4, 16, 16, 3) and arr.dtype == np.float32
    assert arr.min() >= 0.0 and arr.max() <= 1.0

    pt = pipe([3, 7], generator=gen(0), output_type="pt", **kwargs).images
    assert isinstance(pt, torch.Tensor) and pt.shape == (4, 3, 16, 16)
    assert pt.min() >= 0.0 and pt.max() <= 1.0
    np.testing.assert_allclose(pt.permute(0, 2, 3, 1).numpy(), arr, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(pil[0]), (arr[0] * 255).round().astype("uint8"))

    latent = pipe([3, 7], generator=gen(0), output_type="latent", **kwargs).images
    assert isinstance(latent, torch.Tensor) and latent.shape == (4, 3, 16, 16)
    assert torch.equal((latent / 2 + 0.5).clamp(0, 1), pt)  # the sample before the image conversion, unclamped

    out = pipe(5, generator=gen(0), output_type="np", num_inference_steps=2)
    assert isinstance(out, ImagePipelineOutput) and out.images.shape == (1, 16, 16, 3)
    tup = pipe(5, generator=gen(0), output_type="np", num_inference_steps=2, return_dict=False)
    assert isinstance(tup, tuple) and len(tup) == 1
    np.testing.assert_array_equal(tup[0], out.images)


def test_images_are_ordered_digit_by_digit(pipe: DigitsPipeline) -> None:
    with record_unet_calls(pipe.unet) as calls:
        run_pt(pipe, [3, 7], num_images_per_prompt=2, guidance_scale=1.0, num_inference_steps=1)
    assert calls[0]["labels"] == [3, 3, 7, 7]


# --- determinism and generators ----------------------------------------------------------------------------------


def test_seeded_generator_is_deterministic(pipe: DigitsPipeline) -> None:
    a = run_pt(pipe, [1, 2], generator=gen(42))
    b = run_pt(pipe, [1, 2], generator=gen(42))
    c = run_pt(pipe, [1, 2], generator=gen(43))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, EulerAncestralDiscreteScheduler, DDPMScheduler])
def test_per_image_generators_match_single_runs(pipe: DigitsPipeline, scheduler_cls: type) -> None:
    """Image i of a batch with generator i equals a batch-of-1 run with generator i (stochastic schedulers too)."""
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    digits, seeds = [1, 4, 9], [10, 11, 12]
    batch = run_pt(pipe, digits, generator=[gen(s) for s in seeds])
    for i, (digit, seed) in enumerate(zip(digits, seeds)):
        single = run_pt(pipe, digit, generator=gen(seed))
        torch.testing.assert_close(batch[i : i + 1], single, rtol=0, atol=1e-4)
        single_list = run_pt(pipe, [digit], generator=[gen(seed)])
        torch.testing.assert_close(single_list, single, rtol=0, atol=0)


def test_explicit_latents_match_generator_noise(pipe: DigitsPipeline) -> None:
    noise = torch.randn((2, 3, 16, 16), generator=gen(5))
    from_latents = run_pt(pipe, [0, 8], latents=noise, generator=None)
    from_generator = run_pt(pipe, [0, 8], generator=gen(5))
    torch.testing.assert_close(from_latents, from_generator, rtol=0, atol=0)


# --- classifier-free guidance ------------------------------------------------------------------------------------


@pytest.mark.parametrize("guidance_scale", [0.0, 1.0])
def test_no_cfg_makes_one_conditional_call_per_step(pipe: DigitsPipeline, guidance_scale: float) -> None:
    with record_unet_calls(pipe.unet) as calls:
        run_pt(pipe, [2, 5], num_images_per_prompt=2, guidance_scale=guidance_scale)
    assert len(calls) == STEPS
    assert all(c["batch"] == 4 and c["labels"] == [2, 2, 5, 5] for c in calls)


def test_cfg_makes_one_batched_call_per_step(pipe: DigitsPipeline) -> None:
    with record_unet_calls(pipe.unet) as calls:
        run_pt(pipe, [2, 5], num_images_per_prompt=2, guidance_scale=3.0)
    assert len(calls) == STEPS
    assert all(c["batch"] == 8 and c["labels"] == [NULL_LABEL] * 4 + [2, 2, 5, 5] for c in calls)


def test_guidance_one_equals_conditional_only_result(pipe: DigitsPipeline) -> None:
    out = run_pt(pipe, [3, 6], guidance_scale=1.0, generator=gen(7))
    torch.testing.assert_close(out, reference_loop(pipe, [3, 6], 1.0, seed=7), rtol=0, atol=1e-5)
    below_one = run_pt(pipe, [3, 6], guidance_scale=0.5, generator=gen(7))
    torch.testing.assert_close(below_one, out, rtol=0, atol=0)


def test_cfg_matches_separate_branch_reference(pipe: DigitsPipeline) -> None:
    out = run_pt(pipe, [3, 6], guidance_scale=4.0, generator=gen(7))
    torch.testing.assert_close(out, reference_loop(pipe, [3, 6], 4.0, seed=7), rtol=0, atol=1e-4)
    assert not torch.allclose(out, run_pt(pipe, [3, 6], guidance_scale=1.0, generator=gen(7)))


# --- schedulers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheduler_cls", SCHEDULERS, ids=lambda c: c.__name__)
def test_every_scheduler_runs(pipe: DigitsPipeline, scheduler_cls: type) -> None:
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    with record_unet_calls(pipe.unet) as calls:
        out = run_pt(pipe, [0, 9], guidance_scale=2.0)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    assert len(calls) == len(pipe.scheduler.timesteps) == pipe.num_timesteps


# --- callbacks ---------------------------------------------------------------------------------------------------


def test_callback_on_step_end_called_each_step(pipe: DigitsPipeline) -> None:
    seen: list[tuple[int, float, tuple[int, ...]]] = []

    def callback(p: DiffusionPipeline, i: int, t: torch.Tensor, kwargs: dict[str, Any]) -> None:
        assert p is pipe and set(kwargs) == {"latents"}
        seen.append((i, float(t), tuple(kwargs["latents"].shape)))

    plain = run_pt(pipe, [4, 4])
    with_cb = run_pt(pipe, [4, 4], callback_on_step_end=callback)
    assert [s[0] for s in seen] == list(range(STEPS))
    assert [s[1] for s in seen] == [float(t) for t in pipe.scheduler.timesteps]
    assert all(s[2] == (2, 3, 16, 16) for s in seen)
    torch.testing.assert_close(with_cb, plain, rtol=0, atol=0)


def test_callback_can_replace_latents(pipe: DigitsPipeline) -> None:
    def zero_at_last_step(p: DiffusionPipeline, i: int, t: torch.Tensor, kwargs: dict[str, Any]) -> dict[str, Any]:
        latents = kwargs["latents"]
        return {"latents": torch.zeros_like(latents) if i == STEPS - 1 else latents}

    out = run_pt(pipe, 1, callback_on_step_end=zero_at_last_step, callback_on_step_end_tensor_inputs=["latents"])
    torch.testing.assert_close(out, torch.full_like(out, 0.5), rtol=0, atol=0)


# --- save / load, device, dtype ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", [DigitsPipeline], ids=lambda c: c.__name__)
def test_save_load_round_trip(pipe: DigitsPipeline, tmp_path: Any, loader: type) -> None:
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.save_pretrained(tmp_path)
    loaded = loader.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded) is DigitsPipeline and type(loaded.scheduler) is EulerDiscreteScheduler
    torch.testing.assert_close(run_pt(loaded, [2, 7]), run_pt(pipe, [2, 7]), rtol=0, atol=0)


def test_to_cpu(pipe: DigitsPipeline) -> None:
    assert pipe.to("cpu") is pipe and pipe.device.type == "cpu"
    assert torch.isfinite(run_pt(pipe, 3, num_inference_steps=2)).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_unet(dtype: torch.dtype) -> None:
    pipe = DigitsPipeline(unet=make_unet().to(dtype), scheduler=DPMSolverMultistepScheduler())
    pipe.set_progress_bar_config(disable=True)
    with record_unet_calls(pipe.unet) as calls:
        images = pipe([1, 2], num_inference_steps=2, generator=gen(0), output_type="np").images
    assert images.dtype == np.float32 and images.shape == (2, 16, 16, 3) and np.isfinite(images).all()
    assert len(calls) == 2


# --- input validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"digits": 10}, "digits"),
        ({"digits": -1}, "digits"),
        ({"digits": "7"}, "digits"),
        ({"digits": []}, "digits"),
        ({"digits": [1, 10]}, "digits"),
        ({"digits": [1, "2"]}, "digits"),
        ({"digits": True}, "digits"),
        ({"digits": 1.0}, "digits"),
        ({"num_images_per_prompt": 0}, "num_images_per_prompt"),
        ({"num_images_per_prompt": 1.5}, "num_images_per_prompt"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"guidance_scale": math.nan}, "guidance_scale"),
        ({"guidance_scale": math.inf}, "guidance_scale"),
        ({"guidance_scale": "3"}, "guidance_scale"),
        ({"output_type": "jpg"}, "output_type"),
        ({"latents": torch.zeros(1, 3, 16, 16)}, "latents"),
        ({"latents": torch.zeros(2, 3, 8, 8)}, "latents"),
        ({"generator": [torch.Generator()]}, "generator"),
        ({"generator": 0}, "generator"),
        ({"callback_on_step_end_tensor_inputs": ["noise_pred"]}, "callback_on_step_end_tensor_inputs"),
        ({"callback_on_step_end": "not callable"}, "callback_on_step_end"),
    ],
)
def test_bad_input_raises_before_any_work(pipe: DigitsPipeline, kwargs: dict[str, Any], name: str) -> None:
    call_kwargs: dict[str, Any] = {"digits": [1, 2], "num_inference_steps": 2, **kwargs}
    with record_unet_calls(pipe.unet) as calls, pytest.raises(ValueError, match=f"`{name}`"):
        pipe(**call_kwargs)
    assert calls == []


def test_cfg_needs_null_label_embedding() -> None:
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
        num_class_embeds=10,
    )
    pipe = DigitsPipeline(unet=unet, scheduler=DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    with pytest.raises(ValueError, match="`guidance_scale`"):
        pipe(3, guidance_scale=2.0, num_inference_steps=1)
    assert pipe(3, guidance_scale=1.0, num_inference_steps=1, output_type="pt").images.shape == (1, 3, 8, 8)


def test_pipeline_with_preconditioned_unet_and_momentum_scheduler_round_trips(tmp_path: Any) -> None:
    """A saved pipeline records our classes by their stable module paths, and both reload from them."""
    import json

    from inertia.models.preconditioned_unet import PreconditionedUNet
    from inertia.samplers import MomentumPLMSScheduler

    torch.manual_seed(0)
    unet = PreconditionedUNet.tiny(preconditioning="fdm")
    pipe = DigitsPipeline(unet=unet, scheduler=MomentumPLMSScheduler())
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["unet"] == ["inertia.models.preconditioned_unet", "PreconditionedUNet"]
    assert index["scheduler"] == ["inertia.adapters.diffusers.scheduling_momentum_plms", "MomentumPLMSScheduler"]
    loaded = DigitsPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.unet) is PreconditionedUNet and type(loaded.scheduler) is MomentumPLMSScheduler
    torch.testing.assert_close(run_pt(loaded, [4], num_inference_steps=3), run_pt(pipe, [4], num_inference_steps=3))
