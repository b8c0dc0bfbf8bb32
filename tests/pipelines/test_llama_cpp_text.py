"""The llama.cpp text backend of the CLI and the UI: every method by name, streaming, and its checks."""

from __future__ import annotations

import itertools

import pytest

from inertia.pipelines.llama_cpp_text import (
    LLAMA_CPP_METHODS,
    check_llama_cpp_request,
    generate_text_llama_cpp,
    load_llama_cpp_model,
    stream_text_llama_cpp,
)
from tests.adapters.llama_cpp.smollm2 import needs_llama_cpp, shared_llama

PROMPT = "My favourite food is pizza because"


@needs_llama_cpp
@pytest.mark.xdist_group("llama_cpp")
def test_every_method_runs_and_streams_a_growing_text() -> None:
    from inertia.adapters.llama_cpp.generate import generate_momentum

    llama = shared_llama()
    texts = {}
    for method in LLAMA_CPP_METHODS:
        steps = list(stream_text_llama_cpp(llama, PROMPT, method, max_new_tokens=8, seed=1))
        assert [count for _, count in steps] == list(range(1, len(steps) + 1)) and len(steps) == 8, method
        assert all(later.startswith(earlier) for (earlier, _), (later, _) in itertools.pairwise(steps)), method
        texts[method] = steps[-1][0]
        assert generate_text_llama_cpp(llama, PROMPT, method, max_new_tokens=8, seed=1) == texts[method], method
    tokens = list(generate_momentum(llama, llama.tokenize(PROMPT.encode(), add_bos=True, special=False), 8))
    assert texts["momentum"] == llama.detokenize(tokens).decode()
    assert texts["nucleus"] != generate_text_llama_cpp(llama, PROMPT, "nucleus", max_new_tokens=8, seed=2)


@needs_llama_cpp
@pytest.mark.xdist_group("llama_cpp")
def test_checks_that_need_the_model_come_before_generation() -> None:
    import llama_cpp

    with pytest.raises(ValueError, match=r"`max_new_tokens`=8190 after a 6-token prompt exceeds the context of 8192"):
        stream_text_llama_cpp(shared_llama(), PROMPT, "greedy", max_new_tokens=8190)
    with pytest.raises(ValueError, match="`top_k` must be an integer >= 1"):
        stream_text_llama_cpp(shared_llama(), PROMPT, "momentum", top_k=0)
    if not llama_cpp.llama_supports_gpu_offload():
        with pytest.raises(ValueError, match="this llama-cpp-python build has no GPU support"):
            load_llama_cpp_model(device="cuda")


def test_defaults_are_filled_in_and_checked() -> None:
    pytest.importorskip("llama_cpp", reason="the request check ends by asking for llama-cpp-python")
    assert check_llama_cpp_request("momentum", {"alpha": 0.3}) == {"alpha": 0.3, "top_k": 5}
    assert check_llama_cpp_request("repetition_penalty", {}) == {"penalty": 1.2, "last_n": -1}
    with pytest.raises(ValueError, match=r"`penalty` must be in \(0.0, inf\), got 0"):
        check_llama_cpp_request("repetition_penalty", {"penalty": 0})
    with pytest.raises(ValueError, match=r"`last_n` must be an integer in \[-1, 8192\], got -2"):
        check_llama_cpp_request("presence_penalty", {"last_n": -2})
    assert check_llama_cpp_request("momentum_penalty", {}) == {"alpha": 0.2, "top_p": 0.95}
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0.0, 1.0\], got 1.5"):  # the transformers range
        check_llama_cpp_request("momentum_penalty", {"alpha": 1.5})
    # momentum decoding takes the products' ranges too (the CLI's --param, the UI's sliders), as on transformers
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0.0, 1.0\], got 5"):
        check_llama_cpp_request("momentum", {"alpha": 5})
    with pytest.raises(ValueError, match=r"`top_k` must be an integer in \[1, 20\], got 50"):
        check_llama_cpp_request("momentum", {"top_k": 50})


@needs_llama_cpp
@pytest.mark.xdist_group("llama_cpp")
def test_the_momentum_penalty_is_nucleus_sampling_after_the_penalty_seeded_alike() -> None:
    llama = shared_llama()
    nucleus = generate_text_llama_cpp(llama, PROMPT, "nucleus", max_new_tokens=16, seed=3)
    assert generate_text_llama_cpp(llama, PROMPT, "momentum_penalty", max_new_tokens=16, seed=3, alpha=0.0) == nucleus
    penalised = generate_text_llama_cpp(llama, PROMPT, "momentum_penalty", max_new_tokens=16, seed=3)  # α = 0.2
    assert penalised != nucleus
    assert generate_text_llama_cpp(llama, PROMPT, "momentum_penalty", max_new_tokens=16, seed=4) != penalised
