"""Conformance, part 4: more of diffusers' own scheduler checks, side by side with the stock
`DPMSolverMultistepScheduler`: switching through DPMSolverSinglestep/UniPC/DEIS/Euler configs and back, duplicated
timesteps at high step counts, lower-order final steps, variance types, custom timesteps for the SDE solver, the
public API and ``add_noise``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import (
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from tests.adapters.diffusers.schedulers.conformance_cases import (
    CASE_IDS,
    CASES,
    DEFAULT_CASES,
    DEVICE,
    DIFFUSERS_DPM_CONFIG,
    DPM,
    PLMS,
    init_config,
    make,
    momentum_allowed,
    pixel_sample,
    run_loop,
    seeded_loop,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`algorithm_types dpmsolver:FutureWarning"),
]

STOCK = DPMSolverMultistepScheduler


# ---------------------------------------------------------------------------------------------------------------------
# test_switch: through DPMSolverSinglestep, UniPC, DEIS and Euler and back gives the same sampler and the same run.
CHAIN = (DPMSolverSinglestepScheduler, UniPCMultistepScheduler, DEISMultistepScheduler, EulerDiscreteScheduler)


def _switch(config, chain=CHAIN):
    for other in chain:
        config = other.from_config(config).config
    return config


@pytest.mark.parametrize("case", CASE_IDS)
def test_switch_through_other_solvers_and_back(case, dummy_model):
    sched = make(case)
    sched.set_timesteps(10)
    expected = run_loop(sched, pixel_sample(), dummy_model)
    # diffusers' single-step DPM-Solver refuses an explicit order above 3 (PLMS goes to 5).
    chain = CHAIN if sched.config.solver_order <= 3 else CHAIN[1:]
    back = type(sched).from_config(_switch(sched.config, chain))
    if sched.config.get("solver_type") == "heun":  # UniPC/DEIS map heun to their own types and back to midpoint
        assert back.config.solver_type == "midpoint"
        back = type(sched).from_config(back.config, solver_type="heun")
    assert init_config(back) == init_config(sched)
    back.set_timesteps(10)
    assert torch.equal(run_loop(back, pixel_sample(), dummy_model), expected)


@pytest.mark.parametrize("start", ["stock", "ours"])
def test_switch_between_stock_and_ours(start, dummy_model):
    # Starting from either class, ours at β = 1 and the stock class run the same after the round trip.
    first = STOCK(**DIFFUSERS_DPM_CONFIG) if start == "stock" else DPM(**DIFFUSERS_DPM_CONFIG, momentum_beta=1.0)
    config = _switch(first.config)
    ours = DPM.from_config(config, momentum_beta=1.0)
    stock = STOCK.from_config(_switch(ours.config))
    results = []
    for sched in (first, ours, stock):
        sched.set_timesteps(10)
        results.append(run_loop(sched, pixel_sample(), dummy_model))
    assert torch.equal(results[0], results[1])
    assert torch.equal(results[1], results[2])


# ---------------------------------------------------------------------------------------------------------------------
# test_duplicated_timesteps: num_inference_steps = num_train_timesteps keeps every step.
@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("case", [*DEFAULT_CASES, "dpm-3", "dpm-beta1", "plms-hb-1"])
def test_duplicated_timesteps_keep_every_step(case, spacing):
    cls, kwargs = CASES[case]
    for config in ({}, DIFFUSERS_DPM_CONFIG):
        sched = cls.from_config({**config, "timestep_spacing": spacing}, **kwargs)
        stock = STOCK(**{**config, "timestep_spacing": spacing})
        stock.set_timesteps(stock.config.num_train_timesteps)
        assert len(stock.timesteps) == stock.num_inference_steps == 1000
        if spacing == "leading":
            # "leading" with 1000 steps has step ratio 1000 // 1001 = 0: every stock timestep is 0.
            assert stock.timesteps.unique().tolist() == [0]
            with pytest.raises(ValueError, match=r"`num_inference_steps`=1000 .*\[1, 999\]"):
                sched.set_timesteps(sched.config.num_train_timesteps)
            continue
        sched.set_timesteps(sched.config.num_train_timesteps)
        assert len(sched.timesteps) == sched.num_inference_steps == 1000
        assert torch.equal(sched.timesteps, stock.timesteps)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize(
    "solver", [{}, {"solver_order": 3}, {"algorithm_type": "sde-dpmsolver++"}], ids=["2", "3", "sde"]
)
def test_repeated_sigmas_raise_where_stock_gives_nan(spacing, solver, sample, dummy_model):
    # With as many steps as training timesteps, "linspace"/"leading" rounding repeats a timestep, two sigmas are equal
    # and the multistep update divides by a zero step: the stock class returns NaN or fails to index; ours names
    # num_inference_steps and its valid range. "trailing" never repeats and matches the stock class.
    config = {"num_train_timesteps": 100, "timestep_spacing": spacing, **solver}
    stock, ours = STOCK(**config), DPM(**config, momentum_beta=1.0)
    stock.set_timesteps(100)
    if spacing == "trailing":
        ours.set_timesteps(100)
        assert torch.equal(seeded_loop(ours, sample, dummy_model), seeded_loop(stock, sample, dummy_model))
        return
    if spacing == "leading":
        # Step ratio 0: every timestep is 0; the stock class fails to index its sigmas, ours refuses the schedule.
        with pytest.raises(IndexError):
            seeded_loop(stock, sample, dummy_model)
        with pytest.raises(ValueError, match=r"`num_inference_steps`=100 .*\[1, 99\]"):
            ours.set_timesteps(100)
    else:
        assert not torch.isfinite(seeded_loop(stock, sample, dummy_model)).all()
        ours.set_timesteps(100)
        with pytest.raises(ValueError, match=r"`num_inference_steps`=100 .*\[1, 99\]"):
            seeded_loop(ours, sample, dummy_model)
    # The upper end of the stated range works, and equals the stock class.
    stock.set_timesteps(99)
    ours.set_timesteps(99)
    assert torch.equal(seeded_loop(ours, sample, dummy_model), seeded_loop(stock, sample, dummy_model))
    # PLMS has no division by the step size: a repeated timestep is a zero-length step and it runs.
    plms = PLMS(num_train_timesteps=100, timestep_spacing=spacing)
    if spacing == "leading":
        with pytest.raises(ValueError, match="num_inference_steps"):
            plms.set_timesteps(100)
        plms.set_timesteps(99)
    else:
        plms.set_timesteps(100)
    assert torch.isfinite(run_loop(plms, sample, dummy_model)).all()


def test_repeated_sigmas_range_with_clipped_lambda(sample, dummy_model):
    # lambda_min_clipped shortens the usable timesteps (cosine schedule): the stated range shrinks with it.
    config = {"beta_schedule": "squaredcos_cap_v2", "lambda_min_clipped": -5.1}
    ours, stock = DPM(**config, momentum_beta=1.0), STOCK(**config)
    ours.set_timesteps(999)
    with pytest.raises(ValueError, match=r"num_inference_steps.*\[1, (\d+)\]") as info:
        run_loop(ours, sample, dummy_model)
    most = int(str(info.value).rsplit("[1, ", 1)[1].split("]")[0])
    stock.set_timesteps(most + 1)
    assert not torch.isfinite(run_loop(stock, sample, dummy_model)).all()
    ours.set_timesteps(most)
    stock.set_timesteps(most)
    assert torch.equal(run_loop(ours, sample, dummy_model), run_loop(stock, sample, dummy_model))


def test_repeated_sigmas_skipped_by_img2img_still_run(sample, dummy_model):
    # An img2img run that starts after the repeated pair works with the stock class, so it works with ours.
    ours, stock = DPM(momentum_beta=1.0), STOCK()
    for sched in (ours, stock):
        sched.set_timesteps(1000)
        sched.set_begin_index(700)
    assert torch.equal(run_loop(ours, sample, dummy_model, start=700), run_loop(stock, sample, dummy_model, start=700))


def test_repeated_sigmas_from_zero_betas(sample, dummy_model):
    betas = torch.linspace(1e-4, 0.02, 1000)
    betas[500] = 0.0  # alphas_cumprod[500] == alphas_cumprod[499]: equal sigmas at distinct timesteps
    stock, ours = STOCK(trained_betas=betas.tolist()), DPM(trained_betas=betas.tolist(), momentum_beta=1.0)
    stock.set_timesteps(999)
    ours.set_timesteps(999)
    assert not torch.isfinite(run_loop(stock, sample, dummy_model)).all()
    with pytest.raises(ValueError, match="trained_betas"):
        run_loop(ours, sample, dummy_model)


# ---------------------------------------------------------------------------------------------------------------------
# test_lower_order_final / test_euler_at_final: which steps drop to lower order, over step counts around 15.
FINALS = [
    {"lower_order_final": lof, "euler_at_final": eaf, "final_sigmas_type": fst, "solver_order": order}
    for lof in (True, False)
    for eaf in (True, False)
    for fst in ("zero", "sigma_min")
    for order in (2, 3)
]


@pytest.mark.parametrize("config", FINALS, ids=["-".join(str(v) for v in c.values()) for c in FINALS])
def test_lower_order_final_and_euler_at_final(config, sample, dummy_model):
    for n in (3, 5, 14, 15, 20):
        results = {}
        for name, sched in (
            ("stock", STOCK(**config)),
            ("beta1", DPM(**config, momentum_beta=1.0)),
            ("momentum", DPM(**config, momentum_beta=0.6)),
        ):
            sched.set_timesteps(n)
            results[name] = run_loop(sched, sample, dummy_model)
        assert torch.equal(results["beta1"], results["stock"]), n
        assert torch.isfinite(results["momentum"]).all(), n
        assert not torch.equal(results["momentum"], results["stock"]), n


# ---------------------------------------------------------------------------------------------------------------------
# test_variance_type: learned variances (3-channel pixel models) and the DDPM vocabulary, which DPM-Solver ignores.
VARIANCE_TYPES = [None, "learned", "learned_range", "fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log"]


@pytest.mark.parametrize("variance_type", [*VARIANCE_TYPES, "unknown"], ids=str)
def test_variance_types_match_stock(variance_type, dummy_model):
    sample = pixel_sample()
    learned = variance_type in ("learned", "learned_range")
    cfg = {**DIFFUSERS_DPM_CONFIG, "variance_type": variance_type}
    results = {}
    for name, sched in (("stock", STOCK(**cfg)), ("beta1", DPM(**cfg, momentum_beta=1.0)), ("momentum", DPM(**cfg))):
        sched.set_timesteps(8)
        x = sample
        for t in sched.timesteps:
            out = dummy_model(x, t)
            if learned:  # a 6-channel output: prediction and variance
                out = torch.cat([out, torch.zeros_like(out)], dim=1)
            x = sched.step(out, t, x).prev_sample
        assert x.shape == sample.shape
        assert torch.isfinite(x).all()
        results[name] = x
    assert torch.equal(results["beta1"], results["stock"])
    # A DDPM config with this variance type switches over with it, as to the stock class.
    if variance_type is not None and variance_type != "unknown":
        ddpm = DDPMScheduler(variance_type=variance_type).config
        assert DPM.from_config(ddpm).config.variance_type == STOCK.from_config(ddpm).config.variance_type


@pytest.mark.parametrize("variance_type", ["learned", "learned_range"])
def test_learned_variance_with_other_channel_counts(variance_type):
    # diffusers keeps the first 3 output channels: with a 1-channel sample and a 2-channel output the stock class
    # silently broadcasts to a 2-channel sample; with 4 channels it fails. Ours names variance_type in both cases.
    for channels in (1, 4):
        sample = pixel_sample((2, channels, 8, 8))
        output = torch.cat([sample, sample], dim=1)
        stock = STOCK(variance_type=variance_type)
        stock.set_timesteps(5)
        if channels == 1:
            assert stock.step(output, stock.timesteps[0], sample).prev_sample.shape[1] == 2
        else:
            with pytest.raises(RuntimeError):
                stock.step(output, stock.timesteps[0], sample)
        ours = DPM(variance_type=variance_type)
        ours.set_timesteps(5)
        with pytest.raises(ValueError, match="variance_type"):
            ours.step(output, ours.timesteps[0], sample)


def test_unknown_variance_type_with_variance_channels():
    # An unknown variance_type means "no learned variance" for the stock class as for ours; a 6-channel output then
    # does not fit the sample: the stock class fails on broadcasting, ours names model_output.
    sample = pixel_sample()
    output = torch.cat([sample, sample], dim=1)
    stock, ours = STOCK(variance_type="learnt"), DPM(variance_type="learnt")
    for sched in (stock, ours):
        sched.set_timesteps(5)
    with pytest.raises(RuntimeError):
        stock.step(output, stock.timesteps[0], sample)
    with pytest.raises(ValueError, match="model_output"):
        ours.step(output, ours.timesteps[0], sample)


# ---------------------------------------------------------------------------------------------------------------------
# test_custom_timesteps: the default schedule's timesteps passed back (as a tensor) give the same run.
CUSTOM = [
    {"algorithm_type": a, "prediction_type": p, "final_sigmas_type": f}
    for a in ("dpmsolver++", "sde-dpmsolver++")
    for p in ("epsilon", "sample", "v_prediction")
    for f in ("sigma_min", "zero")
]


@pytest.mark.parametrize("config", CUSTOM, ids=["-".join(c.values()) for c in CUSTOM])
def test_custom_timesteps_tensor_matches_default(config, dummy_model):
    cfg = {**DIFFUSERS_DPM_CONFIG, **config}
    sample = pixel_sample()
    variants: list[tuple[str, type, dict[str, Any]]] = [("stock", STOCK, {}), ("beta1", DPM, {"momentum_beta": 1.0})]
    if momentum_allowed(cfg):
        variants.append(("momentum", DPM, {}))
    results = {}
    for name, cls, extra in variants:
        default = cls(**cfg, **extra)
        default.set_timesteps(10)
        custom = cls(**cfg, **extra)
        custom.set_timesteps(num_inference_steps=None, timesteps=default.timesteps)
        assert torch.equal(custom.sigmas, default.sigmas), name
        results[name] = seeded_loop(default, sample, dummy_model)
        assert torch.equal(seeded_loop(custom, sample, dummy_model), results[name]), name
    assert torch.equal(results["beta1"], results["stock"])


# ---------------------------------------------------------------------------------------------------------------------
# test_scheduler_public_api and test_add_noise_device, for every case.
@pytest.mark.parametrize("case", CASE_IDS)
def test_public_api_every_case(case):
    sample = pixel_sample()
    sched = make(case)
    assert sched.init_noise_sigma == 1.0
    assert sched.order == 1  # pipelines slice timesteps by scheduler.order
    assert all(c is not None for c in sched.compatibles)
    # scale_model_input returns the input unchanged, also before set_timesteps and off the schedule.
    assert torch.equal(sched.scale_model_input(sample, 0.0), sample)
    sched.set_timesteps(10)
    assert torch.equal(sched.scale_model_input(sample, sched.timesteps[3]), sample)
    assert torch.equal(sched.scale_model_input(sample, 0.0), sample)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("case", CASE_IDS)
def test_add_noise_on_the_timesteps_device(case, dtype, noise):
    sched, stock = make(case), STOCK()
    results = []
    for s in (sched, stock):
        s.set_timesteps(100, device=DEVICE)
        t = s.timesteps[5][None]
        assert t.device.type == torch.device(DEVICE).type
        x = s.scale_model_input(pixel_sample(noise.shape).to(DEVICE, dtype), 0.0)
        results.append(s.add_noise(x, noise.to(DEVICE, dtype), t))
    noised, expected = results
    assert noised.shape == noise.shape
    assert noised.dtype == dtype
    assert noised.device.type == torch.device(DEVICE).type
    assert torch.equal(noised, expected)
