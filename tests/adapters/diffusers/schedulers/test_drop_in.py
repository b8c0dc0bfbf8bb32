"""Drop-in parity with diffusers' stock `DPMSolverMultistepScheduler`: ``set_timesteps``' positional order and
``trained_betas``.

Whatever the stock class accepts and computes correctly, ours accepts with the same timesteps, sigmas and (at
``momentum_beta=1.0``) bit-identical samples. Where the stock class silently computes a NaN or wrong schedule, ours
raises a ``ValueError`` naming the parameter; each such test also shows the stock class's garbage.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

from tests.adapters.diffusers.schedulers.conformance_cases import DPM, PLMS, run_loop

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"),
    # diffusers copies a tensor of trained betas with torch.tensor(); the forms under test include tensors.
    pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning"),
    # the stock class's own NaN schedules, shown on purpose next to ours.
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
]

STOCK = DPMSolverMultistepScheduler
SD15 = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
FLOW_DYNAMIC = {
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
    "flow_shift": 3.0,
    "use_dynamic_shifting": True,
}
CUSTOM_TIMESTEPS = [901, 700, 480, 300, 121, 20]


def _both(config: dict[str, Any]) -> tuple[DPMSolverMultistepScheduler, DPM, PLMS]:
    return STOCK(**config), DPM(**config, momentum_beta=1.0), PLMS(**config)


def _same_schedule(a, b) -> bool:
    return torch.equal(a.timesteps, b.timesteps) and torch.equal(a.sigmas, b.sigmas)


# ---------------------------------------------------------------------------------------------------------------------
# 1. set_timesteps takes the stock positional order (num_inference_steps, device, mu, timesteps), then sigmas.
def test_set_timesteps_positional_names_follow_stock(scheduler_class):
    stock = list(inspect.signature(STOCK.set_timesteps).parameters)
    ours = list(inspect.signature(scheduler_class.set_timesteps).parameters)
    assert ours[: len(stock)] == stock
    assert ours == [*stock, "sigmas"]


POSITIONAL_CALLS: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
    ("steps", {}, (10,)),
    ("steps-device", {}, (10, "cpu")),
    ("steps-torch-device", SD15, (8, torch.device("cpu"))),
    ("steps-device-mu-none", {}, (10, None, None)),
    ("timesteps", {}, (None, None, None, CUSTOM_TIMESTEPS)),
    ("timesteps-device", SD15, (None, "cpu", None, CUSTOM_TIMESTEPS)),
    ("karras-steps-device", {**SD15, "use_karras_sigmas": True}, (9, "cpu")),
    ("flow-mu", FLOW_DYNAMIC, (10, None, 0.5)),
    ("flow-mu-device", FLOW_DYNAMIC, (12, "cpu", 1.1)),
    ("flow-mu-numpy", FLOW_DYNAMIC, (7, None, np.float64(0.8))),
    ("vp-dynamic-mu", {"use_dynamic_shifting": True}, (10, None, 0.7)),
]


@pytest.mark.parametrize(("config", "args"), [c[1:] for c in POSITIONAL_CALLS], ids=[c[0] for c in POSITIONAL_CALLS])
def test_positional_set_timesteps_matches_stock(config, args, sample, dummy_model):
    stock, dpm, plms = _both(config)
    stock.set_timesteps(*args)
    dpm.set_timesteps(*args)
    plms.set_timesteps(*args)
    assert _same_schedule(dpm, stock)
    assert _same_schedule(plms, stock)  # PLMS walks the stock grid as well
    assert dpm.num_inference_steps == plms.num_inference_steps == stock.num_inference_steps
    assert torch.equal(run_loop(dpm, sample, dummy_model), run_loop(stock, sample, dummy_model))
    # The same call by keyword gives the same PLMS run.
    names = ("num_inference_steps", "device", "mu", "timesteps")
    keyword = PLMS(**config)
    keyword.set_timesteps(**dict(zip(names, args)))
    plms.set_timesteps(*args)
    assert torch.equal(run_loop(plms, sample, dummy_model), run_loop(keyword, sample, dummy_model))


def test_positional_mu_keeps_flow_shift_in_config(scheduler_class):
    # The stock class leaves exp(mu) in config.flow_shift; ours keeps the configured value (same sigmas, see above).
    sched = scheduler_class(**FLOW_DYNAMIC)
    sched.set_timesteps(10, None, 0.5)
    assert sched.config.flow_shift == 3.0


def test_sigmas_fifth_positional(scheduler_class, sample, dummy_model):
    euler = EulerDiscreteScheduler(**SD15, use_karras_sigmas=True)
    euler.set_timesteps(8)
    sigmas = euler.sigmas[:-1].tolist()
    positional, keyword = scheduler_class(**SD15), scheduler_class(**SD15)
    positional.set_timesteps(None, "cpu", None, None, sigmas)
    keyword.set_timesteps(sigmas=sigmas)
    assert _same_schedule(positional, keyword)
    assert torch.equal(run_loop(positional, sample, dummy_model), run_loop(keyword, sample, dummy_model))


# ---------------------------------------------------------------------------------------------------------------------
# 2. trained_betas: every form the stock class takes, with the same schedule and steps.
def _sd15_betas() -> torch.Tensor:
    return STOCK(**SD15).betas.clone()  # scaled_linear: linspace(√β_start, √β_end)², float32


def _cosine_betas() -> torch.Tensor:
    return STOCK(beta_schedule="squaredcos_cap_v2").betas.clone()


BETA_FORMS: dict[str, Any] = {
    "list": lambda: _sd15_betas().tolist(),
    "tuple": lambda: tuple(_sd15_betas().tolist()),
    "ndarray-float32": lambda: _sd15_betas().numpy(),
    "ndarray-float64": lambda: _sd15_betas().double().numpy(),
    "tensor-float32": lambda: _sd15_betas(),
    "tensor-float64": lambda: _sd15_betas().double(),
    "list-of-numpy-scalars": lambda: list(_sd15_betas().numpy()),
    "sd15-float64-squared": lambda: (np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2).tolist(),
    "cosine": lambda: _cosine_betas().tolist(),
    "ddpm-linear": lambda: np.linspace(1e-4, 0.02, 1000),
}
BETA_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "explicit-T": {"num_train_timesteps": 1000},
    "karras": {"use_karras_sigmas": True},
    "trailing-v": {"timestep_spacing": "trailing", "prediction_type": "v_prediction"},
    "zero-snr": {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"},
    "order3-sigma-min": {"solver_order": 3, "final_sigmas_type": "sigma_min"},
}


# Cosine betas under a "linear" beta_schedule with Karras sigmas round to repeated timesteps and the stock class itself
# fails (IndexError in its step); nothing to compare there.
FORM_RUNS = [(f, c) for f in BETA_FORMS for c in BETA_CONFIGS if (f, c) != ("cosine", "karras")]


@pytest.mark.parametrize(("form", "config"), FORM_RUNS, ids=[f"{f}-{c}" for f, c in FORM_RUNS])
def test_trained_betas_forms_match_stock(form, config, sample, dummy_model):
    betas = BETA_FORMS[form]()
    extra = BETA_CONFIGS[config]
    stock = STOCK(trained_betas=betas, **extra)
    dpm = DPM(trained_betas=betas, momentum_beta=1.0, **extra)
    plms_extra = {k: v for k, v in extra.items() if k != "solver_order"}
    plms = PLMS(trained_betas=betas, **plms_extra)
    assert torch.equal(dpm.betas, stock.betas)
    assert torch.equal(plms.alphas_cumprod, stock.alphas_cumprod)
    for n in (7, 20):
        stock.set_timesteps(n)
        dpm.set_timesteps(n)
        plms.set_timesteps(n)
        assert _same_schedule(dpm, stock)
        if "solver_order" not in extra:
            assert _same_schedule(plms, stock)
        expected = run_loop(stock, sample, dummy_model)
        assert torch.isfinite(expected).all()
        assert torch.equal(run_loop(dpm, sample, dummy_model), expected)
        assert torch.isfinite(run_loop(plms, sample, dummy_model)).all()


@pytest.mark.parametrize("scheduler_class", [DPM, PLMS], ids=["dpm", "plms"])
def test_trained_betas_equal_the_named_schedule(scheduler_class, sample, dummy_model):
    # SD 1.5's betas passed as numbers walk exactly the run of beta_schedule="scaled_linear" (momentum on).
    named = scheduler_class(**SD15)
    trained = scheduler_class(trained_betas=_sd15_betas().tolist())
    named.set_timesteps(12)
    trained.set_timesteps(12)
    assert _same_schedule(named, trained)
    assert torch.equal(run_loop(named, sample, dummy_model), run_loop(trained, sample, dummy_model))


def test_trained_betas_short_schedule(scheduler_class, sample, dummy_model):
    betas = np.linspace(1e-3, 0.2, 100)
    sched = scheduler_class(num_train_timesteps=100, trained_betas=betas)
    stock = STOCK(num_train_timesteps=100, trained_betas=betas)
    sched.set_timesteps(10)
    stock.set_timesteps(10)
    assert _same_schedule(sched, stock)
    assert torch.isfinite(run_loop(sched, sample, dummy_model)).all()


def _with(index: int, value: float) -> list[float]:
    betas = _sd15_betas().tolist()
    betas[index] = value
    return betas


# Betas of exactly 0 or 1 are legal where the stock class computes a correct schedule with them.
EDGE_BETAS: list[tuple[str, list[float], dict[str, Any]]] = [
    ("zero-in-the-middle", _with(500, 0.0), {}),
    ("zero-first-default", _with(0, 0.0), {}),
    ("one-last-leading", _with(999, 1.0), {"timestep_spacing": "leading"}),
    ("one-last-zero-snr", _with(999, 1.0), {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}),
]


@pytest.mark.parametrize(("betas", "extra"), [e[1:] for e in EDGE_BETAS], ids=[e[0] for e in EDGE_BETAS])
def test_trained_betas_of_zero_or_one_where_stock_works(betas, extra, sample, dummy_model):
    stock = STOCK(trained_betas=betas, **extra)
    dpm = DPM(trained_betas=betas, momentum_beta=1.0, **extra)
    plms = PLMS(trained_betas=betas, **extra)
    for sched in (stock, dpm, plms):
        sched.set_timesteps(10)
    expected = run_loop(stock, sample, dummy_model)
    assert torch.isfinite(expected).all()
    assert torch.equal(run_loop(dpm, sample, dummy_model), expected)
    assert torch.isfinite(run_loop(plms, sample, dummy_model)).all()


# ---------------------------------------------------------------------------------------------------------------------
# trained_betas where the stock class silently computes garbage: ours raises at construction.
def _nan_sigmas(stock: DPMSolverMultistepScheduler) -> bool:
    table = ((1 - stock.alphas_cumprod) / stock.alphas_cumprod) ** 0.5
    return not bool(torch.isfinite(table).all())


BAD_BETAS: list[tuple[str, Any, dict[str, Any], str]] = [
    ("diffusers-test-pattern", np.array([0.1, 0.3]), {}, "exactly `num_train_timesteps`=1000 entries"),
    ("too-short", _sd15_betas()[:500].tolist(), {}, "got 500"),
    ("too-long", np.linspace(1e-4, 0.02, 2000), {}, "got 2000"),
    ("too-short-explicit-T", [0.1, 0.2, 0.3], {"num_train_timesteps": 4}, "got 3"),
    ("nan", _with(900, float("nan")), {}, "nan"),
    ("inf", _with(3, float("inf")), {}, "inf"),
    ("negative", _with(0, -0.01), {}, "-0.01"),
    ("above-one", _with(10, 1.5), {}, "1.5"),
]


@pytest.mark.parametrize(("betas", "extra", "detail"), [b[1:] for b in BAD_BETAS], ids=[b[0] for b in BAD_BETAS])
def test_bad_trained_betas_raise_where_stock_computes_garbage(betas, extra, detail, sample, dummy_model):
    stock = STOCK(trained_betas=betas, **extra)  # the stock class accepts them ...
    stock.set_timesteps(min(10, stock.config.num_train_timesteps))
    n_betas = len(stock.betas)
    if n_betas < stock.config.num_train_timesteps:
        # ... and clamps every timestep past the last beta to its sigma: repeated sigmas, NaN samples.
        assert len(torch.unique(stock.sigmas[:-1])) < len(stock.sigmas) - 1
        assert not torch.isfinite(run_loop(stock, sample, dummy_model)).all()
    elif n_betas > stock.config.num_train_timesteps:
        # ... and never reaches its own noise level: the first sigma is not the largest of the betas' schedule.
        full = ((1 - stock.alphas_cumprod) / stock.alphas_cumprod) ** 0.5
        assert float(stock.sigmas[0]) < 0.8 * float(full.max())
    else:
        assert _nan_sigmas(stock)
    for cls in (DPM, PLMS):
        with pytest.raises(ValueError, match="trained_betas") as info:
            cls(trained_betas=betas, **extra)
        assert detail in str(info.value)
        with pytest.raises(ValueError, match="trained_betas"):
            cls.from_config(stock.config)


@pytest.mark.parametrize(
    "betas", [[[0.1, 0.2]], "0.1, 0.2", 0.1, {"a": 0.1}], ids=["nested", "string", "scalar", "dict"]
)
def test_trained_betas_that_are_not_a_sequence(scheduler_class, betas):
    with pytest.raises(ValueError, match="trained_betas"):
        scheduler_class(num_train_timesteps=2, trained_betas=betas)


SCHEDULE_GARBAGE: list[tuple[str, Any, dict[str, Any]]] = [
    ("one-last-linspace", _with(999, 1.0), {}),
    ("one-last-trailing", _with(999, 1.0), {"timestep_spacing": "trailing"}),
    ("one-in-the-middle", _with(600, 1.0), {"timestep_spacing": "leading"}),
    ("zero-first-karras", _with(0, 0.0), {"use_karras_sigmas": True}),
]


@pytest.mark.parametrize(("betas", "extra"), [g[1:] for g in SCHEDULE_GARBAGE], ids=[g[0] for g in SCHEDULE_GARBAGE])
def test_betas_of_zero_or_one_that_reach_sigma_zero_or_inf(betas, extra, sample, dummy_model):
    stock = STOCK(trained_betas=betas, **extra)
    stock.set_timesteps(10)
    assert not torch.isfinite(run_loop(stock, sample, dummy_model)).all()
    for sched in (DPM(trained_betas=betas, momentum_beta=1.0, **extra), PLMS(trained_betas=betas, **extra)):
        with pytest.raises(ValueError, match="trained_betas") as info:
            sched.set_timesteps(10)
        assert "alphas_cumprod" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------------
# Config round trips with trained_betas.
JSON_FORMS = ["list", "tuple", "ndarray-float32", "ndarray-float64", "cosine"]


@pytest.mark.parametrize("form", JSON_FORMS)
def test_trained_betas_config_round_trips(scheduler_class, form, tmp_path, sample, dummy_model):
    betas = BETA_FORMS[form]()
    sched = scheduler_class(trained_betas=betas, timestep_spacing="trailing")
    sched.set_timesteps(9)
    expected = run_loop(sched, sample, dummy_model)
    sched.save_config(tmp_path / "config")
    sched.save_pretrained(tmp_path / "pretrained")
    stock = STOCK(trained_betas=betas, timestep_spacing="trailing")
    reloaded = [
        scheduler_class.from_pretrained(tmp_path / "config"),
        scheduler_class.from_pretrained(tmp_path / "pretrained"),
        scheduler_class.from_config(scheduler_class.load_config(tmp_path / "config")),
        scheduler_class.from_config(sched.config),
        scheduler_class.from_config(stock.config),  # a stock config with trained betas
        scheduler_class.from_config(STOCK.from_config(sched.config).config),  # through the stock class and back
    ]
    for i, other in enumerate(reloaded):
        assert torch.equal(other.betas, sched.betas), i
        assert list(other.config.trained_betas) == pytest.approx(list(np.asarray(betas, dtype=np.float64))), i
        other.set_timesteps(9)
        assert torch.equal(other.sigmas, sched.sigmas), i
        assert torch.equal(run_loop(other, sample, dummy_model), expected), i
    # The stock class reads our saved config with the same schedule.
    theirs = STOCK.from_pretrained(tmp_path / "pretrained")
    theirs.set_timesteps(9)
    assert torch.equal(theirs.sigmas, sched.sigmas)


def test_trained_betas_tensor_round_trips_in_memory(scheduler_class):
    # A tensor in the config is not JSON-serialisable, for the stock class as for ours; in memory it round-trips.
    betas = _sd15_betas()
    sched = scheduler_class(trained_betas=betas)
    assert torch.equal(scheduler_class.from_config(sched.config).betas, STOCK(trained_betas=betas).betas)
    with pytest.raises(TypeError):
        STOCK(trained_betas=betas).to_json_string()
    with pytest.raises(TypeError):
        sched.to_json_string()
