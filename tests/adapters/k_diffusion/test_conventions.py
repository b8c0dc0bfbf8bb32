"""(d) The k-diffusion calling conventions, a k-diffusion-style model wrapper, and the call ComfyUI's KSAMPLER makes."""

from __future__ import annotations

import math

import pytest
import torch

from inertia.k_diffusion import (
    SAMPLERS,
    sample_ghvb,
    sample_hb,
    sample_hb_dpmpp_2m,
    sample_hb_dpmpp_3m,
    sample_nt,
)
from tests.adapters.k_diffusion.references import exact_solution, gaussian_denoiser, starting_sample
from tests.test_layering import imported_modules

FUNCTIONS = {
    "hb_dpmpp_2m": (sample_hb_dpmpp_2m, {"beta": 0.8}),
    "hb_dpmpp_3m": (sample_hb_dpmpp_3m, {"beta": 0.7}),
    "hb": (sample_hb, {"order": 4, "beta": 0.8}),
    "ghvb": (sample_ghvb, {"order": 4, "beta": 0.8}),
    "nt": (sample_nt, {"order": 3, "beta": 0.8}),
}
SIGMAS = torch.tensor([10.0, 6.0, 3.5, 2.0, 1.1, 0.6, 0.3, 0.1, 0.0], dtype=torch.float64)


@pytest.fixture(params=sorted(FUNCTIONS))
def sampler(request: pytest.FixtureRequest):
    """(function, its momentum options) for each sampler."""
    return FUNCTIONS[request.param]


