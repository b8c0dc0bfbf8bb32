"""A tiny random Llama for the generate-contract tests: built in code (offline, < 1 s), and loopy when greedy."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

PAD, BOS, EOS = 0, 1, 2
PROMPTS = ([5, 6, 7, 8, 9, 10], [11, 12, 13], [20, 21, 22, 23, 24, 25, 26, 27])


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer Llama with a 64-token vocabulary and random weights, in eval mode."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    return LlamaForCausalLM(config).eval()


def left_pad(prompts: tuple[list[int], ...] | list[list[int]]) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of the prompts, left-padded with ``PAD``."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return {"input_ids": ids, "attention_mask": mask}


def strip(row: torch.Tensor, prompt_width: int, prompt: list[int]) -> list[int]:
    """Prompt plus continuation of one left-padded output row, with the left padding removed."""
    return list(prompt) + row[prompt_width:].tolist()
