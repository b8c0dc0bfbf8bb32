"""APGGuider / HiGSGuider: diffusers guider contract, serialisation, bad input, and a real modular SDXL run."""

import math

import pytest
import torch
from diffusers.guiders import ClassifierFreeGuidance
from tiny_pipelines import make_call_kwargs, make_modular_sdxl, make_pipeline, run

from inertia.core.guidance.apg import apg_guidance
from inertia.guidance import APG, APGGuider, GuidanceLayoutError, HiGS, HiGSGuider, apply_guidance


@pytest.fixture(scope="module")
def modular_sdxl():
    return make_modular_sdxl()


def _modular(pipe, guider):
    pipe.update_components(guider=guider)
    kwargs = make_call_kwargs("sdxl")
    del kwargs["guidance_scale"], kwargs["output_type"]
    with torch.no_grad():
        return pipe(**kwargs, output="latents")


def test_modular_pipeline_matches_the_classic_hook(modular_sdxl):
    """Sequential cond/uncond passes with the sample capture equal the batched classic hook (float noise only)."""
    classic = make_pipeline("sdxl")
    stock = run(classic, **make_call_kwargs("sdxl", guidance_scale=5.0))
    cfg = _modular(modular_sdxl, ClassifierFreeGuidance(guidance_scale=5.0))
    assert torch.allclose(cfg, stock, atol=1e-4)
    for guider, methods in (
        (APGGuider(guidance_scale=5.0, norm_threshold=2.0), (APG(norm_threshold=2.0),)),
        (HiGSGuider(guidance_scale=5.0, weight=1.0), (HiGS(weight=1.0),)),
    ):
        apply_guidance(classic, *methods)
        expected = run(classic, **make_call_kwargs("sdxl", guidance_scale=5.0))
        got = _modular(modular_sdxl, guider)
        assert not torch.allclose(expected, stock, atol=1e-3)
        assert torch.allclose(got, expected, atol=1e-4), type(guider).__name__
        assert torch.equal(_modular(modular_sdxl, guider), got)  # repeatable: state reset at step 0


def test_neutral_apg_guider_is_diffusers_cfg_bit_for_bit():
    theirs = ClassifierFreeGuidance(guidance_scale=6.0)
    ours = APGGuider(guidance_scale=6.0, eta=1.0, momentum=0.0, norm_threshold=float("inf"))
    cond, uncond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    for guider in (theirs, ours):
        guider.set_state(step=0, num_inference_steps=4, timestep=torch.tensor(999))
        guider.prepare_inputs({})
    assert torch.equal(ours.forward(cond, uncond).pred, theirs.forward(cond, uncond).pred)


def test_x0_space_uses_the_captured_denoiser_input():
    guider = APGGuider(guidance_scale=4.0, norm_threshold=1.5)

    class Denoiser(torch.nn.Module):
        def forward(self, sample, timestep):  # the UNet call convention
            return sample

    denoiser = Denoiser()
    x = torch.randn(2, 8)
    t = torch.tensor(500)
    guider.set_state(step=0, num_inference_steps=10, timestep=t)
    guider.prepare_inputs({})
    guider.prepare_models(denoiser)
    denoiser(x, t)
    guider.cleanup_models(denoiser)
    cond, uncond = torch.randn(2, 8), torch.randn(2, 8)
    got = guider.forward(cond, uncond).pred
    alpha = guider._alphas_cumprod[500]
    a, s = alpha.sqrt().float(), (1 - alpha).sqrt().float()
    g0, _ = apg_guidance(
        (x - s * cond) / a, (x - s * uncond) / a, 4.0, None, eta=0.0, momentum=-0.5, norm_threshold=1.5
    )
    assert torch.allclose(got, (x - a * g0) / s, atol=1e-4)


def test_x0_space_without_capture_is_a_clear_error():
    guider = HiGSGuider()
    guider.set_state(step=0, num_inference_steps=4, timestep=torch.tensor(999))
    guider.prepare_inputs({})
    with pytest.raises(GuidanceLayoutError, match="prepare_models"):
        guider.forward(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8))


def test_num_conditions_and_window():
    assert APGGuider(guidance_scale=1.0).num_conditions == 1
    guider = HiGSGuider(guidance_scale=5.0, start=0.5)
    guider.set_state(step=0, num_inference_steps=10, timestep=torch.tensor(999))
    assert guider.num_conditions == 1
    cond = torch.randn(1, 4, 8, 8)
    assert guider.forward(cond, None).pred is cond  # outside the window: the conditional prediction
    guider.set_state(step=5, num_inference_steps=10, timestep=torch.tensor(499))
    assert guider.num_conditions == 2


def test_save_and_load_roundtrip(tmp_path):
    guider = APGGuider(guidance_scale=9.0, eta=0.25, momentum=-0.75, norm_threshold=float("inf"), space="model_output")
    guider.save_pretrained(tmp_path / "apg")
    loaded = APGGuider.from_pretrained(tmp_path / "apg")
    saved = {k: v for k, v in loaded.config.items() if not k.startswith("_")}
    assert saved == {k: v for k, v in guider.config.items() if not k.startswith("_")}
    assert math.isinf(loaded.combiner.norm_threshold)
    higs = HiGSGuider(weight=1.0, cutoff=None, prediction_type="flow")
    higs.save_pretrained(tmp_path / "higs")
    loaded = HiGSGuider.from_pretrained(tmp_path / "higs")
    assert loaded.higs == higs.higs and loaded.config.prediction_type == "flow"
    assert higs.new(weight=2.0).higs.weight == 2.0


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (APGGuider, {"eta": 2.0}, "eta"),
        (APGGuider, {"norm_threshold": 0}, "norm_threshold"),
        (APGGuider, {"guidance_scale": -1.0}, "guidance_scale"),
        (APGGuider, {"prediction_type": "noise"}, "prediction_type"),
        (APGGuider, {"num_train_timesteps": 1}, "num_train_timesteps"),
        (HiGSGuider, {"weight": -1.0}, "weight"),
        (HiGSGuider, {"t_min": 0.9, "t_max": 0.5}, "t_max"),
        (HiGSGuider, {"guidance_scale": float("nan")}, "guidance_scale"),
    ],
)
def test_bad_input(cls, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        cls(**kwargs)
