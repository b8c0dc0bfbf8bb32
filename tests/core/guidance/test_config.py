"""Config validation: every invalid value of every parameter is refused with its name, value and range."""

import math

import pytest

from inertia.core.guidance.config import check_methods
from inertia.guidance import APG, CFG, HiGS

INF = float("inf")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"eta": -0.1}, "eta"),
        ({"eta": 1.5}, "eta"),
        ({"eta": "0"}, "eta"),
        ({"eta": math.nan}, "eta"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -1.0}, "momentum"),
        ({"momentum": True}, "momentum"),
        ({"norm_threshold": 0.0}, "norm_threshold"),
        ({"norm_threshold": -15.0}, "norm_threshold"),
        ({"norm_threshold": None}, "norm_threshold"),
        ({"space": "eps"}, "space"),
    ],
)
def test_apg_rejects(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`") as info:
        APG(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"weight": -1.0}, "weight"),
        ({"weight": INF}, "weight"),
        ({"ema": 0.0}, "ema"),
        ({"ema": 1.2}, "ema"),
        ({"t_min": -0.1}, "t_min"),
        ({"t_min": 1.0}, "t_min"),
        ({"t_max": 0.0}, "t_max"),
        ({"t_max": 1.1}, "t_max"),
        ({"t_min": 0.5, "t_max": 0.5}, "t_max"),
        ({"eta": 2.0}, "eta"),
        ({"cutoff": -0.05}, "cutoff"),
        ({"cutoff": 2.0}, "cutoff"),
        ({"sharpness": 0.0}, "sharpness"),
        ({"sharpness": INF}, "sharpness"),
        ({"space": "latent"}, "space"),
        ({"time_mode": "sigma"}, "time_mode"),
    ],
)
def test_higs_rejects(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        HiGS(**kwargs)


def test_defaults_follow_the_specs():
    assert APG() == APG(eta=0.0, momentum=-0.5, norm_threshold=15.0, space="x0")
    higs = HiGS()
    assert (higs.weight, higs.ema, higs.t_min, higs.t_max, higs.eta, higs.cutoff, higs.sharpness) == (
        1.75,
        0.75,
        0.4,
        1.0,
        0.0,
        0.05,
        50.0,
    )
    assert not APG().is_identity and APG(eta=1.0, momentum=0.0, norm_threshold=INF).is_identity
    assert not APG(eta=1.0, momentum=0.0).is_identity  # clipping still on
    assert HiGS(weight=0).is_identity and CFG().is_identity
    assert HiGS(cutoff=None).cutoff is None


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        APG().eta = 1.0  # type: ignore[misc]


def test_method_combinations():
    assert check_methods(()) == (None, None)
    apg, higs = APG(), HiGS()
    assert check_methods((higs, apg)) == (apg, higs)
    with pytest.raises(ValueError, match="one of CFG / APG"):
        check_methods((CFG(), APG()))
    with pytest.raises(ValueError, match="one HiGS"):
        check_methods((HiGS(), HiGS()))
    with pytest.raises(TypeError, match=r"`methods\[1\]`"):
        check_methods((APG(), "higs"))