class Recorder:
    """The Gaussian denoiser, recording every call's input, sigma, keyword arguments and output."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        out = gaussian_denoiser(x, sigma)
        self.calls.append({"x": x, "sigma": sigma, "kwargs": kwargs, "out": out})
        return out


def test_the_registry_names_the_functions() -> None:
    assert SAMPLERS == {name: fn for name, (fn, _) in FUNCTIONS.items()}
    assert all(fn.__name__ == f"sample_{name}" for name, fn in SAMPLERS.items())


def test_extra_args_reach_every_model_call(sampler) -> None:
    fn, options = sampler
    cond, model_options = torch.tensor([1.0, 2.0, 3.0]), {"transformer_options": {}}
    model = Recorder()
    fn(
        model,
        starting_sample(),
        SIGMAS,
        extra_args={"cond": cond, "model_options": model_options},
        disable=True,
        **options,
    )
    assert len(model.calls) == len(SIGMAS) - 1
    for call in model.calls:
        assert call["kwargs"].keys() == {"cond", "model_options"}
        assert call["kwargs"]["cond"] is cond and call["kwargs"]["model_options"] is model_options
    model = Recorder()
    fn(model, starting_sample(), SIGMAS, disable=True, **options)
    assert all(call["kwargs"] == {} for call in model.calls)


def test_the_model_gets_one_sigma_per_batch_item(sampler) -> None:
    fn, options = sampler
    model = Recorder()
    x = starting_sample(batch=3)
    fn(model, x, SIGMAS, disable=True, **options)
    for i, call in enumerate(model.calls):
        assert call["sigma"].shape == (3,) and torch.equal(call["sigma"], SIGMAS[i].expand(3))
        assert call["x"].shape == x.shape and call["x"].dtype == x.dtype


def test_callback_gets_k_diffusions_dict_once_per_step(sampler) -> None:
    fn, options = sampler
    model, seen = Recorder(), []
    fn(model, starting_sample(), SIGMAS, callback=seen.append, disable=True, **options)
    assert len(seen) == len(SIGMAS) - 1
    for i, (info, call) in enumerate(zip(seen, model.calls)):
        assert info.keys() == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert info["i"] == i
        assert torch.equal(info["sigma"], SIGMAS[i]) and torch.equal(info["sigma_hat"], SIGMAS[i])
        assert info["x"] is call["x"] and info["denoised"] is call["out"]


def test_disable_turns_the_progress_bar_off(sampler, capsys: pytest.CaptureFixture[str]) -> None:
    fn, options = sampler
    fn(gaussian_denoiser, starting_sample(), SIGMAS, disable=True, **options)
    assert capsys.readouterr().err == ""
    fn(gaussian_denoiser, starting_sample(), SIGMAS, disable=False, **options)
    assert f"{len(SIGMAS) - 1}/{len(SIGMAS) - 1}" in capsys.readouterr().err  # tqdm's "8/8"


@pytest.mark.parametrize("fn", [sample_hb_dpmpp_2m, sample_hb_dpmpp_3m])
def test_dpmpp_step_to_sigma_0_returns_the_denoised_output(fn) -> None:
    seen = []
    out = fn(gaussian_denoiser, starting_sample(), SIGMAS, callback=seen.append, disable=True, beta=0.8)
    assert torch.equal(out, seen[-1]["denoised"])


def test_plms_step_to_sigma_0_is_the_multistep_step() -> None:
    # Euler (order 1, β = 1) to σ = 0 lands on the denoised output; higher orders take their multistep step to 0, as
    # MomentumPLMSScheduler and k-diffusion's sample_lms do (checked exactly in test_parity and test_exactness).
    for fn in (sample_hb, sample_ghvb, sample_nt):
        seen = []
        out = fn(gaussian_denoiser, starting_sample(), SIGMAS, callback=seen.append, disable=True, order=1, beta=1.0)
        assert torch.allclose(out, seen[-1]["denoised"], rtol=0, atol=1e-12)


def test_batch_items_are_independent(sampler) -> None:
    fn, options = sampler
    x = starting_sample(batch=4)
    together = fn(gaussian_denoiser, x, SIGMAS, disable=True, **options)
    others_changed = x.clone()
    others_changed[[0, 1, 3]] *= -3.0
    changed = fn(gaussian_denoiser, others_changed, SIGMAS, disable=True, **options)
    for k in range(4):
        alone = fn(gaussian_denoiser, x[k : k + 1], SIGMAS, disable=True, **options)
        assert torch.equal(together[k : k + 1], alone)
    assert torch.equal(changed[2], together[2])


def test_no_state_survives_a_call(sampler) -> None:
    fn, options = sampler
    first = fn(gaussian_denoiser, starting_sample(batch=2), SIGMAS, disable=True, **options)
    fn(gaussian_denoiser, starting_sample(batch=5, shape=(3,)), SIGMAS[2:], disable=True, **options)
    again = fn(gaussian_denoiser, starting_sample(batch=2), SIGMAS, disable=True, **options)
    assert torch.equal(first, again)


def test_a_reused_output_buffer_gives_the_same_samples(sampler) -> None:
    fn, options = sampler
    buffer = torch.empty_like(starting_sample())

    def graphed(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        buffer.copy_(gaussian_denoiser(x, sigma))  # a graphed/compiled denoiser overwrites its one output buffer
        return buffer

    expected = fn(gaussian_denoiser, starting_sample(), SIGMAS, disable=True, **options)
    assert torch.equal(fn(graphed, starting_sample(), SIGMAS, disable=True, **options), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_results_come_back_in_the_callers_dtype(sampler, dtype: torch.dtype) -> None:
    fn, options = sampler
    model = Recorder()
    out = fn(model, starting_sample().to(dtype), SIGMAS.to(dtype), disable=True, **options)
    assert out.dtype == dtype and all(call["x"].dtype == dtype for call in model.calls)
    reference = fn(gaussian_denoiser, starting_sample(), SIGMAS, disable=True, **options)
    assert torch.allclose(out.double(), reference, atol=0.05)


def test_a_single_sigma_takes_no_step(sampler) -> None:
    fn, options = sampler
    model, x = Recorder(), starting_sample()
    assert torch.equal(fn(model, x, SIGMAS[:1], disable=True, **options), x)
    assert model.calls == []


def test_a_schedule_may_stop_above_zero_and_be_continued(sampler) -> None:
    # ComfyUI's SplitSigmas: the first half ends at a sigma > 0; the second half continues from there.
    fn, options = sampler
    head = fn(gaussian_denoiser, starting_sample(), SIGMAS[:5], disable=True, **options)
    assert torch.isfinite(head).all()
    tail = fn(gaussian_denoiser, head, SIGMAS[4:], disable=True, **options)
    exact = exact_solution(starting_sample(), float(SIGMAS[0]), 0.0)
    assert (tail - exact).abs().max() < 0.5


# ------------------------------------------------------------------------------- a k-diffusion-style model wrapper


class DiscreteEpsDenoiser:
    """A denoiser wrapper in the shape of k-diffusion's discrete-schedule ε wrappers, around an ε model(x_vp, t).

    k-diffusion's sigma is σ̄ = sqrt((1 − ᾱ)/ᾱ); the model sees x·c_in = α·x̄ (its own VP scale) and a fractional
    timestep t interpolated in log σ̄; the denoised output is x + c_out·ε with c_out = −σ̄.
    """

    def __init__(self, eps_model, alphas_cumprod: torch.Tensor) -> None:
        self.inner_model = eps_model
        self.log_sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).log()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.log()
        hi = torch.searchsorted(self.log_sigmas, log_sigma).clamp(1, len(self.log_sigmas) - 1)
        lo_value, hi_value = self.log_sigmas[hi - 1], self.log_sigmas[hi]
        return (hi - 1) + (log_sigma - lo_value) / (hi_value - lo_value)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        lo, hi, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[lo] + w * self.log_sigmas[hi]).exp()

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        s = sigma.reshape(-1, *[1] * (x.ndim - 1))
        c_in, c_out = 1 / (s**2 + 1) ** 0.5, -s
        eps = self.inner_model(x * c_in, self.sigma_to_t(sigma), **kwargs)
        return x + eps * c_out


def _sd_alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


def test_sampling_through_a_k_diffusion_style_eps_wrapper(sampler) -> None:
    fn, options = sampler
    wrapper: DiscreteEpsDenoiser

    def eps_model(x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # The exact ε of the Gaussian data at timestep t, for the VP sample x_vp = α·x̄.
        sigma = wrapper.t_to_sigma(t)
        s = sigma.reshape(-1, *[1] * (x_vp.ndim - 1))
        x_bar = x_vp * (s**2 + 1) ** 0.5
        return (x_bar - gaussian_denoiser(x_bar, sigma)) / s

    wrapper = DiscreteEpsDenoiser(eps_model, _sd_alphas_cumprod())
    ramp = torch.linspace(0, 1, 30, dtype=torch.float64)
    sigmas = torch.cat([(14.0 ** (1 / 7) + ramp * (0.05 ** (1 / 7) - 14.0 ** (1 / 7))) ** 7, torch.zeros(1)])
    x = starting_sample(sigma=14.0)
    through_wrapper = fn(wrapper, x, sigmas, disable=True, **options)
    direct = fn(gaussian_denoiser, x, sigmas, disable=True, **options)
    assert torch.allclose(through_wrapper, direct, rtol=0, atol=1e-8)
    error = (through_wrapper - exact_solution(x, 14.0, 0.0)).abs().max().item()
    assert error < 0.15, error  # momentum (β < 1) is first order: about 1e-2 to 1e-1 at 30 steps


# --------------------------------------------------------------------------------------- the call KSAMPLER makes


def test_the_call_comfyuis_ksampler_makes(sampler) -> None:
    # comfy.samplers.KSAMPLER(sampler_function, extra_options=...).sample(...) calls
    # sampler_function(model_k, noise, sigmas, extra_args=extra_args, callback=k_callback, disable=disable_pbar,
    # **extra_options); this mimics that call (it is not ComfyUI itself).
    fn, options = sampler
    model, steps = Recorder(), []
    extra_args = {"model_options": {}, "seed": 0, "denoise_mask": None}
    k_callback = lambda d: steps.append((d["i"], d["denoised"], d["x"]))  # noqa: E731
    out = fn(model, starting_sample(), SIGMAS, extra_args=extra_args, callback=k_callback, disable=True, **options)
    assert [i for i, _, _ in steps] == list(range(len(SIGMAS) - 1))
    assert all(call["kwargs"] == extra_args for call in model.calls)
    assert (out - exact_solution(starting_sample(), float(SIGMAS[0]), 0.0)).abs().max() < 0.5


def test_the_dpm_core_module_is_pure_torch() -> None:
    # inertia.core.samplers.heavy_ball_dpm is math core: the standard library and torch only (docs/design.md, "The layers").
    import sys

    import inertia.core.samplers.heavy_ball_dpm as core

    for target, line in imported_modules(__import__("pathlib").Path(core.__file__)):
        top = target.split(".")[0]
        assert top in sys.stdlib_module_names or top in {"torch", "__future__"}, f"{target} (line {line})"


def test_gaussian_helpers_are_consistent() -> None:
    # exact_solution solves dx/dσ = (x − D)/σ: a fine Euler run agrees with it.
    x = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    sigmas = torch.linspace(2.0, 0.5, 20001, dtype=torch.float64)
    for i in range(len(sigmas) - 1):
        x = x + (x - gaussian_denoiser(x, sigmas[i : i + 1])) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    exact = exact_solution(torch.tensor([[2.0, -1.0]], dtype=torch.float64), 2.0, 0.5)
    assert torch.allclose(x, exact, atol=1e-4) and math.isfinite(float(x.sum()))
