"""`inertia generate text --backend llama.cpp`: bad input (llama-cpp-python missing included) is one line and exit
status 2 before any model loads; a real run prints the llama.cpp backend's continuation."""

from __future__ import annotations

import pytest

from inertia.adapters.llama_cpp import availability
from inertia.cli import main
from inertia.pipelines import llama_cpp_text
from tests.adapters.llama_cpp.smollm2 import needs_llama_cpp

TEXT = ["generate", "text", "--backend", "llama.cpp", "--prompt", "Once upon a time"]


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(llama_cpp_text, "load_llama_cpp_model", fail)


def test_a_missing_llama_cpp_is_named_before_loading(monkeypatch, no_model_load, capsys) -> None:
    monkeypatch.setattr(availability, "_MODULES", {"inertia_no_llama_cpp_here": "llama-cpp-python"})
    assert main(TEXT) == 2
    err = capsys.readouterr().err
    assert err == (
        "inertia: error: the llama.cpp backend needs llama-cpp-python, which is not installed: "
        'pip install "inertia[llama]"\n'
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "contrastive"], "`method`='contrastive' is not available with the llama.cpp backend"),
        (["--method", "no_repeat_ngram"], "`method`='no_repeat_ngram' is not available with the llama.cpp backend"),
        (
            ["--method", "beam"],
            "`method` must be one of dry, frequency_penalty, greedy, momentum, momentum_penalty, nucleus",
        ),
        (["--param", "alpha=-1"], "`alpha` must be a finite number >= 0"),
        (["--method", "dry", "--param", "base=0.5"], r"`base` must be in [1.0, inf), got 0.5"),
        (["--method", "momentum_penalty", "--param", "alpha=2"], "`alpha` must be in [0.0, 1.0], got 2"),
        (["--method", "momentum_penalty", "--param", "alpha=-0.5"], "`alpha` must be in [0.0, 1.0], got -0.5"),
        (["--method", "momentum_penalty", "--param", "top_k=5"], "takes the parameters ['alpha', 'top_p'], got"),
        (["--method", "greedy", "--param", "alpha=0.2"], "`method`='greedy' takes the parameters none, got ['alpha']"),
        (["--attention", "momentum"], "momentum attention runs on the transformers backend only"),
        (["--model", "HuggingFaceTB/SmolLM2-135M"], "the llama.cpp backend loads .gguf files"),
        (["--device", "mps"], "the llama.cpp backend runs on cpu or cuda, got --device 'mps'"),
        (["--max-new-tokens", "9000"], "--max-new-tokens must be an integer in [1, 8191], got 9000"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_loading(extra, message, no_model_load, capsys) -> None:
    assert main([*TEXT, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inertia: error: ") and message in err and err.count("\n") == 1


def test_an_unknown_backend_is_an_argument_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*TEXT[:3], "vllm", *TEXT[4:]])
    assert info.value.code == 2
    assert "invalid choice: 'vllm'" in capsys.readouterr().err


@needs_llama_cpp
@pytest.mark.xdist_group("llama_cpp")
def test_generate_text_prints_the_llama_cpp_continuation(capsys) -> None:
    prompt = "My favourite food is pizza because"
    assert main([*TEXT[:5], prompt, "--method", "momentum", "--max-new-tokens", "16", "--device", "cpu"]) == 0
    expected = llama_cpp_text.generate_text_llama_cpp(
        llama_cpp_text.load_llama_cpp_model(device="cpu"), prompt, "momentum", 16
    )
    assert expected.strip() and capsys.readouterr().out == expected + "\n"


@needs_llama_cpp
@pytest.mark.xdist_group("llama_cpp")
def test_generate_text_with_the_momentum_penalty_prints_its_seeded_continuation(capsys) -> None:
    prompt = "My favourite food is pizza because"
    argv = [*TEXT[:5], prompt, "--method", "momentum_penalty", "--param", "alpha=0.3", "--max-new-tokens", "16"]
    assert main([*argv, "--seed", "1", "--device", "cpu"]) == 0
    llama = llama_cpp_text.load_llama_cpp_model(device="cpu")
    expected = llama_cpp_text.generate_text_llama_cpp(llama, prompt, "momentum_penalty", 16, seed=1, alpha=0.3)
    assert expected.strip() and capsys.readouterr().out == expected + "\n"
    assert expected != llama_cpp_text.generate_text_llama_cpp(llama, prompt, "momentum_penalty", 16, seed=2, alpha=0.3)
