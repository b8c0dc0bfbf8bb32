"""The Text tab on the llama.cpp backend (``stream_comparison(..., backend="llama.cpp")``): both sides streamed from
llama.cpp with the tab's figures, the transformers model never loaded, bad choices named before any generation."""

from __future__ import annotations

import pytest

from inertia.adapters.llama_cpp import availability
from inertia.ui.llama_cpp_text import llama_cpp_text_model
from inertia.ui.models import ModelStore, UserInputError
from inertia.ui.text_tab import stream_comparison
from tests.adapters.llama_cpp.smollm2 import needs_llama_cpp

TOKENS = 12


def no_transformers(device: object) -> tuple[object, object]:
    raise AssertionError("the transformers model was loaded for a llama.cpp request")


@pytest.fixture
def store() -> ModelStore:
    return ModelStore("cpu", text_loader=no_transformers)


@needs_llama_cpp
@pytest.mark.xdist_group("llama_cpp")
def test_both_sides_stream_from_llama_cpp_with_figures(store: ModelStore) -> None:
    from inertia.pipelines.llama_cpp_text import generate_text_llama_cpp

    prompt = "Repeat after me: red, blue, red, blue, red, blue,"
    updates = list(
        stream_comparison(store, prompt, "greedy", "dry", max_new_tokens=TOKENS, highlight_n=2, backend="llama.cpp")
    )
    a, b, table, figures = updates[-1]
    assert len(updates) > 2 and not store.text_loaded
    llama = llama_cpp_text_model(store.device).model
    assert "".join(t for t, _ in a) == generate_text_llama_cpp(llama, prompt, "greedy", TOKENS)
    assert "".join(t for t, _ in b) == generate_text_llama_cpp(llama, prompt, "dry", TOKENS)
    assert figures["backend"] == "llama.cpp"
    for side in ("A", "B"):
        run = figures["runs"][side]
        assert 1 <= run["new_tokens"] <= TOKENS and run["tokens_per_second"] > 0 and "rep-2" in run
    assert "| A | `greedy` |" in table and "| B | `dry` |" in table
    momentum = list(stream_comparison(store, prompt, "greedy", "momentum", 0.3, 4, TOKENS, backend="llama.cpp"))
    assert momentum[-1][3]["runs"]["B"]["params"] == {"alpha": 0.3, "top_k": 4}


@needs_llama_cpp
@pytest.mark.xdist_group("llama_cpp")
def test_the_alpha_slider_drives_the_momentum_penalty_seeded_like_nucleus(store: ModelStore) -> None:
    from inertia.pipelines.llama_cpp_text import generate_text_llama_cpp

    prompt = "My favourite food is pizza because"
    args = {"alpha": 0.3, "top_k": 7, "max_new_tokens": TOKENS, "seed": 4, "backend": "llama.cpp"}
    a, b, table, figures = list(stream_comparison(store, prompt, "nucleus", "momentum_penalty", **args))[-1]
    llama = llama_cpp_text_model(store.device).model
    assert "".join(t for t, _ in a) == generate_text_llama_cpp(llama, prompt, "nucleus", TOKENS, seed=4)
    assert "".join(t for t, _ in b) == generate_text_llama_cpp(
        llama, prompt, "momentum_penalty", TOKENS, seed=4, alpha=0.3
    )
    assert figures["runs"]["B"]["params"] == {"alpha": 0.3} and "| B | `momentum_penalty` (alpha=0.3) |" in table


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method_b": "contrastive"}, "Method B: `method`='contrastive' is not available with the llama.cpp backend"),
        ({"method_a": "no_repeat_ngram"}, "Method A: `method`='no_repeat_ngram' is not available"),
        ({"attention_b": "momentum"}, "momentum attention runs on the transformers backend only"),
        ({"alpha": -1.0}, "Momentum α must be in [0.0, 1.0], got -1.0"),
        ({"alpha": 1.5}, "Momentum α must be in [0.0, 1.0], got 1.5"),  # the transformers backend's range
        ({"top_k": 50}, "Momentum top-k must be an integer in [1, 20], got 50"),
        ({"method_a": "momentum_penalty", "alpha": 1.5}, "Momentum α must be in [0.0, 1.0], got 1.5"),
        ({"backend": "vllm"}, "Backend must be one of 'transformers', 'llama.cpp', got 'vllm'"),
    ],
)
def test_bad_choices_are_named_before_any_model_loads(store: ModelStore, kwargs: dict, message: str) -> None:
    args = {"method_a": "greedy", "method_b": "momentum", "backend": "llama.cpp", **kwargs}
    with pytest.raises(UserInputError) as raised:
        next(stream_comparison(store, "The old lighthouse keeper", **args))
    assert message in str(raised.value)


def test_llama_cpp_only_methods_are_named_on_the_transformers_backend(store: ModelStore) -> None:
    with pytest.raises(UserInputError, match="Decoding method must be one of"):
        next(stream_comparison(store, "The old lighthouse keeper", "greedy", "dry"))


def test_a_missing_llama_cpp_names_the_install_command(store: ModelStore, monkeypatch) -> None:
    monkeypatch.setattr(availability, "_MODULES", {"inertia_no_llama_cpp_here": "llama-cpp-python"})
    with pytest.raises(
        UserInputError, match=r'needs llama-cpp-python, which is not installed: pip install "inertia\[llama\]"'
    ):
        next(stream_comparison(store, "The old lighthouse keeper", backend="llama.cpp"))
