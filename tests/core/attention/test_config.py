"""`MomentumAttention`: validation (clear errors before any work), defaults, presets and the skip schedule."""

from __future__ import annotations

import math
from typing import Any

import pytest

from inertia.attention import DEFAULTS, MODES, MomentumAttention

BAD: list[tuple[dict[str, Any], str]] = [
    ({"mode": "momentum"}, "`mode` must be one of 'ema', 'heavy_ball', 'extrapolate', 'first_order', got 'momentum'"),
    ({"mode": None}, "`mode` must be one of"),
    ({"mode": "ema", "beta": 1.0}, r"`beta` must be in \[0, 1\) for mode='ema', got 1.0"),
    ({"mode": "ema", "beta": -0.1}, r"`beta` must be in \[0, 1\) for mode='ema', got -0.1"),
    ({"mode": "extrapolate", "beta": -1.0}, r"`beta` must be in \(-1, 1\) for mode='extrapolate', got -1.0"),
    ({"mode": "heavy_ball", "beta": 1}, r"`beta` must be in \(-1, 1\) for mode='heavy_ball', got 1"),
    ({"mode": "ema", "beta": math.nan}, "`beta` must be a finite real number, got nan"),
    ({"mode": "ema", "beta": True}, "`beta` must be a finite real number, got True"),
    ({"mode": "ema", "beta": "0.2"}, "`beta` must be a finite real number"),
    ({"mode": "heavy_ball", "lookahead": -1.0}, "`lookahead` must be a finite number >= 0, got -1.0"),
    ({"mode": "extrapolate", "lookahead": math.inf}, "`lookahead` must be a finite real number, got inf"),
    ({"mode": "ema", "lookahead": 0.5}, "`lookahead` is not used by mode='ema'"),
    ({"mode": "first_order", "beta": 0.5}, "`beta` is not used by mode='first_order'"),
    ({"mode": "ema", "beta": 0.2, "skip_every": 2}, "`skip_every` only applies to the skip modes"),
    ({"mode": "extrapolate", "skip_every": 0}, "`skip_every` must be an integer >= 1 .*got 0"),
    ({"mode": "extrapolate", "skip_every": 2.0}, "`skip_every` must be an integer >= 1 .*got 2.0"),
    ({"mode": "extrapolate", "skip_every": True}, "`skip_every` must be an integer >= 1"),
    ({"window": (5, 5)}, r"`window` must satisfy 0 <= start < end \(or end=None\), got \(5, 5\)"),
    ({"window": (6, 2)}, "`window` must satisfy 0 <= start < end"),
    ({"window": (-1, None)}, r"`window\[0\]` must be an integer >= 0, got -1"),
    ({"window": (0.2, 0.8)}, r"`window\[0\]` must be an integer >= 0, got 0.2"),
    ({"window": (0, 3.5)}, r"`window\[1\]` must be an integer >= 0, got 3.5"),
    ({"window": 4}, r"`window` must be a \(start, end\) pair of step indices, got 4"),
    ({"window": (1, 2, 3)}, "`window` must be a"),
    ({"targets": ()}, r"`targets` must be a non-empty subset of \('self', 'cross'\), got \(\)"),
    ({"targets": ("self", "temporal")}, "`targets` must be a non-empty subset"),
    ({"targets": None}, "`targets` must be a non-empty subset"),
    ({"layers": "up_blocks"}, "`layers` must be None or a non-empty tuple of regular expressions"),
    ({"layers": ()}, "`layers` must be None or a non-empty tuple"),
    ({"layers": ("up_blocks[",)}, r"`layers` entry 'up_blocks\[' is not a valid regular expression"),
    ({"layers": (3,)}, "`layers` must contain strings, got 3"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_input_raises_a_value_error_naming_the_parameter(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MomentumAttention(**kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_defaults_are_filled_per_mode(mode: str) -> None:
    config = MomentumAttention(mode=mode)
    for name, value in DEFAULTS[mode].items():
        if value is not None:
            assert getattr(config, name) == value
    assert config.targets == ("self", "cross")


def test_extrapolate_lookahead_defaults_to_one_minus_beta() -> None:
    assert MomentumAttention(mode="extrapolate").lookahead == 1.4
    assert MomentumAttention(mode="extrapolate", beta=0.25).lookahead == 0.75
    assert MomentumAttention(mode="extrapolate", beta=0.25, lookahead=2.0).lookahead == 2.0


def test_identity_by_default_for_the_filters_and_off() -> None:
    assert MomentumAttention().is_identity
    assert MomentumAttention.off().is_identity
    assert MomentumAttention(mode="heavy_ball", beta=0.9).is_identity  # λ = 0
    assert MomentumAttention(mode="extrapolate", skip_every=1).is_identity
    assert not MomentumAttention(beta=0.2).is_identity
    assert not MomentumAttention(mode="extrapolate").is_identity
    assert MomentumAttention(beta=0.2).is_experimental and not MomentumAttention(mode="extrapolate").is_experimental


def test_skip_schedule_follows_faster_cache_phase() -> None:
    config = MomentumAttention(mode="extrapolate", skip_every=3, window=(2, 9))
    assert [s for s in range(12) if config.skips(s)] == [2, 4, 5, 7, 8]
    assert config.num_skipped(12) == 5
    assert not MomentumAttention(beta=0.5).skips(3)  # filters never skip
    assert MomentumAttention(mode="extrapolate", window=(0, None)).num_skipped(20) == 10


def test_window_membership() -> None:
    config = MomentumAttention(beta=0.5, window=(2, 4))
    assert [config.in_window(s) for s in range(5)] == [False, False, True, True, False]
    assert [config.window_passed(s) for s in range(5)] == [False, False, False, False, True]
    assert not MomentumAttention(beta=0.5).window_passed(10**6)


def test_targets_are_normalised_and_a_single_string_is_accepted() -> None:
    assert MomentumAttention(targets=("cross", "self", "cross")).targets == ("self", "cross")
    assert MomentumAttention(targets="cross").targets == ("cross",)
    assert MomentumAttention(layers=["up_blocks"]).layers == ("up_blocks",)


def test_faster_cache_preset() -> None:
    config = MomentumAttention.faster_cache()
    assert (config.mode, config.lookahead, config.skip_every, config.targets) == ("first_order", 0.5, 2, ("self",))
    assert config.beta is None


def test_config_is_frozen() -> None:
    config = MomentumAttention()
    with pytest.raises(AttributeError):
        config.beta = 0.5  # type: ignore[misc]
