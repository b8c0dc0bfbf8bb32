"""Our schedulers inside real diffusers pipeline classes (tiny random weights, built in code, `prompt_embeds`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from tiny_pipelines import PIPELINE_KINDS, make_call_kwargs, make_pipeline, run

from inertia.samplers import MomentumDPMSolverMultistepScheduler, MomentumPLMSScheduler

FLOW_KINDS = ("sd3", "flux")
STEPS = 6  # enough for 2nd/3rd-order and momentum steps to happen


def stock_dpm(kind: str, config, **kwargs) -> DPMSolverMultistepScheduler:
    """diffusers' own DPM-Solver++ for this pipeline; for flow models every flow key must be spelled out."""
    if kind in FLOW_KINDS:
        flow = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": config["shift"]}
        kwargs = {**flow, **kwargs}
    return DPMSolverMultistepScheduler.from_config(config, **kwargs)


def generate(kind: str, scheduler, img2img: bool = False, seed: int = 0) -> torch.Tensor:
    pipe = make_pipeline(kind, img2img=img2img, scheduler=scheduler)
    return run(pipe, **make_call_kwargs(kind, img2img=img2img, num_inference_steps=STEPS, seed=seed))


def base_config(kind: str):
    return make_pipeline(kind).scheduler.config


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
@pytest.mark.parametrize("solver", [{"solver_order": 2}, {"solver_order": 3}, {"solver_type": "heun"}])
def test_dpm_beta_one_equals_stock_dpm_in_pipeline(kind: str, solver: dict) -> None:
    cfg = base_config(kind)
    stock = generate(kind, stock_dpm(kind, cfg, **solver))
    ours = generate(kind, MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=1.0, **solver))
    assert torch.equal(stock, ours)


@pytest.mark.parametrize("kind", ("sd", "sdxl"))
def test_dpm_beta_one_equals_stock_dpm_in_img2img(kind: str) -> None:
    cfg = base_config(kind)
    stock = generate(kind, stock_dpm(kind, cfg), img2img=True)
    ours = generate(kind, MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=1.0), img2img=True)
    assert torch.equal(stock, ours)


SCHEDULERS = {
    "hb-dpm 0.8": lambda cfg: MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=0.8),
    "hb-dpm3 0.8": lambda cfg: MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=0.8, solver_order=3),
    "ghvb 3.8": lambda cfg: MomentumPLMSScheduler.from_momentum_number(cfg, 3.8, method="ghvb"),
    "hb 2.8": lambda cfg: MomentumPLMSScheduler.from_momentum_number(cfg, 2.8, method="hb"),
    "auto": lambda cfg: MomentumPLMSScheduler.from_config(cfg, momentum_beta="auto", momentum_guidance_scale=5.0),
}


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
@pytest.mark.parametrize("img2img", [False, True], ids=["t2i", "img2img"])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_momentum_schedulers_run_and_are_deterministic(kind: str, img2img: bool, name: str) -> None:
    cfg = base_config(kind)
    scheduler = SCHEDULERS[name](cfg)
    if kind in FLOW_KINDS:  # switched to flow mode by itself
        assert scheduler.config.prediction_type == "flow_prediction" and scheduler.config.use_flow_sigmas
    pipe = make_pipeline(kind, img2img=img2img, scheduler=scheduler)
    kwargs = make_call_kwargs(kind, img2img=img2img, num_inference_steps=STEPS, seed=3)
    first = run(pipe, **kwargs)
    again = run(pipe, **make_call_kwargs(kind, img2img=img2img, num_inference_steps=STEPS, seed=3))
    assert torch.isfinite(first).all()
    assert torch.equal(first, again), "a second call with the same seed must give the same latents"


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_momentum_changes_the_result(kind: str) -> None:
    cfg = base_config(kind)
    plain = generate(kind, MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=1.0))
    damped = generate(kind, MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=0.5))
    assert not torch.equal(plain, damped)


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_plms_hb_ghvb_nt_with_beta_one_agree_in_pipeline(kind: str) -> None:
    cfg = base_config(kind)
    outs = [
        generate(kind, MomentumPLMSScheduler.from_config(cfg, momentum_method=m, solver_order=3, momentum_beta=1.0))
        for m in ("hb", "ghvb", "nt")
    ]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_plms_order_one_is_ddim_like_dpm_order_one() -> None:
    """PLMS-1 without momentum is DDIM; DPM-Solver++ order 1 is DDIM too, on the same sigmas."""
    cfg = base_config("sd")
    dpm1 = generate("sd", DPMSolverMultistepScheduler.from_config(cfg, solver_order=1))
    plms1 = generate("sd", MomentumPLMSScheduler.from_config(cfg, solver_order=1, momentum_beta=1.0))
    torch.testing.assert_close(plms1, dpm1, rtol=1e-4, atol=1e-4)


