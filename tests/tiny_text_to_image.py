"""A tiny SDXL pipeline *with* text encoders and tokenizers, saved to a folder: what ``--model <hub id> --prompt``
loads, offline (the README's SDXL command runs against it).

`tiny_pipelines.make_pipeline("sdxl")` has no text encoders (its tests pass embeddings); here two CLIP text encoders
with 8-wide hidden states (their penultimate states concatenated: the UNet's 16-wide cross-attention) and a
character-level CLIP tokenizer are added, all random and built in code (< 1 s).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from tiny_pipelines import make_pipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

__all__ = ["save_tiny_sdxl"]


def _tokenizer(folder: Path) -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is the lowercase letters and digits (word-final forms too), no merges."""
    symbols = list(string.ascii_lowercase + string.digits)
    vocabulary = ["<|startoftext|>", "<|endoftext|>", *symbols, *(f"{s}</w>" for s in symbols)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocabulary)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def _encoder_config(vocab_size: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=16,
        projection_dim=8,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def save_tiny_sdxl(folder: Path, seed: int = 0) -> Path:
    """Saves the tiny SDXL text-to-image pipeline (``StableDiffusionXLPipeline``) to ``folder``; returns it."""
    tokenizer = _tokenizer(folder / "_vocabulary")
    config = _encoder_config(len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder, text_encoder_2 = CLIPTextModel(config).eval(), CLIPTextModelWithProjection(config).eval()
    pipe = make_pipeline("sdxl", seed=seed)
    pipe.register_modules(
        text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer, tokenizer_2=tokenizer
    )
    pipe.save_pretrained(folder)
    return folder
