"""configure(): every preset resolves and runs on DigitsPipeline; unknown names list the valid ones."""

import pytest
import torch

from inertia.adapters.diffusers.guidance_hook import guidance_hook
from inertia.guidance import APG, HiGS
from inertia.pipelines import load_digits_pipeline
from inertia.pipelines.presets import (
    ATTENTION_PRESETS,
    GUIDANCE_PRESETS,
    SAMPLER_PRESETS,
    apg_threshold,
    configure,
    guidance_methods,
    validate_presets,
)

SAMPLERS = [*SAMPLER_PRESETS, "hb-dpm++:0.8", "ghvb:2.5", "hb:1.9", "nt:3.8"]


@pytest.fixture(scope="module")
def pipe():
    pipe = load_digits_pipeline(device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(pipe):
    kwargs = {"num_inference_steps": 4, "guidance_scale": 7.5, "output_type": "pt"}
    return pipe([2, 9], generator=torch.Generator().manual_seed(0), **kwargs).images


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_preset_runs(pipe, sampler):
    images = _run(configure(pipe, sampler=sampler))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


@pytest.mark.parametrize("guidance", list(GUIDANCE_PRESETS))
@pytest.mark.parametrize("attention", [*ATTENTION_PRESETS, "attention:extrapolate"])
def test_every_guidance_and_attention_preset_runs(pipe, guidance, attention):
    images = _run(configure(pipe, sampler="dpm++2m", guidance=guidance, attention=attention))
    assert torch.isfinite(images).all()


def test_defaults_restore_the_stock_pipeline(pipe):
    stock = _run(configure(pipe))
    configure(pipe, sampler="ghvb:3.8", guidance="apg+higs", attention="extrapolate")
    assert not torch.equal(_run(pipe), stock)
    assert torch.equal(_run(configure(pipe)), stock)
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert guidance_hook(pipe) is None
    assert torch.equal(_run(configure(pipe, sampler="dpm++2m")), stock)  # the stock solver, bit for bit


@pytest.mark.parametrize("scale", [1.0, 3.0, 15.0])
@pytest.mark.parametrize("sampler", ["hb-dpm++", "ghvb", "hb", "nt"])
def test_auto_beta_follows_the_call_guidance_scale(pipe, scale, sampler):
    from inertia.samplers import auto_beta

    configure(pipe, sampler=sampler, guidance_scale=scale)
    assert pipe.scheduler.config.momentum_guidance_scale == scale
    assert pipe.scheduler.config.momentum_beta == "auto" and pipe.scheduler.config.solver_order in (2, 4)
    pipe.scheduler.set_timesteps(10)
    # the digits models' config ("linspace" spacing) is a VP schedule; plain names run order 2 (DPM) or 4 (PLMS)
    assert pipe.scheduler._beta == auto_beta(sampler, 10, scale, "vp")
    pipe.scheduler.set_timesteps(8)  # the UI's high-guidance examples: PLMS-4 diverges there, DPM-Solver++ does not
    damped = scale >= 7.5 and sampler != "hb-dpm++"
    assert pipe.scheduler._beta == auto_beta(sampler, 8, scale, "vp") and (pipe.scheduler._beta < 1.0) == damped
    configure(pipe, sampler=sampler)  # no scale given: the schedulers' documented default
    assert pipe.scheduler.config.momentum_guidance_scale == 7.5
    configure(pipe, sampler=f"{sampler}:0.6", guidance_scale=scale)  # an explicit β / momentum number ignores it
    pipe.scheduler.set_timesteps(10)
    assert pipe.scheduler._beta == 0.6 and pipe.scheduler.config.momentum_beta == 0.6
    configure(pipe)


@pytest.mark.parametrize("scale", [-1.0, float("nan"), float("inf"), "7.5", True])
def test_bad_guidance_scale_changes_nothing(pipe, scale):
    configure(pipe)
    before = pipe.scheduler
    with pytest.raises(ValueError, match=r"`guidance_scale` must be a finite number >= 0"):
        configure(pipe, sampler="hb-dpm++", guidance="apg", guidance_scale=scale)
    assert pipe.scheduler is before and guidance_hook(pipe) is None


def test_guidance_parameters(pipe):
    (apg,) = guidance_methods(pipe, "apg", momentum=-0.75)
    assert apg == APG(momentum=-0.75, norm_threshold=apg_threshold(pipe))
    assert apg_threshold(pipe) == 0.2  # measured on the 16x16 digits model (docs/benchmarks/guidance.md §4)
    from inertia.pipelines import load_image_pipeline

    assert apg_threshold(load_image_pipeline("digits", device="cpu")) == pytest.approx(0.4)  # 4x the pixels: 2x r
    from tiny_pipelines import make_pipeline

    assert abs(apg_threshold(make_pipeline("sd")) - 15.0 * (4 * 16 * 16 / 65536) ** 0.5) < 1e-12
    apg, higs = guidance_methods(pipe, "apg+higs", apg_eta=0.5, higs_weight=2.0)
    assert apg.eta == 0.5 and higs == HiGS(weight=2.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sampler": "dpm"}, "valid: ddim, default, dpm\\+\\+2m"),
        ({"guidance": "pag"}, "valid: apg, apg\\+higs, cfg, higs, none"),
        ({"attention": "fast"}, "valid: ema, extrapolate, first_order, off"),
        ({"sampler": "ghvb:x"}, "not a number"),
        ({"sampler": "ddim:2"}, "takes no value"),
        ({"guidance": "apg", "guidance_params": {"weight": 1.0}}, "do not fit APG"),
        ({"guidance": "apg+higs", "guidance_params": {"eta": 0.0}}, "prefix"),
        ({"guidance": "cfg", "guidance_params": {"eta": 0.0}}, "takes no parameters"),
        ({"guidance": "apg", "guidance_params": {"eta": 3.0}}, "`eta`"),
        ({"attention": "extrapolate", "attention_params": {"mode": "ema"}}, "attention"),
        ({"sampler": 3}, "preset name"),
    ],
)
def test_bad_presets_change_nothing(pipe, kwargs, match):
    configure(pipe)
    before = pipe.scheduler
    with pytest.raises(ValueError, match=match):
        configure(pipe, **kwargs)
    assert pipe.scheduler is before and guidance_hook(pipe) is None