def test_flux_receives_pipeline_sigmas_and_mu() -> None:
    """Flux img2img always passes `sigmas=` and `mu=`; our schedule shifts them like FlowMatchEuler does."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    cfg = base_config("flux")
    ours = MomentumPLMSScheduler.from_config(cfg)
    ref = FlowMatchEulerDiscreteScheduler.from_config(cfg)
    sigmas = np.linspace(1.0, 1 / STEPS, STEPS)
    ours.set_timesteps(sigmas=sigmas, mu=0.7)
    ref.set_timesteps(sigmas=sigmas, mu=0.7)
    torch.testing.assert_close(ours.sigmas, ref.sigmas, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.timesteps, ref.timesteps, rtol=0, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_pipeline(dtype: torch.dtype) -> None:
    pipe = make_pipeline("sd")
    pipe.scheduler = MomentumPLMSScheduler.from_momentum_number(pipe.scheduler.config, 3.8)
    pipe.to(dtype=dtype)
    kwargs = make_call_kwargs("sd", num_inference_steps=STEPS)
    for key in ("prompt_embeds", "negative_prompt_embeds"):
        kwargs[key] = kwargs[key].to(dtype)
    out = run(pipe, **kwargs)
    assert out.dtype == dtype and torch.isfinite(out.float()).all()


def test_batch_items_are_independent() -> None:
    """Momentum state is per element: item 0 of a batch of 2 equals a batch of 1 with the same noise."""
    pipe = make_pipeline("sd", scheduler=MomentumPLMSScheduler.from_momentum_number(base_config("sd"), 3.8))
    single = make_call_kwargs("sd", batch_size=1, num_inference_steps=STEPS)
    double = make_call_kwargs("sd", batch_size=2, num_inference_steps=STEPS)
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    one = run(pipe, **single, latents=latents[:1])
    two = run(pipe, **double, latents=latents)
    # Tolerance only for the UNet's batched convolutions; the scheduler itself is checked bit for bit below.
    torch.testing.assert_close(two[:1], one, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda cfg: MomentumPLMSScheduler.from_momentum_number(cfg, 3.8),
        lambda cfg: MomentumPLMSScheduler.from_momentum_number(cfg, 2.7, method="nt"),
        lambda cfg: MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=0.7, solver_order=3),
    ],
)
def test_scheduler_batch_rows_do_not_interact(make) -> None:
    """With an elementwise model, row 0 of a batch of 3 is bit-identical to the same row run alone."""
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    results = []
    for batch in (x, x[:1].clone()):
        sched = make(base_config("sd"))
        sched.set_timesteps(STEPS)
        sample = batch
        for t in sched.timesteps:
            sample = sched.step(torch.tanh(sample) * 0.9 + 0.01 * t, t, sample).prev_sample
        results.append(sample)
    assert torch.equal(results[0][:1], results[1])


def test_pipeline_save_and_reload_keeps_our_scheduler(tmp_path) -> None:
    pipe = make_pipeline("sd")
    pipe.scheduler = MomentumDPMSolverMultistepScheduler.from_config(pipe.scheduler.config, momentum_beta=0.7)
    pipe.scheduler.save_pretrained(tmp_path / "scheduler")
    loaded = MomentumDPMSolverMultistepScheduler.from_pretrained(tmp_path / "scheduler")
    assert loaded.config.momentum_beta == 0.7
    assert type(loaded) is MomentumDPMSolverMultistepScheduler
    assert pipe.scheduler.__class__.__module__ == "inertia.adapters.diffusers.scheduling_momentum_dpmsolver"


@pytest.mark.parametrize(
    "make",
    [
        lambda cfg: MomentumPLMSScheduler.from_momentum_number(cfg, 3.8),
        lambda cfg: MomentumDPMSolverMultistepScheduler.from_config(cfg, momentum_beta=0.7),
    ],
)
def test_interleaved_generations_on_copies_do_not_interact(make) -> None:
    """Two requests served by copies of one scheduler, stepped alternately, equal the same requests run alone."""
    import copy

    base = make(base_config("sd"))
    starts = [torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * 0.9 + 0.01 * t

    alone = []
    for x in starts:
        sched = copy.deepcopy(base)
        sched.set_timesteps(STEPS)
        for t in sched.timesteps:
            x = sched.step(model(x, t), t, x).prev_sample
        alone.append(x)
    scheds = [copy.deepcopy(base) for _ in starts]
    xs = list(starts)
    for s in scheds:
        s.set_timesteps(STEPS)
    for t in scheds[0].timesteps:
        for k, s in enumerate(scheds):
            xs[k] = s.step(model(xs[k], t), t, xs[k]).prev_sample
    assert all(torch.equal(a, b) for a, b in zip(alone, xs))
