"""Prompts against the text model's context: the bound from metadata (before loading) and the exact check after."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from inertia.pipelines.text_context import (
    ContextLimits,
    check_prompt_fits,
    context_limits,
    min_prompt_tokens,
    read_gguf_metadata,
)
from tests.pipelines.test_text_model import tiny_folder  # noqa: F401  (a fixture)

LONG_PROMPT = "The old lighthouse keeper climbed the stairs. " * 2600  # about 120k characters, 18,200 words


def _gguf(path, entries) -> None:
    """A GGUF v3 header with string / uint32 / string-array entries and no tensors."""

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    body = b""
    for key, value in entries.items():
        body += string(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + string(value)
        elif isinstance(value, int):
            body += struct.pack("<II", 4, value)
        else:
            body += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(string(v) for v in value)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + body)


def test_min_tokens_is_a_word_and_a_token_length_bound() -> None:
    assert min_prompt_tokens("a lighthouse keeper", None) == 3
    assert min_prompt_tokens("a lighthouse keeper", 4) == 1 + 3 + 2
    assert min_prompt_tokens("  ", 4) == 0


def test_the_embedded_models_limits_come_from_its_gguf_header() -> None:
    limits = context_limits(None)
    assert limits == ContextLimits(context_length=8192, longest_token=limits.longest_token, splits_words=True)
    assert limits.longest_token is not None and 8 <= limits.longest_token <= 200


def test_the_bound_never_exceeds_the_real_token_count(tiny_folder) -> None:  # noqa: F811
    from inertia.pipelines.text import load_text_model

    _, tokenizer = load_text_model(tiny_folder, device="cpu")
    limits = context_limits(tiny_folder)
    assert limits == ContextLimits(2048, None, True)  # word-level: an unknown word is one token, whatever its length
    for prompt in ("w1 w2 w3", "w1  w2\nw30 w4 unknownword", LONG_PROMPT[:500]):
        assert min_prompt_tokens(prompt, limits.longest_token) <= len(tokenizer(prompt)["input_ids"])


def test_a_prompt_far_too_long_is_refused_from_the_header_alone() -> None:
    code = (
        "import sys\n"
        "from inertia.pipelines.text_context import check_prompt_fits\n"
        f"prompt = {LONG_PROMPT!r}\n"
        "try:\n"
        "    check_prompt_fits(prompt, 64, None)\n"
        "except ValueError as err:\n"
        "    print(err)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=60, check=True)
    message, heavy = done.stdout.strip().splitlines()
    assert message == (
        f"--prompt is too long for the model: {len(LONG_PROMPT)} characters are at least 18200 tokens, and with "
        "--max-new-tokens 64 that is more than its context of 8192 tokens."
    )
    assert heavy == "[]"


def test_prompts_that_may_fit_pass_and_unknown_models_are_left_to_the_loader(tmp_path) -> None:
    check_prompt_fits("The old lighthouse keeper", 64, None)
    check_prompt_fits("x" * 120_000, 64, None)  # one long word: the exact count decides, after tokenizing
    check_prompt_fits(LONG_PROMPT, 64, "owner/name")  # a hub id: nothing known before loading
    check_prompt_fits(LONG_PROMPT, 64, tmp_path)  # no config.json


def test_folders_and_gguf_files(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 1024}))
    vocabulary = {"Ġthe": 0, "light": 1, "house": 2, "ĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠĠ": 3}
    tokenizer = {"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": vocabulary}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer))
    assert context_limits(tmp_path) == ContextLimits(1024, 5, True)  # whitespace runs do not count
    with pytest.raises(ValueError, match="context of 1024 tokens"):
        check_prompt_fits("lighthouse " * 1000, 64, tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({**tokenizer, "pre_tokenizer": None}))
    assert context_limits(tmp_path) == ContextLimits(1024, None, False)  # no whitespace split: no bound
    check_prompt_fits("lighthouse " * 1000, 64, tmp_path)

    gguf = tmp_path / "m.gguf"
    _gguf(gguf, {"general.architecture": "llama", "llama.context_length": 512, "tokenizer.ggml.model": "gpt2",
                 "tokenizer.ggml.tokens": ["a", "Ġlight", "house"]})  # fmt: skip
    assert read_gguf_metadata(gguf)["llama.context_length"] == 512
    assert context_limits(gguf) == ContextLimits(512, 6, True)
    with pytest.raises(ValueError, match="--prompt is too long"):
        check_prompt_fits("word " * 500, 64, gguf)
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x07")
    assert context_limits(tmp_path / "bad.gguf") is None


def test_generate_text_checks_the_exact_count_before_generating(tiny_folder) -> None:  # noqa: F811
    from inertia.pipelines.text import load_text_model
    from inertia.pipelines.text_generation import generate_text

    model, tokenizer = load_text_model(tiny_folder, device="cpu")
    with pytest.raises(ValueError, match=r"`prompt` is 2040 tokens; with `max_new_tokens`=16 that is more than the "):
        generate_text(model, tokenizer, "w1 " * 2040, method="greedy", max_new_tokens=16)
    assert isinstance(generate_text(model, tokenizer, "w1 " * 2030, method="greedy", max_new_tokens=16), str)


def test_product_ranges_of_momentum_decoding() -> None:
    from inertia.pipelines.text_generation import PARAM_RANGES, check_method

    assert PARAM_RANGES["momentum"] == {"alpha": (0.0, 1.0), "top_k": (1, 20)}
    assert check_method("momentum", alpha=1.0, top_k=20) == {"alpha": 1.0, "top_k": 20}
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0.0, 1.0\], got 5"):
        check_method("momentum", alpha=5)
    with pytest.raises(ValueError, match=r"`top_k` must be an integer in \[1, 20\], got 21"):
        check_method("momentum", top_k=21)
    assert check_method("top_k", top_k=50) == {"top_k": 50}  # the top-k sampler's own k is not capped
