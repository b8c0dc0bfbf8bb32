"""A vLLM request's ``md_*`` keys: off without them, the transformers processor's checks and messages with them."""

from __future__ import annotations

import math

import pytest

from inertia.adapters.vllm.settings import KEYS, MomentumSettings, check_request, settings_of
from inertia.core.decoding.momentum import RESISTANCE_PRESETS
from inertia.decoders import MomentumDecodingLogitsProcessor
from tests.adapters.vllm.fake_runners import params


@pytest.mark.parametrize("extra", [None, {}, {"seed_text": 1}, {"md": 1}, {"alpha": 0.2}])
def test_no_md_key_means_off(extra: dict[str, object] | None) -> None:
    assert settings_of(extra) is None


def test_defaults_and_values_are_those_of_the_transformers_processor() -> None:
    reference = MomentumDecodingLogitsProcessor()
    assert settings_of({"md_alpha": 0.2}) == MomentumSettings(reference.alpha, reference.top_k, reference.resistance)
    settings = settings_of({"md_alpha": 1, "md_top_k": 8, "md_resistance": [0, 1, 2], "md_max_ngram": 4})
    assert settings == MomentumSettings(1.0, 8, (0.0, 1.0, 2.0, math.inf, math.inf))
    assert (
        settings is not None and settings.max_ngram == 4 and settings.penalties == (0.0, 1.0, 2.0, math.inf, math.inf)
    )
    assert settings_of({"md_resistance": "ngram_block"}) == MomentumSettings(0.2, 5, RESISTANCE_PRESETS["ngram_block"])
    zero = settings_of({"md_alpha": 0})  # on, and exactly greedy: 0·R(l) = 0, inf included
    assert zero is not None and zero.penalties == (0.0,) * 6


@pytest.mark.parametrize(
    ("key", "value", "processor_kwargs"),
    [
        ("md_alpha", -0.1, {"alpha": -0.1}),
        ("md_alpha", math.nan, {"alpha": math.nan}),
        ("md_alpha", "0.2", {"alpha": "0.2"}),
        ("md_alpha", True, {"alpha": True}),
        ("md_top_k", 0, {"top_k": 0}),
        ("md_top_k", 2.0, {"top_k": 2.0}),
        ("md_resistance", "steep", {"resistance": "steep"}),
        ("md_resistance", [0], {"resistance": [0]}),
        ("md_resistance", [0, -1], {"resistance": [0, -1]}),
        ("md_resistance", [math.inf, 1], {"resistance": [math.inf, 1]}),
    ],
)
def test_bad_values_raise_the_transformers_processors_errors_named_by_key(
    key: str, value: object, processor_kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError) as ours:
        settings_of({key: value})
    with pytest.raises(ValueError) as theirs:
        MomentumDecodingLogitsProcessor(**processor_kwargs)  # type: ignore[arg-type]
    name = next(iter(processor_kwargs))
    assert str(ours.value) == str(theirs.value).replace(f"`{name}`", f"`{key}`")


@pytest.mark.parametrize("value", [0, 33, 2.5, "5"])
def test_bad_max_ngram_is_named(value: object) -> None:
    with pytest.raises(ValueError, match=r"^`md_max_ngram` must be an integer in \[1, 32\], got "):
        settings_of({"md_max_ngram": value})


def test_max_ngram_below_the_table_is_refused() -> None:
    with pytest.raises(ValueError, match=r"`max_ngram`=2 is smaller than the resistance table allows \(5\)"):
        settings_of({"md_max_ngram": 2})


def test_an_unknown_md_key_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown momentum-decoding key\(s\) 'md_topk' in `extra_args`") as error:
        settings_of({"md_alpha": 0.2, "md_topk": 5})
    assert all(key in str(error.value) for key in KEYS)


@pytest.mark.parametrize("temperature", [1e-5, 0.7, 1.0])
def test_sampling_is_refused_only_when_momentum_decoding_is_asked(temperature: float) -> None:
    with pytest.raises(ValueError, match=rf"greedy selection rule: set `temperature`=0, got {temperature}"):
        check_request(params(temperature=temperature, md_alpha=0.2))
    assert check_request(params(temperature=temperature)) is None
    assert check_request(params(temperature=0.0, md_alpha=0.2)) is not None
