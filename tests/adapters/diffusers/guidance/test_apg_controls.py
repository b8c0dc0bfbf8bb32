"""APG controls in the core and the config: guidance interval, normalisation dims, named presets."""

import math

import pytest
import torch

from inertia.core.guidance.apg import apg_guidance, cfg_guidance, clip_norm, project, resolve_norm_dims
from inertia.core.guidance.state import GuidanceState, guide
from inertia.core.presets.apg import latent_size_threshold
from inertia.guidance import APG, APG_PRESETS

INF = float("inf")
SETTINGS = {"eta": 0.25, "momentum": -0.5, "norm_threshold": 3.0}


def _predictions(steps: int, shape=(2, 4, 6, 6), seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        cond = torch.randn(shape, generator=generator) * 2
        out.append((cond, cond + torch.randn(shape, generator=generator)))
    return out


# --- normalisation dims ---------------------------------------------------------------------------------------


def test_default_norm_dims_are_todays_behaviour_bit_for_bit():
    buffer_default = buffer_explicit = None
    for cond, uncond in _predictions(4):
        default, buffer_default = apg_guidance(cond, uncond, 7.5, buffer_default, **SETTINGS)
        for dims in ("per_sample", (1, 2, 3), (-1, -3, -2)):
            explicit, new_buffer = apg_guidance(cond, uncond, 7.5, buffer_explicit, **SETTINGS, norm_dims=dims)
            assert torch.equal(explicit, default), dims
        buffer_explicit = new_buffer
    x, onto = _predictions(1)[0]
    assert torch.equal(clip_norm(x, 2.0, (1, 2, 3)), clip_norm(x, 2.0))
    assert all(torch.equal(a, b) for a, b in zip(project(x, onto, (1, 2, 3)), project(x, onto), strict=True))


def test_per_frame_equals_each_frame_separately():
    """5-D video latents (B, C, F, H, W): per-frame APG is per-sample APG run on every frame alone, momentum too."""
    steps = [(c.double(), u.double()) for c, u in _predictions(3, shape=(2, 4, 3, 5, 5), seed=1)]  # float64: only
    buffer, frame_buffers = None, [None] * 3  # the reductions' summation order differs
    for cond, uncond in steps:
        out, buffer = apg_guidance(cond, uncond, 7.5, buffer, **SETTINGS, norm_dims="per_frame")
        whole, _ = apg_guidance(cond, uncond, 7.5, None, **SETTINGS)
        assert not torch.allclose(out, whole, atol=1e-3)  # a different norm than per sample
        for frame in range(3):
            c, u = cond[:, :, frame].contiguous(), uncond[:, :, frame].contiguous()
            alone, frame_buffers[frame] = apg_guidance(c, u, 7.5, frame_buffers[frame], **SETTINGS)
            torch.testing.assert_close(out[:, :, frame], alone, atol=1e-12, rtol=0)
    explicit, _ = apg_guidance(*steps[0], 7.5, None, **SETTINGS, norm_dims=(1, -2, -1))
    first, _ = apg_guidance(*steps[0], 7.5, None, **SETTINGS, norm_dims="per_frame")
    assert torch.equal(explicit, first)


def test_per_frame_hand_case():
    """Frame 0 = (3, 4) (norm 5), frame 1 = (0.3, 0.4) (norm 0.5); r = 1 clips frame 0 only."""
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4]]).view(1, 1, 2, 1, 2)
    per_frame = clip_norm(x, 1.0, resolve_norm_dims("per_frame", 5))
    torch.testing.assert_close(per_frame.flatten(), torch.tensor([0.6, 0.8, 0.3, 0.4]))
    per_sample = clip_norm(x, 1.0)  # one norm √25.25 for both frames
    torch.testing.assert_close(per_sample.flatten(), x.flatten() / math.sqrt(25.25))
    delta = torch.tensor([[3.0, 4.0], [1.0, 1.0]]).view(1, 1, 2, 1, 2)
    onto = torch.tensor([[2.0, 0.0], [0.0, 5.0]]).view(1, 1, 2, 1, 2)
    parallel, orthogonal = project(delta, onto, (1, 3, 4))
    assert torch.equal(parallel.flatten(), torch.tensor([3.0, 0.0, 0.0, 1.0]))
    assert torch.equal(orthogonal.flatten(), torch.tensor([0.0, 4.0, 1.0, 0.0]))


