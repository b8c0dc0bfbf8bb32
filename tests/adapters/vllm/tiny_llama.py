"""A tiny random Llama and a word-level tokenizer, built in code and saved to a folder vLLM loads (no download).

Two layers, hidden size 128 with two heads of 64 (vLLM's CPU attention has no kernel for smaller heads), 256 words.
The weights are drawn with a wide ``initializer_range`` so that the next-token distributions are peaked, as a
trained model's are: its choices then do not hinge on float rounding, so vLLM's CPU kernels and transformers' eager
path choose the same tokens.

Example:
    >>> # save_tiny_llama(tmp_path / "tiny")   # config.json, model.safetensors, tokenizer.json, ...
"""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 256
BOS, EOS = 1, 2


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """Writes the model and tokenizer to ``folder`` and returns it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = {"<unk>": 0, "<s>": BOS, "</s>": EOS, **{f"w{i}": i for i in range(3, VOCAB)}}
    tokenizer = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece()  # joins the words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        bos_token_id=BOS,
        eos_token_id=EOS,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