def test_validate_presets_without_a_pipeline():
    validate_presets("hb-dpm++:0.8", "apg+higs", "attention:extrapolate")
    with pytest.raises(ValueError, match="`guidance`"):
        validate_presets(guidance="apg2")


def test_vp_only_samplers_refuse_flow_models():
    from tiny_pipelines import make_pipeline

    with pytest.raises(ValueError, match="flow model"):
        configure(make_pipeline("sd3"), sampler="ddim")
    assert type(configure(make_pipeline("sd3"), sampler="ghvb:3.8").scheduler).__name__ == "MomentumPLMSScheduler"


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        ("hb-dpm++:0", "`sampler`='hb-dpm++:0': β must be in (0, 1], got 0."),
        ("hb-dpm++:1.5", "`sampler`='hb-dpm++:1.5': β must be in (0, 1], got 1.5."),
        ("ghvb:9.9", "`sampler`='ghvb:9.9': the momentum number r = order − 1 + β must be in (0, 5], got 9.9."),
        ("nt:0", "must be in (0, 5], got 0."),
        ("ghvb:", "`sampler`='ghvb:' has nothing after the colon: write 'ghvb' or 'ghvb:<value>'."),
        ("hb-dpm++: ", "has nothing after the colon"),
    ],
)
def test_sampler_values_are_checked_without_a_pipeline(sampler, message):
    with pytest.raises(ValueError) as info:
        validate_presets(sampler)
    assert str(info.value) == message or message in str(info.value)


def test_sampler_value_ranges_match_the_schedulers():
    from inertia.core.presets.pipeline import SAMPLER_VALUE_RANGES, SAMPLERS_WITH_VALUE
    from inertia.core.samplers.plms_momentum import MAX_ORDER

    assert set(SAMPLER_VALUE_RANGES) == set(SAMPLERS_WITH_VALUE)
    assert {high for _, _, high in SAMPLER_VALUE_RANGES.values()} == {1, MAX_ORDER}
    validate_presets("hb-dpm++:1")
    validate_presets(f"ghvb:{MAX_ORDER}")