@pytest.mark.parametrize(
    ("norm_dims", "ndim", "match"),
    [
        ("per_frame", 4, "needs 5-D"),
        ((0,), 4, r"in \[1, 3\] or \[-3, -1\], got 0"),
        ((4,), 4, "got 4"),
        ((-4,), 4, "got -4"),
        ((1, -3), 4, "twice"),
        ((1.0,), 4, "got 1.0"),
        ((), 4, "non-empty tuple"),
    ],
)
def test_norm_dims_checked_against_the_latent(norm_dims, ndim, match):
    with pytest.raises(ValueError, match=r"`norm_dims`") as info:
        resolve_norm_dims(norm_dims, ndim)
    assert info.match(match)


def test_bad_norm_dims_fail_before_any_work():
    calls = []
    cond, uncond = _predictions(1)[0]
    state = GuidanceState()
    with pytest.raises(ValueError, match="per_frame"):
        guide(
            state,
            APG(norm_dims="per_frame"),
            None,
            cond,
            uncond,
            7.5,
            commit=True,
            to_x0=lambda v: calls.append(1) or v,
            from_x0=lambda v: v,
        )
    assert calls == [] and state.momentum is None
    with pytest.raises(ValueError, match="`norm_dims`"):
        apg_guidance(cond, uncond, 7.5, None, **SETTINGS, norm_dims=(4,))


# --- guidance interval ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "stop"), [(0.0, 1.0), (0.25, 0.75), (0.1, 0.15), (0.0, 0.3), (0.6, 1.0), (0.5, 0.5)]
)
def test_step_window_follows_diffusers_guiders(start, stop):
    from diffusers.guiders import AdaptiveProjectedGuidance

    theirs = AdaptiveProjectedGuidance(guidance_scale=7.5, start=start, stop=stop)
    ours = APG(start=start, stop=stop)
    for steps in (1, 4, 7, 10, 50):
        for step in range(steps):
            theirs.set_state(step=step, num_inference_steps=steps, timestep=torch.tensor(500))
            assert ours.in_interval(step, steps) == theirs._is_apg_enabled(), (steps, step)


def test_window_and_sigma_range_hand_cases():
    window = APG(start=0.25, stop=0.75)
    assert [step for step in range(10) if window.in_interval(step, 10)] == [2, 3, 4, 5, 6]  # int(2.5)..int(7.5)
    band = APG(sigma_range=(0.5, 2.0))
    assert [band.in_interval(sigma=s) for s in (0.5, 0.5001, 2.0, 2.0001)] == [False, True, True, False]
    assert APG(sigma_range=(1.0, INF)).in_interval(sigma=1e6)
    both = APG(start=0.5, sigma_range=(0.0, 1.0))
    assert both.in_interval(5, 10, 0.5) and not both.in_interval(4, 10, 0.5) and not both.in_interval(5, 10, 2.0)
    with pytest.raises(ValueError, match="`step`=None"):
        window.in_interval(None, 10)
    with pytest.raises(ValueError, match="`sigma`=None"):
        band.in_interval(3, 10)


def test_interval_identity_flags():
    assert APG(start=0.4, stop=0.4).is_identity and APG(sigma_range=(1.0, 1.0)).is_identity
    assert not APG(start=0.4, stop=0.5).is_identity
    assert not APG().has_interval and APG(stop=0.9).has_interval and APG(sigma_range=(0.0, INF)).has_interval


