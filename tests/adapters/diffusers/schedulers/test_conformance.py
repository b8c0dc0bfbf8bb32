"""Conformance of our schedulers with the contract diffusers' own schedulers are tested against.

The checks restate, in our own code, what diffusers' common scheduler test-suite verifies for every scheduler
(config save/load, compatibles, step shape and output forms, public API, deprecation plumbing, inference step counts,
custom timesteps/sigmas, dtype, state reset, scheduler switching), plus what a drop-in needs on top: flow mode for
SD3/Flux configs, img2img bookkeeping, bit-for-bit equality of ``momentum_beta=1.0`` with the stock
`DPMSolverMultistepScheduler`, and no host syncs in ``step``.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch
from diffusers import (
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from tests.adapters.diffusers.schedulers.conformance_cases import (
    CASE_IDS,
    CASES,
    DEFAULT_CASES,
    DEVICE,
    FLOW,
    FLUX_LIKE,
    SCHEDULE_OVERRIDES,
    init_config,
    loop_outputs,
    make,
    plain_config,
    run_loop,
    same,
)

pytestmark = [
    # numpy-2 interop chatter of torch tensors inside diffusers' schedule code (thousands per test otherwise).
    pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"),
    # diffusers' own deprecation of algorithm_type "dpmsolver"/"sde-dpmsolver", exercised on purpose below.
    pytest.mark.filterwarnings("ignore:`algorithm_types dpmsolver:FutureWarning"),
]


# ---------------------------------------------------------------------------------------------------------------------
# 1. check_over_configs / check_over_forward: a saved and reloaded scheduler steps identically.
@pytest.mark.parametrize("case", CASE_IDS)
def test_save_load_steps_identically_over_configs(case, tmp_path, sample, dummy_model):
    # One test per case sweeping every schedule option (one test per pair costs more in pytest overhead than in work).
    for override, config in SCHEDULE_OVERRIDES.items():
        sched = make(case, **config)
        folder = tmp_path / override
        sched.save_config(folder)
        reloaded = type(sched).from_pretrained(folder)
        assert plain_config(reloaded) == plain_config(sched), override
        steps = 8
        sched.set_timesteps(steps)
        reloaded.set_timesteps(steps)
        assert torch.equal(sched.timesteps, reloaded.timesteps), override
        assert torch.equal(sched.sigmas, reloaded.sigmas), override
        outputs = zip(loop_outputs(sched, sample, dummy_model), loop_outputs(reloaded, sample, dummy_model))
        for i, (a, b) in enumerate(outputs):
            assert torch.isfinite(a).all(), (override, i)
            assert same(a, b), (override, i)


@pytest.mark.parametrize("num_inference_steps", [1, 2, 5, 25])
@pytest.mark.parametrize("case", CASE_IDS)
def test_save_load_steps_identically_over_forward(case, num_inference_steps, tmp_path, sample, dummy_model):
    sched = make(case)
    sched.save_config(tmp_path)
    reloaded = type(sched).from_pretrained(tmp_path)
    sched.set_timesteps(num_inference_steps)
    reloaded.set_timesteps(num_inference_steps)
    # Every step is compared, so steps with a warm multistep history (diffusers fills fake past residuals) are too.
    a, b = loop_outputs(sched, sample, dummy_model), loop_outputs(reloaded, sample, dummy_model)
    assert len(a) == num_inference_steps
    assert all(same(x, y) for x, y in zip(a, b))


# 2. from_save_pretrained: the config round-trips exactly.
@pytest.mark.parametrize("case", CASE_IDS)
def test_save_pretrained_round_trip(case, tmp_path, sample, dummy_model):
    sched = make(case, timestep_spacing="trailing", steps_offset=1)
    sched.save_pretrained(tmp_path)
    reloaded = type(sched).from_pretrained(tmp_path)
    assert type(reloaded) is type(sched)
    assert plain_config(reloaded) == plain_config(sched)
    # A second round trip of the reloaded scheduler's config is also exact.
    again = type(sched).from_config(reloaded.config)
    assert plain_config(again) == plain_config(sched)
    sched.set_timesteps(6)
    reloaded.set_timesteps(6)
    assert torch.equal(run_loop(sched, sample, dummy_model), run_loop(reloaded, sample, dummy_model))


# 3. compatibles: every VP scheduler diffusers lists takes our config and gives it back unchanged.
SLOW_COMPATIBLES = {"KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler"}  # ~0.5 s each to build
# Schedulers with their own `solver_type` vocabulary: they map midpoint/heun to theirs (UniPC "bh2", DEIS "logrho"),
# and DPM-Solver maps those back to "midpoint", so `solver_type="heun"` does not survive them. That is diffusers'
# behaviour for the stock DPMSolverMultistepScheduler too (checked below).
OWN_SOLVER_TYPES = {"UniPCMultistepScheduler", "DEISMultistepScheduler"}


def _vp_compatibles(sched, include_slow: bool) -> list[type]:
    out = []
    for comp in sched.compatibles:
        if comp.__module__.startswith("diffusers.utils.dummy"):  # optional backend missing (torchsde)
            continue
        if comp.__name__.startswith("FlowMatch") or (comp.__name__ in SLOW_COMPATIBLES and not include_slow):
            continue
        out.append(comp)
    return out


COMPATIBLE_RUNS = [(case, "plain") for case in CASE_IDS] + [(case, "karras") for case in DEFAULT_CASES]


@pytest.mark.parametrize(("case", "extra"), COMPATIBLE_RUNS, ids=[f"{c}-{e}" for c, e in COMPATIBLE_RUNS])
def test_compatibles_round_trip(case, extra):
    overrides = {"use_karras_sigmas": True, "timestep_spacing": "trailing"} if extra == "karras" else {}
    sched = make(case, **overrides)
    comps = _vp_compatibles(sched, include_slow=case in DEFAULT_CASES and extra == "plain")
    names = {c.__name__ for c in comps}
    assert {
        "DDIMScheduler",
        "DPMSolverMultistepScheduler",
        "EulerDiscreteScheduler",
        "UniPCMultistepScheduler",
    } <= names
    init_keys = set(inspect.signature(type(sched).__init__).parameters)
    for comp_cls in comps:
        try:
            comp = comp_cls.from_config(sched.config)
        except ValueError as err:
            # diffusers' single-step DPM-Solver refuses an explicit order above 3 (PLMS goes up to 5); a default
            # (implicit) order is not forwarded by diffusers, so only explicit orders 4-5 get here.
            assert comp_cls.__name__ == "DPMSolverSinglestepScheduler", err
            assert sched.config.solver_order > 3 and "Order > 3" in str(err)
            continue
        assert comp is not None
        back = type(sched).from_config(comp.config)
        expected = dict(sched.config)
        if comp_cls.__name__ in OWN_SOLVER_TYPES and expected.get("solver_type") == "heun":
            assert back.config.solver_type == "midpoint"
            stock = DPMSolverMultistepScheduler(solver_type="heun")
            assert (
                DPMSolverMultistepScheduler.from_config(comp_cls.from_config(stock.config).config).config.solver_type
                == "midpoint"
            )
            expected["solver_type"] = "midpoint"
        shared = {k: v for k, v in back.config.items() if k in sched.config}
        assert shared == expected, comp_cls.__name__
        # Keys that came back from the other class are never our init arguments.
        assert not ({k for k in back.config if k not in sched.config} & init_keys), comp_cls.__name__


@pytest.mark.parametrize("case", [*DEFAULT_CASES, "plms-ghvb-3", "dpm-3-heun"])
def test_compatibles_flow_round_trip_keeps_flow_mode(case):
    sched = make(case, **FLOW)
    assert FlowMatchEulerDiscreteScheduler in sched.compatibles
    flow = FlowMatchEulerDiscreteScheduler.from_config(sched.config)
    back = type(sched).from_config(flow.config)
    assert back.config.prediction_type == "flow_prediction"
    assert back.config.use_flow_sigmas is True
    assert back.config.flow_shift == 3.0
    assert init_config(back) == init_config(sched)
    sched.set_timesteps(7)
    back.set_timesteps(7)
    assert torch.equal(sched.sigmas, back.sigmas)


# 4. step shape, output forms, public API, deprecation plumbing, trained betas, __getattr__.
@pytest.mark.parametrize("case", CASE_IDS)
def test_step_shape(case, sample, dummy_model):
    sched = make(case)
    sched.set_timesteps(10)
    t0, t1 = sched.timesteps[0], sched.timesteps[1]
    out0 = sched.step(dummy_model(sample, t0), t0, sample).prev_sample
    out1 = sched.step(dummy_model(out0, t1), t1, out0).prev_sample
    assert out0.shape == sample.shape
    assert out0.shape == out1.shape


@pytest.mark.parametrize("case", CASE_IDS)
def test_dict_and_tuple_outputs_match(case, sample, dummy_model):
    a, b = make(case), make(case)
    a.set_timesteps(6)
    b.set_timesteps(6)
    xa = xb = sample
    for t in a.timesteps:
        xa = a.step(dummy_model(xa, t), t, xa, return_dict=True).prev_sample
        out = b.step(dummy_model(xb, t), t, xb, return_dict=False)
        assert isinstance(out, tuple) and len(out) == 1
        xb = out[0]
        assert torch.equal(xa, xb)


@pytest.mark.parametrize("case", DEFAULT_CASES)
def test_public_api(case, sample):
    sched = make(case)
    assert hasattr(sched, "init_noise_sigma")
    assert hasattr(sched, "scale_model_input")
    assert hasattr(sched, "step")
    assert sched.init_noise_sigma == 1.0
    sched.set_timesteps(5)
    scaled = sched.scale_model_input(sample, 0.0)
    assert scaled.shape == sample.shape
    scaled = sched.scale_model_input(sample, sched.timesteps[0])
    assert torch.equal(scaled, sample)
    assert len(sched) == sched.config.num_train_timesteps


@pytest.mark.parametrize("case", [*DEFAULT_CASES, "plms-nt-4", "dpm-3"])
def test_add_noise_device(case, sample, noise):
    sched = make(case)
    sched.set_timesteps(100)
    x = sched.scale_model_input(sample.to(DEVICE), sched.timesteps[0])
    assert x.shape == sample.shape
    t = sched.timesteps[5][None].to(DEVICE)
    noised = sched.add_noise(x, noise.to(DEVICE), t)
    assert noised.shape == x.shape
    assert noised.device.type == torch.device(DEVICE).type


def test_deprecated_kwargs(scheduler_class):
    params = inspect.signature(scheduler_class.__init__).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert takes_kwargs == (len(scheduler_class._deprecated_kwargs) > 0)


def test_trained_betas_survive_save_load(scheduler_class, tmp_path):
    sched = scheduler_class(num_train_timesteps=2, trained_betas=np.array([0.1, 0.3]))
    sched.save_pretrained(tmp_path)
    reloaded = scheduler_class.from_pretrained(tmp_path)
    assert reloaded.betas.tolist() == sched.betas.tolist()
    assert torch.allclose(reloaded.betas, torch.tensor([0.1, 0.3]))
    assert list(reloaded.config.trained_betas) == pytest.approx([0.1, 0.3])


def test_getattr_is_correct(scheduler_class):
    sched = scheduler_class()
    sched.dummy_attribute = 5
    sched.register_to_config(test_attribute=5)
    names = ["dummy_attribute", "save_pretrained", "test_attribute"]  # read through getattr() as well
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert hasattr(sched, "dummy_attribute")
        assert getattr(sched, names[0]) == 5
        assert sched.dummy_attribute == 5
        assert sched.save_pretrained == getattr(sched, names[1])
        assert sched.momentum_beta == 0.8  # property, not the config entry
        assert sched.init_noise_sigma == 1.0
        _ = sched.sigmas, sched.timesteps, sched.config.momentum_guidance_scale
    assert [str(w.message) for w in caught] == []
    # Config keys read as attributes: diffusers' deprecation FutureWarning, and the config value.
    assert "test_attribute" not in vars(sched)
    with pytest.warns(FutureWarning, match="test_attribute"):
        assert sched.test_attribute == 5
    with pytest.warns(FutureWarning, match="test_attribute"):
        assert getattr(sched, names[2]) == 5
    assert "momentum_guidance_scale" not in vars(sched)
    with pytest.warns(FutureWarning, match="momentum_guidance_scale"):
        assert sched.momentum_guidance_scale == 7.5
    with pytest.raises(AttributeError) as info:
        _ = sched.does_not_exist
    assert str(info.value) == f"'{scheduler_class.__name__}' object has no attribute 'does_not_exist'"


# 5. prediction types, step counts, custom timesteps/sigmas, dtypes, state reset, switching schedulers.
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_prediction_types_full_loop(case, prediction_type, sample, dummy_model):
    sched = make(case, prediction_type=prediction_type)
    sched.set_timesteps(10)
    out = run_loop(sched, sample, dummy_model)
    assert out.shape == sample.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("num_inference_steps", [1, 2, 3, 5, 10, 50, 100, 999, 1000])
@pytest.mark.parametrize("spacing", ["linspace", "trailing"])
@pytest.mark.parametrize("case", DEFAULT_CASES)
def test_inference_steps(case, spacing, num_inference_steps, sample, dummy_model):
    sched = make(case, timestep_spacing=spacing)
    sched.set_timesteps(num_inference_steps)
    assert len(sched.timesteps) == num_inference_steps
    assert len(sched.sigmas) == num_inference_steps + 1
    assert sched.num_inference_steps == num_inference_steps
    if case.startswith("dpm") and spacing == "linspace" and num_inference_steps == 1000:
        # Linspace rounding repeats a timestep at 1000 steps, so two sigmas are equal and DPM-Solver's multistep update
        # divides by their zero log-SNR step: the stock DPMSolverMultistepScheduler returns NaN, ours names the range.
        stock = DPMSolverMultistepScheduler()
        stock.set_timesteps(1000)
        assert not torch.isfinite(run_loop(stock, sample, dummy_model)).all()
        with pytest.raises(ValueError, match=r"num_inference_steps.*\[1, 999\]"):
            run_loop(sched, sample, dummy_model)
        return
    out = run_loop(sched, sample, dummy_model)
    assert torch.isfinite(out).all()
    assert sched.step_index == num_inference_steps


@pytest.mark.parametrize("num_inference_steps", [1, 3, 10])
@pytest.mark.parametrize("case", CASE_IDS)
def test_inference_steps_every_case(case, num_inference_steps, sample, dummy_model):
    sched = make(case)
    sched.set_timesteps(num_inference_steps)
    assert len(sched.timesteps) == num_inference_steps
    assert torch.isfinite(run_loop(sched, sample, dummy_model)).all()


@pytest.mark.parametrize("override", ["T1000", "leading-offset1", "trailing", "cosine", "final-sigma-min"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_custom_timesteps_match_default_loop(case, override, sample, dummy_model):
    ref = make(case, **SCHEDULE_OVERRIDES[override])
    ref.set_timesteps(9)
    custom = make(case, **SCHEDULE_OVERRIDES[override])
    custom.set_timesteps(timesteps=ref.timesteps.tolist())
    assert torch.equal(custom.timesteps, ref.timesteps)
    assert torch.allclose(custom.sigmas, ref.sigmas)
    assert custom.num_inference_steps == 9
    assert same(run_loop(custom, sample, dummy_model), run_loop(ref, sample, dummy_model))


@pytest.mark.parametrize("case", CASE_IDS)
def test_custom_vp_sigmas_are_euler_style(case, sample, dummy_model):
    # diffusers' Euler scheduler takes σ̄ = σ/α with the terminal sigma included; ours appends the terminal one.
    config = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
    euler = EulerDiscreteScheduler(**config, use_karras_sigmas=True)
    euler.set_timesteps(8)
    custom = euler.sigmas[:-1].tolist()
    sched = make(case, **config)
    sched.set_timesteps(sigmas=custom)
    assert sched.num_inference_steps == 8
    assert torch.allclose(sched.sigmas[:-1], torch.tensor(custom, dtype=torch.float32))
    assert sched.sigmas[-1] == 0.0
    # Same timesteps as Euler derives from the same sigmas (ours are rounded to integers, as DPM-Solver's are).
    euler_custom = EulerDiscreteScheduler(**config)
    euler_custom.set_timesteps(sigmas=[*custom, 0.0])
    assert sched.timesteps.tolist() == euler_custom.timesteps.round().long().tolist()
    # And the same walk as our own Karras schedule, where that is what the sigmas are. With momentum_beta="auto" the
    # β differs by design: custom VP sigmas are a grid auto was never measured on (β 1), Karras sigmas have a table.
    beta = CASES[case][1].get("momentum_beta")
    if beta == "auto":
        assert sched.momentum_beta == 1.0
    karras = make(case, **config, use_karras_sigmas=True, **({"momentum_beta": 1.0} if beta == "auto" else {}))
    karras.set_timesteps(8)
    assert torch.allclose(sched.sigmas, karras.sigmas, rtol=1e-5)
    assert torch.equal(sched.timesteps, karras.timesteps)
    assert same(run_loop(sched, sample, dummy_model), run_loop(karras, sample, dummy_model), tol=1e-3)


@pytest.mark.parametrize("mu", [0.5, 1.1])
@pytest.mark.parametrize("case", [*DEFAULT_CASES, "plms-hb-2", "dpm-3"])
def test_custom_flow_sigmas_match_flowmatch_euler(case, mu, sample, dummy_model):
    n = 12
    sigmas = np.linspace(1.0, 1.0 / n, n)
    stock = FlowMatchEulerDiscreteScheduler(**FLUX_LIKE)
    stock.set_timesteps(sigmas=sigmas, mu=mu)
    cls, kwargs = CASES[case]
    sched = cls.from_config(FlowMatchEulerDiscreteScheduler(**FLUX_LIKE).config, **kwargs)
    assert sched.config.use_dynamic_shifting is True
    sched.set_timesteps(sigmas=sigmas, mu=mu)
    assert torch.allclose(sched.sigmas, stock.sigmas, atol=1e-6)
    assert torch.allclose(sched.timesteps.float(), stock.timesteps, atol=1e-3)
    assert torch.isfinite(run_loop(sched, sample, dummy_model)).all()
    # The same sigmas with num_inference_steps given explicitly.
    again = cls.from_config(sched.config)
    again.set_timesteps(n, sigmas=sigmas, mu=mu)
    assert torch.equal(again.sigmas, sched.sigmas)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_custom_flow_timesteps_match_flowmatch_euler(scheduler_class, shift, sample, dummy_model):
    # Flow timesteps are σ·T; like FlowMatchEuler, the sigmas derived from them go through the shift and the
    # timesteps are kept as given.
    timesteps = [1000.0, 875.5, 700.0, 500.0, 250.0, 40.0]
    stock = FlowMatchEulerDiscreteScheduler(shift=shift)
    stock.set_timesteps(timesteps=timesteps)
    sched = scheduler_class.from_config(FlowMatchEulerDiscreteScheduler(shift=shift).config)
    sched.set_timesteps(timesteps=timesteps)
    assert sched.num_inference_steps == len(timesteps)
    assert torch.allclose(sched.sigmas, stock.sigmas, atol=1e-6)
    assert torch.equal(sched.timesteps, stock.timesteps)
    assert torch.isfinite(run_loop(sched, sample, dummy_model)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", CASE_IDS)
def test_half_precision_output_dtype(case, dtype, sample, dummy_model):
    sched = make(case)
    sched.set_timesteps(5)
    x = sample.to(dtype)
    for t in sched.timesteps:
        out = dummy_model(x, t).to(dtype)
        x = sched.step(out, t, x).prev_sample
        assert x.dtype == dtype
    assert torch.isfinite(x.float()).all()


@pytest.mark.parametrize("override", ["epsilon", "v", "karras", "flow"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_state_reset_between_generations(case, override, sample, dummy_model):
    sched = make(case, **SCHEDULE_OVERRIDES[override])
    sched.set_timesteps(7)
    first = run_loop(sched, sample, dummy_model)
    sched.set_timesteps(7)
    second = run_loop(sched, sample, dummy_model)
    assert torch.equal(first, second)
    # A different step count in between leaves nothing behind either.
    sched.set_timesteps(4)
    run_loop(sched, sample * 2, dummy_model)
    sched.set_timesteps(7)
    assert torch.equal(run_loop(sched, sample, dummy_model), first)


@pytest.mark.parametrize("case", CASE_IDS)
def test_switching_schedulers_back_and_forth(case, sample, dummy_model):
    sched = make(case)
    sched.set_timesteps(8)
    expected = run_loop(sched, sample, dummy_model)
    switched = sched
    for other in (DPMSolverMultistepScheduler, UniPCMultistepScheduler, DEISMultistepScheduler):
        switched = other.from_config(switched.config)
    switched = type(sched).from_config(switched.config)
    if sched.config.get("solver_type") == "heun":
        # UniPC/DEIS map "heun" to their own solver types and back to "midpoint" (diffusers does the same to the
        # stock DPM-Solver); everything else survives, and restoring solver_type restores the sampler exactly.
        diff = {k for k in init_config(sched) if init_config(switched)[k] != init_config(sched)[k]}
        assert diff == {"solver_type"}
        switched = type(sched).from_config(switched.config, solver_type="heun")
    assert init_config(switched) == init_config(sched)
    switched.set_timesteps(8)
    assert torch.equal(run_loop(switched, sample, dummy_model), expected)
