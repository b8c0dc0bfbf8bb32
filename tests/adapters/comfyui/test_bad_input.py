"""Bad node inputs fail with a ValueError naming the input, before any sampling (no ComfyUI needed)."""

from __future__ import annotations

import math

import pytest

from inertia.adapters.comfyui import APGNode, HiGSNode, node_mappings, parse_beta_schedule
from inertia.k_diffusion import SAMPLERS

CLASSES, NAMES = node_mappings(SAMPLERS)
APG_OK = {"eta": 0.0, "momentum": -0.5, "norm_threshold": 15.0, "start": 0.0, "stop": 1.0, "sigma_low": 0.0,
          "sigma_high": 0.0}  # fmt: skip
HIGS_OK = {"weight": 1.0, "ema": 0.75, "t_min": 0.4, "t_max": 1.0, "eta": 0.0, "cutoff": 0.05, "sharpness": 50.0,
           "time_mode": "timestep_fraction"}  # fmt: skip


@pytest.mark.parametrize("node_id", ["InertiaHBDPMPP2M", "InertiaHBDPMPP3M"])
@pytest.mark.parametrize("beta", [0.0, -0.1, 1.5, math.nan])
def test_dpm_beta_outside_0_1(node_id: str, beta: float) -> None:
    with pytest.raises(ValueError, match=r"`beta` must be a number in \(0, 1\]"):
        CLASSES[node_id]().get_sampler(beta=beta)


@pytest.mark.parametrize("node_id", ["InertiaHBPLMS", "InertiaGHVBPLMS", "InertiaNTPLMS"])
def test_plms_beta_and_order(node_id: str) -> None:
    with pytest.raises(ValueError, match=r"`beta` must be a number in \(0, 1\] \(1 = no momentum\), got 0.0"):
        CLASSES[node_id]().get_sampler(order=4, beta=0.0)
    for order in (0, 6, 2.5):
        with pytest.raises(ValueError, match=rf"`order` must be an integer in \[1, 5\], got {order}"):
            CLASSES[node_id]().get_sampler(order=order, beta=0.8)


@pytest.mark.parametrize("node_id", ["InertiaHBDPMPP2M", "InertiaHBDPMPP3M"])
def test_beta_schedule_entries(node_id: str) -> None:
    with pytest.raises(ValueError, match=r"`beta_schedule\[1\]` must be a number in \(0, 1\]"):
        CLASSES[node_id]().get_sampler(beta=0.8, beta_schedule="0.8, 0")
    with pytest.raises(ValueError, match=r"`beta` must be a number in \(0, 1\]"):  # checked before the β = 1 hand-over
        CLASSES[node_id]().get_sampler(beta=0.0, beta_schedule="")
    with pytest.raises(ValueError, match="`beta_schedule` must hold numbers in"):
        parse_beta_schedule("0.8, high")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start": 0.6, "stop": 0.4}, r"`stop` must be in \[start, 1\] = \[0.6, 1.0\], got 0.4"),
        ({"sigma_low": 5.0, "sigma_high": 2.0}, r"`sigma_low` must be in \[0, sigma_high\] = \[0, 2.0\]"),
        ({"sigma_low": 1.0}, r"`sigma_low` needs `sigma_high` > 0"),
        ({"sigma_high": -1.0}, r"`sigma_high` must be >= 0 \(0 means no σ limit\), got -1.0"),
        ({"start": -0.1}, r"`start` must be in \[0.0, 1.0\], got -0.1"),
        ({"eta": 1.5}, r"`eta` must be"),
        ({"momentum": 1.0}, r"`momentum` must be"),
        ({"norm_threshold": -1.0}, r"`norm_threshold` must be >= 0"),
    ],
)
def test_apg_inputs(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        APGNode().patch(model=None, **{**APG_OK, **change})  # fails before the model is touched


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"t_min": 0.8, "t_max": 0.5}, r"`t_max` must be in \(t_min, 1\]"),
        ({"weight": -1.0}, r"`weight` must be finite and >= 0"),
        ({"ema": 0.0}, r"`ema` must be"),
        ({"time_mode": "steps"}, r"`time_mode` must be"),
        ({"cutoff": -0.1}, r"`cutoff` must be in \[0, √2\] \(0 = no high-pass filter\), got -0.1"),
        ({"cutoff": 2.0}, r"`cutoff` must be in \[0.0, 1.414"),
        ({"sharpness": 0.0}, r"`sharpness` must be finite and > 0"),
    ],
)
def test_higs_inputs(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HiGSNode().patch(model=None, **{**HIGS_OK, **change})


def test_node_mappings_needs_every_sampler() -> None:
    with pytest.raises(ValueError, match=r"`samplers` must hold the sampler functions \['hb_dpmpp_3m'\]"):
        node_mappings({k: v for k, v in SAMPLERS.items() if k != "hb_dpmpp_3m"})
    assert set(CLASSES) == set(NAMES) and len(CLASSES) == 7