def _run(combiner, steps, sigmas=None):
    """guide() over a run in model_output space; returns the outputs and the momentum after every step."""
    state, outputs, buffers = GuidanceState(), [], []
    for index, (cond, uncond) in enumerate(steps):
        commit = state.observe(1000.0 - index, key=(tuple(cond.shape),))
        sigma = None if sigmas is None else sigmas[index]
        outputs.append(
            guide(
                state, combiner, None, cond, uncond, 7.5, commit=commit, step=index, num_steps=len(steps), sigma=sigma
            )
        )
        buffers.append(state.momentum)
    return outputs, buffers


def test_full_interval_is_todays_apg_and_empty_is_cfg_bit_for_bit():
    steps = _predictions(8, seed=2)
    sigmas = [10.0 / (i + 1) for i in range(8)]
    today, _ = _run(APG(**SETTINGS, space="model_output"), steps)
    for full in (
        APG(**SETTINGS, space="model_output", start=0.1),
        APG(**SETTINGS, space="model_output", sigma_range=(0.0, INF)),
    ):
        outputs, _ = _run(full, steps, sigmas)
        assert all(torch.equal(a, b) for a, b in zip(outputs, today, strict=True)), full
    for empty in (
        APG(**SETTINGS, space="model_output", start=0.5, stop=0.5),  # statically empty
        APG(**SETTINGS, space="model_output", start=0.1, stop=0.12),  # int(0.8) == int(0.96): no step of 8
        APG(**SETTINGS, space="model_output", sigma_range=(20.0, 30.0)),  # no σ of the run inside
    ):
        outputs, buffers = _run(empty, steps, sigmas)
        assert all(torch.equal(out, cfg_guidance(c, u, 7.5)) for out, (c, u) in zip(outputs, steps, strict=True))
        assert all(buffer is None for buffer in buffers)


def test_partial_interval_is_cfg_outside_and_apg_with_frozen_momentum_inside():
    steps = _predictions(8, seed=3)
    combiner = APG(**SETTINGS, space="model_output", start=0.25, stop=0.75)  # steps 2-5 of 8
    outputs, buffers = _run(combiner, steps)
    reference = None
    for index, ((cond, uncond), out) in enumerate(zip(steps, outputs, strict=True)):
        if 2 <= index < 6:
            expected, reference = apg_guidance(cond, uncond, 7.5, reference, **SETTINGS)  # momentum of steps 2.. only
            assert torch.equal(out, expected), index
            assert not torch.allclose(out, cfg_guidance(cond, uncond, 7.5), atol=1e-3)
        else:
            assert torch.equal(out, cfg_guidance(cond, uncond, 7.5)), index
    assert buffers[0] is None and buffers[1] is None  # not filled before the interval
    assert buffers[6] is buffers[5] and buffers[7] is buffers[5]  # left as it was after it


def test_momentum_resumes_when_the_interval_is_entered_again():
    """A σ band that the run leaves and re-enters (possible with restarts): the buffer carries over the gap."""
    steps = _predictions(5, seed=4)
    sigmas = [1.0, 5.0, 5.0, 1.0, 1.0]
    outputs, _ = _run(APG(**SETTINGS, space="model_output", sigma_range=(0.5, 2.0)), steps, sigmas)
    buffer = None
    for index in (0, 3, 4):
        expected, buffer = apg_guidance(*steps[index], 7.5, buffer, **SETTINGS)
        assert torch.equal(outputs[index], expected), index
    assert torch.equal(outputs[1], cfg_guidance(*steps[1], 7.5))


def test_guide_needs_the_interval_inputs():
    cond, uncond = _predictions(1)[0]
    with pytest.raises(ValueError, match="step index"):
        guide(GuidanceState(), APG(stop=0.5, space="model_output"), None, cond, uncond, 7.5, commit=True)


# --- config validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"start": -0.1}, "start"),
        ({"start": 1.5}, "start"),
        ({"start": "0"}, "start"),
        ({"start": 0.6, "stop": 0.5}, "stop"),
        ({"stop": 1.2}, "stop"),
        ({"stop": math.nan}, "stop"),
        ({"sigma_range": (2.0, 1.0)}, "sigma_range"),
        ({"sigma_range": (-1.0, 1.0)}, "sigma_range"),
        ({"sigma_range": (0.0, 1.0, 2.0)}, "sigma_range"),
        ({"sigma_range": 1.0}, "sigma_range"),
        ({"sigma_range": "01"}, "sigma_range"),
        ({"sigma_range": (0.0, math.nan)}, "sigma_range"),
        ({"norm_dims": "frames"}, "norm_dims"),
        ({"norm_dims": ()}, "norm_dims"),
        ({"norm_dims": (0, 1)}, "norm_dims"),
        ({"norm_dims": (1, 1)}, "norm_dims"),
        ({"norm_dims": (True,)}, "norm_dims"),
        ({"norm_dims": 1}, "norm_dims"),
    ],
)
def test_apg_rejects_bad_controls(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        APG(**kwargs)


def test_lists_from_json_become_tuples():
    apg = APG(sigma_range=[0.5, 3], norm_dims=[1, 3, 4])
    assert apg.sigma_range == (0.5, 3.0) and apg.norm_dims == (1, 3, 4)
    assert hash(apg) == hash(APG(sigma_range=(0.5, 3.0), norm_dims=(1, 3, 4)))


# --- presets --------------------------------------------------------------------------------------------------


def test_preset_values_and_sources():
    assert APG.preset("sdxl") == APG(eta=0.0, momentum=-0.5, norm_threshold=15.0)
    assert APG.preset("sd21") == APG(eta=0.0, momentum=-0.75, norm_threshold=7.5)
    assert APG.preset("sd15") == APG(eta=0.0, momentum=-0.5, norm_threshold=7.5)  # 15·√(4·64·64 / 4·128·128)
    assert APG.preset("sd3") == APG(eta=0.0, momentum=-0.5, norm_threshold=30.0)  # 15·√(16·128·128 / 4·128·128)
    assert APG.preset("digits-16") == APG(eta=0.0, momentum=-0.5, norm_threshold=0.2)
    assert latent_size_threshold(4 * 128 * 128) == 15.0
    assert APG_PRESETS["sdxl"].guidance_scale == 15.0 and APG_PRESETS["digits-16"].guidance_scale == 15.0
    assert APG_PRESETS["sd15"].guidance_scale is None
    assert "paper" in APG_PRESETS["sdxl"].source and "Table 10" in APG_PRESETS["sdxl"].source
    assert "docs/benchmarks/guidance.md §4" in APG_PRESETS["digits-16"].source
    assert all("not measured" in APG_PRESETS[name].source for name in ("sd15", "sd3"))
    assert "community" in APG_PRESETS["sd21"].source


def test_preset_overrides_and_names():
    apg = APG.preset(" SDXL ", momentum=-0.75, start=0.2, norm_dims="per_frame")
    assert (apg.momentum, apg.norm_threshold, apg.start, apg.norm_dims) == (-0.75, 15.0, 0.2, "per_frame")
    with pytest.raises(TypeError):
        APG_PRESETS["mine"] = APG_PRESETS["sdxl"]  # read-only


@pytest.mark.parametrize("name", ["sd2", "", None, 3])
def test_unknown_preset_lists_the_valid_ones(name):
    with pytest.raises(ValueError, match="`name` must be one of") as info:
        APG.preset(name)
    assert all(repr(valid) in str(info.value) for valid in APG_PRESETS)


def test_flux_preset_explains_why_there_is_none():
    with pytest.raises(ValueError, match="no APG preset: FluxPipeline runs no batched classifier-free guidance"):
        APG.preset("flux")


def test_bad_preset_overrides():
    with pytest.raises(ValueError, match=r"`overrides` \['threshold'\] are not APG fields"):
        APG.preset("sdxl", threshold=3.0)
    with pytest.raises(ValueError, match="`momentum`"):
        APG.preset("sdxl", momentum=1.5)
